package daemon_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/daemon"
	"github.com/raas-dev/raas/reconcile"
)

// clock is a settable clock for a loop.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func covered(res *reconcile.Result) []string {
	var names []string
	for _, t := range res.Tenants {
		names = append(names, t.Name)
	}
	return names
}

// TestScope runs the passes of a loop that watches the host: a commit that changes one
// tenant's file makes a pass over that tenant alone, which leaves the other tenants'
// status as it was; a hand edit of another tenant's quota starts a pass over that tenant,
// which puts the quota back; and once DriftInterval has gone by, a pass covers every
// tenant again. The tenants stop at the host level (no vcluster), so none is Ready: their
// retries are an hour apart, outside the test.
func TestScope(t *testing.T) {
	clk := &clock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	f := newFixture(t, func(o *daemon.Options) {
		o.DriftInterval = time.Hour
		o.Now = clk.Now
		o.Reconcile.Now = time.Now // the vcluster deadline counts real time
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if err := f.loop.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	all := []string{"data-sandbox", "ml-team-alpha", "vision-team", "vision-team-next"}
	first, err := f.loop.Pass(t.Context(), "start")
	if err != nil {
		t.Fatal(err)
	}
	if got := covered(first); !slices.Equal(got, all) {
		t.Fatalf("the first pass covered %v, want %v", got, all)
	}
	before := f.tenant(t, "ml-team-alpha").Status.ObservedRevision

	// A commit of one tenant's file.
	sandbox := f.repo.read("tenants/data-sandbox.yaml")
	rev := f.repo.commit("grow the sandbox", map[string]string{
		"tenants/data-sandbox.yaml": strings.Replace(sandbox, `cpu: "8"`, `cpu: "10"`, 1),
	})
	res, err := f.loop.Pass(t.Context(), "commit")
	if err != nil {
		t.Fatal(err)
	}
	if got := covered(res); !slices.Contains(got, "data-sandbox") || slices.Contains(got, "vision-team") {
		t.Errorf("the commit's pass covered %v, want data-sandbox and not the unchanged vision-team", got)
	}
	if got := covered(f.loop.Last()); !slices.Equal(got, all) {
		t.Errorf("Last has %v, want every tenant %v", got, all)
	}
	var quota corev1.ResourceQuota
	if err := f.client.Get(t.Context(), client.ObjectKey{Namespace: "tenant-data-sandbox", Name: "raas-quota"}, &quota); err != nil {
		t.Fatal(err)
	}
	if got := quota.Spec.Hard.Name("requests.cpu", "").String(); got != "10220m" {
		t.Errorf("data-sandbox requests.cpu = %s, want 10220m (the new quota)", got)
	}
	if got := f.tenant(t, "data-sandbox").Status.ObservedRevision; got != rev {
		t.Errorf("data-sandbox observed %s, want %s", got, rev)
	}
	if got := f.tenant(t, "ml-team-alpha").Status.ObservedRevision; got != before {
		t.Errorf("ml-team-alpha, outside the pass, observed %s, want %s as before", got, before)
	}

	// A hand edit of another tenant: the watch asks for a pass, over that tenant.
	f.drain(t)
	ns := "tenant-vision-team"
	if err := f.client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "raas-quota"}, &quota); err != nil {
		t.Fatal(err)
	}
	want := quota.Spec.Hard[corev1.ResourceRequestsCPU]
	quota.Spec.Hard[corev1.ResourceRequestsCPU] = resource.MustParse("999")
	if err := f.client.Update(t.Context(), &quota, client.FieldOwner("kubectl-edit")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the watch to ask for a pass", 30*time.Second, func(context.Context) (bool, error) {
		return f.loop.Trigger().Pending(), nil
	})
	res, err = f.loop.Pass(t.Context(), "watch")
	if err != nil {
		t.Fatal(err)
	}
	if got := covered(res); !slices.Contains(got, "vision-team") || slices.Contains(got, "ml-team-alpha") {
		t.Errorf("the pass after the edit covered %v, want vision-team and not ml-team-alpha", got)
	}
	if a := actionOf(res, "vision-team", "ResourceQuota"); a != reconcile.Drifted {
		t.Errorf("vision-team's quota: %s, want drifted", a)
	}
	if err := f.client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "raas-quota"}, &quota); err != nil {
		t.Fatal(err)
	}
	if got := quota.Spec.Hard[corev1.ResourceRequestsCPU]; got.Cmp(want) != 0 {
		t.Errorf("vision-team requests.cpu = %s, want %s put back", got.String(), want.String())
	}

	// DriftInterval later, every tenant again.
	clk.advance(time.Hour)
	res, err = f.loop.Pass(t.Context(), "poll")
	if err != nil {
		t.Fatal(err)
	}
	if got := covered(res); !slices.Equal(got, all) {
		t.Errorf("the pass after DriftInterval covered %v, want %v", got, all)
	}
	if got := f.tenant(t, "ml-team-alpha").Status.ObservedRevision; got != rev {
		t.Errorf("ml-team-alpha observed %s after the pass over every tenant, want %s", got, rev)
	}
}

// drain runs passes until the watch asks for none (the last pass's own writes ask for
// one), so that what the test does next is the only news.
func (f *fixture) drain(t *testing.T) {
	t.Helper()
	for range 5 {
		time.Sleep(time.Second)
		if !f.loop.Trigger().Pending() {
			return
		}
		if _, err := f.loop.Trigger().Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		if _, err := f.loop.Pass(t.Context(), "drain"); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("the watch keeps asking for passes")
}

func actionOf(res *reconcile.Result, tenant, kind string) reconcile.Action {
	for _, e := range res.Select(tenant, "") {
		if e.Kind == kind {
			return e.Action
		}
	}
	return ""
}
