package reconcile_test

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/reconcile"
)

// quotaCPU reads the requests.cpu of the raas quota in namespace ns.
func quotaCPU(t *testing.T, c client.Client, ns string) string {
	t.Helper()
	var q corev1.ResourceQuota
	if err := c.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "raas-quota"}, &q); err != nil {
		t.Fatal(err)
	}
	v := q.Spec.Hard[corev1.ResourceRequestsCPU]
	return v.String()
}

// editQuotaCPU sets the requests.cpu of the raas quota in ns by hand.
func editQuotaCPU(t *testing.T, c client.Client, ns, cpu string) {
	t.Helper()
	var q corev1.ResourceQuota
	if err := c.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "raas-quota"}, &q); err != nil {
		t.Fatal(err)
	}
	q.Spec.Hard[corev1.ResourceRequestsCPU] = resource.MustParse(cpu)
	if err := c.Update(t.Context(), &q, client.FieldOwner("kubectl-edit")); err != nil {
		t.Fatal(err)
	}
}

// TestOnly runs passes limited to some tenants (Input.Only): a tenant outside the pass is
// neither written nor reported, even with drift; a tenant whose file is gone is removed
// all the same; a pass over every tenant then puts the drift back.
func TestOnly(t *testing.T) {
	host := testenv.StartHost(t, testenv.DefaultControlPlaneOptions())
	const prefix = "only-"
	repo := exampleRepo(t, prefix)
	repo.remove("tenants/vision-team-next.yaml")
	r, count, _ := newReconciler(t, host, 10*time.Millisecond)
	apply(t, r, repo.renderOK())

	// Drift on data-sandbox, a change of ml-team-alpha's file, and a pass over
	// ml-team-alpha alone.
	alphaCPU := quotaCPU(t, host.Client, prefix+"ml-team-alpha")
	editQuotaCPU(t, host.Client, prefix+"data-sandbox", "999")
	repo.edit("tenants/ml-team-alpha.yaml", `cpu: "64"`, `cpu: "65"`)
	count.reset()
	out, err := r.Apply(t.Context(), reconcile.Input{Render: repo.renderOK(), Revision: "two",
		Only: map[string]bool{"ml-team-alpha": true}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tr := range out.Tenants {
		names = append(names, tr.Name)
	}
	if !slices.Equal(names, []string{"ml-team-alpha"}) {
		t.Errorf("the pass reported %v, want ml-team-alpha alone", names)
	}
	for _, e := range out.Entries {
		if e.Tenant != "" && e.Tenant != "ml-team-alpha" {
			t.Errorf("entry of a tenant outside the pass: %s", e)
		}
	}
	if got := quotaCPU(t, host.Client, prefix+"ml-team-alpha"); got == alphaCPU {
		t.Errorf("ml-team-alpha's quota cpu is still %s after its file grew", got)
	}
	if got := quotaCPU(t, host.Client, prefix+"data-sandbox"); got != "999" {
		t.Errorf("data-sandbox's quota cpu = %s: a pass that does not cover it put its drift back", got)
	}
	for _, w := range count.writesList() {
		if strings.Contains(w, "data-sandbox") {
			t.Errorf("a pass that does not cover data-sandbox wrote %s", w)
		}
	}

	// A removed file is a removal even in a pass over no tenant.
	repo.remove("tenants/vision-team.yaml")
	out, err = r.Apply(t.Context(), reconcile.Input{Render: repo.renderOK(), Revision: "three", Only: map[string]bool{}})
	if err != nil {
		t.Fatal(err)
	}
	if tr := out.Tenant("vision-team"); tr == nil || tr.Health != reconcile.HealthRemoved {
		t.Errorf("vision-team after its file went: %+v, want removed", tr)
	}
	if len(out.Tenants) != 1 {
		t.Errorf("a pass over no tenant reported %d tenants, want the removed one", len(out.Tenants))
	}

	// Every tenant: the drift goes.
	out = apply(t, r, repo.renderOK())
	if a := actions(out.Select("data-sandbox", ""))["host ResourceQuota "+prefix+"data-sandbox/raas-quota"]; a != reconcile.Drifted {
		t.Errorf("data-sandbox's quota in a pass over every tenant: %s, want drifted", a)
	}

	// The pass's view over an older one keeps the tenants it did not cover.
	limited, err := r.Apply(t.Context(), reconcile.Input{Render: repo.renderOK(), Revision: "four", Only: map[string]bool{}})
	if err != nil {
		t.Fatal(err)
	}
	view := limited.Over(out)
	if len(view.Tenants) != len(out.Tenants) || view.Tenant("data-sandbox") == nil ||
		len(view.Select("data-sandbox", "")) != len(out.Select("data-sandbox", "")) {
		t.Errorf("view over the full pass: %d tenants, want %d with their entries", len(view.Tenants), len(out.Tenants))
	}
}

// lists records the list requests (GETs of a collection, not watches) that go through it.
type lists struct {
	mu    sync.Mutex
	paths []string
}

func (l *lists) wrap(rt http.RoundTripper) http.RoundTripper {
	return testenv.RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
		q := req.URL.Query()
		if req.Method == http.MethodGet && q.Has("labelSelector") && q.Get("watch") != "true" {
			l.mu.Lock()
			l.paths = append(l.paths, req.URL.Path)
			l.mu.Unlock()
		}
		return rt.RoundTrip(req)
	})
}

func (l *lists) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.paths
	l.paths = nil
	return p
}

// TestWatch runs passes on a Reconciler that keeps the host's live state in watches: after
// the watches have listed each kind once, a pass lists nothing but the inventories; an
// object deleted by hand is told to the watcher with its tenant, and the next pass puts
// it back without any help from a list, a write the watcher is not told of.
func TestWatch(t *testing.T) {
	host := testenv.StartHost(t, testenv.DefaultControlPlaneOptions())
	ensureNamespace(t, host.Client, "volcano-system")
	const prefix = "watch-"
	repo := exampleRepo(t, prefix)
	repo.remove("tenants/vision-team.yaml")
	repo.remove("tenants/vision-team-next.yaml")
	res := repo.renderOK()

	listed := &lists{}
	opts := reconcile.DefaultOptions()
	opts.InventoryNamespace = host.Namespace(t)
	opts.VClusterTimeout = 10 * time.Millisecond
	opts.PollInterval = 100 * time.Millisecond
	opts.WaitTimeout = 2 * time.Minute
	opts.WrapTransport = listed.wrap
	r, err := reconcile.New(host.Config, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	changed := make(chan string, 1000)
	if err := r.Watch(ctx, func(tenant string) { changed <- tenant }); err != nil {
		t.Fatal(err)
	}
	apply(t, r, res)
	apply(t, r, res) // the kinds created by the first pass are watched from here on
	listed.take()
	out := apply(t, r, res)
	if out.Changed() {
		t.Errorf("a pass with nothing to do: %s", out.Summary())
	}
	for _, p := range listed.take() {
		if !strings.HasSuffix(p, "/namespaces/"+opts.InventoryNamespace+"/configmaps") {
			t.Errorf("a pass on watches listed %s", p)
		}
	}

	for len(changed) > 0 {
		<-changed
	}
	ns := prefix + "data-sandbox"
	cpu := quotaCPU(t, host.Client, ns)
	q := &corev1.ResourceQuota{}
	q.Namespace, q.Name = ns, "raas-quota"
	if err := host.Client.Delete(t.Context(), q); err != nil {
		t.Fatal(err)
	}
	select {
	case tenant := <-changed:
		if tenant != "data-sandbox" {
			t.Errorf("the watch told of tenant %q, want data-sandbox", tenant)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the watch did not tell of the deleted quota in 30s")
	}
	// The watch has seen the deletion: the pass re-creates the quota. That write is
	// raas's own, and no news (no controller runs here to write a status after it).
	out = apply(t, r, res)
	select {
	case tenant := <-changed:
		t.Errorf("the watch told of tenant %q after raas's own write", tenant)
	case <-time.After(3 * time.Second):
	}
	if a := actions(out.Select("data-sandbox", ""))["host ResourceQuota "+ns+"/raas-quota"]; a != reconcile.Drifted {
		t.Errorf("quota deleted by hand: %s, want drifted", a)
	}
	if got := quotaCPU(t, host.Client, ns); got != cpu {
		t.Errorf("quota cpu after the pass = %s, want %s as before", got, cpu)
	}
}

// TestWatchUnsynced runs passes on a Reconciler whose watches can never list: the API
// server refuses them, as it refuses raas's watches when its RBAC predates them. The first
// pass waits for the watches once, for all kinds together, and then lists; the next one
// lists at once. Both apply as they would without watches.
func TestWatchUnsynced(t *testing.T) {
	host := testenv.StartHost(t, testenv.DefaultControlPlaneOptions())
	ensureNamespace(t, host.Client, "volcano-system")
	repo := exampleRepo(t, "unsynced-")
	repo.remove("tenants/vision-team.yaml")
	repo.remove("tenants/vision-team-next.yaml")
	res := repo.renderOK()

	opts := reconcile.DefaultOptions()
	opts.InventoryNamespace = host.Namespace(t)
	opts.VClusterTimeout = 10 * time.Millisecond
	opts.PollInterval = 100 * time.Millisecond
	opts.WaitTimeout = 2 * time.Minute
	// An informer's first list asks for resourceVersion 0 (or streams it by a watch); a
	// pass's own lists ask for neither.
	opts.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return testenv.RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
			q := req.URL.Query()
			if req.Method == http.MethodGet && (q.Get("watch") == "true" || q.Get("resourceVersion") == "0") {
				return &http.Response{StatusCode: http.StatusForbidden, Status: "403 Forbidden", Request: req,
					Header: http.Header{"Content-Type": []string{"application/json"}},
					Body: io.NopCloser(strings.NewReader(`{"kind":"Status","apiVersion":"v1","status":"Failure",` +
						`"reason":"Forbidden","code":403,"message":"watches are refused in this test"}`))}, nil
			}
			return rt.RoundTrip(req)
		})
	}
	r, err := reconcile.New(host.Config, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Watch(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	apply(t, r, res)
	first := time.Since(begin)
	begin = time.Now()
	out := apply(t, r, res)
	second := time.Since(begin)
	t.Logf("first pass %s, second %s", first.Round(time.Millisecond), second.Round(time.Millisecond))
	if out.Changed() {
		t.Errorf("the second pass changed something: %s", out.Summary())
	}
	// The first pass waits syncTimeout (30 s) once for all its kinds, not once per kind.
	if first > 2*time.Minute {
		t.Errorf("the first pass took %s: it waited for the watches kind by kind", first)
	}
	if second > 20*time.Second {
		t.Errorf("the second pass took %s: it waited for the watches again", second)
	}
}
