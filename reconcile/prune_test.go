package reconcile_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/reconcile"
	"github.com/raas-dev/raas/render"
	"github.com/raas-dev/raas/schema"
)

// TestPrune checks the safety rails of pruning on the host level. No vcluster runs: the
// tenants stay Progressing, which does not matter to what is deleted.
func TestPrune(t *testing.T) {
	host := testenv.Shared(t)
	ctx := t.Context()
	const prefix = "prune-"
	repo := exampleRepo(t, prefix)
	repo.removeAll("tenants")
	for _, name := range []string{"alpha", "beta", "gamma"} {
		repo.write("tenants/"+name+".yaml", minimalTenant(name, ""))
	}
	repo.write("tenants/delta.yaml", minimalTenant("delta", "vcluster: {retainData: false}"))
	res := repo.renderOK()
	r, count, opts := newReconciler(t, host, 200*time.Millisecond)
	first := apply(t, r, res)
	for _, st := range first.Tenants {
		if st.Health != reconcile.HealthProgressing || !strings.Contains(st.Reason, "vc-"+st.Name) {
			t.Errorf("%s: %s %s, want Progressing, waiting for the vcluster's Secret", st.Name, st.Health, st.Reason)
		}
	}
	objects := map[string]*render.Output{}
	for _, out := range res.Tenants {
		objects[out.Tenant] = out
	}

	t.Run("deletes only stale objects that are labelled as raas's", func(t *testing.T) {
		ns := prefix + "alpha"
		ours := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "stale-ours", Namespace: ns,
			Labels: map[string]string{schema.LabelManagedBy: schema.ManagedBy, schema.LabelTenant: "alpha"}}}
		handMade := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "stale-hand-made", Namespace: ns}}
		for _, cm := range []*corev1.ConfigMap{ours, handMade} {
			if err := host.Client.Create(ctx, cm); err != nil {
				t.Fatal(err)
			}
		}
		addToInventory(t, host.Client, opts.InventoryNamespace, "alpha", ours, handMade)

		out := apply(t, r, res)
		got := actions(out.Select("alpha", render.Host))
		if a := got["host ConfigMap "+ns+"/stale-ours"]; a != reconcile.Deleted {
			t.Errorf("stale-ours: %s, want deleted", a)
		}
		if a := got["host ConfigMap "+ns+"/stale-hand-made"]; a != reconcile.Skipped {
			t.Errorf("stale-hand-made: %s, want skipped", a)
		}
		if err := host.Client.Get(ctx, client.ObjectKeyFromObject(ours), &corev1.ConfigMap{}); err == nil {
			t.Error("stale-ours still exists")
		}
		if err := host.Client.Get(ctx, client.ObjectKeyFromObject(handMade), &corev1.ConfigMap{}); err != nil {
			t.Errorf("stale-hand-made: %v, want it left in place", err)
		}
		again := apply(t, r, res)
		if n := len(again.Select("alpha", "")); n != len(objects["alpha"].Host)+len(objects["alpha"].Virtual) {
			t.Errorf("%d entries on the next pass: the hand-made object is still in the inventory", n)
		}
	})

	t.Run("deletes the namespace of a removed tenant that keeps no data", func(t *testing.T) {
		repo.remove("tenants/delta.yaml")
		out := apply(t, r, repo.render())
		got := actions(out.Select("delta", render.Host))
		if a := got["host Namespace "+prefix+"delta"]; a != reconcile.Deleted {
			t.Errorf("namespace: %s, want deleted", a)
		}
		var ns corev1.Namespace
		if err := host.Client.Get(ctx, client.ObjectKey{Name: prefix + "delta"}, &ns); err == nil && ns.DeletionTimestamp == nil {
			t.Error("namespace is not being deleted")
		}
		if st := out.Tenant("delta"); st.Health != reconcile.HealthRemoved || strings.Contains(st.Reason, "kept") {
			t.Errorf("delta: %s %s, want Removed without keeping anything", st.Health, st.Reason)
		}
	})

	t.Run("refuses to remove more than a quarter of the tenants in one pass", func(t *testing.T) {
		// Three tenants are known now; one may go in a pass, two may not.
		repo.remove("tenants/beta.yaml")
		repo.remove("tenants/gamma.yaml")
		count.reset()
		out := apply(t, r, repo.render())
		var mass *reconcile.MassDeleteError
		if len(out.Errors) != 1 || !errors.As(out.Errors[0], &mass) || mass.Empty || mass.Known != 3 || mass.Allowed != 1 ||
			!slices.Equal(mass.Tenants, []string{"beta", "gamma"}) {
			t.Fatalf("errors %v, want a refusal to remove beta and gamma", out.Errors)
		}
		if w := count.writesList(); len(w) > 0 {
			t.Errorf("wrote %v", w)
		}
		for _, name := range mass.Tenants {
			if st := out.Tenant(name); st.Health != reconcile.HealthFailed {
				t.Errorf("%s: %s %s, want Failed", name, st.Health, st.Reason)
			}
			for _, o := range objects[name].Host {
				if get(t, host.Client, o) == nil {
					t.Errorf("%s: %s was deleted", name, o.ID())
				}
			}
		}
	})

	t.Run("removes them when mass deletion is allowed", func(t *testing.T) {
		opts.AllowMassDelete = true
		allowed, err := reconcile.New(host.Config, opts)
		if err != nil {
			t.Fatal(err)
		}
		out := apply(t, allowed, repo.render())
		if len(out.Errors) > 0 {
			t.Errorf("errors %v", out.Errors)
		}
		for _, name := range []string{"beta", "gamma"} {
			if st := out.Tenant(name); st.Health != reconcile.HealthRemoved {
				t.Errorf("%s: %s %s, want Removed", name, st.Health, st.Reason)
			}
			for _, o := range objects[name].Host {
				if live := get(t, host.Client, o); live != nil && o.GetKind() != "Namespace" {
					t.Errorf("%s: %s still exists", name, o.ID())
				}
			}
		}
	})
}

// minimalTenant is a small CPU-only tenant that the example platform accepts with its
// defaults; extra is more YAML under spec.
func minimalTenant(name, extra string) string {
	s := fmt.Sprintf(`apiVersion: raas.dev/v1alpha1
kind: Tenant
metadata:
  name: %s
spec:
  owners: [%s@example.com]
  quota: {cpu: "2", memory: 8Gi, storage: 20Gi, pods: 20}
`, name, name)
	if extra != "" {
		s += "  " + extra + "\n"
	}
	return s
}

// addToInventory records objs in the tenant's inventory as if raas had applied them.
func addToInventory(t testing.TB, c client.Client, namespace, tenant string, objs ...*corev1.ConfigMap) {
	t.Helper()
	var cm corev1.ConfigMap
	if err := c.Get(t.Context(), client.ObjectKey{Namespace: namespace, Name: "tenant." + tenant}, &cm); err != nil {
		t.Fatal(err)
	}
	var inv map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data["inventory.yaml"]), &inv); err != nil {
		t.Fatal(err)
	}
	list, _ := inv["objects"].([]any)
	for _, o := range objs {
		list = append(list, map[string]any{"target": "host", "apiVersion": "v1", "kind": "ConfigMap",
			"namespace": o.Namespace, "name": o.Name, "digest": "0000"})
	}
	inv["objects"] = list
	data, err := yaml.Marshal(inv)
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["inventory.yaml"] = string(data)
	if err := c.Update(t.Context(), &cm); err != nil {
		t.Fatal(err)
	}
}
