package source

import (
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/raas-dev/raas/internal/exampletest"
	"github.com/raas-dev/raas/schema"
)

// TestLayoutsInGit commits each layout of testdata/validate/layouts with the git CLI and
// loads the checkout a GitSource makes of it: a Git checkout must read, ignore and refuse
// the entries under tenants/ exactly as a directory does, symbolic links included.
func TestLayoutsInGit(t *testing.T) {
	for _, c := range exampletest.LayoutCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			work := exampletest.Dir(t)
			c.Apply(t, work)
			for _, args := range [][]string{
				{"init", "--quiet", "--initial-branch=main"},
				{"add", "-A"},
				{"commit", "--quiet", "-m", c.Name},
			} {
				cmd := exec.Command("git", append([]string{"-c", "user.name=raas test", "-c", "user.email=test@raas.dev", "-c", "commit.gpgsign=false"}, args...)...)
				cmd.Dir = work
				cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
				}
			}
			opts := DefaultGitOptions()
			opts.URL = work
			opts.CacheDir = t.TempDir()
			opts.Logger = slog.New(slog.DiscardHandler)
			g := newSource(t, opts)
			for _, pass := range []string{"fresh checkout", "checkout already on disk"} {
				rev := fetch(t, g)
				repo, err := schema.Load(rev.FS)
				if err != nil {
					t.Fatalf("%s: %v", pass, err)
				}
				c.Check(t, repo)
			}
			// And a new GitSource on the same cache, as after a restart.
			rev := fetch(t, newSource(t, opts))
			repo, err := schema.Load(rev.FS)
			if err != nil {
				t.Fatal(err)
			}
			c.Check(t, repo)
		})
	}
}
