package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// DirOptions configure a DirSource.
type DirOptions struct {
	// Paths are the files and directories, relative to the source directory, that make up
	// the repository: they are hashed into the revision ID and watched.
	Paths []string
	// Debounce is how long Watch waits for changes to settle before it notifies.
	Debounce time.Duration
	// Logger receives the watcher's lines. Nil means slog.Default().
	Logger *slog.Logger
}

// DefaultDirOptions hash and watch raas.yaml, tenants/, overlays/ and catalog/, and
// settle changes for 200ms.
func DefaultDirOptions() DirOptions {
	return DirOptions{
		Paths:    []string{PlatformFile, "tenants", "overlays", "catalog"},
		Debounce: 200 * time.Millisecond,
	}
}

// DirSource is a tenants repository in a local directory, for development and `make run`.
// Its revisions are not snapshots: Dir is the live directory.
type DirSource struct {
	dir  string
	opts DirOptions
	log  *slog.Logger
}

// NewDir returns a DirSource for dir.
func NewDir(dir string, opts DirOptions) (*DirSource, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("dir source %s: %w", dir, err)
	}
	if len(opts.Paths) == 0 {
		opts.Paths = DefaultDirOptions().Paths
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &DirSource{dir: abs, opts: opts, log: log.With("source", abs)}, nil
}

// String returns the directory.
func (d *DirSource) String() string { return d.dir }

// Fetch hashes the directory's content. The ID changes exactly when a file under Paths
// is added, removed, renamed, or changes content or executable bit. Hidden files and
// backups ending in "~" do not count. A directory without raas.yaml is an empty checkout.
func (d *DirSource) Fetch(ctx context.Context) (*Revision, error) {
	id, newest, err := d.hash(ctx)
	if err != nil {
		return nil, fmt.Errorf("dir %s: %w", d.dir, err)
	}
	return &Revision{ID: id, Dir: d.dir, FS: os.DirFS(d.dir), Time: newest}, nil
}

// hash returns "sha256:<hex>" over the sorted list of files under Paths: for each, its
// slash-separated path, whether it is executable, its length and its content.
func (d *DirSource) hash(ctx context.Context) (id string, newest time.Time, err error) {
	if _, err := os.Stat(d.dir); err != nil {
		return "", newest, unreadable("", err)
	}
	if _, err := os.Stat(filepath.Join(d.dir, PlatformFile)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", newest, &CheckoutError{Err: ErrEmptyCheckout}
		}
		return "", newest, unreadable("", err)
	}
	var files []string
	for _, p := range d.opts.Paths {
		root := filepath.Join(d.dir, filepath.FromSlash(p))
		err := filepath.WalkDir(root, func(name string, e fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) && name == root {
					return nil // an optional directory
				}
				return err
			}
			switch {
			case name != root && ignored(e.Name()) && e.IsDir():
				return filepath.SkipDir
			case name != root && ignored(e.Name()):
			case !e.IsDir():
				files = append(files, name)
			}
			return nil
		})
		if err != nil {
			return "", newest, unreadable("", err)
		}
	}
	slices.Sort(files)
	files = slices.Compact(files) // Paths may overlap
	h := sha256.New()
	for _, name := range files {
		if err := ctx.Err(); err != nil {
			return "", newest, err
		}
		rel, _ := filepath.Rel(d.dir, name)
		isLink := false
		if link, err := os.Lstat(name); err == nil && link.Mode()&fs.ModeSymlink != 0 {
			isLink = true
			// A link counts by its target, and by the content it leads to if any: one
			// that dangles or leaves the repository is for schema.Load to refuse by name,
			// not a reason to refuse the whole checkout.
			target, err := os.Readlink(name)
			if err != nil {
				return "", newest, unreadable("", err)
			}
			fmt.Fprintf(h, "%s\x00link\x00%s\x00", filepath.ToSlash(rel), target)
		}
		info, err := os.Stat(name) // follows symbolic links
		if err != nil && isLink {
			continue // a link that dangles or loops, hashed above
		}
		if err != nil {
			return "", newest, unreadable("", err)
		}
		if !info.Mode().IsRegular() {
			continue
		}
		if info.ModTime().After(newest) {
			newest = info.ModTime()
		}
		data, err := os.ReadFile(name)
		if err != nil {
			return "", newest, unreadable("", err)
		}
		exec := info.Mode()&0o111 != 0
		fmt.Fprintf(h, "%s\x00%t\x00%d\x00", filepath.ToSlash(rel), exec, len(data))
		h.Write(data)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), newest, nil
}

// ignored reports whether a file or directory is left out of the hash and the watch:
// hidden ones (.git, editor swap files) and backups ending in "~".
func ignored(base string) bool {
	return strings.HasPrefix(base, ".") || strings.HasSuffix(base, "~")
}
