package reconcile_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/raas-dev/raas/reconcile"
)

// The parts of TestApply that check what a pass must not delete: a broken tenant's
// objects, and every tenant when the tenants directory is empty.

// deletesNothingOnRenderFailure: the others change nothing, and nothing is deleted, when
// one tenant fails to render.
func deletesNothingOnRenderFailure(t *testing.T, e *applyEnv) {
	host, repo, res, names, r, count := e.host, e.repo, e.res, e.names, e.r, e.count
	// The repository's own catalog gets an empty KubeRay base for one tenant's version,
	// which fails its render (and that of any tenant on the same version); another
	// tenant's file is deleted in the same commit.
	var version string
	var affected, others []string
	for _, victim := range names {
		version = res.Repo.Tenant(victim).Spec.KubeRay.Version
		affected, others = nil, nil
		for _, name := range names {
			if res.Repo.Tenant(name).Spec.KubeRay.Version == version {
				affected = append(affected, name)
			} else {
				others = append(others, name)
			}
		}
		if len(others) >= 2 {
			break
		}
	}
	if len(others) < 2 {
		t.Fatalf("examples: no KubeRay version leaves two tenants on another")
	}
	removed := others[0]
	file := "tenants/" + removed + ".yaml"
	content := repo.read(file)
	repo.write("catalog/kuberay/"+version+"/README", "an empty base: kustomize fails on it\n")
	repo.remove(file)
	t.Cleanup(func() {
		repo.write(file, content)
		repo.removeAll("catalog")
	})
	broken := repo.render()
	var failed []string
	for _, f := range broken.Failed {
		failed = append(failed, f.Tenant)
	}
	if !slices.Equal(failed, affected) {
		t.Fatalf("render failures %v, want %v", failed, affected)
	}

	count.reset()
	out := apply(t, r, broken)
	if w := count.writesList(); len(w) > 0 {
		t.Errorf("wrote %v", w)
	}
	for _, e := range out.Entries {
		switch {
		case slices.Contains(others[1:], e.Tenant) && e.Action != reconcile.Unchanged:
			t.Errorf("%s, want unchanged", e)
		case e.Action != reconcile.Unchanged && e.Action != reconcile.Skipped:
			t.Errorf("%s, want unchanged or skipped", e)
		}
	}
	if out.PruneBlocked == "" {
		t.Error("PruneBlocked is empty")
	}
	for _, name := range affected {
		if st := out.Tenant(name); st.Health != reconcile.HealthFailed || !st.Stalled || !strings.Contains(st.Reason, "failed to render") {
			t.Errorf("%s: %s %s (stalled %v), want Failed to render and Stalled", name, st.Health, st.Reason, st.Stalled)
		}
	}
	if st := out.Tenant(removed); st.Change != reconcile.TenantRemoved || !strings.Contains(st.Reason, "not pruned") {
		t.Errorf("%s: %+v, want removed but not pruned", removed, st)
	}
	for _, to := range res.Tenants {
		for _, o := range to.Host {
			if get(t, host.Client, o) == nil {
				t.Errorf("%s: %s was deleted", to.Tenant, o.ID())
			}
		}
	}
}

// deletesNothingWhenEmpty: a checkout without tenant files removes none of them.
func deletesNothingWhenEmpty(t *testing.T, e *applyEnv) {
	host, repo, res, names, r, count, ctx := e.host, e.repo, e.res, e.names, e.r, e.count, t.Context()
	files := map[string]string{}
	for _, name := range tenantNames(res) {
		file := "tenants/" + name + ".yaml"
		files[file] = repo.read(file)
		repo.remove(file)
	}
	t.Cleanup(func() {
		for file, content := range files {
			repo.write(file, content)
		}
	})
	empty := repo.render()
	if len(empty.Repo.Tenants) != 0 || !empty.OK() {
		t.Fatalf("want a valid repository without tenants: %v", empty.Repo.Problems)
	}
	count.reset()
	out, err := r.Apply(ctx, reconcile.Input{Render: empty, Revision: "empty"})
	if err != nil {
		t.Fatal(err)
	}
	var mass *reconcile.MassDeleteError
	if len(out.Errors) != 1 || !errors.As(out.Errors[0], &mass) || !mass.Empty || !slices.Equal(mass.Tenants, names) {
		t.Errorf("errors %v, want a refused mass deletion of %v", out.Errors, names)
	}
	if w := count.writesList(); len(w) > 0 {
		t.Errorf("wrote %v", w)
	}
	for _, name := range tenantNames(res) {
		if st := out.Tenant(name); st == nil || st.Health != reconcile.HealthFailed || !strings.Contains(st.Reason, "allow mass deletion") {
			t.Errorf("%s: %+v, want Failed with the refusal", name, st)
		}
	}
	for _, to := range res.Tenants {
		for _, o := range to.Host {
			if get(t, host.Client, o) == nil {
				t.Errorf("%s: %s was deleted", to.Tenant, o.ID())
			}
		}
	}
}
