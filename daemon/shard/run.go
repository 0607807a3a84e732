package shard

import (
	"context"
	"fmt"
)

// Run keeps the membership until ctx ends or Leave is called, then returns nil: every
// RenewPeriod it lists the ring's Leases and renews its own (creating it again if it was
// lost), and between those it signals Changes when a member's Lease expires or its own
// membership starts or ends counting. Failed calls are logged and retried on the next
// period; while they fail, the member owns its keys until its view of the ring or its
// last renewal gets too old (see Fence). When Run returns without Leave, the others take
// the member's keys once its Lease expires.
func (m *Member) Run(ctx context.Context) error {
	m.run.Lock()
	if m.run.done != nil {
		m.run.Unlock()
		return fmt.Errorf("shard member %s: already running", m.opts.Identity)
	}
	m.mu.Lock()
	left := m.left
	m.mu.Unlock()
	if left {
		m.run.Unlock()
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	m.run.cancel, m.run.done = cancel, done
	m.run.Unlock()
	defer func() {
		cancel()
		m.run.Lock()
		m.run.cancel, m.run.done = nil, nil
		m.run.Unlock()
		close(done)
	}()

	for {
		tick := m.opts.Now()
		if err := m.look(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			m.log.Warn("shard ring not listed", "error", err)
		} else {
			m.collect(ctx)
		}
		if err := m.keep(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("shard lease not kept", "lease", m.leaseName(), "error", err)
		}
		m.notify()
		next := tick.Add(m.opts.RenewPeriod)
		for {
			now := m.opts.Now()
			if !now.Before(next) {
				break
			}
			wake := next
			m.mu.Lock()
			if c := m.nextChange(now); !c.IsZero() && c.Before(wake) {
				wake = c
			}
			m.mu.Unlock()
			if err := sleep(ctx, wake.Sub(now)); err != nil {
				return nil
			}
			m.notify()
		}
	}
}

// Leave ends the membership: the member owns nothing from the moment Leave is called.
// It stops Run, waits Options.Margin for the writes allowed before to land, and deletes
// its Lease, so that the others take its keys on their next list instead of when the
// Lease would expire. If ctx ends first, the Lease is left to expire.
func (m *Member) Leave(ctx context.Context) error {
	m.mu.Lock()
	m.left = true
	left := m.opts.Now()
	m.mu.Unlock()
	m.notify()

	m.run.Lock()
	cancel, done := m.run.cancel, m.run.done
	m.run.Unlock()
	if cancel != nil {
		cancel()
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("shard member %s: leave: %w", m.opts.Identity, ctx.Err())
		}
	}
	if err := sleep(ctx, left.Add(m.opts.Margin).Sub(m.opts.Now())); err != nil {
		return fmt.Errorf("shard member %s: leave: %w", m.opts.Identity, err)
	}
	m.mu.Lock()
	own := m.own
	m.mu.Unlock()
	if own == nil {
		return nil
	}
	if err := m.removeOwn(ctx, own); err != nil {
		return fmt.Errorf("shard member %s: leave: delete lease %s/%s: %w", m.opts.Identity, m.opts.Namespace, own.Name, err)
	}
	m.log.Info("shard ring left", "lease", own.Name)
	return nil
}
