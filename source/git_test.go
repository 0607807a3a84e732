package source

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/skeema/knownhosts"
)

const testToken = "tok-3f9a1c0e5b7d"

// fixture is a repository served over smart HTTP with a first commit on main.
type fixture struct {
	repo   *remoteRepo
	server *httpServer
	first  string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	repo := newRemoteRepo(t)
	f := &fixture{repo: repo, server: newHTTPServer(t, repo.root, testToken)}
	f.first = repo.commit("add team-a", map[string]string{
		"raas.yaml":           "apiVersion: raas.dev/v1alpha1\nkind: Platform\n",
		"tenants/team-a.yaml": "kind: Tenant\nmetadata: {name: team-a}\n",
	})
	return f
}

func (f *fixture) options(t testing.TB) GitOptions {
	opts := DefaultGitOptions()
	opts.URL = f.server.url("tenants.git")
	opts.Credentials.Token = testToken
	opts.CacheDir = t.TempDir()
	opts.Logger = slog.New(slog.DiscardHandler)
	return opts
}

func newSource(t testing.TB, opts GitOptions) *GitSource {
	t.Helper()
	g, err := NewGit(opts)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func fetch(t testing.TB, s Source) *Revision {
	t.Helper()
	rev, err := s.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

func readFile(t testing.TB, fsys fs.FS, name string) string {
	t.Helper()
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestGitSource(t *testing.T) {
	t.Run("fetches a branch over smart HTTP with a token, shallow", func(t *testing.T) {
		f := newFixture(t)
		second := f.repo.commit("add team-b", map[string]string{"tenants/team-b.yaml": "name: team-b\n"})
		opts := f.options(t)
		rev := fetch(t, newSource(t, opts))
		if rev.ID != second {
			t.Errorf("revision %s, want %s", rev.ID, second)
		}
		if rev.Message != "add team-b" {
			t.Errorf("message %q", rev.Message)
		}
		if got := readFile(t, rev.FS, "tenants/team-b.yaml"); got != "name: team-b\n" {
			t.Errorf("team-b.yaml = %q", got)
		}
		if _, err := os.Stat(filepath.Join(rev.Dir, "tenants", "team-a.yaml")); err != nil {
			t.Error(err)
		}
		cache, err := git.PlainOpen(filepath.Join(opts.CacheDir, "git"))
		if err != nil {
			t.Fatal(err)
		}
		shallow, err := cache.Storer.Shallow()
		if err != nil || len(shallow) != 1 || shallow[0].String() != second {
			t.Errorf("shallow commits %v (%v), want only %s", shallow, err, second)
		}
		if _, err := cache.CommitObject(mustHash(f.first)); err == nil {
			t.Errorf("the parent commit %s was fetched; want depth 1", f.first)
		}
	})

	t.Run("sees a new commit after a push and keeps the old checkout unchanged", func(t *testing.T) {
		f := newFixture(t)
		opts := f.options(t)
		var logs bytes.Buffer
		opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		g := newSource(t, opts)
		old := fetch(t, g)
		if again := fetch(t, g); again.ID != old.ID || again.Dir != old.Dir {
			t.Errorf("a fetch with no new commit returned %s at %s, want %s at %s", again.ID, again.Dir, old.ID, old.Dir)
		}
		second := f.repo.commit("change team-a", map[string]string{"tenants/team-a.yaml": "changed\n"})
		rev := fetch(t, g)
		if rev.ID != second || rev.Dir == old.Dir {
			t.Fatalf("revision %s at %s, want %s in a new directory", rev.ID, rev.Dir, second)
		}
		if got := readFile(t, rev.FS, "tenants/team-a.yaml"); got != "changed\n" {
			t.Errorf("new team-a.yaml = %q", got)
		}
		if got := readFile(t, old.FS, "tenants/team-a.yaml"); got != "kind: Tenant\nmetadata: {name: team-a}\n" {
			t.Errorf("the old checkout changed: team-a.yaml = %q", got)
		}
		if strings.Contains(logs.String(), "WARN") {
			t.Errorf("the shallow clone was not updated in place:\n%s", logs.String())
		}
	})

	t.Run("updates the same cached clone instead of cloning again", func(t *testing.T) {
		f := newFixture(t)
		opts := f.options(t)
		fetch(t, newSource(t, opts))
		marker := filepath.Join(opts.CacheDir, "git", "raas-test-marker")
		if err := os.WriteFile(marker, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		f.repo.commit("more", map[string]string{"tenants/team-c.yaml": "c\n"})
		// A new GitSource, as after a restart, reuses the clone on disk.
		fetch(t, newSource(t, opts))
		if _, err := os.Stat(marker); err != nil {
			t.Errorf("the cached clone was replaced: %v", err)
		}
	})

	t.Run("follows a force-pushed branch", func(t *testing.T) {
		f := newFixture(t)
		g := newSource(t, f.options(t))
		fetch(t, g)
		f.repo.git(f.repo.work, "checkout", "--quiet", "--orphan", "rewritten")
		f.repo.git(f.repo.work, "branch", "--quiet", "-D", "main")
		f.repo.git(f.repo.work, "branch", "--quiet", "-m", "main")
		rewritten := f.repo.commit("rewritten history", map[string]string{"tenants/team-z.yaml": "z\n"})
		rev := fetch(t, g)
		if rev.ID != rewritten {
			t.Errorf("revision %s, want %s", rev.ID, rewritten)
		}
	})

	t.Run("starts the cached clone afresh when it is damaged", func(t *testing.T) {
		f := newFixture(t)
		opts := f.options(t)
		want := fetch(t, newSource(t, opts)).ID
		packs, _ := filepath.Glob(filepath.Join(opts.CacheDir, "git", "objects", "pack", "*.pack"))
		for _, p := range packs {
			if err := os.Truncate(p, 20); err != nil {
				t.Fatal(err)
			}
		}
		// Without its checkout, the commit must be read from the damaged clone.
		os.RemoveAll(filepath.Join(opts.CacheDir, "rev"))
		var logs bytes.Buffer
		opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		if rev := fetch(t, newSource(t, opts)); rev.ID != want {
			t.Errorf("revision %s, want %s", rev.ID, want)
		}
		if !strings.Contains(logs.String(), "fetching afresh") {
			t.Errorf("no fresh fetch logged:\n%s", logs.String())
		}
	})

	t.Run("links unchanged files from the previous checkout", func(t *testing.T) {
		f := newFixture(t)
		g := newSource(t, f.options(t))
		old := fetch(t, g)
		f.repo.commit("change team-a", map[string]string{"tenants/team-a.yaml": "changed\n"})
		rev := fetch(t, g)
		if !sameFile(t, old, rev, "raas.yaml") {
			t.Error("raas.yaml was written again, not linked")
		}
		if sameFile(t, old, rev, "tenants/team-a.yaml") {
			t.Error("the changed team-a.yaml is linked to the old one")
		}
	})

	t.Run("links unchanged files by content when the cached clone is gone", func(t *testing.T) {
		f := newFixture(t)
		opts := f.options(t)
		old := fetch(t, newSource(t, opts))
		os.RemoveAll(filepath.Join(opts.CacheDir, "git"))
		f.repo.commit("change team-a", map[string]string{"tenants/team-a.yaml": "changed\n"})
		rev := fetch(t, newSource(t, opts))
		if !sameFile(t, old, rev, "raas.yaml") {
			t.Error("raas.yaml was written again, not linked")
		}
		if sameFile(t, old, rev, "tenants/team-a.yaml") || readFile(t, rev.FS, "tenants/team-a.yaml") != "changed\n" {
			t.Error("the changed team-a.yaml is linked to the old one")
		}
	})

	for _, depth := range []int{1, 0} {
		t.Run(fmt.Sprintf("bounds the packs in the cached clone at depth %d", depth), func(t *testing.T) {
			defer func(n int) { maxPacks = n }(maxPacks)
			maxPacks = 2
			f := newFixture(t)
			opts := f.options(t)
			opts.Depth = depth
			var logs bytes.Buffer
			opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			g := newSource(t, opts)
			for i := range 5 {
				want := f.repo.commit("commit", map[string]string{"tenants/team-a.yaml": strings.Repeat("x", i+1)})
				if rev := fetch(t, g); rev.ID != want {
					t.Fatalf("revision %s, want %s", rev.ID, want)
				}
				packs, _ := filepath.Glob(filepath.Join(opts.CacheDir, "git", "objects", "pack", "*.pack"))
				if len(packs) > maxPacks {
					t.Errorf("after fetch %d: %d packs, want at most %d", i+1, len(packs), maxPacks)
				}
			}
			if depth == 0 && !cached(t, opts, f.first) {
				t.Error("repacking lost the first commit")
			}
			if strings.Contains(logs.String(), "WARN") {
				t.Errorf("warnings:\n%s", logs.String())
			}
		})
	}

	t.Run("pins a lightweight and an annotated tag", func(t *testing.T) {
		f := newFixture(t)
		f.repo.tag("v1", "")
		f.repo.tag("v1-annotated", "release 1")
		f.repo.commit("after the tags", map[string]string{"tenants/team-b.yaml": "b\n"})
		for _, tag := range []string{"v1", "v1-annotated"} {
			opts := f.options(t)
			opts.Branch, opts.Tag = "", tag
			if rev := fetch(t, newSource(t, opts)); rev.ID != f.first {
				t.Errorf("tag %s: revision %s, want %s", tag, rev.ID, f.first)
			}
		}
	})

	t.Run("follows a tag that is moved", func(t *testing.T) {
		f := newFixture(t)
		f.repo.tag("stable", "")
		opts := f.options(t)
		opts.Branch, opts.Tag = "", "stable"
		g := newSource(t, opts)
		fetch(t, g)
		second := f.repo.commit("next", map[string]string{"tenants/team-b.yaml": "b\n"})
		f.repo.tag("stable", "")
		if rev := fetch(t, g); rev.ID != second {
			t.Errorf("revision %s, want the moved tag's %s", rev.ID, second)
		}
	})

	t.Run("pins an exact commit that is not a tip, shallow when the server allows it", func(t *testing.T) {
		f := newFixture(t)
		f.repo.allowSHA1InWant(true)
		tip := f.repo.commit("tip", map[string]string{"tenants/team-b.yaml": "b\n"})
		opts := f.options(t)
		opts.Branch, opts.Commit = "", f.first
		g := newSource(t, opts)
		rev := fetch(t, g)
		if rev.ID != f.first {
			t.Fatalf("revision %s, want %s", rev.ID, f.first)
		}
		if _, err := fs.Stat(rev.FS, "tenants/team-b.yaml"); err == nil {
			t.Error("the checkout has a file from a later commit")
		}
		if cached(t, opts, tip) {
			t.Error("the tip was fetched too; want the pinned commit alone")
		}
		// A pinned commit cannot change: later fetches do not ask the server.
		before := f.server.requests.Load()
		fetch(t, g)
		if n := f.server.requests.Load() - before; n != 0 {
			t.Errorf("a second fetch of a pinned commit made %d requests", n)
		}
	})

	t.Run("pins an exact commit from a server that only sends branch tips", func(t *testing.T) {
		f := newFixture(t)
		f.repo.allowSHA1InWant(false)
		tip := f.repo.commit("tip", map[string]string{"tenants/team-b.yaml": "b\n"})
		opts := f.options(t)
		opts.Branch, opts.Commit = "", f.first
		if rev := fetch(t, newSource(t, opts)); rev.ID != f.first {
			t.Fatalf("revision %s, want %s", rev.ID, f.first)
		}
		if !cached(t, opts, tip) {
			t.Error("the branches were not fetched: did it fall back at all?")
		}
	})

	t.Run("fails on a commit the remote does not have", func(t *testing.T) {
		f := newFixture(t)
		opts := f.options(t)
		opts.Branch, opts.Commit = "", strings.Repeat("ab", 20)
		if _, err := newSource(t, opts).Fetch(context.Background()); err == nil {
			t.Fatal("fetch succeeded")
		}
	})

	t.Run("fetches over HTTPS from a server with a private CA", func(t *testing.T) {
		f := newFixture(t)
		ts := httptest.NewUnstartedServer(f.server)
		ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
		ts.StartTLS()
		t.Cleanup(ts.Close)
		opts := f.options(t)
		opts.URL = ts.URL + "/tenants.git"
		if _, err := newSource(t, opts).Fetch(context.Background()); err == nil {
			t.Fatal("fetch from a server with an unknown CA succeeded")
		}
		opts.CABundleFile = filepath.Join(t.TempDir(), "ca.pem")
		cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
		if err := os.WriteFile(opts.CABundleFile, cert, 0o644); err != nil {
			t.Fatal(err)
		}
		if rev := fetch(t, newSource(t, opts)); rev.ID != f.first {
			t.Errorf("revision %s, want %s", rev.ID, f.first)
		}
	})

	t.Run("fails cleanly with a wrong token", func(t *testing.T) {
		f := newFixture(t)
		opts := f.options(t)
		opts.Credentials.Token = "wrong-token-5e1d"
		_, err := newSource(t, opts).Fetch(context.Background())
		if !errors.Is(err, transport.ErrAuthenticationRequired) {
			t.Fatalf("error %v, want one that is transport.ErrAuthenticationRequired", err)
		}
		if strings.Contains(err.Error(), "wrong-token-5e1d") {
			t.Errorf("the error shows the token: %v", err)
		}
	})

	t.Run("keeps the last good checkout when the remote is unreachable, and recovers", func(t *testing.T) {
		f := newFixture(t)
		g := newSource(t, f.options(t))
		good := fetch(t, g)
		f.server.stop()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := g.Fetch(ctx); err == nil {
			t.Fatal("fetch from a stopped server succeeded")
		}
		if got := readFile(t, good.FS, "tenants/team-a.yaml"); got != "kind: Tenant\nmetadata: {name: team-a}\n" {
			t.Errorf("the last good checkout changed: %q", got)
		}
		second := f.repo.commit("while down", map[string]string{"tenants/team-b.yaml": "b\n"})
		f.server.start(f.server.addr)
		if rev := fetch(t, g); rev.ID != second {
			t.Errorf("after the server came back: revision %s, want %s", rev.ID, second)
		}
	})

	t.Run("refuses a commit without raas.yaml as an empty checkout", func(t *testing.T) {
		f := newFixture(t)
		g := newSource(t, f.options(t))
		good := fetch(t, g)
		empty := f.repo.commit("remove everything", map[string]string{"raas.yaml": "", "tenants/team-a.yaml": ""})
		_, err := g.Fetch(context.Background())
		var ce *CheckoutError
		if !errors.Is(err, ErrEmptyCheckout) || !errors.As(err, &ce) || ce.Revision != empty {
			t.Fatalf("error %v, want an ErrEmptyCheckout for %s", err, empty)
		}
		if _, err := os.Stat(good.Dir); err != nil {
			t.Errorf("the last good checkout is gone: %v", err)
		}
	})

	t.Run("keeps only the newest checkouts", func(t *testing.T) {
		f := newFixture(t)
		opts := f.options(t)
		opts.Keep = 2
		g := newSource(t, opts)
		var revs []*Revision
		for i := range 4 {
			f.repo.commit("commit", map[string]string{"tenants/team-a.yaml": strings.Repeat("x", i+1)})
			revs = append(revs, fetch(t, g))
		}
		entries, err := os.ReadDir(filepath.Join(opts.CacheDir, "rev"))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		want := []string{revs[2].ID, revs[3].ID}
		if len(names) != 2 || !contains(names, want[0]) || !contains(names, want[1]) {
			t.Errorf("checkouts %v, want %v", names, want)
		}
	})

	t.Run("reads the token file again on every fetch", func(t *testing.T) {
		f := newFixture(t)
		opts := f.options(t)
		opts.Credentials.Token = ""
		opts.Credentials.TokenFile = filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(opts.Credentials.TokenFile, []byte("stale\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		g := newSource(t, opts)
		if _, err := g.Fetch(context.Background()); err == nil {
			t.Fatal("fetch with a stale token succeeded")
		}
		if err := os.WriteFile(opts.Credentials.TokenFile, []byte(testToken+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		fetch(t, g)
	})

	t.Run("fetches the full history with depth 0", func(t *testing.T) {
		f := newFixture(t)
		f.repo.commit("second", map[string]string{"tenants/team-b.yaml": "b\n"})
		opts := f.options(t)
		opts.Depth = 0
		fetch(t, newSource(t, opts))
		cache, err := git.PlainOpen(filepath.Join(opts.CacheDir, "git"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cache.CommitObject(mustHash(f.first)); err != nil {
			t.Errorf("the first commit is missing: %v", err)
		}
	})
}

func TestGitSourceOverSSH(t *testing.T) {
	repo := newRemoteRepo(t)
	first := repo.commit("first", map[string]string{"raas.yaml": "kind: Platform\n"})
	server := newSSHServer(t, repo.root)
	options := func() GitOptions {
		opts := DefaultGitOptions()
		opts.URL = server.url("tenants.git")
		opts.CacheDir = t.TempDir()
		opts.Logger = slog.New(slog.DiscardHandler)
		opts.Credentials = Credentials{SSHKeyFile: server.clientKey, KnownHostsFile: server.knownHosts}
		return opts
	}

	t.Run("fetches with a key and a known host", func(t *testing.T) {
		if rev := fetch(t, newSource(t, options())); rev.ID != first {
			t.Errorf("revision %s, want %s", rev.ID, first)
		}
	})

	t.Run("fetches with a passphrase-protected key, and never shows the passphrase", func(t *testing.T) {
		opts := options()
		opts.Credentials.SSHKeyFile = server.lockedKey
		opts.Credentials.SSHKeyPassphraseFile = filepath.Join(t.TempDir(), "passphrase")
		os.WriteFile(opts.Credentials.SSHKeyPassphraseFile, []byte(sshPassphrase+"\n"), 0o600)
		if rev := fetch(t, newSource(t, opts)); rev.ID != first {
			t.Errorf("revision %s, want %s", rev.ID, first)
		}
		opts.Credentials.SSHKeyPassphraseFile = ""
		opts.Credentials.SSHKeyPassphrase = sshPassphrase + "-wrong"
		_, err := newSource(t, opts).Fetch(context.Background())
		if err == nil || strings.Contains(err.Error(), sshPassphrase) {
			t.Errorf("error %v, want one without the passphrase", err)
		}
	})

	t.Run("refuses a host whose key is not the known one", func(t *testing.T) {
		opts := options()
		other := newSSHServer(t, repo.root) // another host key
		line := knownhosts.Line([]string{knownhosts.Normalize(server.addr)}, other.hostKey.PublicKey())
		opts.Credentials.KnownHostsFile = filepath.Join(t.TempDir(), "known_hosts")
		os.WriteFile(opts.Credentials.KnownHostsFile, []byte(line+"\n"), 0o644)
		_, err := newSource(t, opts).Fetch(context.Background())
		if err == nil || !strings.Contains(err.Error(), "key mismatch") {
			t.Fatalf("error %v, want a key mismatch", err)
		}
	})

	t.Run("refuses an unknown host", func(t *testing.T) {
		opts := options()
		opts.Credentials.KnownHostsFile = filepath.Join(t.TempDir(), "known_hosts")
		os.WriteFile(opts.Credentials.KnownHostsFile, nil, 0o644)
		_, err := newSource(t, opts).Fetch(context.Background())
		if err == nil || !strings.Contains(err.Error(), "key is unknown") {
			t.Fatalf("error %v, want an unknown key", err)
		}
	})

	t.Run("ignores the host key only when asked to", func(t *testing.T) {
		opts := options()
		opts.Credentials.KnownHostsFile = ""
		opts.Credentials.InsecureIgnoreHostKey = true
		fetch(t, newSource(t, opts))
	})

	t.Run("needs a key", func(t *testing.T) {
		opts := options()
		opts.Credentials.SSHKeyFile = ""
		if _, err := newSource(t, opts).Fetch(context.Background()); err == nil || !strings.Contains(err.Error(), EnvGitSSHKeyFile) {
			t.Fatalf("error %v, want one naming %s", err, EnvGitSSHKeyFile)
		}
	})
}

// TestCredentialsNeverShown fetches with secrets in the URL, the options and files, both
// failing and succeeding, and looks for them in every error, every log line and the
// cached clone's config.
func TestCredentialsNeverShown(t *testing.T) {
	f := newFixture(t)
	const urlSecret, optSecret, fileSecret = "url-s3cret-77a1", "opt-s3cret-91b2", "file-s3cret-c4d3"
	secrets := []string{urlSecret, optSecret, fileSecret, testToken}
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var errs []string
	check := func(opts GitOptions) {
		opts.Logger = logger
		g, err := NewGit(opts)
		if err != nil {
			errs = append(errs, err.Error())
			return
		}
		errs = append(errs, g.String())
		if _, err := g.Fetch(context.Background()); err != nil {
			errs = append(errs, err.Error())
		}
		// Nothing is stored on disk either: the cached clone's config holds the URL.
		if config, err := os.ReadFile(filepath.Join(opts.CacheDir, "git", "config")); err == nil {
			errs = append(errs, string(config))
		}
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte(fileSecret), 0o600)
	base := "http://raas:" + urlSecret + "@" + f.server.addr + "/tenants.git"

	check(GitOptions{URL: base, Branch: "main", CacheDir: t.TempDir(), Depth: 1}) // wrong password in the URL
	check(GitOptions{URL: base, Branch: "main", CacheDir: t.TempDir(), Credentials: Credentials{Token: optSecret}})
	check(GitOptions{URL: base, Branch: "main", CacheDir: t.TempDir(), Credentials: Credentials{TokenFile: tokenFile}})
	check(GitOptions{URL: base, Branch: "main", CacheDir: t.TempDir(), Credentials: Credentials{Username: "x", Password: optSecret}})
	check(GitOptions{URL: "http://" + testToken + "@" + f.server.addr + "/tenants.git", Tag: "missing", CacheDir: t.TempDir()})
	check(GitOptions{URL: base, Branch: "main", CacheDir: t.TempDir(), Credentials: Credentials{Token: testToken}}) // succeeds
	check(GitOptions{URL: "http://raas:" + urlSecret + "@127.0.0.1:1/tenants.git", Branch: "main", CacheDir: t.TempDir()})
	check(GitOptions{URL: "http://raas:" + urlSecret + "@bad host/%zz", Branch: "main", CacheDir: t.TempDir()})
	check(GitOptions{URL: base, Branch: "main", CacheDir: t.TempDir(), Credentials: Credentials{SSHKeyPassphrase: optSecret}})
	f.server.stop()
	check(GitOptions{URL: base, Branch: "main", CacheDir: t.TempDir(), Credentials: Credentials{Token: testToken}})

	if len(errs) < 10 || logs.Len() == 0 {
		t.Fatalf("expected errors and log lines to inspect; got %d errors and %d bytes of log", len(errs), logs.Len())
	}
	text := strings.Join(errs, "\n") + "\n" + logs.String()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("secret %q appears in:\n%s", s, text)
		}
	}
	// Credentials are taken out of the URL: logs and errors name it without them.
	if !strings.Contains(text, "git http://"+f.server.addr+"/tenants.git (branch main): fetch: authentication required") {
		t.Errorf("no URL without credentials in:\n%s", text)
	}
}

func TestRedactURL(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"https://user:pass@github.com/org/repo.git", "https://***@github.com/org/repo.git"},
		{"https://ghp_token@github.com/org/repo.git", "https://***@github.com/org/repo.git"},
		{"https://github.com/org/repo.git", "https://github.com/org/repo.git"},
		{`Get "https://u:p@h/x/info/refs": dial tcp`, `Get "https://***@h/x/info/refs": dial tcp`},
		{"ssh://git@github.com/org/repo.git", "ssh://git@github.com/org/repo.git"},
		{"ssh://git:pw@github.com/org/repo.git", "ssh://***@github.com/org/repo.git"},
		{"git@github.com:org/repo.git", "git@github.com:org/repo.git"},
		{"see https://a:b@h1/ and http://c@h2/", "see https://***@h1/ and http://***@h2/"},
	} {
		if got := RedactURL(c.in); got != c.want {
			t.Errorf("RedactURL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestCredentialsFromEnv(t *testing.T) {
	t.Setenv(EnvGitToken, "t")
	t.Setenv(EnvGitTokenFile, "/tf")
	t.Setenv(EnvGitUsername, "u")
	t.Setenv(EnvGitPassword, "p")
	t.Setenv(EnvGitPasswordFile, "/pf")
	t.Setenv(EnvGitSSHKeyFile, "/k")
	t.Setenv(EnvGitSSHKeyPassphrase, "pp")
	t.Setenv(EnvGitSSHKeyPassphraseFile, "/ppf")
	t.Setenv(EnvGitKnownHostsFile, "/kh")
	t.Setenv(EnvGitInsecureIgnoreHostKey, "true")
	want := Credentials{Username: "u", Password: "p", PasswordFile: "/pf", Token: "t", TokenFile: "/tf",
		SSHKeyFile: "/k", SSHKeyPassphrase: "pp", SSHKeyPassphraseFile: "/ppf", KnownHostsFile: "/kh",
		InsecureIgnoreHostKey: true}
	if got := CredentialsFromEnv(); got != want {
		t.Errorf("CredentialsFromEnv() = %+v, want %+v", got, want)
	}
}

func TestNewGitRejectsBadOptions(t *testing.T) {
	base := DefaultGitOptions()
	base.URL, base.CacheDir = "https://example.com/r.git", t.TempDir()
	for name, mutate := range map[string]func(*GitOptions){
		"no URL":              func(o *GitOptions) { o.URL = "" },
		"no ref":              func(o *GitOptions) { o.Branch = "" },
		"two refs":            func(o *GitOptions) { o.Tag = "v1" },
		"a short commit":      func(o *GitOptions) { o.Branch, o.Commit = "", "abc123" },
		"no cache directory":  func(o *GitOptions) { o.CacheDir = "" },
		"an SSH URL password": func(o *GitOptions) { o.URL = "ssh://git:pw@example.com/r.git" },
	} {
		t.Run("rejects "+name, func(t *testing.T) {
			opts := base
			mutate(&opts)
			if _, err := NewGit(opts); err == nil {
				t.Error("NewGit succeeded")
			} else if strings.Contains(err.Error(), ":pw@") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

// sameFile reports whether name is one file (hard-linked) in both checkouts.
func sameFile(t testing.TB, a, b *Revision, name string) bool {
	t.Helper()
	ia, err := os.Stat(filepath.Join(a.Dir, name))
	if err != nil {
		t.Fatal(err)
	}
	ib, err := os.Stat(filepath.Join(b.Dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return os.SameFile(ia, ib)
}

// cached reports whether commit is in the source's cached clone.
func cached(t testing.TB, opts GitOptions, commit string) bool {
	t.Helper()
	cache, err := git.PlainOpen(filepath.Join(opts.CacheDir, "git"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = cache.CommitObject(mustHash(commit))
	return err == nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func mustHash(s string) plumbing.Hash { return plumbing.NewHash(s) }

// TestGitRewritten force-pushes the tracked branch back to an older commit: the source
// returns what the branch now names and logs the rewrite. A pinned commit that the remote
// loses keeps being served from the cache, also after a restart; a fresh cache fails
// clearly, so that the loop keeps the last good revision.
func TestGitRewritten(t *testing.T) {
	f := newFixture(t)
	time.Sleep(1100 * time.Millisecond) // commit times have a resolution of one second
	second := f.repo.commit("add team-b", map[string]string{"tenants/team-b.yaml": "kind: Tenant\nmetadata: {name: team-b}\n"})

	t.Run("applies what a force-pushed branch names and logs the rewrite", func(t *testing.T) {
		var logs bytes.Buffer
		opts := f.options(t)
		opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		g := newSource(t, opts)
		if rev := fetch(t, g); rev.ID != second {
			t.Fatalf("revision %s, want %s", rev.Short(), second[:12])
		}
		f.repo.git(f.repo.work, "reset", "--quiet", "--hard", f.first)
		f.repo.git(f.repo.work, "push", "--quiet", "--force", "origin", "main")
		rev := fetch(t, g)
		if rev.ID != f.first {
			t.Fatalf("revision %s after the force-push, want %s", rev.Short(), f.first[:12])
		}
		if _, err := fs.Stat(rev.FS, "tenants/team-b.yaml"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("team-b is still in the checkout: %v", err)
		}
		if !strings.Contains(logs.String(), "rewritten to an older commit") {
			t.Errorf("the rewrite is not logged:\n%s", logs.String())
		}
		f.repo.git(f.repo.work, "reset", "--quiet", "--hard", second)
		f.repo.git(f.repo.work, "push", "--quiet", "--force", "origin", "main")
	})

	t.Run("keeps serving a pinned commit the remote lost", func(t *testing.T) {
		opts := f.options(t)
		opts.Branch, opts.Commit = "", second
		g := newSource(t, opts)
		if rev := fetch(t, g); rev.ID != second {
			t.Fatalf("revision %s, want %s", rev.Short(), second[:12])
		}
		f.repo.git(f.repo.work, "reset", "--quiet", "--hard", f.first)
		f.repo.git(f.repo.work, "push", "--quiet", "--force", "origin", "main")
		f.repo.git(f.repo.bare, "reflog", "expire", "--expire=now", "--all")
		f.repo.git(f.repo.bare, "gc", "--quiet", "--prune=now")
		if out := f.repo.git(f.repo.bare, "rev-list", "--all"); strings.Contains(out, second) {
			t.Fatalf("the remote still has %s", second[:12])
		}
		for name, s := range map[string]*GitSource{"the same source": g, "a restarted source on the same cache": newSource(t, opts)} {
			rev, err := s.Fetch(context.Background())
			if err != nil || rev.ID != second || readFile(t, rev.FS, "tenants/team-b.yaml") == "" {
				t.Errorf("%s: %v, %v; want %s from the cache", name, rev, err, second[:12])
			}
		}
		opts.CacheDir = t.TempDir()
		_, err := newSource(t, opts).Fetch(context.Background())
		if err == nil || !strings.Contains(err.Error(), "is not in the remote") {
			t.Errorf("a fresh cache: %v, want an error saying the commit is not in the remote", err)
		}
	})
}
