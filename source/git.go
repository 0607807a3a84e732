package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// GitOptions configure a GitSource.
type GitOptions struct {
	// URL of the tenants repository: https://, http://, ssh://, user@host:path, or a local
	// path. User information in an HTTP URL is used as credentials when Credentials has
	// none, and is never stored or logged.
	URL string
	// Exactly one of Branch, Tag and Commit (a full 40-character SHA) pins the revision.
	Branch string
	Tag    string
	Commit string
	// Credentials for the remote.
	Credentials Credentials
	// CABundleFile holds PEM certificates trusted for HTTPS in addition to the system's,
	// for a Git server with a private CA. It is read on every fetch.
	CABundleFile string
	// CacheDir holds the persistent clone (git/) and one checkout per revision (rev/<sha>/).
	CacheDir string
	// Depth is the number of commits fetched from the tip: 1 (shallow) by default, 0 for
	// the full history.
	Depth int
	// Keep is how many checkouts stay on disk, the current one included. A revision's Dir
	// stays readable until Keep-1 newer revisions have been fetched. At least 2.
	Keep int
	// Timeout bounds one Fetch.
	Timeout time.Duration
	// Verifier, if set, checks the commit the ref names before it is checked out. A
	// commit it refuses makes Fetch fail with an error wrapping ErrUnverified (a
	// *SignatureError when the signature is the problem), so that the caller keeps its
	// last verified revision.
	Verifier Verifier
	// Logger receives one line per fetch. Nil means slog.Default().
	Logger *slog.Logger
}

// DefaultGitOptions track the main branch with shallow fetches, keep three checkouts and
// give a fetch two minutes.
func DefaultGitOptions() GitOptions {
	return GitOptions{Branch: "main", Depth: 1, Keep: 3, Timeout: 2 * time.Minute}
}

// GitSource is a Git repository fetched with go-git into a local cache. Fetch may be called
// from several goroutines; fetches run one at a time.
type GitSource struct {
	opts   GitOptions
	remote *remote
	ref    string // "branch main", "tag v1", "commit <sha>", for logs and errors
	log    *slog.Logger

	mu       sync.Mutex
	repo     *git.Repository
	last     string    // ID of the last revision returned
	lastTime time.Time // and its commit time
	red      *redactor // the secrets of the running fetch
	caBundle []byte    // the CA bundle of the running fetch
}

var fullSHA = regexp.MustCompile(`^[0-9a-f]{40}$`)

// NewGit checks opts and returns a GitSource. It does not touch the network.
func NewGit(opts GitOptions) (*GitSource, error) {
	if opts.URL == "" {
		return nil, errors.New("git source: no URL")
	}
	r, err := parseRemote(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("git source: %w", err)
	}
	g := &GitSource{opts: opts, remote: r, log: opts.Logger}
	set := 0
	for _, v := range []string{opts.Branch, opts.Tag, opts.Commit} {
		if v != "" {
			set++
		}
	}
	switch {
	case set != 1:
		return nil, fmt.Errorf("git source %s: set exactly one of branch, tag and commit", g)
	case opts.Commit != "" && !fullSHA.MatchString(opts.Commit):
		return nil, fmt.Errorf("git source %s: commit %q is not a full 40-character SHA", g, opts.Commit)
	case opts.Branch != "":
		g.ref = "branch " + opts.Branch
	case opts.Tag != "":
		g.ref = "tag " + opts.Tag
	default:
		g.ref = "commit " + opts.Commit
	}
	if opts.CacheDir == "" {
		return nil, fmt.Errorf("git source %s: no cache directory", g)
	}
	if opts.Depth < 0 {
		return nil, fmt.Errorf("git source %s: negative depth", g)
	}
	if g.opts.Keep < 2 {
		g.opts.Keep = 2
	}
	if g.log == nil {
		g.log = slog.Default()
	}
	g.log = g.log.With("source", g.String(), "ref", g.ref)
	return g, nil
}

// String returns the URL without credentials.
func (g *GitSource) String() string { return RedactURL(g.remote.url) }

// Fetch fetches the pinned ref into the cache and returns its checkout. A pinned commit
// already in the cache is returned without contacting the remote.
func (g *GitSource) Fetch(ctx context.Context) (*Revision, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.opts.Timeout)
		defer cancel()
	}
	start := time.Now()
	red := &redactor{}
	g.red = red
	auth, err := g.opts.Credentials.auth(g.remote, red)
	if err != nil {
		return nil, fmt.Errorf("git %s: credentials: %w", g, red.error(err))
	}
	g.caBundle = nil
	if g.opts.CABundleFile != "" {
		if g.caBundle, err = os.ReadFile(g.opts.CABundleFile); err != nil {
			return nil, fmt.Errorf("git %s: CA bundle: %w", g, err)
		}
	}
	rev, err := g.fetchRevision(ctx, auth)
	if damaged(err) && ctx.Err() == nil {
		// The cached clone cannot be read (a damaged disk, an interrupted write, or a
		// shallow history go-git cannot extend): start it afresh, once.
		g.log.Warn("the cached clone is damaged; fetching afresh", "error", err)
		if _, rerr := g.reset(); rerr == nil {
			rev, err = g.fetchRevision(ctx, auth)
		}
	}
	if err != nil {
		return nil, err
	}
	changed := rev.ID != g.last
	if changed && g.last != "" && rev.Time.Before(g.lastTime) {
		// Only a rewrite (a force-push, a reset) moves a branch or tag to an older commit.
		// What the ref says now is what is applied.
		g.log.Warn("the ref was rewritten to an older commit; applying what it names now",
			"revision", rev.Short(), "previous", short(g.last),
			"committed", rev.Time.UTC().Format(time.RFC3339), "previous_committed", g.lastTime.UTC().Format(time.RFC3339))
	}
	g.last, g.lastTime = rev.ID, rev.Time
	if err := g.prune(rev.ID); err != nil {
		g.log.Warn("cannot remove old checkouts", "error", red.error(err))
	}
	if err := g.compact(); err != nil {
		g.log.Warn("cannot compact the cached clone", "error", red.error(err))
	}
	level := slog.LevelDebug
	if changed {
		level = slog.LevelInfo
	}
	g.log.Log(ctx, level, "fetched", "revision", rev.Short(), "changed", changed,
		"duration", time.Since(start).Round(time.Millisecond))
	return rev, nil
}

// errDamaged marks a failure to read the cached clone after a fetch succeeded.
var errDamaged = errors.New("the cached clone is damaged")

// damaged reports whether err may come from a damaged cached clone, which a fresh clone
// would fix.
func damaged(err error) bool {
	return errors.Is(err, errDamaged) || errors.Is(err, ErrUnreadableCheckout) ||
		errors.Is(err, plumbing.ErrObjectNotFound)
}

// fetchRevision fetches the ref and checks out the commit it names.
func (g *GitSource) fetchRevision(ctx context.Context, auth transport.AuthMethod) (*Revision, error) {
	hash, err := g.resolve(ctx, auth)
	if err != nil {
		return nil, fmt.Errorf("git %s (%s): fetch: %w", g, g.ref, g.red.error(err))
	}
	if v := g.opts.Verifier; v != nil {
		c, err := g.repo.CommitObject(hash)
		if err != nil {
			return nil, fmt.Errorf("git %s (%s): %w: %w", g, g.ref, errDamaged, err)
		}
		if err := v.Verify(c); err != nil {
			return nil, fmt.Errorf("git %s (%s): %w", g, g.ref, err)
		}
	}
	rev, err := g.checkout(hash)
	if err != nil {
		// Checkout errors come from the local disk and hold no credentials; they stay
		// unredacted so that callers can use errors.As on a *CheckoutError.
		return nil, fmt.Errorf("git %s (%s): %w", g, g.ref, err)
	}
	return rev, nil
}

// resolve fetches what the ref needs and returns the commit it names.
func (g *GitSource) resolve(ctx context.Context, auth transport.AuthMethod) (plumbing.Hash, error) {
	repo, err := g.open()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	switch {
	case g.opts.Commit != "":
		return g.resolveCommit(ctx, repo, auth)
	case g.opts.Tag != "":
		name := plumbing.NewTagReferenceName(g.opts.Tag)
		if err := g.fetch(ctx, repo, auth, g.opts.Depth, refSpec(name, name)); err != nil {
			return plumbing.ZeroHash, err
		}
		return peel(repo, name)
	default:
		src := plumbing.NewBranchReferenceName(g.opts.Branch)
		dst := plumbing.NewRemoteReferenceName("origin", g.opts.Branch)
		if err := g.fetch(ctx, repo, auth, g.opts.Depth, refSpec(src, dst)); err != nil {
			return plumbing.ZeroHash, err
		}
		return peel(repo, dst)
	}
}

// resolveCommit fetches exactly the pinned commit when the server allows it (GitHub,
// GitLab and `git http-backend` with uploadpack.allowReachableSHA1InWant do), and every
// branch and tag with their full history when it does not.
func (g *GitSource) resolveCommit(ctx context.Context, repo *git.Repository, auth transport.AuthMethod) (plumbing.Hash, error) {
	hash := plumbing.NewHash(g.opts.Commit)
	if _, err := repo.CommitObject(hash); err == nil {
		return hash, nil
	}
	err := g.fetch(ctx, repo, auth, g.opts.Depth, config.RefSpec(g.opts.Commit+":refs/raas/pinned"))
	if errors.Is(err, git.ErrExactSHA1NotSupported) {
		g.log.Debug("server cannot send a single commit; fetching all branches and tags")
		if shallow, _ := repo.Storer.Shallow(); len(shallow) > 0 {
			if repo, err = g.reset(); err != nil {
				return plumbing.ZeroHash, err
			}
		}
		err = g.fetch(ctx, repo, auth, 0, "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*")
	}
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := repo.CommitObject(hash); err != nil {
		// %v, not %w: a missing pinned commit is not a damaged cache.
		return plumbing.ZeroHash, fmt.Errorf("commit %s is not in the remote: %v", g.opts.Commit, err)
	}
	return hash, nil
}

func refSpec(src, dst plumbing.ReferenceName) config.RefSpec {
	return config.RefSpec("+" + src.String() + ":" + dst.String())
}

// fetch runs one fetch of specs into repo.
func (g *GitSource) fetch(ctx context.Context, repo *git.Repository, auth transport.AuthMethod, depth int, specs ...config.RefSpec) error {
	opts := &git.FetchOptions{
		RemoteName: "origin",
		RemoteURL:  g.remote.url,
		RefSpecs:   specs,
		Depth:      depth,
		Auth:       auth,
		Tags:       git.NoTags,
		Force:      true,
		CABundle:   g.caBundle,
	}
	err := repo.FetchContext(ctx, opts)
	if errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil
	}
	return err
}

// peel returns the commit a branch or tag reference points to, through annotated tags.
// It runs after a successful fetch: its errors are marked errDamaged.
func peel(repo *git.Repository, name plumbing.ReferenceName) (plumbing.Hash, error) {
	ref, err := repo.Reference(name, true)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("%w: %s: %w", errDamaged, name.Short(), err)
	}
	hash := ref.Hash()
	for range 10 {
		tag, err := repo.TagObject(hash)
		if err != nil {
			break
		}
		hash = tag.Target
	}
	if _, err := repo.CommitObject(hash); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("%w: %s does not name a commit: %w", errDamaged, name.Short(), err)
	}
	return hash, nil
}

// open opens the cached bare clone, or creates it. A clone that cannot be opened, that
// points at another URL, or whose depth does not fit the options is made afresh.
func (g *GitSource) open() (*git.Repository, error) {
	if g.repo != nil {
		return g.repo, nil
	}
	repo, err := git.PlainOpen(g.gitDir())
	if err == nil {
		remote, rerr := repo.Remote("origin")
		shallow, serr := repo.Storer.Shallow()
		switch {
		case rerr != nil, serr != nil:
		case len(remote.Config().URLs) != 1 || remote.Config().URLs[0] != g.remote.url:
		case g.opts.Depth == 0 && len(shallow) > 0:
		default:
			g.repo = repo
			return repo, nil
		}
	}
	return g.reset()
}

// reset replaces the cached clone by an empty one. Checkouts are not touched.
func (g *GitSource) reset() (*git.Repository, error) {
	g.repo = nil
	dir := g.gitDir()
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	repo, err := git.PlainInit(dir, true)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	if _, err := repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{g.remote.url}}); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	g.repo = repo
	return repo, nil
}

// maxPacks is how many pack files the cached clone may hold before compact acts.
var maxPacks = 32

// compact bounds the cached clone's size. Every fetch with new commits adds a pack; a
// shallow fetch brings the whole tree each time (the server does not subtract what the
// client has beyond the shallow boundary), and go-git cannot repack a shallow clone.
// So a shallow clone with too many packs is dropped: the next fetch costs what any
// shallow fetch costs, and its checkout still links unchanged files from the current
// one. A full clone is repacked instead.
func (g *GitSource) compact() error {
	packs, err := filepath.Glob(filepath.Join(g.gitDir(), "objects", "pack", "*.pack"))
	if err != nil || len(packs) <= maxPacks {
		return err
	}
	if g.opts.Depth > 0 {
		g.log.Debug("dropping the cached shallow clone", "packs", len(packs))
		_, err := g.reset()
		return err
	}
	repo, err := g.open()
	if err != nil {
		return err
	}
	g.log.Debug("repacking the cached clone", "packs", len(packs))
	// go-git keeps an index of the packs it has seen: open the clone afresh afterwards.
	g.repo = nil
	return repo.RepackObjects(&git.RepackConfig{})
}

func (g *GitSource) gitDir() string { return filepath.Join(g.opts.CacheDir, "git") }
func (g *GitSource) revDir() string { return filepath.Join(g.opts.CacheDir, "rev") }
