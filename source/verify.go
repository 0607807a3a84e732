package source

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/object"
)

// ErrUnverified is wrapped by every *SignatureError: the head commit is not signed by a
// trusted key, so the caller must keep the last verified revision and prune nothing.
var ErrUnverified = errors.New("commit signature not verified")

// SignatureError says why a commit was refused.
type SignatureError struct {
	// Commit is the refused commit's SHA.
	Commit string
	// Reason is why, for example "is not signed".
	Reason string
}

func (e *SignatureError) Error() string {
	return fmt.Sprintf("commit %s: %s: %s", shortSHA(e.Commit), ErrUnverified, e.Reason)
}

// Is makes errors.Is(err, ErrUnverified) hold.
func (e *SignatureError) Is(target error) bool { return target == ErrUnverified }

func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// A Verifier checks a commit before its tree is checked out. A commit it refuses is
// never returned by Fetch.
type Verifier interface {
	// Verify returns nil for a commit signed by a trusted key, a *SignatureError for one
	// that is not, and another error when the trusted keys cannot be read.
	Verify(c *object.Commit) error
}

var _ Verifier = OpenPGPVerifier{}

// OpenPGPVerifier trusts the OpenPGP public keys in an armored keyring file (the output
// of `gpg --export --armor`, one or several keys). The file is read on every fetch, so
// that a rotated Secret mounted as that file takes effect without a restart.
//
// go-git v5 verifies OpenPGP signatures only: a commit signed with an SSH key (git's
// gpg.format=ssh) is refused, with a reason that says so.
type OpenPGPVerifier struct {
	// KeyringFile holds the trusted public keys.
	KeyringFile string
}

// Verify implements Verifier.
func (v OpenPGPVerifier) Verify(c *object.Commit) error {
	keys, err := os.ReadFile(v.KeyringFile)
	if err != nil {
		return fmt.Errorf("trusted keys: %w", err)
	}
	if !strings.Contains(string(keys), "-----BEGIN PGP PUBLIC KEY BLOCK-----") {
		return fmt.Errorf("trusted keys: %s holds no armored OpenPGP public key", v.KeyringFile)
	}
	refuse := func(format string, args ...any) error {
		return &SignatureError{Commit: c.Hash.String(), Reason: fmt.Sprintf(format, args...)}
	}
	sig := c.PGPSignature
	switch {
	case sig == "":
		return refuse("is not signed")
	case strings.Contains(sig, "-----BEGIN SSH SIGNATURE-----"):
		return refuse("is signed with an SSH key, which raas cannot verify (OpenPGP signatures only)")
	case strings.Contains(sig, "-----BEGIN SIGNED MESSAGE-----"):
		return refuse("is signed with X.509 (gpgsm), which raas cannot verify (OpenPGP signatures only)")
	}
	if _, err := c.Verify(string(keys)); err != nil {
		return refuse("its signature does not verify against the trusted keys (%v)", err)
	}
	return nil
}
