package source

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// A CheckoutError is a revision that was fetched but must not be reconciled. It wraps
// ErrEmptyCheckout or ErrUnreadableCheckout; Revision names the commit or content hash,
// so that the caller can report which revision it refused.
type CheckoutError struct {
	Revision string
	Err      error
}

func (e *CheckoutError) Error() string {
	if e.Revision == "" {
		return e.Err.Error()
	}
	return fmt.Sprintf("revision %s: %v", short(e.Revision), e.Err)
}

func (e *CheckoutError) Unwrap() error { return e.Err }

func short(id string) string { return (&Revision{ID: id}).Short() }

func unreadable(id string, err error) error {
	return &CheckoutError{Revision: id, Err: fmt.Errorf("%w: %w", ErrUnreadableCheckout, err)}
}

// checkout returns the revision for commit hash, writing its tree out to rev/<sha>/ the
// first time. The tree is written into a temporary directory and renamed into place, so
// a checkout directory is either complete or absent, and never changes afterwards.
func (g *GitSource) checkout(hash plumbing.Hash) (*Revision, error) {
	repo, err := g.open()
	if err != nil {
		return nil, err
	}
	id := hash.String()
	commit, err := repo.CommitObject(hash)
	if err != nil {
		return nil, unreadable(id, err)
	}
	dir := filepath.Join(g.revDir(), id)
	rev := &Revision{
		ID:      id,
		Dir:     dir,
		FS:      os.DirFS(dir),
		Time:    commit.Committer.When,
		Message: strings.TrimSpace(commit.Message),
	}
	tree, err := commit.Tree()
	if err != nil {
		return nil, unreadable(id, err)
	}
	rev.FS = withLinks(rev.FS, escapedLinks(tree))
	if _, err := os.Stat(dir); err == nil {
		now := time.Now()
		_ = os.Chtimes(dir, now, now) // marks it as recently used for prune
		return rev, nil
	}
	if _, err := tree.FindEntry(PlatformFile); err != nil {
		if errors.Is(err, object.ErrEntryNotFound) || errors.Is(err, object.ErrDirectoryNotFound) {
			return nil, &CheckoutError{Revision: id, Err: ErrEmptyCheckout}
		}
		return nil, unreadable(id, err)
	}
	if err := os.MkdirAll(g.revDir(), 0o755); err != nil {
		return nil, unreadable(id, err)
	}
	tmp, err := os.MkdirTemp(g.revDir(), ".tmp-"+id[:12]+"-")
	if err != nil {
		return nil, unreadable(id, err)
	}
	if err := g.export(tree, tmp, g.linkBase(repo, id)); err != nil {
		os.RemoveAll(tmp)
		return nil, unreadable(id, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return nil, unreadable(id, err)
	}
	return rev, nil
}

// A linkBase is an existing checkout whose unchanged files a new checkout hard-links
// instead of writing again: checkouts are read-only, so they can share inodes, and a
// link costs a fraction of creating and writing a file.
type linkBase struct {
	dir string
	// files maps slash paths to tree entries when the base commit is in the cached clone.
	// When it is not (after a restart or a fresh clone), files is nil and each file's
	// content is hashed instead.
	files map[string]object.TreeEntry
}

// linkBase returns the most recently used checkout other than id, or nil.
func (g *GitSource) linkBase(repo *git.Repository, id string) *linkBase {
	for _, name := range g.checkouts() {
		if name == id {
			continue
		}
		base := &linkBase{dir: filepath.Join(g.revDir(), name)}
		commit, err := repo.CommitObject(plumbing.NewHash(name))
		if err != nil {
			return base
		}
		tree, err := commit.Tree()
		if err != nil {
			return base
		}
		base.files = map[string]object.TreeEntry{}
		walker := object.NewTreeWalker(tree, true, nil)
		defer walker.Close()
		for {
			name, entry, err := walker.Next()
			if err == io.EOF {
				return base
			}
			if err != nil {
				base.files = nil
				return base
			}
			base.files[name] = entry
		}
	}
	return nil
}

// link hard-links the file at name from the base checkout, when it is there unchanged.
func (b *linkBase) link(name string, entry object.TreeEntry, dst string) bool {
	if b == nil {
		return false
	}
	src := filepath.Join(b.dir, filepath.FromSlash(name))
	if b.files != nil {
		old, ok := b.files[name]
		if !ok || old.Hash != entry.Hash || old.Mode != entry.Mode {
			return false
		}
	} else {
		info, err := os.Lstat(src)
		if err != nil || !info.Mode().IsRegular() || (info.Mode()&0o111 != 0) != (entry.Mode == filemode.Executable) {
			return false
		}
		data, err := os.ReadFile(src)
		if err != nil || plumbing.ComputeHash(plumbing.BlobObject, data) != entry.Hash {
			return false
		}
	}
	return os.Link(src, dst) == nil
}

// export writes the files of tree under dir, read-only, linking unchanged ones from base;
// only the blobs it writes are read. Submodules are left out, and so are symbolic links
// that are absolute or lead out of the tree (see linkFS for those under tenants/).
func (g *GitSource) export(tree *object.Tree, dir string, base *linkBase) error {
	walker := object.NewTreeWalker(tree, true, nil)
	defer walker.Close()
	made := map[string]bool{dir: true}
	for {
		name, entry, err := walker.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if entry.Mode == filemode.Dir || entry.Mode == filemode.Submodule {
			continue
		}
		if !filepath.IsLocal(name) {
			return fmt.Errorf("path %q leaves the tree", name)
		}
		dst := filepath.Join(dir, filepath.FromSlash(name))
		if parent := filepath.Dir(dst); !made[parent] {
			if err := os.MkdirAll(parent, 0o755); err != nil {
				return err
			}
			made[parent] = true
		}
		if entry.Mode != filemode.Symlink && base.link(name, entry, dst) {
			continue
		}
		f, err := tree.TreeEntryFile(&entry)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		f.Name = name
		switch entry.Mode {
		case filemode.Symlink:
			target, err := f.Contents()
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if escapes(name, target) {
				g.log.Warn("symbolic link leads out of the repository; left out", "file", name)
				continue
			}
			err = os.Symlink(target, dst)
		case filemode.Executable:
			err = writeBlob(f, dst, 0o555)
		default:
			err = writeBlob(f, dst, 0o444)
		}
		if err != nil {
			return err
		}
	}
}

func writeBlob(f *object.File, dst string, perm fs.FileMode) error {
	r, err := f.Reader()
	if err != nil {
		return fmt.Errorf("%s: %w", f.Name, err)
	}
	defer r.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return fmt.Errorf("%s: %w", f.Name, err)
	}
	return out.Close()
}

// checkouts returns the names (commit SHAs) of the checkouts on disk, most recently used
// first.
func (g *GitSource) checkouts() []string {
	entries, err := os.ReadDir(g.revDir())
	if err != nil {
		return nil
	}
	type used struct {
		name string
		when time.Time
	}
	var revs []used
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		revs = append(revs, used{e.Name(), info.ModTime()})
	}
	slices.SortFunc(revs, func(a, b used) int { return b.when.Compare(a.when) })
	names := make([]string, len(revs))
	for i, r := range revs {
		names[i] = r.name
	}
	return names
}

// prune removes interrupted checkouts and all but the Keep most recently used ones. The
// current revision is never removed.
func (g *GitSource) prune(current string) error {
	var errs []error
	tmps, _ := filepath.Glob(filepath.Join(g.revDir(), ".tmp-*"))
	for _, tmp := range tmps {
		errs = append(errs, os.RemoveAll(tmp))
	}
	kept := 1 // the current one
	for _, name := range g.checkouts() {
		if name == current {
			continue
		}
		if kept < g.opts.Keep {
			kept++
			continue
		}
		errs = append(errs, os.RemoveAll(filepath.Join(g.revDir(), name)))
	}
	return errors.Join(errs...)
}
