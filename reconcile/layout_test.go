package reconcile_test

import (
	"os"
	"testing"
	"time"

	"github.com/raas-dev/raas/internal/exampletest"
	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/reconcile"
	"github.com/raas-dev/raas/render"
	"github.com/raas-dev/raas/schema"
)

// TestLayoutsNeverRemove applies the examples, then arranges tenants/ as each case of
// testdata/validate/layouts says (a tenant file behind a symbolic link, moved into a
// subdirectory, renamed to .json, ...). Neither a diff nor a pass may plan the removal of
// a tenant or delete anything: a tenant is either still read, or its entry is refused
// and the tenant kept as last applied.
func TestLayoutsNeverRemove(t *testing.T) {
	const prefix = "lay-"
	host := testenv.Shared(t)
	examples := exampleRepo(t, prefix).renderOK()
	names := tenantNames(examples)
	// No vcluster answers: what a pass may delete is decided on the host.
	r, _, _ := newReconciler(t, host, 100*time.Millisecond)
	apply(t, r, examples)
	for _, c := range exampletest.LayoutCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			repo := exampleRepo(t, prefix)
			c.Apply(t, repo.dir)
			loaded, err := schema.Load(os.DirFS(repo.dir))
			if err != nil {
				t.Fatal(err)
			}
			c.Check(t, loaded)
			// Rendering every case again would take minutes on 2 cores: the tenants the
			// layout still reads take their objects from the examples' render. What is
			// under test is what the pass makes of the tenants it no longer reads.
			res := &render.Result{Repo: loaded, Platform: examples.Platform}
			for _, out := range examples.Tenants {
				if loaded.Tenant(out.Tenant) != nil {
					res.Tenants = append(res.Tenants, out)
				}
			}
			diff, err := r.Diff(t.Context(), reconcile.Input{Render: res, Revision: c.Name})
			if err != nil {
				t.Fatal(err)
			}
			applied, err := r.Apply(t.Context(), reconcile.Input{Render: res, Revision: c.Name})
			if err != nil {
				t.Fatal(err)
			}
			for _, out := range []*reconcile.Result{diff, applied} {
				kind := "diff"
				if !out.DryRun {
					kind = "pass"
				}
				for _, name := range names {
					if out.Tenant(name) == nil {
						t.Errorf("%s: %s is not reported", kind, name)
					}
				}
				for _, st := range out.Tenants {
					if st.Change == reconcile.TenantRemoved {
						t.Errorf("%s: plans to remove %s: %s", kind, st.Name, st.Reason)
					}
				}
				for _, e := range out.Entries {
					if e.Action == reconcile.Deleted {
						t.Errorf("%s: %s", kind, e)
					}
				}
			}
		})
	}
}
