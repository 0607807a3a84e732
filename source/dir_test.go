package source

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeFiles writes files under dir; an empty content removes the file.
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if content == "" {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func newDirSource(t testing.TB, dir string) *DirSource {
	t.Helper()
	opts := DefaultDirOptions()
	opts.Debounce = 50 * time.Millisecond
	opts.Logger = slog.New(slog.DiscardHandler)
	d, err := NewDir(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDirSource(t *testing.T) {
	base := map[string]string{
		"raas.yaml":           "kind: Platform\n",
		"tenants/team-a.yaml": "a\n",
		"tenants/team-b.yaml": "b\n",
		"overlays/patch.yaml": "p\n",
		"catalog/x/chart.txt": "c\n",
	}
	setup := func(t *testing.T) (string, *DirSource, string) {
		dir := t.TempDir()
		writeFiles(t, dir, base)
		d := newDirSource(t, dir)
		return dir, d, fetch(t, d).ID
	}

	t.Run("returns the same ID for the same content in another directory", func(t *testing.T) {
		_, _, id := setup(t)
		_, _, again := setup(t)
		if id != again || !strings.HasPrefix(id, "sha256:") {
			t.Errorf("IDs %s and %s, want the same sha256: ID", id, again)
		}
	})

	for name, change := range map[string]map[string]string{
		"a tenant file changes":        {"tenants/team-a.yaml": "a2\n"},
		"a tenant file is added":       {"tenants/team-c.yaml": "c\n"},
		"a tenant file is removed":     {"tenants/team-b.yaml": ""},
		"raas.yaml changes":            {"raas.yaml": "kind: Platform\n# more\n"},
		"an overlay changes":           {"overlays/patch.yaml": "p2\n"},
		"a catalog file changes":       {"catalog/x/chart.txt": "c2\n"},
		"a nested tenant file appears": {"tenants/sub/x.yaml": "x\n"},
	} {
		t.Run("changes the ID when "+name, func(t *testing.T) {
			dir, d, id := setup(t)
			writeFiles(t, dir, change)
			if got := fetch(t, d).ID; got == id {
				t.Errorf("ID unchanged: %s", got)
			}
		})
	}

	t.Run("changes the ID when a file is renamed", func(t *testing.T) {
		dir, d, id := setup(t)
		os.Rename(filepath.Join(dir, "tenants/team-a.yaml"), filepath.Join(dir, "tenants/team-x.yaml"))
		if got := fetch(t, d).ID; got == id {
			t.Errorf("ID unchanged: %s", got)
		}
	})

	t.Run("changes the ID when a file becomes executable", func(t *testing.T) {
		dir, d, id := setup(t)
		os.Chmod(filepath.Join(dir, "overlays/patch.yaml"), 0o755)
		if got := fetch(t, d).ID; got == id {
			t.Errorf("ID unchanged: %s", got)
		}
	})

	for name, change := range map[string]func(dir string){
		"a file is rewritten with the same content": func(dir string) {
			writeFiles(t, dir, map[string]string{"tenants/team-a.yaml": "a\n"})
		},
		"a file's time changes": func(dir string) {
			later := time.Now().Add(time.Hour)
			os.Chtimes(filepath.Join(dir, "tenants/team-a.yaml"), later, later)
		},
		"a file outside the repository paths changes": func(dir string) {
			writeFiles(t, dir, map[string]string{"README.md": "docs\n", ".git/HEAD": "ref\n"})
		},
		"an editor swap or backup file appears": func(dir string) {
			writeFiles(t, dir, map[string]string{"tenants/.team-a.yaml.swp": "x", "tenants/team-a.yaml~": "x"})
		},
		"an empty directory appears": func(dir string) {
			os.Mkdir(filepath.Join(dir, "tenants", "empty"), 0o755)
		},
	} {
		t.Run("keeps the ID when "+name, func(t *testing.T) {
			dir, d, id := setup(t)
			change(dir)
			if got := fetch(t, d).ID; got != id {
				t.Errorf("ID changed from %s to %s", id, got)
			}
		})
	}

	t.Run("reads the live directory", func(t *testing.T) {
		dir, d, _ := setup(t)
		rev := fetch(t, d)
		if rev.Dir != dir || readFile(t, rev.FS, "tenants/team-a.yaml") != "a\n" {
			t.Errorf("revision at %s, want %s", rev.Dir, dir)
		}
	})

	t.Run("refuses a directory without raas.yaml as an empty checkout", func(t *testing.T) {
		dir, d, _ := setup(t)
		writeFiles(t, dir, map[string]string{"raas.yaml": ""})
		if _, err := d.Fetch(context.Background()); !errors.Is(err, ErrEmptyCheckout) {
			t.Errorf("error %v, want ErrEmptyCheckout", err)
		}
	})

	t.Run("refuses an unreadable file as an unreadable checkout", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root reads every file")
		}
		dir, d, _ := setup(t)
		os.Chmod(filepath.Join(dir, "tenants/team-a.yaml"), 0)
		if _, err := d.Fetch(context.Background()); !errors.Is(err, ErrUnreadableCheckout) {
			t.Errorf("error %v, want ErrUnreadableCheckout", err)
		}
	})

	t.Run("reads a dangling symbolic link as a link, for schema.Load to refuse by name", func(t *testing.T) {
		dir, d, _ := setup(t)
		link := filepath.Join(dir, "tenants/team-z.yaml")
		if err := os.Symlink("nowhere.yaml", link); err != nil {
			t.Fatal(err)
		}
		first, err := d.Fetch(context.Background())
		if err != nil {
			t.Fatalf("a dangling link makes the checkout fail: %v", err)
		}
		os.Remove(link)
		if err := os.Symlink("elsewhere.yaml", link); err != nil {
			t.Fatal(err)
		}
		second := fetch(t, d)
		if first.ID == second.ID {
			t.Error("the revision did not change with the link's target")
		}
	})

	t.Run("refuses a missing directory as an unreadable checkout", func(t *testing.T) {
		d := newDirSource(t, filepath.Join(t.TempDir(), "missing"))
		if _, err := d.Fetch(context.Background()); !errors.Is(err, ErrUnreadableCheckout) {
			t.Errorf("error %v, want ErrUnreadableCheckout", err)
		}
	})
}

func TestDirSourceWatch(t *testing.T) {
	// waitFor returns the next notification, or fails after a deadline.
	waitFor := func(t *testing.T, notes <-chan string) string {
		t.Helper()
		select {
		case r := <-notes:
			return r
		case <-time.After(10 * time.Second):
			t.Fatal("no notification within 10s")
			return ""
		}
	}
	start := func(t *testing.T, files map[string]string) (string, <-chan string) {
		dir := t.TempDir()
		writeFiles(t, dir, files)
		d := newDirSource(t, dir)
		notes := make(chan string, 100)
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		if err := d.Watch(ctx, func(r string) { notes <- r }); err != nil {
			t.Fatal(err)
		}
		return dir, notes
	}

	t.Run("notifies after a tenant file is written", func(t *testing.T) {
		dir, notes := start(t, map[string]string{"raas.yaml": "p\n", "tenants/team-a.yaml": "a\n"})
		writeFiles(t, dir, map[string]string{"tenants/team-a.yaml": "a2\n"})
		if r := waitFor(t, notes); !strings.Contains(r, "tenants/team-a.yaml") {
			t.Errorf("reason %q does not name the file", r)
		}
	})

	t.Run("notifies once for a burst of writes", func(t *testing.T) {
		dir, notes := start(t, map[string]string{"raas.yaml": "p\n", "tenants/team-a.yaml": "a\n"})
		writeFiles(t, dir, map[string]string{"tenants/team-a.yaml": "a2\n", "tenants/team-b.yaml": "b\n", "raas.yaml": "p2\n"})
		r := waitFor(t, notes)
		for _, f := range []string{"tenants/team-a.yaml", "tenants/team-b.yaml", "raas.yaml"} {
			if !strings.Contains(r, f) {
				t.Errorf("reason %q does not name %s", r, f)
			}
		}
	})

	t.Run("watches a directory created after it started", func(t *testing.T) {
		dir, notes := start(t, map[string]string{"raas.yaml": "p\n"})
		writeFiles(t, dir, map[string]string{"overlays/patch.yaml": "p\n"})
		waitFor(t, notes)
		writeFiles(t, dir, map[string]string{"overlays/patch.yaml": "p2\n"})
		if r := waitFor(t, notes); !strings.Contains(r, "overlays/patch.yaml") {
			t.Errorf("reason %q does not name the file", r)
		}
	})

	t.Run("does not notify for files outside the repository paths", func(t *testing.T) {
		dir, notes := start(t, map[string]string{"raas.yaml": "p\n", "tenants/team-a.yaml": "a\n"})
		writeFiles(t, dir, map[string]string{"README.md": "x\n", "tenants/.swp": "x"})
		// Then a relevant write: the first notification must be about it alone.
		writeFiles(t, dir, map[string]string{"tenants/team-a.yaml": "a2\n"})
		if r := waitFor(t, notes); r != "file changed: tenants/team-a.yaml" {
			t.Errorf("reason %q, want the tenant file alone", r)
		}
	})
}
