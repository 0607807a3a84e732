package reconcile_test

import (
	"maps"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/reconcile"
	"github.com/raas-dev/raas/render"
)

// removable finds a tenant of res, not one of keep, whose file can go without making the repository invalid (a
// sandbox's parent cannot) or changing what the others render (a sandbox's quota returns
// to its parent), removes it, and returns its name, its file and the render without it.
func removable(t *testing.T, repo *repo, res *render.Result, keep ...string) (string, string, *render.Result) {
	t.Helper()
	names := tenantNames(res)
	for _, name := range names {
		if slices.Contains(keep, name) {
			continue
		}
		file := "tenants/" + name + ".yaml"
		content := repo.read(file)
		repo.remove(file)
		without := repo.render()
		if without.OK() && sameRender(t, res, without, name) {
			return name, content, without
		}
		repo.write(file, content)
	}
	t.Fatalf("no tenant of %v can be removed alone without changing the others", names)
	return "", "", nil
}

// sameRender reports whether every tenant of b but except renders as in a.
func sameRender(t *testing.T, a, b *render.Result, except string) bool {
	t.Helper()
	yamls := func(res *render.Result) map[string]string {
		m := map[string]string{}
		for _, out := range res.Tenants {
			if out.Tenant == except {
				continue
			}
			for _, o := range append(append([]*render.Object(nil), out.Host...), out.Virtual...) {
				data, err := o.YAML()
				if err != nil {
					t.Fatal(err)
				}
				m[out.Tenant+" "+o.ID()] = string(data)
			}
		}
		return m
	}
	return maps.Equal(yamls(a), yamls(b))
}

// prunesRemovedTenant is the last part of TestApply: a tenant whose file goes is pruned,
// exactly, and keeps its data volumes; when it comes back it adopts them again.
func prunesRemovedTenant(t *testing.T, e *applyEnv) {
	host, repo, res, r, count, opts, prefix, ctx := e.host, e.repo, e.res, e.r, e.count, e.opts, e.prefix, t.Context()
	name, vision, pruned := removable(t, repo, res)
	if rd := res.Repo.Tenant(name).Spec.VCluster.RetainData; rd != nil && !*rd {
		t.Fatalf("%s does not retain its data", name)
	}
	ns := prefix + name
	// The StatefulSet controller would create this claim from the vcluster's
	// volumeClaimTemplates; raas never renders it.
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data-" + name + "-0", Namespace: ns, Labels: map[string]string{"app": "vcluster", "release": name}},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("5Gi")}},
		},
	}
	if err := host.Client.Create(ctx, pvc); err != nil {
		t.Fatal(err)
	}
	others := map[string]string{}
	for _, to := range res.Tenants {
		if to.Tenant != name {
			for _, o := range to.Host {
				others[o.ID()] = get(t, host.Client, o).GetResourceVersion()
			}
		}
	}
	count.reset()
	out := apply(t, r, pruned)
	var visionOut *render.Output
	for _, to := range res.Tenants {
		if to.Tenant == name {
			visionOut = to
		}
	}
	for _, e := range out.Entries {
		switch {
		case e.Tenant != name && e.Action != reconcile.Unchanged:
			t.Errorf("%s, want unchanged", e)
		case e.Tenant == name && e.Target == render.Virtual && e.Action != reconcile.Skipped:
			t.Errorf("%s, want skipped: the vcluster goes as a whole", e)
		case e.Tenant == name && e.Target == render.Host && e.Kind == "Namespace" && e.Action != reconcile.Retained:
			t.Errorf("%s, want retained", e)
		case e.Tenant == name && e.Target == render.Host && e.Kind != "Namespace" && e.Action != reconcile.Deleted:
			t.Errorf("%s, want deleted", e)
		}
	}
	if n := len(out.Select(name, "")); n != len(visionOut.Host)+len(visionOut.Virtual) {
		t.Errorf("%d entries for %s, want %d", n, name, len(visionOut.Host)+len(visionOut.Virtual))
	}
	if st := out.Tenant(name); st.Health != reconcile.HealthRemoved || !strings.Contains(st.Reason, "data volumes") {
		t.Errorf("%s: %s %s, want Removed, keeping the data volumes", name, st.Health, st.Reason)
	}
	for _, o := range visionOut.Host {
		live := get(t, host.Client, o)
		if o.GetKind() == "Namespace" {
			if live == nil || live.GetDeletionTimestamp() != nil || live.GetAnnotations()[reconcile.AnnotationRetained] == "" {
				t.Errorf("namespace %s: %v, want kept and annotated", ns, live)
			}
			continue
		}
		if live != nil {
			t.Errorf("%s still exists", o.ID())
		}
	}
	var got corev1.PersistentVolumeClaim
	if err := host.Client.Get(ctx, client.ObjectKeyFromObject(pvc), &got); err != nil || got.DeletionTimestamp != nil {
		t.Errorf("data volume claim: %v, deletion %v; want it kept", err, got.DeletionTimestamp)
	}
	for _, to := range res.Tenants {
		if to.Tenant == name {
			continue
		}
		for _, o := range to.Host {
			if live := get(t, host.Client, o); live == nil || live.GetResourceVersion() != others[o.ID()] {
				t.Errorf("%s: %s was touched", to.Tenant, o.ID())
			}
		}
	}
	var inv corev1.ConfigMap
	if err := host.Client.Get(ctx, client.ObjectKey{Namespace: opts.InventoryNamespace, Name: "tenant." + name}, &inv); err == nil {
		t.Error("the removed tenant's inventory is still there")
	}

	count.reset()
	apply(t, r, pruned)
	if w := count.writesList(); len(w) > 0 {
		t.Errorf("the pass after the prune wrote %v", w)
	}

	t.Run("and adopts them again when the tenant comes back", func(t *testing.T) {
		repo.write("tenants/"+name+".yaml", vision)
		out := apply(t, r, repo.render())
		if st := out.Tenant(name); st.Change != reconcile.TenantAdded {
			t.Errorf("%s: %+v, want added", name, st)
		}
		var live corev1.Namespace
		if err := host.Client.Get(ctx, client.ObjectKey{Name: ns}, &live); err != nil {
			t.Fatal(err)
		}
		if _, ok := live.Annotations[reconcile.AnnotationRetained]; ok {
			t.Errorf("namespace %s still carries %s", ns, reconcile.AnnotationRetained)
		}
		if live.Labels["pod-security.kubernetes.io/enforce"] == "" {
			t.Errorf("namespace %s labels %v, want the tenant's again", ns, live.Labels)
		}
		if err := host.Client.Get(ctx, client.ObjectKeyFromObject(pvc), &got); err != nil {
			t.Errorf("data volume claim: %v", err)
		}
	})
}
