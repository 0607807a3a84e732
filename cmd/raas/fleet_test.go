package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raas-dev/raas/internal/exampletest"
)

// fleetRepo copies examples/ and declares two clusters: a with the H100 pool and room
// for aGPUs guaranteed GPUs, and b with the A10 pool.
func fleetRepo(t *testing.T, aGPUs string) string {
	t.Helper()
	dir := exampletest.Dir(t)
	path := filepath.Join(dir, "raas.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	clusters := "  clusters:\n" +
		"    - {name: a, capacity: {gpu: " + aGPUs + "}, pools: [h100]}\n" +
		"    - {name: b, kubeconfig: {name: cluster-b}, capacity: {gpu: 16}, pools: [a10]}\n"
	data = []byte(strings.Replace(string(data), "  capacity:\n", clusters+"  capacity:\n", 1))
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestFleetCommands checks what validate and render say of a fleet: the over-committed
// cluster by name, and each tenant's cluster in the stream and in --out.
func TestFleetCommands(t *testing.T) {
	catalog := exampletest.Catalog(t)
	t.Run("validate names the over-committed cluster", func(t *testing.T) {
		out, _, code := run(t, "validate", fleetRepo(t, "3"))
		want := `cluster "a" is over-committed: tenants guarantee 4 gpu in total but it has 3 (ml-team-alpha 4)`
		if code != 1 || !strings.Contains(out, want) || !strings.Contains(out, "raas.yaml:") {
			t.Errorf("exit %d, output:\n%s\nwant a line of raas.yaml with %q", code, out, want)
		}
		if strings.Contains(out, `cluster "b" is over-committed`) {
			t.Errorf("cluster b is not over-committed:\n%s", out)
		}
	})
	t.Run("render names each tenant's cluster", func(t *testing.T) {
		dir := fleetRepo(t, "16")
		out, stderr, code := run(t, "render", dir, "--catalog", catalog)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		for tenant, cluster := range map[string]string{"ml-team-alpha": "a", "vision-team": "b", "vision-team-next": "b"} {
			if !strings.Contains(out, "# raas: cluster="+cluster+" tenant="+tenant+" host\n") {
				t.Errorf("%s is not rendered for cluster %s", tenant, cluster)
			}
		}
		if !strings.Contains(stderr, "placed as if no cluster ran them yet") {
			t.Errorf("render does not say its placement is offline:\n%s", stderr)
		}
		outDir := t.TempDir()
		if _, stderr, code := run(t, "render", dir, "--catalog", catalog, "--out", outDir); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		for _, p := range []string{"a/_platform", "a/ml-team-alpha/host", "b/_platform", "b/vision-team/virtual"} {
			if _, err := os.Stat(filepath.Join(outDir, p)); err != nil {
				t.Errorf("--out: %v", err)
			}
		}
		if _, err := os.Stat(filepath.Join(outDir, "b", "ml-team-alpha")); err == nil {
			t.Error("--out wrote ml-team-alpha under cluster b too")
		}
	})
}
