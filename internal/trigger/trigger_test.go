package trigger

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// noMore fails if t has a pass pending or one arrives within a short grace period.
func noMore(t *testing.T, tr *Trigger) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if reasons, err := tr.Wait(ctx); err == nil {
		t.Errorf("an extra pass was triggered: %v", reasons)
	}
}

func wait(t *testing.T, tr *Trigger) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reasons, err := tr.Wait(ctx)
	if err != nil {
		t.Fatalf("no pass triggered: %v", err)
	}
	return reasons
}

func TestTrigger(t *testing.T) {
	t.Run("collapses many concurrent requests into one pass", func(t *testing.T) {
		tr := New()
		var wg sync.WaitGroup
		for i := range 200 {
			wg.Go(func() { tr.Trigger(fmt.Sprintf("r%d", i%3)) })
		}
		wg.Wait()
		if got := wait(t, tr); len(got) != 3 {
			t.Errorf("reasons %v, want the 3 distinct ones", got)
		}
		noMore(t, tr)
	})

	t.Run("keeps reasons in order and counts those beyond the cap", func(t *testing.T) {
		tr := New()
		for i := range maxReasons + 5 {
			tr.Trigger(fmt.Sprintf("r%02d", i))
		}
		tr.Trigger("r00")
		got := wait(t, tr)
		if len(got) != maxReasons+1 || got[0] != "r00" || got[maxReasons] != "and 5 more" {
			t.Errorf("reasons %v", got)
		}
	})

	t.Run("runs a second pass for a request made during the first", func(t *testing.T) {
		tr := New()
		tr.Trigger("first")
		if diff := cmp.Diff([]string{"first"}, wait(t, tr)); diff != "" {
			t.Errorf("(-want +got)\n%s", diff)
		}
		tr.Trigger("during the pass")
		if diff := cmp.Diff([]string{"during the pass"}, wait(t, tr)); diff != "" {
			t.Errorf("(-want +got)\n%s", diff)
		}
		noMore(t, tr)
	})

	t.Run("wakes a waiting loop", func(t *testing.T) {
		tr := New()
		got := make(chan []string)
		go func() {
			r, _ := tr.Wait(context.Background())
			got <- r
		}()
		time.Sleep(10 * time.Millisecond)
		tr.Trigger("now")
		select {
		case r := <-got:
			if diff := cmp.Diff([]string{"now"}, r); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the waiting loop was not woken")
		}
	})

	t.Run("names an empty reason", func(t *testing.T) {
		tr := New()
		tr.Trigger("")
		if diff := cmp.Diff([]string{"unspecified"}, wait(t, tr)); diff != "" {
			t.Errorf("(-want +got)\n%s", diff)
		}
	})

	t.Run("returns when the context is done", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := New().Wait(ctx); err != context.Canceled {
			t.Errorf("error %v, want context.Canceled", err)
		}
	})
}

func TestPoll(t *testing.T) {
	t.Run("triggers on every tick until the context is done", func(t *testing.T) {
		tr := New()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- Poll(ctx, tr, PollOptions{Interval: 5 * time.Millisecond, Jitter: 0.5}) }()
		for range 3 {
			if diff := cmp.Diff([]string{"poll"}, wait(t, tr)); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		}
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Poll returned %v, want context.Canceled", err)
		}
	})

	t.Run("waits the interval plus up to the jitter", func(t *testing.T) {
		for _, c := range []struct {
			interval time.Duration
			jitter   float64
			r        float64
			want     time.Duration
		}{
			{time.Minute, 0.1, 0, time.Minute},
			{time.Minute, 0.1, 0.5, time.Minute + 3*time.Second},
			{time.Minute, 0.1, 0.999999, time.Minute + 5999994*time.Microsecond},
			{time.Minute, 0, 0.5, time.Minute},
			{0, 0, 0, time.Second},
		} {
			if got := delay(c.interval, c.jitter, c.r); got != c.want {
				t.Errorf("delay(%s, %g, %g) = %s, want %s", c.interval, c.jitter, c.r, got, c.want)
			}
		}
	})
}
