package reconcile_test

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/reconcile"
	"github.com/raas-dev/raas/render"
	"github.com/raas-dev/raas/schema"
)

// TestRestartAPIServerMidPass stops the host's kube-apiserver in the middle of a pass and
// starts it again a few seconds later, with its data: see restartMidPass.
func TestRestartAPIServerMidPass(t *testing.T) {
	restartMidPass(t, fault{
		name: "kube-apiserver",
		stop: (*testenv.ControlPlane).StopAPIServer, start: (*testenv.ControlPlane).StartAPIServer,
		down: 3 * time.Second,
	})
}

// TestRestartEtcdMidPass stops the host's etcd in the middle of a pass and starts it again
// a few seconds later, with its data, while kube-apiserver keeps serving without storage:
// see restartMidPass.
func TestRestartEtcdMidPass(t *testing.T) {
	restartMidPass(t, fault{
		name: "etcd",
		stop: (*testenv.ControlPlane).StopEtcd, start: (*testenv.ControlPlane).StartEtcd,
		down: 5 * time.Second,
	})
}

// TestRestartEtcdPastTimeoutMidPass keeps the host's etcd down for longer than
// kube-apiserver's request timeout (one minute), so that the requests waiting for storage
// fail with 5xx answers from a live API server instead of waiting it out. Only the pass
// that removes a tenant meets it, to keep the test short: see restartMidPass.
func TestRestartEtcdPastTimeoutMidPass(t *testing.T) {
	restartMidPass(t, fault{
		name: "etcd",
		stop: (*testenv.ControlPlane).StopEtcd, start: (*testenv.ControlPlane).StartEtcd,
		down: 65 * time.Second, removalOnly: true,
	})
}

// fault is a part of the host control plane that goes away mid-pass.
type fault struct {
	name        string
	stop, start func(*testenv.ControlPlane) error
	// down is how long it stays stopped.
	down time.Duration
	// removalOnly spares the first pass, which converges undisturbed.
	removalOnly bool
}

// restartMidPass applies the examples to a fresh host, with a stand-in vcluster for one
// tenant, and stops f's process at the third write into a tenant namespace; it starts again
// after f.down. The pass may fail objects but must delete nothing; later passes, the first
// of them while the process may still be down or starting, converge
// with every rendered object in place, listed in its tenant's inventory, and no object
// labelled as raas's that no inventory lists. Then the same on the converged host while a
// pass removes one tenant and changes another, stopped at its first write into a tenant
// namespace: the removed tenant's objects go (its namespace stays, for its data) and
// nothing else is deleted or created again.
func restartMidPass(t *testing.T, f fault) {
	host := testenv.StartHost(t, testenv.DefaultControlPlaneOptions())
	const prefix = "restart-"
	const withVCluster = "ml-team-alpha"
	repo := exampleRepo(t, prefix)
	res := repo.render()
	if !res.OK() {
		t.Fatalf("render: %v %v", res.Repo.Problems, res.Failed)
	}
	vc := host.StartVClusters(t, []string{withVCluster}, func(n string) (string, string) { return prefix + n, schema.Release(n) }, testenv.DefaultVClusterOptions())[withVCluster]
	_, _, opts := newReconciler(t, host, 5*time.Second)
	hook := newRestartHook(t, host, f, "/namespaces/"+prefix)
	opts.WrapTransport = hook.wrap
	r, err := reconcile.New(host.Config, opts)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{host: host, vc: vc, vcTenant: withVCluster, inventoryNS: opts.InventoryNamespace}

	first := "a first pass interrupted mid-way converges with nothing lost"
	if f.removalOnly {
		first = "a first pass converges"
	}
	t.Run(first, func(t *testing.T) {
		if f.removalOnly {
			converge(t, r, res, "")
			w.check(t, res, "")
			return
		}
		hook.arm(3)
		faulty := hook.pass(t, r, res)
		deletedNothing(t, faulty, "")
		// The host may still be down: the next passes start at once, as raas's loop
		// would, and none may delete anything.
		passes := converge(t, r, res, "")
		hook.wait(t)
		t.Logf("converged in %d more pass(es)", passes)
		w.check(t, res, "")
	})

	t.Run("a pass that removes a tenant, interrupted mid-way, removes only that tenant", func(t *testing.T) {
		removed, _, _ := removable(t, repo, res, withVCluster)
		repo.edit("tenants/"+withVCluster+".yaml", "pods: 200", "pods: 210")
		next := repo.render()
		if !next.OK() {
			t.Fatalf("render: %v %v", next.Repo.Problems, next.Failed)
		}
		before := w.managed(t, res)
		hook.arm(1)
		faulty := hook.pass(t, r, next)
		deletedNothing(t, faulty, removed)
		passes := converge(t, r, next, removed)
		hook.wait(t)
		t.Logf("converged in %d more pass(es)", passes)
		w.check(t, next, removed)
		w.sameUIDs(t, res, before, removed)
		for _, out := range res.Tenants {
			if out.Tenant != removed {
				continue
			}
			for _, o := range out.Host {
				live := get(t, host.Client, o)
				switch {
				case o.GetKind() == "Namespace" && live == nil:
					t.Errorf("%s: deleted, want kept with the vcluster's data volumes", o.ID())
				case o.GetKind() != "Namespace" && live != nil:
					t.Errorf("%s: still there, though its tenant was removed", o.ID())
				}
			}
		}
	})
}

// restartHook stops a part of the host control plane from inside the reconciler's
// transport: the request that reaches the nth write into a tenant namespace waits until
// the process has exited, and then goes on, to fail or wait as the others do. The
// process starts again in the background after the fault's down time.
type restartHook struct {
	t      *testing.T
	host   *testenv.ControlPlane
	f      fault
	server string // host:port of the host's API server
	path   string // part of the URL path of requests into tenant namespaces

	at      atomic.Int64 // which write stops the process; 0 when disarmed
	writes  atomic.Int64
	stopped atomic.Bool

	mu      sync.Mutex
	started chan error // the result of the start, once the process was stopped
	// errs counts what the requests met from the stop to the end of the pass: transport
	// errors and 5xx answers, by message or status.
	errs map[string]int
}

func newRestartHook(t *testing.T, host *testenv.ControlPlane, f fault, path string) *restartHook {
	u, err := url.Parse(host.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	return &restartHook{t: t, host: host, f: f, server: u.Host, path: path}
}

// arm makes the nth write into a tenant namespace from now stop the process.
func (h *restartHook) arm(n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.writes.Store(0)
	h.stopped.Store(false)
	h.at.Store(int64(n))
	h.started, h.errs = nil, map[string]int{}
}

func (h *restartHook) wrap(rt http.RoundTripper) http.RoundTripper {
	return testenv.RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
		if req.URL.Host != h.server {
			return rt.RoundTrip(req) // a vcluster
		}
		write := req.Method != http.MethodGet && req.Method != http.MethodHead && !req.URL.Query().Has("dryRun")
		if write && strings.Contains(req.URL.Path, h.path) && h.writes.Add(1) == h.at.Load() {
			h.stop(req)
		}
		resp, err := rt.RoundTrip(req)
		if h.stopped.Load() {
			h.mu.Lock()
			defer h.mu.Unlock()
			switch {
			case err != nil:
				h.errs[errorClass(err.Error())]++
			case resp.StatusCode >= 500:
				h.errs[resp.Status]++
			}
		}
		return resp, err
	})
}

// stop stops the process and starts it again in the background. Requests made meanwhile
// go ahead.
func (h *restartHook) stop(req *http.Request) {
	h.stopped.Store(true)
	begin := time.Now()
	if err := h.f.stop(h.host); err != nil {
		h.t.Errorf("stop %s: %v", h.f.name, err)
		return
	}
	h.t.Logf("%s stopped in %s, at %s %s", h.f.name, time.Since(begin).Round(time.Millisecond), req.Method, req.URL.Path)
	started := make(chan error, 1)
	h.mu.Lock()
	h.started = started
	h.mu.Unlock()
	go func() {
		time.Sleep(h.f.down)
		begin := time.Now()
		err := h.f.start(h.host)
		if err == nil {
			h.t.Logf("%s started again in %s", h.f.name, time.Since(begin).Round(time.Millisecond))
		}
		started <- err
	}()
}

// errorClass drops what differs between the same errors: addresses and ports.
func errorClass(msg string) string {
	if i := strings.LastIndex(msg, ": "); i >= 0 && strings.Contains(msg[:i], "127.0.0.1") {
		return msg[i+2:]
	}
	return msg
}

// pass runs the pass in which the process stops, lets it finish and returns its result.
// The pass must have met the fault. The process may still be down, or starting.
func (h *restartHook) pass(t *testing.T, r *reconcile.Reconciler, res *render.Result) *reconcile.Result {
	t.Helper()
	begin := time.Now()
	out, err := r.Apply(t.Context(), reconcile.Input{Render: res, Revision: "test"})
	elapsed := time.Since(begin)
	h.at.Store(0)
	if !h.stopped.Load() {
		t.Fatalf("the pass ended after %s and %d writes into tenant namespaces: %s stopped at no point", elapsed.Round(time.Millisecond), h.writes.Load(), h.f.name)
	}
	if err != nil {
		// The pass could not start: the stop came before it read the inventories.
		t.Fatalf("apply: %v", err)
	}
	failed := 0
	for _, e := range out.Entries {
		if e.Action == reconcile.Failed {
			if failed < 5 {
				t.Logf("  failed: %s", e)
			}
			failed++
		}
	}
	h.mu.Lock()
	t.Logf("the pass with %s down took %s: %s; %d error(s) %v; the requests met %v",
		h.f.name, elapsed.Round(time.Millisecond), out.Summary(), len(out.Errors), out.Errors, h.errs)
	h.mu.Unlock()
	return out
}

// wait waits until the stopped process has started again.
func (h *restartHook) wait(t *testing.T) {
	t.Helper()
	h.mu.Lock()
	started := h.started
	h.mu.Unlock()
	if started == nil {
		t.Fatalf("%s was not stopped", h.f.name)
	}
	select {
	case err := <-started:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Minute):
		t.Fatalf("%s did not start again within 5 minutes", h.f.name)
	}
}
