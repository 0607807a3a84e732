package reconcile_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sschema "k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/reconcile"
	"github.com/raas-dev/raas/render"
	"github.com/raas-dev/raas/schema"
)

// converge runs passes until one has no failure, then one more, which must change
// nothing, and returns how many passes that took. The first ones run while the host is
// still down or starting, as raas's loop would. Only the removed tenant ("" for none) may
// have objects deleted.
func converge(t *testing.T, r *reconcile.Reconciler, res *render.Result, removed string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Minute)
	for n := 1; ; n++ {
		out, err := r.Apply(t.Context(), reconcile.Input{Render: res, Revision: "test"})
		if err == nil {
			deletedNothing(t, out, removed)
		}
		if err == nil && !out.Failed() {
			t.Logf("pass %d: %s", n, out.Summary())
			again := apply(t, r, res)
			if again.Changed() {
				t.Errorf("a pass after convergence still changes things: %s", again.Summary())
			}
			return n
		}
		if err != nil {
			t.Logf("pass %d: %v", n, err)
		} else {
			t.Logf("pass %d: %s; errors %v", n, out.Summary(), out.Errors)
		}
		if time.Now().After(deadline) {
			t.Fatalf("not converged after %d passes", n)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// deletedNothing fails the test for any entry that deleted an object, but those of the
// tenant removed ("" for none).
func deletedNothing(t *testing.T, out *reconcile.Result, removed string) {
	t.Helper()
	for _, e := range out.Entries {
		if (e.Action == reconcile.Deleted || e.Action == reconcile.Retained) && (removed == "" || e.Tenant != removed) {
			t.Errorf("deleted %s", e)
		}
	}
}

// world is what a restart test inspects: the host and the one tenant vcluster.
type world struct {
	host        *testenv.ControlPlane
	vc          *testenv.VCluster
	vcTenant    string
	inventoryNS string
}

// liveKey names a live object: target, group, kind, namespace and name.
type liveKey struct {
	target render.Target
	reconcile.Ref
}

// kinds returns the kinds res renders on the host, and in vcTenant's vcluster.
func kinds(res *render.Result, vcTenant string) map[render.Target][]k8sschema.GroupVersionKind {
	seen := map[render.Target]map[k8sschema.GroupKind]bool{render.Host: {}, render.Virtual: {}}
	out := map[render.Target][]k8sschema.GroupVersionKind{}
	add := func(target render.Target, objs []*render.Object) {
		for _, o := range objs {
			gvk := o.GroupVersionKind()
			if !seen[target][gvk.GroupKind()] {
				seen[target][gvk.GroupKind()] = true
				out[target] = append(out[target], gvk)
			}
		}
	}
	add(render.Host, res.Platform)
	for _, o := range res.Tenants {
		add(render.Host, o.Host)
		if o.Tenant == vcTenant {
			add(render.Virtual, o.Virtual)
		}
	}
	return out
}

// managed lists the live objects labelled as raas's, of the kinds res renders, on the
// host (but for the inventory namespace and retained namespaces) and in the vcluster.
func (w *world) managed(t *testing.T, res *render.Result) map[liveKey]types.UID {
	t.Helper()
	found := map[liveKey]types.UID{}
	clients := map[render.Target]client.Client{render.Host: w.host.Client, render.Virtual: w.vc.Client}
	for target, gvks := range kinds(res, w.vcTenant) {
		for _, gvk := range gvks {
			list := &metav1.PartialObjectMetadataList{}
			list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
			if err := clients[target].List(context.Background(), list, client.MatchingLabels{schema.LabelManagedBy: schema.ManagedBy}); err != nil {
				t.Fatalf("list %s %s: %v", target, gvk.Kind, err)
			}
			for _, m := range list.Items {
				_, retained := m.Annotations[reconcile.AnnotationRetained]
				if target == render.Host && (m.Namespace == w.inventoryNS || retained) {
					continue
				}
				ref := reconcile.Ref{Group: gvk.Group, Kind: gvk.Kind, Namespace: m.Namespace, Name: m.Name}
				found[liveKey{target, ref}] = m.UID
			}
		}
	}
	return found
}

// sameUIDs fails for every object of before, of the kinds res renders, that is gone or
// was created again, but the removed tenant's ("" for none).
func (w *world) sameUIDs(t *testing.T, res *render.Result, before map[liveKey]types.UID, removed string) {
	t.Helper()
	now := w.managed(t, res)
	ns := res.Repo.Platform.Namespace(removed)
	for k, uid := range before {
		if removed != "" && (k.Namespace == ns || k.Name == ns || strings.HasSuffix(k.Name, "."+ns)) {
			continue
		}
		if got, ok := now[k]; !ok {
			t.Errorf("%s %s: deleted", k.target, k.Ref)
		} else if got != uid {
			t.Errorf("%s %s: deleted and created again (uid %s, was %s)", k.target, k.Ref, got, uid)
		}
	}
}

// inventories reads the inventory ConfigMaps: the objects each lists, by tenant ("" for
// the platform), and whether each was applied (has a digest).
func (w *world) inventories(t *testing.T) map[string]map[liveKey]bool {
	t.Helper()
	var cms corev1.ConfigMapList
	if err := w.host.Client.List(context.Background(), &cms, client.InNamespace(w.inventoryNS)); err != nil {
		t.Fatal(err)
	}
	invs := map[string]map[liveKey]bool{}
	for _, cm := range cms.Items {
		var inv struct {
			Tenant  string `json:"tenant"`
			Objects []struct {
				Target render.Target `json:"target"`
				reconcile.Ref
				Digest string `json:"digest"`
			} `json:"objects"`
		}
		if err := yaml.Unmarshal([]byte(cm.Data["inventory.yaml"]), &inv); err != nil {
			t.Fatalf("inventory %s: %v", cm.Name, err)
		}
		if want := strings.TrimPrefix(cm.Name, "tenant."); cm.Name != "platform" && inv.Tenant != want {
			t.Errorf("inventory %s records tenant %q", cm.Name, inv.Tenant)
		}
		objs := map[liveKey]bool{}
		for _, o := range inv.Objects {
			objs[liveKey{o.Target, o.Ref}] = o.Digest != ""
		}
		invs[inv.Tenant] = objs
	}
	return invs
}

// check asserts the converged state of res: every rendered host object, and every
// virtual object of the vcluster tenant, exists and is listed as applied in its
// inventory (other virtual objects are listed, not yet applied); no managed object is
// missing from the inventories; the removed tenant has no inventory left.
func (w *world) check(t *testing.T, res *render.Result, removed string) {
	t.Helper()
	invs := w.inventories(t)
	if _, ok := invs[removed]; removed != "" && ok {
		t.Errorf("the removed tenant %s still has an inventory", removed)
	}
	listed := map[liveKey]bool{}
	for _, objs := range invs {
		for k := range objs {
			listed[k] = true
		}
	}
	expect := func(tenant string, target render.Target, objs []*render.Object, c client.Client) {
		if len(objs) == 0 {
			t.Errorf("%s: no %s objects rendered", tenant, target)
		}
		for _, o := range objs {
			k := liveKey{target, reconcile.Ref{Group: o.GroupVersionKind().Group, Kind: o.GetKind(), Namespace: o.GetNamespace(), Name: o.GetName()}}
			applied, ok := invs[tenant][k]
			if !ok {
				t.Errorf("%s %s: not in the inventory of %q", target, k.Ref, tenant)
			}
			if c == nil {
				continue
			}
			if !applied {
				t.Errorf("%s %s: in the inventory of %q without a digest", target, k.Ref, tenant)
			}
			if get(t, c, o) == nil {
				t.Errorf("%s %s: missing", target, k.Ref)
			}
		}
	}
	expect("", render.Host, res.Platform, w.host.Client)
	for _, out := range res.Tenants {
		expect(out.Tenant, render.Host, out.Host, w.host.Client)
		var vc client.Client
		if out.Tenant == w.vcTenant {
			vc = w.vc.Client
		}
		expect(out.Tenant, render.Virtual, out.Virtual, vc)
	}
	var orphans []string
	for k := range w.managed(t, res) {
		if !listed[k] {
			orphans = append(orphans, string(k.target)+" "+k.Ref.String())
		}
	}
	slices.Sort(orphans)
	if len(orphans) > 0 {
		t.Errorf("labelled as raas's, in no inventory: %v", orphans)
	}
}
