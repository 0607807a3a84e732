package shard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/rest"
)

const (
	// LabelRing marks a member Lease with the name of its ring.
	LabelRing = "raas.dev/shard-ring"
	// Finalizer keeps a member Lease until its member, or a member that saw it expire,
	// removes it: a Lease that is gone is one whose member has stopped.
	Finalizer = "raas.dev/shard-member"
	// annotationAddress holds Options.Address.
	annotationAddress = "raas.dev/shard-address"
)

// ErrNotOwner is the error Fence wraps when the member must not write a key.
var ErrNotOwner = errors.New("not the owner")

// Member is this process's place in a ring. Join makes one, Run keeps it, Leave ends it.
// Its methods are safe for concurrent use.
type Member struct {
	opts    Options
	leases  coordinationv1client.LeaseInterface
	log     *slog.Logger
	changes chan struct{}

	mu sync.Mutex
	// own is this member's Lease as last written or read; nil while it holds none.
	own *coordinationv1.Lease
	// sent holds when the writes of own that count were sent, oldest first.
	sent []time.Time
	// stopped is when the member stopped counting on own, to release it; zero if not.
	stopped time.Time
	// left is set by Leave, for good.
	left bool
	// blocker is a Lease of this member's name that is not its own, waited out.
	blocker *observed
	view    view
	// state is what Changes last signalled.
	state string

	run struct {
		sync.Mutex
		cancel context.CancelFunc
		done   chan struct{}
	}
}

// view is what the member last listed of the ring's Leases, others' only.
type view struct {
	// sent is when the list was sent: it shows every write answered before then.
	sent  time.Time
	peers map[types.UID]observed
}

// observed is a Lease as seen by this member.
type observed struct {
	lease *coordinationv1.Lease
	// seen is when this member first received the Lease at its current resourceVersion,
	// which is after the write of that version landed.
	seen time.Time
}

func (o observed) holder() string {
	if h := o.lease.Spec.HolderIdentity; h != nil {
		return *h
	}
	return ""
}

// Join makes this process a member of the ring opts names on the cluster cfg reaches:
// it lists the ring and creates its member Lease (or, when a Lease of its name is left
// from a previous process, waits it out in Run). It owns no key until Run has kept the
// Lease for a while; see the package documentation. ctx bounds Join only.
func Join(ctx context.Context, cfg *rest.Config, opts Options) (*Member, error) {
	opts, err := opts.complete()
	if err != nil {
		return nil, err
	}
	// Renewals never wait behind a client-side rate limit: the member sends at most a
	// few requests per renew period.
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.RateLimiter = -1, nil
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("shard member %s: %w", opts.Identity, err)
	}
	m := &Member{
		opts:    opts,
		leases:  cs.CoordinationV1().Leases(opts.Namespace),
		log:     opts.Logger.With("ring", opts.Ring, "member", opts.Identity),
		changes: make(chan struct{}, 1),
	}
	if err := m.look(ctx); err != nil {
		return nil, fmt.Errorf("shard member %s: list ring %s: %w", opts.Identity, opts.Ring, err)
	}
	if err := m.acquire(ctx); err != nil {
		return nil, fmt.Errorf("shard member %s: lease %s/%s: %w", opts.Identity, opts.Namespace, m.leaseName(), err)
	}
	m.notify()
	return m, nil
}

// Identity is the member's name in the ring.
func (m *Member) Identity() string { return m.opts.Identity }

// Margin is the time a write that Fence allowed may take to land (Options.Margin): give
// each such write that deadline.
func (m *Member) Margin() time.Duration { return m.opts.Margin }

// Fence returns nil if the member may write key now: it owns key in its view of the
// ring, that view is fresh, and its own membership is confirmed. Otherwise it returns
// an error wrapping ErrNotOwner that says why. Check it before every write of key, and
// let the write land within Options.Margin (bound it with a context deadline).
func (m *Member) Fence(key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.opts.Now()
	reason := m.inactive(now)
	if reason == "" {
		owner := m.ring(now).Owner(key)
		if owner == m.opts.Identity {
			return nil
		}
		reason = owner + " owns it"
	}
	return fmt.Errorf("shard member %s: key %s: %w: %s", m.opts.Identity, key, ErrNotOwner, reason)
}

// Owns reports whether Fence(key) allows a write now.
func (m *Member) Owns(key string) bool { return m.Fence(key) == nil }

// Ring returns the members this member defers to now: itself, unless it left, and every
// member whose Lease it has seen and not seen expire, new ones included. Keys that
// Ring().Owner gives to a member that is still joining belong to no one until it owns
// them.
func (m *Member) Ring() Ring {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ring(m.opts.Now())
}

// Changes is signalled (without blocking; signals coalesce) whenever the keys this
// member owns may have changed: a member joined, left or expired, or this member began
// or ceased to own anything. Read Ring or Owns then.
func (m *Member) Changes() <-chan struct{} { return m.changes }

// inactive says why the member owns nothing at now, or returns "".
func (m *Member) inactive(now time.Time) string {
	switch {
	case m.left:
		return "left the ring"
	case !m.stopped.IsZero():
		return "releasing its Lease"
	case m.own == nil:
		return "holds no Lease"
	case m.view.sent.IsZero() || now.Sub(m.view.sent) > m.opts.maxViewAge():
		return fmt.Sprintf("its view of the ring is older than %s", m.opts.maxViewAge())
	}
	for i := len(m.sent) - 1; i >= 0; i-- {
		if age := now.Sub(m.sent[i]); age >= m.opts.maturity() {
			if age < m.opts.LeaseDuration-m.opts.Margin {
				return ""
			}
			return fmt.Sprintf("no renewal confirmed for %s", age.Round(time.Millisecond))
		}
	}
	return "joining: its Lease is not confirmed yet"
}

// ring is the Ring at now; see Ring.
func (m *Member) ring(now time.Time) Ring {
	var members []string
	addresses := map[string]string{}
	if !m.left {
		members = append(members, m.opts.Identity)
		addresses[m.opts.Identity] = m.opts.Address
	}
	for _, p := range m.view.peers {
		if now.Sub(p.seen) < m.opts.LeaseDuration {
			members = append(members, p.holder())
			addresses[p.holder()] = p.lease.Annotations[annotationAddress]
		}
	}
	r := NewRing(members...)
	r.addresses = addresses
	return r
}

// nextChange is the first instant after now at which ring or inactive may change
// without a new read, or zero.
func (m *Member) nextChange(now time.Time) time.Time {
	var next time.Time
	consider := func(t time.Time) {
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, p := range m.view.peers {
		consider(p.seen.Add(m.opts.LeaseDuration))
	}
	for _, s := range m.sent {
		consider(s.Add(m.opts.maturity()))
		consider(s.Add(m.opts.LeaseDuration - m.opts.Margin))
	}
	if !m.view.sent.IsZero() {
		consider(m.view.sent.Add(m.opts.maxViewAge()))
	}
	return next
}

// notify signals Changes if the ring or whether the member owns anything changed.
func (m *Member) notify() {
	m.mu.Lock()
	now := m.opts.Now()
	members := m.ring(now).members
	reason := m.inactive(now)
	state := fmt.Sprintf("%s|%t", strings.Join(members, ","), reason == "")
	changed := state != m.state
	m.state = state
	m.mu.Unlock()
	if !changed {
		return
	}
	if reason == "" {
		m.log.Info("shard ring changed", "members", members, "owning", true)
	} else {
		m.log.Info("shard ring changed", "members", members, "owning", false, "because", reason)
	}
	select {
	case m.changes <- struct{}{}:
	default:
	}
}

func (m *Member) leaseName() string { return leaseName(m.opts.Ring, m.opts.Identity) }

// leaseSeconds is LeaseDuration as the Lease's spec shows it, for people reading it.
func (m *Member) leaseSeconds() *int32 {
	s := int32(math.Ceil(m.opts.LeaseDuration.Seconds()))
	return &s
}
