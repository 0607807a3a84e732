package source

import (
	"errors"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// tenantsDir is where a tenants repository keeps one file per tenant.
const tenantsDir = "tenants"

// A checkout leaves out the symbolic links that lead out of the repository: nothing may
// follow them from disk. Under tenants/, though, a left-out entry would read as a removed
// tenant. So the checkout's FS shows those links as they are in Git, links that cannot be
// opened, and schema.Load refuses them by name exactly as it does in a directory source.

// escapedLinks returns the symbolic links directly under tenants/ in tree that are
// absolute or lead out of the tree, with their targets.
func escapedLinks(tree *object.Tree) map[string]string {
	sub, err := tree.Tree(tenantsDir)
	if err != nil {
		return nil
	}
	links := map[string]string{}
	for _, e := range sub.Entries {
		if e.Mode != filemode.Symlink {
			continue
		}
		name := path.Join(tenantsDir, e.Name)
		f, err := sub.TreeEntryFile(&e)
		if err != nil {
			continue
		}
		target, err := f.Contents()
		if err != nil {
			continue
		}
		if escapes(name, target) {
			links[name] = target
		}
	}
	return links
}

// escapes reports whether the symbolic link name, pointing at target, is absolute or
// leads out of the tree.
func escapes(name, target string) bool {
	if path.IsAbs(target) {
		return true
	}
	joined := path.Join(path.Dir(name), target)
	return joined == ".." || strings.HasPrefix(joined, "../")
}

// linkFS is a checkout on disk plus the links under tenants/ that were left out of it.
type linkFS struct {
	fs.FS
	links map[string]string
}

var errLinkLeaves = errors.New("symbolic link leads out of the repository")

func withLinks(fsys fs.FS, links map[string]string) fs.FS {
	if len(links) == 0 {
		return fsys
	}
	return linkFS{FS: fsys, links: links}
}

func (l linkFS) Open(name string) (fs.File, error) {
	if _, ok := l.links[name]; ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errLinkLeaves}
	}
	return l.FS.Open(name)
}

func (l linkFS) Stat(name string) (fs.FileInfo, error) {
	if _, ok := l.links[name]; ok {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: errLinkLeaves}
	}
	return fs.Stat(l.FS, name)
}

func (l linkFS) Lstat(name string) (fs.FileInfo, error) {
	if target, ok := l.links[name]; ok {
		return linkInfo{name: path.Base(name), size: int64(len(target))}, nil
	}
	return fs.Lstat(l.FS, name)
}

func (l linkFS) ReadLink(name string) (string, error) {
	if target, ok := l.links[name]; ok {
		return target, nil
	}
	return fs.ReadLink(l.FS, name)
}

func (l linkFS) ReadDir(name string) ([]fs.DirEntry, error) {
	entries, err := fs.ReadDir(l.FS, name)
	if err != nil && !(errors.Is(err, fs.ErrNotExist) && name == tenantsDir) {
		return nil, err
	}
	for link, target := range l.links {
		if path.Dir(link) == name {
			entries = append(entries, fs.FileInfoToDirEntry(linkInfo{name: path.Base(link), size: int64(len(target))}))
		}
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return entries, nil
}

// linkInfo describes a left-out symbolic link.
type linkInfo struct {
	name string
	size int64
}

func (i linkInfo) Name() string       { return i.name }
func (i linkInfo) Size() int64        { return i.size }
func (i linkInfo) Mode() fs.FileMode  { return fs.ModeSymlink | 0o777 }
func (i linkInfo) ModTime() time.Time { return time.Time{} }
func (i linkInfo) IsDir() bool        { return false }
func (i linkInfo) Sys() any           { return nil }

var (
	_ fs.ReadLinkFS = linkFS{}
	_ fs.ReadDirFS  = linkFS{}
	_ fs.StatFS     = linkFS{}
)
