package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raas-dev/raas/internal/exampletest"
)

// run executes raas with args and returns its stdout, stderr and exit code, as main
// would compute it.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return runAt(t, time.Now, args...)
}

// runAt runs raas with the clock now.
func runAt(t *testing.T, now func() time.Time, args ...string) (string, string, int) {
	t.Helper()
	cmd := newRootCommand(now)
	var stdout, stderr bytes.Buffer
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	cmd.SetArgs(args)
	err := cmd.Execute()
	code := 0
	var exit *exitError
	switch {
	case errors.As(err, &exit):
		code = exit.code
		stderr.WriteString(exit.msg)
	case err != nil:
		t.Logf("error: %v", err)
		code = 2
	}
	return stdout.String(), stderr.String(), code
}

// brokenRepo copies examples/ into a temporary directory and adds two broken tenants.
func brokenRepo(t *testing.T) string {
	t.Helper()
	dir := exampletest.Dir(t)
	files := map[string]string{
		"tenants/typo.yaml":   "apiVersion: raas.dev/v1alpha1\nkind: Tenant\nmetadata: {name: typo}\nspec:\n  owners: [a@example.com]\n  quota: {cpu: \"2\", memory: 4Gi}\n  sheduling: {}\n",
		"tenants/greedy.yaml": "apiVersion: raas.dev/v1alpha1\nkind: Tenant\nmetadata: {name: greedy}\nspec:\n  owners: [a@example.com]\n  quota: {cpu: \"2\", memory: lots}\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestValidate(t *testing.T) {
	t.Run("passes the examples", func(t *testing.T) {
		out, _, code := run(t, "validate", "../../examples")
		if code != 0 || !strings.Contains(out, "4 tenant(s) valid") {
			t.Errorf("exit %d, output:\n%s", code, out)
		}
	})
	t.Run("reports each broken file at file:line:col and exits 1", func(t *testing.T) {
		dir := brokenRepo(t)
		out, stderr, code := run(t, "validate", dir)
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		for _, want := range []string{
			filepath.Join(dir, "tenants/typo.yaml") + `:7:3: spec.sheduling: unknown field "sheduling"; did you mean "scheduling"?`,
			filepath.Join(dir, "tenants/greedy.yaml") + ":6:29: spec.quota.memory: invalid value lots",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if !strings.Contains(stderr, "2 error(s); 4 of 6 tenant(s) valid") {
			t.Errorf("stderr %q does not sum up", stderr)
		}
	})
}

func TestRenderCommand(t *testing.T) {
	catalog := exampletest.Catalog(t)
	t.Run("renders the good tenants of a repository with broken ones", func(t *testing.T) {
		out, _, code := run(t, "render", brokenRepo(t), "--catalog", catalog)
		if code != 1 {
			t.Errorf("exit %d, want 1 for the broken tenants", code)
		}
		for _, tenant := range []string{"data-sandbox", "ml-team-alpha", "vision-team"} {
			if !strings.Contains(out, "# raas: tenant="+tenant+" host\n") || !strings.Contains(out, "# raas: tenant="+tenant+" virtual\n") {
				t.Errorf("no objects for %s", tenant)
			}
		}
		if strings.Contains(out, "tenant=typo") || strings.Contains(out, "tenant=greedy") {
			t.Error("broken tenants were rendered")
		}
	})
	t.Run("prints only the scheduler configuration", func(t *testing.T) {
		out, _, code := run(t, "render", "../../examples", "--catalog", catalog, "--scheduler")
		if code != 0 || !strings.HasPrefix(out, "actions:") || !strings.Contains(out, "name: gang") {
			t.Errorf("exit %d, output:\n%s", code, out)
		}
	})
	t.Run("refuses an unknown tenant", func(t *testing.T) {
		_, _, code := run(t, "render", "../../examples", "--catalog", catalog, "--tenant", "nobody")
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
	})
}

func TestValidateOverCommit(t *testing.T) {
	dir := brokenRepo(t)
	for _, f := range []string{"tenants/typo.yaml", "tenants/greedy.yaml"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	platform := filepath.Join(dir, "raas.yaml")
	data, err := os.ReadFile(platform)
	if err != nil {
		t.Fatal(err)
	}
	data = []byte(strings.Replace(string(data), "gpu: 32", "gpu: 5", 1))
	if err := os.WriteFile(platform, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, code := run(t, "validate", dir)
	want := "spec.capacity.gpu: over-committed: tenants guarantee 6 gpu in total but the cluster has 5 (ml-team-alpha 4, vision-team 2)"
	if code != 1 || !strings.Contains(out, want) {
		t.Errorf("exit %d, output:\n%s\nwant a line with %q", code, out, want)
	}
}

func TestValidateExpiredSandbox(t *testing.T) {
	day := func() time.Time { return time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC) }
	out, _, code := runAt(t, day, "validate", "../../examples")
	want := "tenants/vision-team-next.yaml:11:39: spec.sandbox.expires: sandbox vision-team-next expired on 2027-01-31"
	if code != 1 || !strings.Contains(out, want) {
		t.Errorf("exit %d, output:\n%s\nwant a line with %q", code, out, want)
	}
}
