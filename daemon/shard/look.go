package shard

import (
	"context"
	"slices"
	"strings"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// look lists the ring's Leases into the member's view. A list without a resourceVersion
// is a consistent read: it shows every write answered before it was sent.
func (m *Member) look(ctx context.Context) error {
	sent := m.opts.Now()
	list, err := call(ctx, m.opts.Timeout, func(ctx context.Context) (*coordinationv1.LeaseList, error) {
		return m.leases.List(ctx, metav1.ListOptions{LabelSelector: LabelRing + "=" + m.opts.Ring})
	})
	if err != nil {
		return err
	}
	received := m.opts.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	peers := make(map[types.UID]observed, len(list.Items))
	for i := range list.Items {
		l := &list.Items[i]
		p := observed{lease: l, seen: received}
		if p.holder() == "" || p.holder() == m.opts.Identity {
			continue
		}
		old, known := m.view.peers[l.UID]
		if known && old.lease.ResourceVersion == l.ResourceVersion {
			p.seen = old.seen
		}
		if !known {
			m.log.Info("shard member seen", "peer", p.holder())
		}
		peers[l.UID] = p
	}
	for uid, old := range m.view.peers {
		if _, ok := peers[uid]; !ok {
			m.log.Info("shard member gone", "peer", old.holder())
		}
	}
	m.view = view{sent: sent, peers: peers}
	return nil
}

// collect removes the Leases of members this member saw expire, so that members that
// died leave nothing in the ring's namespace, and members that join later do not wait
// for them: a member counts a Lease it first lists for LeaseDuration, however old it is.
// A member that only lost touch finds its Lease gone when it renews, and joins again.
func (m *Member) collect(ctx context.Context) {
	m.mu.Lock()
	now := m.opts.Now()
	var dead []*coordinationv1.Lease
	for _, p := range m.view.peers {
		if now.Sub(p.seen) >= m.opts.LeaseDuration {
			dead = append(dead, p.lease)
		}
	}
	m.mu.Unlock()
	slices.SortFunc(dead, func(a, b *coordinationv1.Lease) int { return strings.Compare(a.Name, b.Name) })
	for _, l := range dead {
		if err := m.remove(ctx, l); err != nil {
			m.log.Debug("shard lease of a departed member not removed", "lease", l.Name, "error", err)
			continue
		}
		m.log.Info("shard lease of a departed member removed", "lease", l.Name, "holder", *l.Spec.HolderIdentity)
	}
}
