package reconcile_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/reconcile"
	"github.com/raas-dev/raas/render"
	"github.com/raas-dev/raas/schema"
)

// applyEnv is what TestApply's subtests share: the examples repository on one host, its
// render, a stand-in vcluster per tenant and one Reconciler.
type applyEnv struct {
	host   *testenv.ControlPlane
	prefix string
	repo   *repo
	res    *render.Result
	names  []string
	vcs    map[string]*testenv.VCluster
	r      *reconcile.Reconciler
	count  *counter
	opts   reconcile.Options
}

// TestApply walks the example tenants through the life of a tenants repository on one
// host with a stand-in vcluster per tenant. The subtests build on each other, in order.
func TestApply(t *testing.T) {
	host := testenv.Shared(t)
	ctx := t.Context()
	ensureNamespace(t, host.Client, "volcano-system")
	const prefix = "apply-"
	repo := exampleRepo(t, prefix)
	res := repo.render()
	if !res.OK() {
		t.Fatalf("examples do not render: %v %v", res.Repo.Problems, res.Failed)
	}
	names := tenantNames(res)
	if len(names) < 3 {
		t.Fatalf("examples have %d tenants; this test needs three", len(names))
	}
	first, last := names[0], names[len(names)-1]
	vcs := host.StartVClusters(t, names, func(n string) (string, string) { return prefix + n, schema.Release(n) }, testenv.DefaultVClusterOptions())
	r, count, opts := newReconciler(t, host, time.Minute)
	e := &applyEnv{host: host, prefix: prefix, repo: repo, res: res, names: names, vcs: vcs, r: r, count: count, opts: opts}

	t.Run("applies the example tenants on the host and inside each vcluster", func(t *testing.T) {
		begin := time.Now()
		out := apply(t, r, res)
		t.Logf("first pass: %s in %s; %d reads, %d dry runs, %d writes",
			out.Summary(), time.Since(begin).Round(time.Millisecond), count.reads.Load(), count.dryRuns.Load(), count.writes.Load())
		for _, o := range res.Platform {
			if get(t, host.Client, o) == nil {
				t.Errorf("platform object %s is missing", o.ID())
			}
		}
		for _, to := range res.Tenants {
			for _, o := range to.Host {
				live := get(t, host.Client, o)
				if live == nil {
					t.Errorf("tenant %s: host object %s is missing", to.Tenant, o.ID())
					continue
				}
				if live.GetLabels()[schema.LabelTenant] != to.Tenant {
					t.Errorf("tenant %s: host object %s lacks its tenant label", to.Tenant, o.ID())
				}
			}
			for _, o := range to.Virtual {
				if get(t, vcs[to.Tenant].Client, o) == nil {
					t.Errorf("tenant %s: virtual object %s is missing in its vcluster", to.Tenant, o.ID())
				}
			}
			entries := out.Select(to.Tenant, "")
			if want := len(to.Host) + len(to.Virtual); len(entries) != want {
				t.Errorf("tenant %s: %d entries, want one per object (%d)", to.Tenant, len(entries), want)
			}
			for _, e := range entries {
				want := reconcile.Created
				if e.Kind == "Namespace" && e.Target == render.Host {
					want = reconcile.Configured // the stand-in vcluster created it for its Secret
				}
				if e.Action != want {
					t.Errorf("%s, want %s", e, want)
				}
			}
			st := out.Tenant(to.Tenant)
			if st == nil || st.Health != reconcile.HealthProgressing || !strings.Contains(st.Reason, "StatefulSet") || st.Change != reconcile.TenantAdded {
				t.Errorf("tenant %s: status %+v, want added and Progressing on the vcluster StatefulSet (no controller runs)", to.Tenant, st)
			}
		}
		var cms corev1.ConfigMapList
		if err := host.Client.List(ctx, &cms, client.InNamespace(opts.InventoryNamespace), client.HasLabels{reconcile.LabelInventory}); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, cm := range cms.Items {
			got = append(got, cm.Name)
		}
		want := []string{"platform"}
		for _, name := range names {
			want = append(want, "tenant."+name)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("inventories %v, want %v", got, want)
		}
	})

	t.Run("writes nothing on a second pass", func(t *testing.T) {
		count.reset()
		begin := time.Now()
		out := apply(t, r, res)
		t.Logf("no-op pass: %s in %s; %d reads, %d dry runs, %d writes",
			out.Summary(), time.Since(begin).Round(time.Millisecond), count.reads.Load(), count.dryRuns.Load(), count.writes.Load())
		if w := count.writesList(); len(w) > 0 {
			t.Errorf("second pass wrote %d times: %v", len(w), w)
		}
		for _, e := range out.Entries {
			if e.Action != reconcile.Unchanged {
				t.Errorf("%s, want unchanged", e)
			}
		}
		if out.Changed() {
			t.Error("Changed() = true")
		}
	})

	t.Run("puts back hand-edited drift and reports it", func(t *testing.T) {
		ns := prefix + first
		var quota corev1.ResourceQuota
		if err := host.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "raas-quota"}, &quota); err != nil {
			t.Fatal(err)
		}
		want := quota.Spec.Hard[corev1.ResourceRequestsCPU]
		quota.Spec.Hard[corev1.ResourceRequestsCPU] = resource.MustParse("1000")
		if err := host.Client.Update(ctx, &quota, client.FieldOwner("kubectl-edit")); err != nil {
			t.Fatal(err)
		}
		vc := vcs[first]
		role := &metav1.PartialObjectMetadata{}
		role.SetGroupVersionKind(schemaGVK("rbac.authorization.k8s.io", "v1", "ClusterRole"))
		role.SetName("kuberay-operator")
		if err := vc.Client.Delete(ctx, role); err != nil {
			t.Fatal(err)
		}

		count.reset()
		out := apply(t, r, res)
		got := actions(out.Select(first, ""))
		if a := got["host ResourceQuota "+ns+"/raas-quota"]; a != reconcile.Drifted {
			t.Errorf("edited quota: %s, want drifted", a)
		}
		if a := got["virtual ClusterRole.rbac.authorization.k8s.io kuberay-operator"]; a != reconcile.Drifted {
			t.Errorf("deleted cluster role: %s, want drifted", a)
		}
		for _, e := range out.Entries {
			if e.Action == reconcile.Drifted && e.Kind == "ResourceQuota" &&
				(!strings.Contains(e.Diff, "-    requests.cpu: 1k") || !strings.Contains(e.Reason, "by hand")) {
				t.Errorf("drift entry does not show the edit:\n%s\n%s", e.Reason, e.Diff)
			}
			if e.Action != reconcile.Drifted && e.Action != reconcile.Unchanged {
				t.Errorf("%s, want unchanged", e)
			}
		}
		// The two objects, and the tenant's inventory with their new resourceVersions.
		if n := count.writes.Load(); n != 3 {
			t.Errorf("%d writes, want 3: %v", n, count.writesList())
		}
		if err := host.Client.Get(ctx, client.ObjectKeyFromObject(&quota), &quota); err != nil {
			t.Fatal(err)
		}
		if got := quota.Spec.Hard[corev1.ResourceRequestsCPU]; got.Cmp(want) != 0 {
			t.Errorf("quota requests.cpu = %s, want %s put back", &got, &want)
		}
		if err := vc.Client.Get(ctx, client.ObjectKey{Name: "kuberay-operator"}, role); err != nil {
			t.Errorf("cluster role not created again: %v", err)
		}

		count.reset()
		apply(t, r, res)
		if w := count.writesList(); len(w) > 0 {
			t.Errorf("the pass after the repair wrote %v", w)
		}
	})

	t.Run("reports a tenant Ready once its vcluster and operator are ready", func(t *testing.T) {
		// No controller runs here, so the statuses are written by hand, as the
		// StatefulSet and Deployment controllers would.
		if err := testenv.MarkStatefulSetReady(ctx, host.Client, prefix+last, schema.Release(last)); err != nil {
			t.Fatal(err)
		}
		out := apply(t, r, res)
		if st := out.Tenant(last); st.Health != reconcile.HealthProgressing || !strings.Contains(st.Reason, "KubeRay operator Deployment") {
			t.Errorf("with the vcluster ready: %s %s, want Progressing on the KubeRay operator", st.Health, st.Reason)
		}

		if err := testenv.MarkDeploymentAvailable(ctx, vcs[last].Client, render.KubeRayNamespace, "kuberay-operator"); err != nil {
			t.Fatal(err)
		}
		count.reset()
		out = apply(t, r, res)
		if st := out.Tenant(last); st.Health != reconcile.HealthReady {
			t.Errorf("%s: %s %s, want Ready", last, st.Health, st.Reason)
		}
		if st := out.Tenant(first); st.Health != reconcile.HealthProgressing {
			t.Errorf("%s: %s %s, want still Progressing", first, st.Health, st.Reason)
		}
		if w := count.writesList(); len(w) > 0 {
			t.Errorf("status changes made the pass write %v", w)
		}
	})

	t.Run("changes nothing for the others and deletes nothing when one tenant fails to render", func(t *testing.T) {
		deletesNothingOnRenderFailure(t, e)
	})
	t.Run("deletes nothing when the tenants directory is empty", func(t *testing.T) {
		deletesNothingWhenEmpty(t, e)
	})
	t.Run("prunes exactly a removed tenant and keeps its data volumes", func(t *testing.T) {
		prunesRemovedTenant(t, e)
	})
}
