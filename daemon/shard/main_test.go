package shard_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/raas-dev/raas/daemon/shard"
	"github.com/raas-dev/raas/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// The tests' timings: short, and with the same ratios as the defaults'.
const (
	leaseDuration = 3 * time.Second
	renewPeriod   = 300 * time.Millisecond
	timeout       = 250 * time.Millisecond
	margin        = 300 * time.Millisecond
	// slack is what a loaded machine may add to an expected delay.
	slack = time.Second
)

// keys are the tenants the tests share out, and the platform.
var keys = append(manyKeys(60), shard.PlatformKey)

// ring is the members of one test, all in one namespace of the shared host.
type ring struct {
	t         *testing.T
	namespace string
	mu        sync.Mutex
	members   []*member
}

func newRing(t *testing.T) *ring {
	return &ring{t: t, namespace: testenv.Shared(t).Namespace(t)}
}

// member is a running shard.Member, with a way to cut its API calls.
type member struct {
	*shard.Member
	cut    cut
	t      *testing.T
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// cut fails a member's API calls, all of them or only its writes, before they leave
// the process, as a network partition would.
type cut struct{ all, writes atomic.Bool }

func (c *cut) wrap(rt http.RoundTripper) http.RoundTripper {
	return testenv.RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
		if c.all.Load() || (c.writes.Load() && req.Method != http.MethodGet) {
			return nil, fmt.Errorf("%s %s: cut off by the test", req.Method, req.URL.Path)
		}
		return rt.RoundTrip(req)
	})
}

func (r *ring) options(identity string) shard.Options {
	opts := shard.DefaultOptions()
	opts.Namespace, opts.Ring, opts.Identity = r.namespace, "test", identity
	opts.LeaseDuration, opts.RenewPeriod, opts.Timeout, opts.Margin = leaseDuration, renewPeriod, timeout, margin
	opts.Address = identity + ".test:8080"
	opts.Logger = slog.New(slog.NewTextHandler(r.t.Output(), nil))
	return opts
}

// join starts a member, runs it until the test ends and adds it to the ring.
func (r *ring) join(identity string) *member {
	r.t.Helper()
	m := &member{t: r.t, done: make(chan error, 1)}
	cfg := rest.CopyConfig(testenv.Shared(r.t).Config)
	cfg.WrapTransport = m.cut.wrap
	var err error
	if m.Member, err = shard.Join(r.t.Context(), cfg, r.options(identity)); err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() { m.done <- m.Run(ctx) }()
	r.t.Cleanup(m.kill)
	r.mu.Lock()
	r.members = append(r.members, m)
	r.mu.Unlock()
	return m
}

// kill stops the member's Run without Leave, as if its process died, and waits for it.
func (m *member) kill() {
	m.once.Do(func() {
		m.cancel()
		if err := <-m.done; err != nil {
			m.t.Errorf("%s: Run: %v", m.Identity(), err)
		}
	})
}

func (r *ring) all() []*member {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.members)
}

// owners samples Fence for every key on every member of ms, one member after another,
// and returns the members (by index in ms) that may write each key.
func owners(ms []*member) map[string][]int {
	got := make(map[string][]int, len(keys))
	for i, m := range ms {
		for _, k := range keys {
			if m.Fence(k) == nil {
				got[k] = append(got[k], i)
			}
		}
	}
	return got
}

// watch samples every member of the ring every few milliseconds until the test ends,
// members that join later too, and fails the test on any key that two members may write
// at once, or that passes from one member to another in less than Margin (less the
// length of a round): writes the first one allowed may still be landing.
func (r *ring) watch() {
	t := r.t
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var rounds, skipped, problems int
	type last struct {
		owner int // index in r.all(), -1 for none yet
		at    time.Time
	}
	lasts := map[string]last{}
	for _, k := range keys {
		lasts[k] = last{owner: -1}
	}
	report := func(format string, args ...any) {
		if problems++; problems <= 5 {
			t.Errorf(format, args...)
		}
	}
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			ms := r.all()
			begin := time.Now()
			got := owners(ms)
			// A round slower than a tenth of Margin (the sampler was descheduled) proves
			// nothing.
			if time.Since(begin) > margin/10 {
				skipped++
				continue
			}
			rounds++
			for _, k := range keys {
				switch o := got[k]; {
				case len(o) > 1:
					var names []string
					for _, i := range o {
						names = append(names, fmt.Sprintf("%s (#%d)", ms[i].Identity(), i))
					}
					report("key %s may be written by %s at once", k, strings.Join(names, " and "))
				case len(o) == 1:
					l := lasts[k]
					if gap := begin.Sub(l.at); l.owner >= 0 && l.owner != o[0] && gap < margin-margin/10 {
						report("key %s passed from %s (#%d) to %s (#%d) in %s", k, ms[l.owner].Identity(), l.owner, ms[o[0]].Identity(), o[0], gap)
					}
					lasts[k] = last{owner: o[0], at: begin}
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		t.Logf("sampled every member's Fence for %d keys %d times (%d slow rounds skipped)", len(keys), rounds, skipped)
		if rounds < 50 {
			t.Errorf("only %d rounds sampled", rounds)
		}
	})
}

// settle waits until every key has exactly one owner among ms and every one of ms sees
// the ring made of want, and returns the owner of each key.
func settle(t *testing.T, ms []*member, want []string, within time.Duration) map[string]string {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	deadline := time.Now().Add(within)
	var problem string
	for {
		problem = ""
		got := owners(ms)
		assignment := map[string]string{}
		for _, k := range keys {
			if len(got[k]) != 1 {
				problem = fmt.Sprintf("key %s has %d owners", k, len(got[k]))
				break
			}
			assignment[k] = ms[got[k][0]].Identity()
		}
		for _, m := range ms {
			if problem != "" {
				break
			}
			if r := m.Ring().Members(); !slices.Equal(r, want) {
				problem = fmt.Sprintf("%s sees the ring %v, want %v", m.Identity(), r, want)
			}
		}
		if problem == "" {
			return assignment
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled within %s: %s", within, problem)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitOwned waits until ms own every key between them, one owner each, and returns how
// long after since that was.
func waitOwned(t *testing.T, what string, ms []*member, since time.Time, within time.Duration) time.Duration {
	t.Helper()
	for {
		got := owners(ms)
		missing := slices.IndexFunc(keys, func(k string) bool { return len(got[k]) != 1 })
		took := time.Since(since)
		if missing < 0 {
			t.Logf("%s: every key owned after %s", what, took.Round(time.Millisecond))
			return took
		}
		if took > within {
			t.Fatalf("%s: key %s not owned by exactly one member within %s", what, keys[missing], within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
