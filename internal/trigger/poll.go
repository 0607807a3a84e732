package trigger

import (
	"context"
	"math/rand/v2"
	"time"
)

// PollOptions configure Poll.
type PollOptions struct {
	// Interval between two polls.
	Interval time.Duration
	// Jitter adds a random share of Interval, from 0 up to Jitter, to each wait, so that
	// replicas and restarts do not fetch in step. 0.1 means up to 10% longer.
	Jitter float64
	// Reason is given to the Trigger.
	Reason string
}

// DefaultPollOptions poll every minute, up to 10% later.
func DefaultPollOptions() PollOptions {
	return PollOptions{Interval: time.Minute, Jitter: 0.1, Reason: "poll"}
}

// rnd returns a float in [0, 1). Tests replace it.
var rnd = rand.Float64

// Poll triggers t after every interval until ctx is done; it returns ctx's error. The
// first trigger comes after one interval: the loop runs a pass at start on its own.
func Poll(ctx context.Context, t *Trigger, opts PollOptions) error {
	if opts.Reason == "" {
		opts.Reason = "poll"
	}
	timer := time.NewTimer(delay(opts.Interval, opts.Jitter, rnd()))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			t.Trigger(opts.Reason)
			timer.Reset(delay(opts.Interval, opts.Jitter, rnd()))
		}
	}
}

// delay is interval plus r×jitter of it, r in [0, 1).
func delay(interval time.Duration, jitter, r float64) time.Duration {
	if interval <= 0 {
		interval = time.Second
	}
	if jitter <= 0 {
		return interval
	}
	return interval + time.Duration(float64(interval)*jitter*r)
}
