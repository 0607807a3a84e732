package daemon_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/api/v1alpha1"
	"github.com/raas-dev/raas/daemon"
	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/reconcile"
	"github.com/raas-dev/raas/source"
)

// signedCommit commits files like gitRepo.commit, signed with key (nil: unsigned).
func (r *gitRepo) signedCommit(msg string, files map[string]string, key *openpgp.Entity) string {
	r.t.Helper()
	for name, body := range files {
		p := filepath.Join(r.dir, name)
		if body == "" {
			if err := os.Remove(p); err != nil {
				r.t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	wt, err := r.repo.Worktree()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		r.t.Fatal(err)
	}
	who := &object.Signature{Name: "test", Email: "test@raas.dev", When: time.Now()}
	hash, err := wt.Commit(msg, &git.CommitOptions{All: true, AllowEmptyCommits: true, Author: who, Committer: who, SignKey: key})
	if err != nil {
		r.t.Fatal(err)
	}
	return hash.String()
}

// trustedKey generates an OpenPGP key and writes its armored public key to a file, as a
// Secret mounted into raas's pod would hold it.
func trustedKey(t *testing.T) (*openpgp.Entity, string) {
	t.Helper()
	key, err := openpgp.NewEntity("platform", "raas test", "platform@raas.dev", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	w, err := armor.Encode(&b, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := key.Serialize(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "trusted.asc")
	if err := os.WriteFile(file, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return key, file
}

// TestVerifySignatures runs the loop on a repository whose source verifies signatures: an
// unsigned head commit is refused, the last verified revision stays applied with nothing
// pruned, and the Tenant status and an Event say why.
func TestVerifySignatures(t *testing.T) {
	host := testenv.StartHost(t, hostOptions(t))
	f := &fixture{host: host, repo: newGitRepo(t), logs: &syncBuffer{}}
	var err error
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if f.client, err = client.New(host.Config, client.Options{Scheme: scheme}); err != nil {
		t.Fatal(err)
	}
	key, keyring := trustedKey(t)
	signed := f.repo.signedCommit("signed examples", nil, key)

	gopts := source.DefaultGitOptions()
	gopts.URL, gopts.CacheDir = f.repo.dir, t.TempDir()
	gopts.Verifier = source.OpenPGPVerifier{KeyringFile: keyring}
	src, err := source.NewGit(gopts)
	if err != nil {
		t.Fatal(err)
	}
	l, err := daemon.New(host.Config, loopOptions(t, src, f.logs))
	if err != nil {
		t.Fatal(err)
	}
	pass := func(t *testing.T) *reconcile.Result {
		t.Helper()
		res, err := l.Pass(t.Context(), "test")
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	t.Run("applies a commit signed by a trusted key", func(t *testing.T) {
		if res := pass(t); res.Revision != signed || res.HeldBack != nil {
			t.Fatalf("applied %s (held back: %v), want %s", res.Revision, res.HeldBack, signed)
		}
		st := f.tenant(t, "data-sandbox")
		if c := meta.FindStatusCondition(st.Status.Conditions, "RevisionCurrent"); c == nil || c.Status != "True" {
			t.Errorf("RevisionCurrent = %+v, want True", c)
		}
	})

	var unsigned string
	t.Run("refuses an unsigned head commit and keeps the verified revision, pruning nothing", func(t *testing.T) {
		sandbox := f.repo.read("tenants/data-sandbox.yaml")
		unsigned = f.repo.signedCommit("unsigned: grow the sandbox, drop alpha", map[string]string{
			"tenants/data-sandbox.yaml":  strings.Replace(sandbox, `cpu: "8"`, `cpu: "64"`, 1),
			"tenants/ml-team-alpha.yaml": "",
		}, nil)
		res := pass(t)
		if res.Revision != signed {
			t.Errorf("applied %s, want the verified %s", res.Revision, signed)
		}
		var sig *source.SignatureError
		if !errors.As(res.HeldBack, &sig) || sig.Commit != unsigned || sig.Reason != "is not signed" {
			t.Errorf("held back by %v, want the unsigned commit %s refused", res.HeldBack, unsigned)
		}
		for _, e := range res.Entries {
			if e.Action == reconcile.Deleted {
				t.Errorf("deleted %s", e)
			}
		}
		var quota corev1.ResourceQuota
		if err := f.client.Get(t.Context(), client.ObjectKey{Namespace: "tenant-data-sandbox", Name: "raas-quota"}, &quota); err != nil {
			t.Fatal(err)
		}
		if got := quota.Spec.Hard.Name("requests.cpu", "").String(); got != "8220m" {
			t.Errorf("data-sandbox requests.cpu = %s, want 8220m (the verified quota)", got)
		}
	})

	t.Run("says why in the Tenant status", func(t *testing.T) {
		for _, name := range []string{"data-sandbox", "ml-team-alpha"} {
			st := f.tenant(t, name).Status
			c := meta.FindStatusCondition(st.Conditions, "RevisionCurrent")
			if c == nil || c.Status != "False" || c.Reason != "UnverifiedCommit" || !strings.Contains(c.Message, "is not signed") {
				t.Errorf("%s: RevisionCurrent = %+v, want False, UnverifiedCommit, saying the commit is not signed", name, c)
			}
			if st.AppliedRevision != signed || st.ObservedRevision != unsigned || !strings.Contains(st.LastError, unsigned[:12]) {
				t.Errorf("%s: applied %s, observed %s, last error %q; want %s, %s and the refused commit named",
					name, st.AppliedRevision, st.ObservedRevision, st.LastError, signed, unsigned)
			}
			if st.Phase == v1alpha1.Failed || st.Phase == v1alpha1.Stalled {
				t.Errorf("%s: phase %s; the verified revision still applies", name, st.Phase)
			}
		}
	})

	t.Run("says why in an Event on each tenant's namespace, once", func(t *testing.T) {
		pass(t) // the same refusal again: no second Event
		var events corev1.EventList
		if err := f.client.List(t.Context(), &events, client.InNamespace("tenant-data-sandbox")); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range events.Items {
			if e.Reason == "UnverifiedCommit" && e.Type == corev1.EventTypeWarning && strings.Contains(e.Message, "stays at revision "+signed) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d UnverifiedCommit Events, want 1; events: %+v", n, events.Items)
		}
	})

	t.Run("applies the change once it is signed", func(t *testing.T) {
		resigned := f.repo.signedCommit("signed again", nil, key)
		res := pass(t)
		if res.Revision != resigned || res.HeldBack != nil {
			t.Fatalf("applied %s (held back: %v), want %s", res.Revision, res.HeldBack, resigned)
		}
		if st := f.tenant(t, "data-sandbox"); meta.FindStatusCondition(st.Status.Conditions, "RevisionCurrent").Status != "True" || st.Status.LastError != "" {
			t.Errorf("data-sandbox status %+v, want current and no error", st.Status)
		}
	})
}
