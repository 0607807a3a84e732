package reconcile_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/reconcile"
	"github.com/raas-dev/raas/render"
)

// TestLostInventory deletes a tenant's inventory and the platform's by hand, damages
// another tenant's, and removes the first tenant's file: the pass rebuilds the three from
// the live objects' labels and says so, deletes the removed tenant's objects, and nothing
// else. A fresh host, so that the platform objects found are this test's alone.
func TestLostInventory(t *testing.T) {
	host := testenv.StartHost(t, testenv.DefaultControlPlaneOptions())
	const prefix = "inv-"
	repo := exampleRepo(t, prefix)
	res := repo.renderOK()
	r, _, opts := newReconciler(t, host, 100*time.Millisecond)
	apply(t, r, res)

	removed, _, without := removable(t, repo, res)
	var damaged string
	for _, n := range tenantNames(without) {
		if n != removed {
			damaged = n
			break
		}
	}
	ctx := t.Context()
	for _, name := range []string{"tenant." + removed, "platform"} {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: opts.InventoryNamespace, Name: name}}
		if err := host.Client.Delete(ctx, cm); err != nil {
			t.Fatal(err)
		}
	}
	cm := &corev1.ConfigMap{}
	if err := host.Client.Get(ctx, client.ObjectKey{Namespace: opts.InventoryNamespace, Name: "tenant." + damaged}, cm); err != nil {
		t.Fatal(err)
	}
	cm.Data["inventory.yaml"] = "objects: [{edited by hand"
	if err := host.Client.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}

	out := apply(t, r, without)
	t.Run("says which inventories it rebuilt", func(t *testing.T) {
		var got []string
		for _, rb := range out.Rebuilt {
			got = append(got, rb.Tenant)
			if rb.Objects == 0 {
				t.Errorf("%s: rebuilt from no objects", rb)
			}
		}
		want := []string{"", damaged, removed}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("rebuilt %q, want %q", got, want)
		}
	})
	t.Run("deletes the removed tenant's objects", func(t *testing.T) {
		st := out.Tenant(removed)
		if st == nil || st.Change != reconcile.TenantRemoved || st.Health != reconcile.HealthRemoved {
			t.Fatalf("%s: %+v, want removed", removed, st)
		}
		var objs []*render.Object
		for _, o := range res.Tenants {
			if o.Tenant == removed {
				objs = o.Host
			}
		}
		if len(objs) == 0 {
			t.Fatalf("no host objects rendered for %s", removed)
		}
		for _, o := range objs {
			live := get(t, host.Client, o)
			if o.GetKind() == "Namespace" {
				if live == nil {
					t.Errorf("%s: deleted, want retained with its data volumes", o.ID())
				}
				continue
			}
			if live != nil {
				t.Errorf("%s: still there", o.ID())
			}
		}
	})
	t.Run("deletes nothing else", func(t *testing.T) {
		entries := 0
		for _, e := range out.Entries {
			if e.Tenant == removed {
				continue
			}
			entries++
			if e.Action == reconcile.Deleted {
				t.Errorf("deleted %s", e)
			}
		}
		if entries == 0 {
			t.Fatal("no entries for the platform and the other tenants")
		}
		for _, o := range without.Tenants {
			for _, obj := range o.Host {
				if get(t, host.Client, obj) == nil {
					t.Errorf("%s: gone", obj.ID())
				}
			}
		}
	})
	t.Run("stores the rebuilt inventories", func(t *testing.T) {
		again := apply(t, r, without)
		if len(again.Rebuilt) != 0 {
			t.Errorf("rebuilt again: %v", again.Rebuilt)
		}
		if again.Tenant(removed) != nil {
			t.Errorf("%s is still reported: %+v", removed, again.Tenant(removed))
		}
	})
}

// TestInventoryTooLarge gives inventories less room than the examples need: every tenant
// fails, naming the limit, before anything of it is applied.
func TestInventoryTooLarge(t *testing.T) {
	host := testenv.Shared(t)
	repo := exampleRepo(t, "big-")
	res := repo.renderOK()
	r, _, _ := newReconciler(t, host, 100*time.Millisecond)
	// Room for the platform's few objects, not for a tenant's.
	defer reconcile.SetMaxInventoryBytes(4 << 10)()
	out, err := r.Apply(t.Context(), reconcile.Input{Render: res, Revision: "big"})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Tenants) != len(res.Tenants) {
		t.Fatalf("%d tenants reported, want %d", len(out.Tenants), len(res.Tenants))
	}
	for _, st := range out.Tenants {
		if st.Health != reconcile.HealthFailed || !strings.Contains(st.Reason, "more than the 4096 a ConfigMap holds") {
			t.Errorf("%s: %s %q, want failed on the inventory size", st.Name, st.Health, st.Reason)
		}
		if n := len(out.Select(st.Name, "")); n != 0 {
			t.Errorf("%s: %d entries, want none", st.Name, n)
		}
	}
	for _, o := range res.Tenants {
		for _, obj := range o.Host {
			if get(t, host.Client, obj) != nil {
				t.Errorf("%s: applied", obj.ID())
			}
		}
	}
}
