package reconcile_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/internal/golden"
	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/reconcile"
	"github.com/raas-dev/raas/render"
	"github.com/raas-dev/raas/report"
)

const goldenDir = "../testdata/reconcile"

// TestDiff diffs the example tenants against a host, before and after they are applied,
// and then a pull request that adds, changes and removes tenants. No vcluster runs: the
// virtual level is compared with the inventory, as in CI.
func TestDiff(t *testing.T) {
	host := testenv.Shared(t)
	const prefix = "diff-"
	repo := exampleRepo(t, prefix)
	res := repo.renderOK()
	r, count, _ := newReconciler(t, host, 100*time.Millisecond)
	diff := func(t *testing.T, res *render.Result) *reconcile.Result {
		t.Helper()
		count.reset()
		out, err := r.Diff(t.Context(), reconcile.Input{Render: res, Revision: "0123abc"})
		if err != nil {
			t.Fatal(err)
		}
		if w := count.writesList(); len(w) > 0 {
			t.Errorf("diff wrote %v", w)
		}
		for _, e := range out.Entries {
			if e.Action == reconcile.Failed {
				t.Errorf("diff: %s", e)
			}
		}
		return out
	}

	t.Run("shows every object as created before the first apply", func(t *testing.T) {
		out := diff(t, res)
		if !out.Changed() {
			t.Error("Changed() = false")
		}
		if n, want := len(out.Tenants), len(tenantNames(res)); n != want || len(out.Entries) == 0 {
			t.Fatalf("the diff reports %d tenants and %d entries; want %d tenants and some entries", n, len(out.Entries), want)
		}
		for _, e := range out.Entries {
			if e.Tenant != "" && e.Action != reconcile.Created {
				t.Errorf("%s, want created", e)
			}
		}
		for _, st := range out.Tenants {
			if st.Change != reconcile.TenantAdded || st.Before != nil || st.After == nil {
				t.Errorf("%s: %+v, want added with a quota after only", st.Name, st)
			}
		}
		if count.dryRuns.Load() == 0 {
			t.Error("no server-side dry run")
		}
	})

	apply(t, r, res)

	t.Run("shows no host change after apply", func(t *testing.T) {
		out := diff(t, res)
		hostEntries := 0
		for _, e := range out.Entries {
			if e.Target == render.Host && e.Tenant != "" {
				hostEntries++
			}
		}
		if hostEntries == 0 {
			t.Fatalf("the diff has no host entries for any tenant: %d entries in all", len(out.Entries))
		}
		for _, e := range out.Entries {
			want := reconcile.Unchanged
			if e.Target == render.Virtual {
				want = reconcile.Created // no vcluster came up, so nothing was applied there
			}
			if e.Action != want {
				t.Errorf("%s, want %s", e, want)
			}
		}
	})
}

// TestGoldenDiff checks the summaries of two pull requests against testdata/reconcile:
// one that adds, changes and removes tenants, as Markdown (diff.md) and as JSON
// (diff.json), and one that changes a profile (profile-change.md). Each applies the
// examples first, with one stand-in vcluster taking every tenant's virtual objects, so
// that the inventories record them as a real fleet's would.
func TestGoldenDiff(t *testing.T) {
	got := map[string][]byte{}
	got["diff.md"], got["diff.json"] = pullRequestDiff(t)
	got["profile-change.md"] = profileChangeDiff(t)
	golden.Dir(t, goldenDir, got)
}

// pullRequestDiff applies the examples, then diffs a pull request that adds, changes and
// removes tenants, and returns the summary as Markdown and as JSON.
func pullRequestDiff(t *testing.T) (markdown, jsonReport []byte) {
	t.Helper()
	repo, res, r, count, _ := applyExamples(t, "md-")

	names := tenantNames(res)
	changed := names[0]
	repo.set("tenants/"+changed+".yaml", "96", "spec", "quota", "cpu")
	repo.write("tenants/new-team.yaml", minimalTenant("new-team", ""))
	removed, _, _ := removable(t, repo, repo.render(), changed, "new-team")
	count.reset()
	out, err := r.Diff(t.Context(), reconcile.Input{Render: repo.render(), Revision: "0123abc"})
	if err != nil {
		t.Fatal(err)
	}
	if w := count.writesList(); len(w) > 0 {
		t.Errorf("diff wrote %v", w)
	}
	if st := out.Tenant(changed); st.Change != reconcile.TenantChanged {
		t.Errorf("%s: %s, want changed", changed, st.Change)
	}
	if st := out.Tenant("new-team"); st.Change != reconcile.TenantAdded {
		t.Errorf("new-team: %s, want added", st.Change)
	}
	if st := out.Tenant(removed); st.Change != reconcile.TenantRemoved {
		t.Errorf("%s: %s, want removed", removed, st.Change)
	}
	var md bytes.Buffer
	if err := report.WriteMarkdown(&md, out); err != nil {
		t.Fatal(err)
	}

	var js bytes.Buffer
	if err := report.WriteJSON(&js, out); err != nil {
		t.Fatal(err)
	}
	var rep report.Report
	if err := json.Unmarshal(js.Bytes(), &rep); err != nil {
		t.Fatalf("the JSON does not read back: %v", err)
	}
	if len(rep.Tenants) != len(out.Tenants) || !rep.Changed || rep.Revision != "0123abc" {
		t.Errorf("the report does not carry the result: %d tenants, changed %v, revision %q", len(rep.Tenants), rep.Changed, rep.Revision)
	}
	return md.Bytes(), js.Bytes()
}

// profileChangeDiff applies the examples, changes the standard@3 profile and moves
// vision-team onto it, and returns the Markdown summary, which must list every tenant the
// change reaches, with its profile.
func profileChangeDiff(t *testing.T) []byte {
	t.Helper()
	repo, _, r, _, _ := applyExamples(t, "pf-")

	repo.edit("raas.yaml", `images: ["rayproject/ray:2.46.0*", "docker.io/rayproject/ray:2.46.0*"]`,
		`images: ["rayproject/ray:2.46.1*", "docker.io/rayproject/ray:2.46.1*"]`)
	repo.edit("tenants/vision-team.yaml", "profile: standard@2", "profile: standard@3")
	out, err := r.Diff(t.Context(), reconcile.Input{Render: repo.render(), Revision: "4567def"})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ml-team-alpha", "vision-team", "vision-team-next"} {
		if st := out.Tenant(name); st == nil || st.Change != reconcile.TenantChanged {
			t.Errorf("%s on standard@3 is not shown as changed: %+v", name, st)
		}
	}
	if st := out.Tenant("data-sandbox"); st == nil || st.Change != reconcile.TenantUnchanged {
		t.Errorf("data-sandbox, on no profile, is shown as %+v", st)
	}
	var md bytes.Buffer
	if err := report.WriteMarkdown(&md, out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "| `vision-team` | `standard@2` → `standard@3` | changed |") {
		t.Errorf("the summary does not show vision-team's move:\n%s", md.String())
	}
	return md.Bytes()
}

// applyExamples applies the examples, with host namespaces prefixed by prefix, to the
// shared host, with one stand-in vcluster taking every tenant's virtual objects so that
// the inventories record them as a real fleet's would.
func applyExamples(t *testing.T, prefix string) (*repo, *render.Result, *reconcile.Reconciler, *counter, reconcile.Options) {
	t.Helper()
	host := testenv.Shared(t)
	repo := exampleRepo(t, prefix)
	res := repo.renderOK()
	vc := host.StartVCluster(t, host.Namespace(t), "shared", testenv.DefaultVClusterOptions())
	shareVCluster(t, host, vc, prefix, tenantNames(res))
	r, count, opts := newReconciler(t, host, 30*time.Second)
	apply(t, r, res)
	return repo, res, r, count, opts
}

// TestDiffReadOnly diffs with credentials that may only read, as a CI job's: the dry runs
// are forbidden, so the diff judges objects by the inventory instead of failing.
func TestDiffReadOnly(t *testing.T) {
	repo, _, _, _, opts := applyExamples(t, "ro-")
	host := testenv.Shared(t)
	reader := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "ci-reader"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"get", "list", "watch"}}},
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "ci-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "ci-reader"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: "ci-reader"}},
	}
	for _, o := range []client.Object{reader, binding} {
		if err := host.Client.Create(t.Context(), o); client.IgnoreAlreadyExists(err) != nil {
			t.Fatal(err)
		}
	}
	cfg := rest.CopyConfig(host.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "ci-reader"}
	r, err := reconcile.New(cfg, opts) // the inventories applyExamples wrote
	if err != nil {
		t.Fatal(err)
	}
	changed := "data-sandbox"
	repo.set("tenants/"+changed+".yaml", "12", "spec", "quota", "cpu")
	out, err := r.Diff(t.Context(), reconcile.Input{Render: repo.render(), Revision: "ro"})
	if err != nil {
		t.Fatalf("a read-only diff failed: %v", err)
	}
	configured := 0
	for _, e := range out.Entries {
		switch {
		case e.Action == reconcile.Failed:
			t.Errorf("failed: %s", e)
		case e.Tenant == changed && e.Action == reconcile.Configured:
			configured++
		case e.Tenant != changed && e.Tenant != "" && e.Action != reconcile.Unchanged:
			t.Errorf("%s, want unchanged", e)
		}
	}
	if configured == 0 {
		t.Errorf("the changed tenant shows no change: %+v", out.Select(changed, ""))
	}
	if st := out.Tenant(changed); st == nil || st.Change != reconcile.TenantChanged {
		t.Errorf("%s: %+v, want changed", changed, st)
	}
}
