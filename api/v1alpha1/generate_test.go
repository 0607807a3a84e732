package v1alpha1_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGeneratedFilesAreCurrent runs controller-gen into a temporary directory and fails
// when the committed deepcopy code or CRD differ from what it writes. `make generate`
// refreshes them.
func TestGeneratedFilesAreCurrent(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	// controller-gen writes the deepcopy file next to the types, so it works on a copy.
	pkg := filepath.Join(tmp, "v1alpha1")
	if err := os.MkdirAll(pkg, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"doc.go", "types.go"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pkg, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gomod := "module github.com/raas-dev/raas/api/v1alpha1\n\ngo 1.26.8\n"
	if err := os.WriteFile(filepath.Join(tmp, "go.mod"), []byte(gomod), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "tool", "controller-gen", "object", "crd",
		"paths="+pkg+"/...", "output:crd:dir="+filepath.Join(tmp, "crds"))
	cmd.Dir = filepath.Join(root, "hack", "tools", "controller-gen")
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("controller-gen: %v\n%s", err, out)
	}
	for generated, committed := range map[string]string{
		filepath.Join(pkg, "zz_generated.deepcopy.go"):      "zz_generated.deepcopy.go",
		filepath.Join(tmp, "crds", "raas.dev_tenants.yaml"): filepath.Join(root, "deploy", "crds", "raas.dev_tenants.yaml"),
	} {
		want, err := os.ReadFile(generated)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(committed)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale; run `make generate`", committed)
		}
	}
}
