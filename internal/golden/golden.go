package golden

import (
	"bytes"
	"errors"
	"flag"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files, and delete stale ones, instead of comparing with them")

// TestPrefix begins the name of every test that compares golden files, so that
// `make golden` (go test -run '^TestGolden' -update) rewrites them all.
const TestPrefix = "TestGolden"

// File compares got with the golden file at path, or writes it there with -update
// unless the test has failed.
func File(t testing.TB, path string, got []byte) {
	t.Helper()
	checkName(t)
	if *update {
		if !failed(t, path) {
			write(t, path, got)
		}
		return
	}
	compare(t, path, got)
}

// Dir compares got, keyed by slash-separated paths below dir, with the golden files
// under dir, or writes them there with -update unless the test has failed. Any other
// file under dir is stale: it fails the test, and -update deletes it. Files that match one of the path.Match
// patterns inputs, against their path below dir, are the cases' inputs and left alone.
//
// got must hold everything the test makes for dir, so build it in the test itself,
// not in subtests that -run may skip.
func Dir(t testing.TB, dir string, got map[string][]byte, inputs ...string) {
	t.Helper()
	checkName(t)
	isInput := func(name string) bool {
		return slices.ContainsFunc(inputs, func(pattern string) bool {
			ok, err := path.Match(pattern, name)
			if err != nil {
				t.Fatalf("golden: input pattern %q: %v", pattern, err)
			}
			return ok
		})
	}
	for name := range got {
		if !fs.ValidPath(name) || name == "." {
			t.Fatalf("golden: %q is not a slash-separated path below %s", name, dir)
		}
		if isInput(name) {
			t.Fatalf("golden: %s would overwrite an input of %s", name, dir)
		}
	}
	var stale []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if _, ok := got[name]; !ok && !isInput(name) {
			stale = append(stale, name)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("golden: %v", err)
	}
	names := slices.Sorted(maps.Keys(got))
	if *update {
		if failed(t, dir) {
			return
		}
		for _, name := range stale {
			remove(t, dir, filepath.FromSlash(name))
		}
		for _, name := range names {
			write(t, filepath.Join(dir, filepath.FromSlash(name)), got[name])
		}
		return
	}
	for _, name := range stale {
		t.Errorf("%s is stale: the test no longer makes it; %s deletes it", filepath.Join(dir, filepath.FromSlash(name)), hint(t))
	}
	for _, name := range names {
		compare(t, filepath.Join(dir, filepath.FromSlash(name)), got[name])
	}
}

// failed reports whether the test has failed already, and says then that it leaves the
// golden files at path as they are: what a failed test makes is no reference.
func failed(t testing.TB, path string) bool {
	t.Helper()
	if t.Failed() {
		t.Errorf("golden: %s not rewritten, as the test failed", path)
	}
	return t.Failed()
}

// compare fails the test, with a diff, unless the file at path holds want.
func compare(t testing.TB, path string, got []byte) {
	t.Helper()
	want, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s is missing; %s writes it", path, hint(t))
		return
	}
	if err != nil {
		t.Fatalf("golden: %v", err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("%s differs from what the test makes (-want +got, by line); if the change is intended, %s rewrites it:\n%s",
			path, hint(t), cmp.Diff(lines(want), lines(got)))
	}
}

// lines splits data after each newline, so that a diff shows whole lines.
func lines(data []byte) []string { return strings.SplitAfter(string(data), "\n") }

func write(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatalf("golden: %v", err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatalf("golden: %v", err)
	}
}

// remove deletes the stale file name below dir, and the directories it leaves empty.
func remove(t testing.TB, dir, name string) {
	t.Helper()
	if err := os.Remove(filepath.Join(dir, name)); err != nil {
		t.Fatalf("golden: %v", err)
	}
	for d := filepath.Dir(name); d != "."; d = filepath.Dir(d) {
		if entries, err := os.ReadDir(filepath.Join(dir, d)); err != nil || len(entries) > 0 {
			return
		}
		if err := os.Remove(filepath.Join(dir, d)); err != nil {
			t.Fatalf("golden: %v", err)
		}
	}
}

// checkName fails a golden test whose name `make golden` would not select.
func checkName(t testing.TB) {
	t.Helper()
	if root, _, _ := strings.Cut(t.Name(), "/"); !strings.HasPrefix(root, TestPrefix) {
		t.Fatalf("golden: %s compares golden files, so its name must begin with %s for `make golden` to rewrite them", root, TestPrefix)
	}
}

// hint is the command that rewrites the test's golden files.
func hint(t testing.TB) string {
	root, _, _ := strings.Cut(t.Name(), "/")
	pkg := "."
	if dir, err := os.Getwd(); err == nil {
		for d := dir; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				if rel, err := filepath.Rel(d, dir); err == nil && rel != "." {
					pkg = "./" + filepath.ToSlash(rel)
				}
				break
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	return "`go test " + pkg + " -run '^" + root + "$' -update` (or `make golden`)"
}
