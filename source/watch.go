package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watch watches the files under Paths and calls notify, with a reason naming what
// changed, once changes have settled for Debounce. It returns when the watches are in
// place and keeps watching, from its own goroutine, until ctx is done. notify must not
// block; trigger.Trigger.Trigger fits.
func (d *DirSource) Watch(ctx context.Context, notify func(reason string)) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("dir %s: watch: %w", d.dir, err)
	}
	if err := d.addTree(w, d.dir, true); err != nil {
		w.Close()
		return fmt.Errorf("dir %s: watch: %w", d.dir, err)
	}
	for _, p := range d.opts.Paths {
		if err := d.addTree(w, filepath.Join(d.dir, filepath.FromSlash(p)), false); err != nil {
			w.Close()
			return fmt.Errorf("dir %s: watch: %w", d.dir, err)
		}
	}
	go d.watch(ctx, w, notify)
	return nil
}

func (d *DirSource) watch(ctx context.Context, w *fsnotify.Watcher, notify func(string)) {
	defer w.Close()
	var (
		changed []string
		settle  *time.Timer
		settled <-chan time.Time
	)
	defer func() {
		if settle != nil {
			settle.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			rel, ok := d.relevant(ev.Name)
			if !ok {
				continue
			}
			if ev.Has(fsnotify.Create) {
				// A new directory (tenants/ itself, or one under catalog/) is watched from
				// now on. A failure only means changes inside it go unseen; log it.
				if err := d.addTree(w, ev.Name, false); err != nil {
					d.log.Warn("cannot watch new directory", "dir", rel, "error", err)
				}
			}
			if !slices.Contains(changed, rel) {
				changed = append(changed, rel)
			}
			if settle == nil {
				settle = time.NewTimer(d.opts.Debounce)
			} else {
				settle.Reset(d.opts.Debounce)
			}
			settled = settle.C
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			d.log.Warn("file watch error", "error", err)
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				notify("file watch overflow: " + d.dir)
			}
		case <-settled:
			settled = nil
			notify(reason(changed))
			changed = changed[:0]
		}
	}
}

func reason(changed []string) string {
	const show = 3
	r := "file changed: " + strings.Join(changed[:min(len(changed), show)], ", ")
	if len(changed) > show {
		r += fmt.Sprintf(" and %d more", len(changed)-show)
	}
	return r
}

// relevant returns the slash path of name relative to the source directory, and whether
// it lies under one of Paths and is not ignored.
func (d *DirSource) relevant(name string) (string, bool) {
	rel, err := filepath.Rel(d.dir, name)
	if err != nil || !filepath.IsLocal(rel) {
		return "", false
	}
	rel = filepath.ToSlash(rel)
	for _, part := range strings.Split(rel, "/") {
		if ignored(part) {
			return "", false
		}
	}
	for _, p := range d.opts.Paths {
		if rel == p || strings.HasPrefix(rel, p+"/") {
			return rel, true
		}
	}
	return "", false
}

// addTree watches dir and, unless only is set, every directory below it. A dir that does
// not exist or is a file is skipped.
func (d *DirSource) addTree(w *fsnotify.Watcher, dir string, only bool) error {
	if only {
		return w.Add(dir)
	}
	err := filepath.WalkDir(dir, func(name string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !e.IsDir() {
			return nil
		}
		if name != dir && ignored(e.Name()) {
			return filepath.SkipDir
		}
		return w.Add(name)
	})
	return err
}
