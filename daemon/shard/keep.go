package shard

import (
	"context"
	"fmt"
	"slices"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// keep renews the member's Lease, creates it when it holds none, or finishes releasing
// it: one step per renew period.
func (m *Member) keep(ctx context.Context) error {
	m.mu.Lock()
	own, stopped, left := m.own, m.stopped, m.left
	m.mu.Unlock()
	switch {
	case left:
		return nil
	case !stopped.IsZero():
		return m.release(ctx)
	case own == nil:
		return m.acquire(ctx)
	}
	return m.renew(ctx, own)
}

// acquire creates the member's Lease. When a Lease of its name exists, left by a
// previous process of this identity, it waits until that Lease has not changed for
// LeaseDuration, so that its holder has stopped, and removes it.
func (m *Member) acquire(ctx context.Context) error {
	now := m.opts.Now()
	id := m.opts.Identity
	l := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{
			Name: m.leaseName(), Namespace: m.opts.Namespace,
			Labels:     map[string]string{LabelRing: m.opts.Ring},
			Finalizers: []string{Finalizer},
		},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       &id,
			LeaseDurationSeconds: m.leaseSeconds(),
			AcquireTime:          &metav1.MicroTime{Time: now},
			RenewTime:            &metav1.MicroTime{Time: now},
		},
	}
	if m.opts.Address != "" {
		l.Annotations = map[string]string{annotationAddress: m.opts.Address}
	}
	got, err := call(ctx, m.opts.Timeout, func(ctx context.Context) (*coordinationv1.Lease, error) {
		return m.leases.Create(ctx, l, metav1.CreateOptions{})
	})
	switch {
	case err == nil:
		m.log.Info("shard lease created", "lease", l.Name)
		m.wrote(got, now)
		return nil
	case !apierrors.IsAlreadyExists(err):
		return err
	}

	cur, err := call(ctx, m.opts.Timeout, func(ctx context.Context) (*coordinationv1.Lease, error) {
		return m.leases.Get(ctx, l.Name, metav1.GetOptions{})
	})
	if apierrors.IsNotFound(err) {
		return nil // gone since: create it next time
	}
	if err != nil {
		return err
	}
	received := m.opts.Now()
	m.mu.Lock()
	b := m.blocker
	if b == nil || b.lease.UID != cur.UID || b.lease.ResourceVersion != cur.ResourceVersion {
		m.blocker = &observed{lease: cur, seen: received}
		m.mu.Unlock()
		m.log.Info("shard lease held by a previous process: waiting for it to expire", "lease", l.Name, "lease_duration", m.opts.LeaseDuration)
		return nil
	}
	m.mu.Unlock()
	if received.Sub(b.seen) < m.opts.LeaseDuration {
		return nil
	}
	if err := m.remove(ctx, cur); err != nil {
		return fmt.Errorf("remove the expired lease: %w", err)
	}
	m.log.Info("shard lease of a previous process expired: removed", "lease", l.Name)
	m.mu.Lock()
	m.blocker = nil
	m.mu.Unlock()
	return m.acquire(ctx)
}

// renew writes a new renewTime into the member's Lease.
func (m *Member) renew(ctx context.Context, own *coordinationv1.Lease) error {
	for attempt := 0; ; attempt++ {
		l := own.DeepCopy()
		now := m.opts.Now()
		l.Spec.RenewTime = &metav1.MicroTime{Time: now}
		// Put back what someone may have taken off: the others need both.
		if !slices.Contains(l.Finalizers, Finalizer) {
			l.Finalizers = append(l.Finalizers, Finalizer)
		}
		if l.Labels[LabelRing] != m.opts.Ring {
			if l.Labels == nil {
				l.Labels = map[string]string{}
			}
			l.Labels[LabelRing] = m.opts.Ring
		}
		got, err := call(ctx, m.opts.Timeout, func(ctx context.Context) (*coordinationv1.Lease, error) {
			return m.leases.Update(ctx, l, metav1.UpdateOptions{})
		})
		switch {
		case err == nil:
			m.wrote(got, now)
			return nil
		case apierrors.IsNotFound(err):
			m.lost("deleted")
			return nil
		case !apierrors.IsConflict(err) || attempt > 0:
			return fmt.Errorf("renew: %w", err)
		}
		// Someone else wrote the Lease: read it and try once more.
		cur, err := call(ctx, m.opts.Timeout, func(ctx context.Context) (*coordinationv1.Lease, error) {
			return m.leases.Get(ctx, own.Name, metav1.GetOptions{})
		})
		switch {
		case apierrors.IsNotFound(err):
			m.lost("deleted")
			return nil
		case err != nil:
			return fmt.Errorf("renew: %w", err)
		case cur.UID != own.UID:
			m.lost("replaced")
			return nil
		case cur.DeletionTimestamp != nil:
			m.wrote(cur, time.Time{})
			return nil
		}
		own = cur
	}
}

// wrote records a write of the member's Lease sent at sent (zero for a read) and
// answered now: it counts if it was answered within Timeout. A Lease being deleted
// does not count, and the member releases it.
func (m *Member) wrote(got *coordinationv1.Lease, sent time.Time) {
	answered := m.opts.Now()
	m.mu.Lock()
	m.own = got
	if got.DeletionTimestamp != nil {
		m.stopped = answered
		m.mu.Unlock()
		m.log.Warn("shard lease is being deleted: releasing it", "lease", got.Name)
		return // released by keep once Margin has passed
	}
	if !sent.IsZero() && answered.Sub(sent) <= m.opts.Timeout {
		// Only the newest write that counts and the ones after it matter.
		keep := 0
		for i, s := range m.sent {
			if answered.Sub(s) >= m.opts.maturity() {
				keep = i
			}
		}
		m.sent = append(m.sent[keep:], sent)
	}
	m.mu.Unlock()
}

// lost forgets the member's Lease, deleted or replaced by someone else.
func (m *Member) lost(how string) {
	m.mu.Lock()
	m.own, m.sent = nil, nil
	m.mu.Unlock()
	m.log.Warn("shard lease lost: creating a new one", "how", how, "lease", m.leaseName())
}

// release removes the member's Lease once Margin has passed since it stopped counting on
// it, so that the writes it allowed before have landed; then the others take its keys at
// once. It creates a new Lease on the next keep, unless the member left.
func (m *Member) release(ctx context.Context) error {
	m.mu.Lock()
	own, stopped := m.own, m.stopped
	m.mu.Unlock()
	if own == nil || stopped.IsZero() {
		return nil
	}
	if err := sleep(ctx, stopped.Add(m.opts.Margin).Sub(m.opts.Now())); err != nil {
		return err
	}
	if err := m.removeOwn(ctx, own); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	m.mu.Lock()
	m.own, m.sent, m.stopped = nil, nil, time.Time{}
	m.mu.Unlock()
	m.log.Info("shard lease released", "lease", own.Name)
	return nil
}

// removeOwn removes the member's own Lease at whatever version it has now.
func (m *Member) removeOwn(ctx context.Context, own *coordinationv1.Lease) error {
	for attempt := 0; ; attempt++ {
		cur, err := call(ctx, m.opts.Timeout, func(ctx context.Context) (*coordinationv1.Lease, error) {
			return m.leases.Get(ctx, own.Name, metav1.GetOptions{})
		})
		switch {
		case apierrors.IsNotFound(err):
			return nil
		case err != nil:
			return err
		case cur.UID != own.UID:
			return nil // not ours any more
		}
		err = m.remove(ctx, cur)
		if err == nil || !apierrors.IsConflict(err) || attempt >= 2 {
			return err
		}
	}
}

// remove deletes l provided it has not changed since it was read: first its finalizer,
// then the object.
func (m *Member) remove(ctx context.Context, l *coordinationv1.Lease) error {
	if slices.Contains(l.Finalizers, Finalizer) {
		l = l.DeepCopy()
		l.Finalizers = slices.DeleteFunc(l.Finalizers, func(f string) bool { return f == Finalizer })
		var err error
		l, err = call(ctx, m.opts.Timeout, func(ctx context.Context) (*coordinationv1.Lease, error) {
			return m.leases.Update(ctx, l, metav1.UpdateOptions{})
		})
		if err != nil {
			return err
		}
	}
	_, err := call(ctx, m.opts.Timeout, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, m.leases.Delete(ctx, l.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &l.UID, ResourceVersion: &l.ResourceVersion},
		})
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// call runs f under a timeout.
func call[T any](ctx context.Context, timeout time.Duration, f func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return f(ctx)
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
