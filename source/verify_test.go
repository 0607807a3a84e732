package source

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// newKey generates an OpenPGP key for the test (Ed25519, so that it is quick).
func newKey(t testing.TB, name string) *openpgp.Entity {
	t.Helper()
	e, err := openpgp.NewEntity(name, "raas test", name+"@raas.dev", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// writeKeyring writes the armored public keys of entities to a file, as `gpg --export
// --armor` would, and returns its path.
func writeKeyring(t testing.TB, path string, entities ...*openpgp.Entity) string {
	t.Helper()
	var b bytes.Buffer
	w, err := armor.Encode(&b, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entities {
		if err := e.Serialize(w); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// signedCommit commits files on main signed with key (go-git signs it; the git CLI
// pushes it) and returns the commit SHA.
func (r *remoteRepo) signedCommit(msg string, files map[string]string, key *openpgp.Entity) string {
	r.tb.Helper()
	for name, content := range files {
		path := filepath.Join(r.work, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			r.tb.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			r.tb.Fatal(err)
		}
	}
	repo, err := git.PlainOpen(r.work)
	if err != nil {
		r.tb.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		r.tb.Fatal(err)
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		r.tb.Fatal(err)
	}
	who := &object.Signature{Name: "raas test", Email: "test@raas.dev", When: time.Now()}
	hash, err := wt.Commit(msg, &git.CommitOptions{Author: who, Committer: who, SignKey: key, AllowEmptyCommits: true})
	if err != nil {
		r.tb.Fatal(err)
	}
	r.git(r.work, "push", "--quiet", "--force", "origin", "main")
	return hash.String()
}

func TestVerifySignatures(t *testing.T) {
	trusted, stranger := newKey(t, "platform"), newKey(t, "stranger")
	repo := newRemoteRepo(t)
	server := newHTTPServer(t, repo.root, testToken)
	platform := map[string]string{"raas.yaml": "apiVersion: raas.dev/v1alpha1\nkind: Platform\n"}
	first := repo.signedCommit("signed by the platform team", platform, trusted)

	keyring := writeKeyring(t, filepath.Join(t.TempDir(), "trusted.asc"), trusted)
	opts := DefaultGitOptions()
	opts.URL = server.url("tenants.git")
	opts.Credentials.Token = testToken
	opts.CacheDir = t.TempDir()
	opts.Verifier = OpenPGPVerifier{KeyringFile: keyring}
	opts.Logger = slog.New(slog.DiscardHandler)
	g := newSource(t, opts)

	refused := func(t *testing.T, commit, reason string) {
		t.Helper()
		rev, err := g.Fetch(context.Background())
		if err == nil {
			t.Fatalf("fetched %s, want it refused", rev.ID)
		}
		var sig *SignatureError
		if !errors.Is(err, ErrUnverified) || !errors.As(err, &sig) {
			t.Fatalf("err = %v, want a *SignatureError", err)
		}
		if sig.Commit != commit || !strings.Contains(sig.Reason, reason) {
			t.Errorf("refused %s because %q; want %s because %q", sig.Commit, sig.Reason, commit, reason)
		}
		if _, err := os.Stat(filepath.Join(opts.CacheDir, "rev", commit)); err == nil {
			t.Errorf("the refused commit %s was checked out", commit)
		}
	}

	t.Run("fetches a head commit signed by a trusted key", func(t *testing.T) {
		if rev := fetch(t, g); rev.ID != first {
			t.Errorf("revision %s, want %s", rev.ID, first)
		}
	})
	t.Run("refuses an unsigned head commit", func(t *testing.T) {
		unsigned := repo.commit("pushed without signing", map[string]string{"tenants/a.yaml": "kind: Tenant\n"})
		refused(t, unsigned, "is not signed")
	})
	var strange string
	t.Run("refuses a head commit signed by a key that is not trusted", func(t *testing.T) {
		strange = repo.signedCommit("signed by someone else", map[string]string{"tenants/b.yaml": "kind: Tenant\n"}, stranger)
		refused(t, strange, "does not verify against the trusted keys")
	})
	t.Run("refuses a head commit signed with an SSH key, saying raas cannot verify those", func(t *testing.T) {
		key := filepath.Join(t.TempDir(), "id_ed25519")
		out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "raas test", "-f", key).CombinedOutput()
		if err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
		repo.git(repo.work, "-c", "gpg.format=ssh", "-c", "user.signingkey="+key, "commit", "--quiet", "--allow-empty", "-S", "-m", "signed with ssh")
		repo.git(repo.work, "push", "--quiet", "--force", "origin", "main")
		refused(t, repo.git(repo.work, "rev-parse", "HEAD"), "signed with an SSH key")
		// The next case starts from the stranger's commit again.
		repo.git(repo.work, "reset", "--quiet", "--hard", "HEAD~1")
		repo.git(repo.work, "push", "--quiet", "--force", "origin", "main")
	})
	t.Run("accepts it once its key is trusted, reading the keyring on each fetch", func(t *testing.T) {
		writeKeyring(t, keyring, trusted, stranger)
		if rev := fetch(t, g); rev.ID != strange {
			t.Errorf("revision %s, want %s", rev.ID, strange)
		}
	})
	t.Run("fails without a keyring, fetching nothing", func(t *testing.T) {
		if err := os.WriteFile(keyring, []byte("not a key\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := g.Fetch(context.Background())
		if err == nil || !strings.Contains(err.Error(), "holds no armored OpenPGP public key") {
			t.Errorf("err = %v", err)
		}
	})
}
