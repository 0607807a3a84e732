// Package exampletest gives each test its own copy of examples/, the tenants repository
// that documents raas, so that tests can change it without touching the original.
package exampletest

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
)

// Root returns the path of examples/, found from the working directory upwards.
func Root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		candidate := filepath.Join(dir, "examples", "raas.yaml")
		if _, err := os.Stat(candidate); err == nil {
			return filepath.Dir(candidate)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no examples/raas.yaml above the working directory")
		}
		dir = parent
	}
}

// Path returns the absolute path of elem joined below the raas source tree, the
// directory that holds examples/, such as Path(t, "deploy", "crds"). It does not depend
// on how deep the test's package lies.
func Path(t testing.TB, elem ...string) string {
	t.Helper()
	return filepath.Join(append([]string{filepath.Dir(Root(t))}, elem...)...)
}

// Dir copies examples/ into a temporary directory, removed when the test ends.
func Dir(t testing.TB) string {
	t.Helper()
	src, dst := Root(t), t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// FS returns examples/ as an in-memory filesystem, with files replaced or added by
// files; an empty content removes the file.
func FS(t testing.TB, files map[string]string) fstest.MapFS {
	t.Helper()
	src := Root(t)
	fsys := fstest.MapFS{}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(src, p)
		fsys[filepath.ToSlash(rel)] = &fstest.MapFile{Data: data}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range files {
		if body == "" {
			delete(fsys, name)
			continue
		}
		fsys[name] = &fstest.MapFile{Data: []byte(body)}
	}
	return fsys
}

// Catalog returns the path of the local catalog that `make catalog` fills, beside
// examples/, and fails the test when it has not been filled.
func Catalog(t testing.TB) string {
	t.Helper()
	dir := Path(t, ".catalog")
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("no local catalog (%v): run `make catalog`", err)
	}
	return dir
}
