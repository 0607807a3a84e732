package source

import (
	"context"
	"errors"
	"io/fs"
	"time"
)

// A Revision is one checkout of the tenants repository.
type Revision struct {
	// ID is the commit SHA for Git, or "sha256:<hex>" of the repository's content for a
	// directory.
	ID string
	// Dir is the checked-out tree on disk. A Git checkout is read-only (its files are
	// hard links shared with other checkouts: never write to them) and stays on disk while
	// it is among the GitOptions.Keep most recently fetched. A directory source's Dir is
	// the live directory.
	Dir string
	// FS reads Dir.
	FS fs.FS
	// Time is the commit time, or the newest modification time of a directory's files.
	Time time.Time
	// Message is the commit message; empty for a directory.
	Message string
}

// Short returns the first 12 characters of the ID, for logs.
func (r *Revision) Short() string {
	id := r.ID
	if len(id) > 7 && id[:7] == "sha256:" {
		id = id[7:]
	}
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// A Source is where the tenants repository comes from.
type Source interface {
	// Fetch brings the source up to date and returns the current revision. On failure it
	// returns the error; the caller keeps its last good revision. A checkout that was
	// fetched but is empty or cannot be read returns an error that wraps ErrEmptyCheckout
	// or ErrUnreadableCheckout: the caller must not prune on it either.
	Fetch(ctx context.Context) (*Revision, error)
	// String names the source for logs: its URL without credentials, or its directory.
	String() string
}

var (
	_ Source = (*GitSource)(nil)
	_ Source = (*DirSource)(nil)
)

// Errors for checkouts that arrived but must not be reconciled. Callers branch on them
// with errors.Is: both mean "keep the last good revision and prune nothing".
var (
	// ErrEmptyCheckout is returned when the checkout has no platform file (raas.yaml).
	ErrEmptyCheckout = errors.New("checkout is empty: no raas.yaml")
	// ErrUnreadableCheckout is returned when the checkout cannot be read or written out
	// completely.
	ErrUnreadableCheckout = errors.New("checkout is unreadable")
)

// PlatformFile is the file whose absence makes a checkout empty. It is schema.PlatformFile;
// source does not import schema, which sits downstream of it.
const PlatformFile = "raas.yaml"
