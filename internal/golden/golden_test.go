package golden

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// recorder stands in for a golden test: it keeps the failures instead of failing.
type recorder struct {
	testing.TB
	name   string
	errors []string
}

func (r *recorder) Name() string { return r.name }
func (r *recorder) Failed() bool { return len(r.errors) > 0 }
func (r *recorder) Helper()      {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, strings.SplitN(fmt.Sprintf(format, args...), "\n", 2)[0])
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

// run calls f as the test named name and returns the first line of each failure.
func run(t *testing.T, name string, updating bool, f func(testing.TB)) []string {
	t.Helper()
	defer func(was bool) { *update = was }(*update)
	*update = updating
	r := &recorder{TB: t, name: name}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r.errors
}

// tree writes files below a new directory and returns it.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// files reads every file below dir.
func files(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func bytesOf(m map[string]string) map[string][]byte {
	out := map[string][]byte{}
	for k, v := range m {
		out[k] = []byte(v)
	}
	return out
}

func TestDir(t *testing.T) {
	golden := map[string]string{"a.yaml": "a: 1\n", "sub/b.yaml": "b: 2\n"}

	t.Run("passes when every file matches", func(t *testing.T) {
		dir := tree(t, golden)
		if errs := run(t, "TestGoldenX", false, func(tb testing.TB) { Dir(tb, dir, bytesOf(golden)) }); len(errs) > 0 {
			t.Errorf("failures: %v", errs)
		}
	})

	t.Run("fails with a diff on a changed file", func(t *testing.T) {
		dir := tree(t, map[string]string{"a.yaml": "a: 0\n", "sub/b.yaml": "b: 2\n"})
		errs := run(t, "TestGoldenX", false, func(tb testing.TB) { Dir(tb, dir, bytesOf(golden)) })
		if len(errs) != 1 || !strings.Contains(errs[0], "a.yaml differs") || !strings.Contains(errs[0], "go test ./internal/golden -run '^TestGoldenX$' -update") {
			t.Errorf("failures: %v, want one that a.yaml differs, naming the command", errs)
		}
	})

	t.Run("fails on a missing file", func(t *testing.T) {
		dir := tree(t, map[string]string{"a.yaml": "a: 1\n"})
		errs := run(t, "TestGoldenX", false, func(tb testing.TB) { Dir(tb, dir, bytesOf(golden)) })
		if len(errs) != 1 || !strings.Contains(errs[0], filepath.Join("sub", "b.yaml")+" is missing") {
			t.Errorf("failures: %v, want one that sub/b.yaml is missing", errs)
		}
	})

	t.Run("fails on a stale file, and leaves inputs alone", func(t *testing.T) {
		dir := tree(t, map[string]string{"a.yaml": "a: 1\n", "sub/b.yaml": "b: 2\n", "old/c.yaml": "c\n", "in/x.yaml": "x\n", "README.md": "r\n"})
		errs := run(t, "TestGoldenX", false, func(tb testing.TB) { Dir(tb, dir, bytesOf(golden), "in/*", "README.md") })
		if len(errs) != 1 || !strings.Contains(errs[0], filepath.Join("old", "c.yaml")+" is stale") {
			t.Errorf("failures: %v, want one that old/c.yaml is stale", errs)
		}
	})

	t.Run("rewrites changed and missing files and deletes stale ones with -update", func(t *testing.T) {
		dir := tree(t, map[string]string{"a.yaml": "a: 0\n", "old/deep/c.yaml": "c\n", "in/x.yaml": "x\n"})
		if errs := run(t, "TestGoldenX", true, func(tb testing.TB) { Dir(tb, dir, bytesOf(golden), "in/*") }); len(errs) > 0 {
			t.Fatalf("failures: %v", errs)
		}
		want := map[string]string{"a.yaml": "a: 1\n", "sub/b.yaml": "b: 2\n", "in/x.yaml": "x\n"}
		if diff := cmp.Diff(want, files(t, dir)); diff != "" {
			t.Errorf("files (-want +got):\n%s", diff)
		}
		if _, err := os.Stat(filepath.Join(dir, "old")); !os.IsNotExist(err) {
			t.Errorf("the emptied directory old/ is left: %v", err)
		}
	})

	t.Run("rewrites nothing with -update when the test has failed", func(t *testing.T) {
		dir := tree(t, map[string]string{"a.yaml": "a: 0\n", "old.yaml": "o\n"})
		errs := run(t, "TestGoldenX", true, func(tb testing.TB) {
			tb.Errorf("the test failed")
			Dir(tb, dir, bytesOf(golden))
		})
		if len(errs) != 2 || !strings.Contains(errs[1], "not rewritten") {
			t.Errorf("failures: %v, want the test's and that nothing was rewritten", errs)
		}
		if diff := cmp.Diff(map[string]string{"a.yaml": "a: 0\n", "old.yaml": "o\n"}, files(t, dir)); diff != "" {
			t.Errorf("files (-want +got):\n%s", diff)
		}
	})

	t.Run("creates a missing directory with -update", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "new")
		if errs := run(t, "TestGoldenX", true, func(tb testing.TB) { Dir(tb, dir, bytesOf(golden)) }); len(errs) > 0 {
			t.Fatalf("failures: %v", errs)
		}
		if diff := cmp.Diff(golden, files(t, dir)); diff != "" {
			t.Errorf("files (-want +got):\n%s", diff)
		}
	})

	t.Run("refuses output that would overwrite an input", func(t *testing.T) {
		dir := tree(t, map[string]string{"in/x.yaml": "x\n"})
		errs := run(t, "TestGoldenX", true, func(tb testing.TB) {
			Dir(tb, dir, map[string][]byte{"in/x.yaml": []byte("y\n")}, "in/*")
		})
		if len(errs) != 1 || !strings.Contains(errs[0], "overwrite an input") {
			t.Errorf("failures: %v, want a refusal", errs)
		}
		if got := files(t, dir)["in/x.yaml"]; got != "x\n" {
			t.Errorf("the input now holds %q", got)
		}
	})
}

func TestFile(t *testing.T) {
	t.Run("compares bytes", func(t *testing.T) {
		path := filepath.Join(tree(t, map[string]string{"f": "same\n"}), "f")
		if errs := run(t, "TestGoldenX/sub", false, func(tb testing.TB) { File(tb, path, []byte("same\n")) }); len(errs) > 0 {
			t.Errorf("failures: %v", errs)
		}
		if errs := run(t, "TestGoldenX", false, func(tb testing.TB) { File(tb, path, []byte("same")) }); len(errs) != 1 {
			t.Errorf("failures: %v, want one for the missing newline", errs)
		}
	})

	t.Run("writes with -update", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "d", "f")
		if errs := run(t, "TestGoldenX", true, func(tb testing.TB) { File(tb, path, []byte("new\n")) }); len(errs) > 0 {
			t.Fatalf("failures: %v", errs)
		}
		if data, err := os.ReadFile(path); err != nil || string(data) != "new\n" {
			t.Errorf("read %q, %v", data, err)
		}
	})

	t.Run("fails a test that make golden would not run", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "f")
		errs := run(t, "TestOutput", true, func(tb testing.TB) { File(tb, path, []byte("x")) })
		if len(errs) != 1 || !strings.Contains(errs[0], "must begin with TestGolden") {
			t.Errorf("failures: %v", errs)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("the file was written: %v", err)
		}
	})
}
