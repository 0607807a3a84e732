package reconcile_test

import (
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/reconcile"
	"github.com/raas-dev/raas/render"
	"github.com/raas-dev/raas/schema"
)

// TestLostInventoryInsideVCluster deletes a tenant's inventory by hand and, in the same
// pass, stops rendering one of the objects raas applied inside the tenant's vcluster: the
// rebuilt inventory finds the virtual objects by their labels, so that object is pruned
// inside the vcluster and every other one stays.
func TestLostInventoryInsideVCluster(t *testing.T) {
	host := testenv.Shared(t)
	const prefix, tenant = "vinv-", "ml-team-alpha"
	repo := exampleRepo(t, prefix)
	res := repo.renderOK()
	vc := host.StartVClusters(t, []string{tenant}, func(n string) (string, string) { return prefix + n, schema.Release(n) }, testenv.DefaultVClusterOptions())[tenant]
	r, _, opts := newReconciler(t, host, 5*time.Second)
	first := apply(t, r, res)
	if st := first.Tenant(tenant); st == nil || len(first.Select(tenant, render.Virtual)) == 0 {
		t.Fatalf("%s: no virtual objects applied: %+v", tenant, st)
	}

	var out *render.Output
	for _, o := range res.Tenants {
		if o.Tenant == tenant {
			out = o
		}
	}
	dropped := slices.IndexFunc(out.Virtual, func(o *render.Object) bool { return o.GetKind() == "ClusterRoleBinding" })
	if dropped < 0 {
		t.Fatalf("%s renders no ClusterRoleBinding inside its vcluster", tenant)
	}
	gone := out.Virtual[dropped]
	isGone := func(e reconcile.Entry) bool { return e.Ref.Kind == gone.GetKind() && e.Ref.Name == gone.GetName() }
	for _, o := range out.Virtual {
		if get(t, vc.Client, o) == nil {
			t.Fatalf("%s: not applied inside the vcluster", o.ID())
		}
	}

	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: opts.InventoryNamespace, Name: "tenant." + tenant}}
	if err := host.Client.Delete(t.Context(), cm); err != nil {
		t.Fatal(err)
	}
	less := *out
	less.Virtual = slices.Delete(slices.Clone(out.Virtual), dropped, dropped+1)
	next := *res
	next.Tenants = slices.Clone(res.Tenants)
	for i, o := range next.Tenants {
		if o.Tenant == tenant {
			next.Tenants[i] = &less
		}
	}
	again := apply(t, r, &next)

	t.Run("rebuilds the inventory with the virtual objects", func(t *testing.T) {
		i := slices.IndexFunc(again.Rebuilt, func(rb reconcile.Rebuilt) bool { return rb.Tenant == tenant })
		if i < 0 {
			t.Fatalf("rebuilt %v, want %s", again.Rebuilt, tenant)
		}
		if n := again.Rebuilt[i].Objects; n < len(out.Host)+len(out.Virtual) {
			t.Errorf("rebuilt from %d objects; the tenant had %d on the host and %d inside", n, len(out.Host), len(out.Virtual))
		}
	})
	t.Run("prunes the object no longer rendered, inside the vcluster", func(t *testing.T) {
		if get(t, vc.Client, gone) != nil {
			t.Errorf("%s: still inside the vcluster", gone.ID())
		}
		if !slices.ContainsFunc(again.Select(tenant, render.Virtual), func(e reconcile.Entry) bool {
			return isGone(e) && e.Action == reconcile.Deleted
		}) {
			t.Errorf("%s: no %s entry in %v", gone.ID(), reconcile.Deleted, again.Select(tenant, render.Virtual))
		}
	})
	t.Run("keeps every other object", func(t *testing.T) {
		for _, o := range less.Virtual {
			if get(t, vc.Client, o) == nil {
				t.Errorf("%s: gone from the vcluster", o.ID())
			}
		}
		for _, o := range out.Host {
			if get(t, host.Client, o) == nil {
				t.Errorf("%s: gone from the host", o.ID())
			}
		}
		for _, e := range again.Entries {
			if e.Action == reconcile.Deleted && !(e.Tenant == tenant && e.Target == render.Virtual && isGone(e)) {
				t.Errorf("deleted %s", e)
			}
		}
	})
}
