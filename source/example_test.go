package source_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/raas-dev/raas/source"
)

// A directory source's revision ID is a hash of the repository's content: it changes
// when a tenant file does.
func ExampleDirSource() {
	dir, _ := os.MkdirTemp("", "tenants")
	defer os.RemoveAll(dir)
	os.MkdirAll(filepath.Join(dir, "tenants"), 0o755)
	os.WriteFile(filepath.Join(dir, "raas.yaml"), []byte("kind: Platform\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "tenants", "team-a.yaml"), []byte("kind: Tenant\n"), 0o644)

	src, err := source.NewDir(dir, source.DefaultDirOptions())
	if err != nil {
		panic(err)
	}
	before, _ := src.Fetch(context.Background())
	os.WriteFile(filepath.Join(dir, "README.md"), []byte("not part of the repository\n"), 0o644)
	same, _ := src.Fetch(context.Background())
	os.WriteFile(filepath.Join(dir, "tenants", "team-a.yaml"), []byte("kind: Tenant # changed\n"), 0o644)
	after, _ := src.Fetch(context.Background())
	fmt.Println(before.ID == same.ID, before.ID == after.ID)
	// Output: true false
}

// A checkout without raas.yaml is refused: the caller keeps its last good revision and
// prunes nothing.
func ExampleErrEmptyCheckout() {
	dir, _ := os.MkdirTemp("", "tenants")
	defer os.RemoveAll(dir)
	src, _ := source.NewDir(dir, source.DefaultDirOptions())
	_, err := src.Fetch(context.Background())
	fmt.Println(errors.Is(err, source.ErrEmptyCheckout))
	// Output: true
}
