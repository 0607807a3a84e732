package trigger

import (
	"context"
	"fmt"
	"slices"
	"sync"
)

// maxReasons bounds the reasons kept between two passes; the rest are counted.
const maxReasons = 16

// A Trigger asks for a reconcile pass. Any number of requests made before the loop takes
// them collapse into one pass; their distinct reasons are kept for the log. The zero
// value is not usable; call New. It is safe for concurrent use.
type Trigger struct {
	ready chan struct{} // holds one token while requests are pending

	mu      sync.Mutex
	reasons []string
	more    int // requests beyond maxReasons distinct reasons
}

// New returns a Trigger with nothing pending.
func New() *Trigger { return &Trigger{ready: make(chan struct{}, 1)} }

// Trigger asks for a pass. It never blocks.
func (t *Trigger) Trigger(reason string) {
	if reason == "" {
		reason = "unspecified"
	}
	t.mu.Lock()
	switch {
	case slices.Contains(t.reasons, reason):
	case len(t.reasons) < maxReasons:
		t.reasons = append(t.reasons, reason)
	default:
		t.more++
	}
	t.mu.Unlock()
	select {
	case t.ready <- struct{}{}:
	default: // a pass is already pending; this request joins it
	}
}

// Wait blocks until a pass has been asked for, or ctx is done, and returns the reasons
// given since the last Wait, oldest first.
func (t *Trigger) Wait(ctx context.Context) ([]string, error) {
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.ready:
		}
		// A request that arrives between the receive above and take below is served by
		// this pass, and leaves a token with no reasons behind: skip that one.
		if reasons := t.take(); len(reasons) > 0 {
			return reasons, nil
		}
	}
}

// Pending reports whether a pass has been asked for and not yet taken.
func (t *Trigger) Pending() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.reasons) > 0
}

func (t *Trigger) take() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	reasons := t.reasons
	if t.more > 0 {
		reasons = append(reasons, fmt.Sprintf("and %d more", t.more))
	}
	t.reasons, t.more = nil, 0
	return reasons
}
