package daemon_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/api/v1alpha1"
	"github.com/raas-dev/raas/daemon"
	"github.com/raas-dev/raas/source"
)

// TestRun runs the daemon as `raas reconcile` assembles it, against a real host, and
// drives it only from outside: HTTP endpoints, a signed webhook, and the Tenant objects.
func TestRun(t *testing.T) {
	f := newFixture(t) // the host, its client and the repository; its own loop is unused
	gopts := source.DefaultGitOptions()
	gopts.URL, gopts.CacheDir = f.repo.dir, t.TempDir()
	src, err := source.NewGit(gopts)
	if err != nil {
		t.Fatal(err)
	}
	c := daemon.DefaultConfig()
	c.Loop = loopOptions(t, src, f.logs)
	c.Listen = freeAddress(t)
	c.PollInterval = 0 // only the start and the webhook trigger passes
	c.Webhook.GitHubSecret = webhookSecret
	c.Webhook.Branch = "main"

	first := f.repo.commit("nothing new", nil) // before the start, whose pass must apply it
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- daemon.Run(ctx, f.host.Config, c) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			t.Error("Run did not return within 2 minutes of its context ending")
		}
	})
	base := "http://" + c.Listen

	f.waitForTenantRevision(t, "ml-team-alpha", first)
	t.Run("ready after the first pass", func(t *testing.T) {
		// The pass writes Tenant status before it marks the loop ready.
		waitFor(t, "/readyz answering 200", time.Minute, func(context.Context) (bool, error) {
			code, _ := get(t, base+"/readyz")
			return code == http.StatusOK, nil
		})
	})
	t.Run("a signed webhook starts a pass of the new revision", func(t *testing.T) {
		second := f.repo.commit("a new tenant", map[string]string{
			"tenants/team-run.yaml": newTenantFile(f.repo.read("tenants/data-sandbox.yaml"), "team-run"),
		})
		if resp := signedPush(t, base+"/webhook", webhookSecret); resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK {
			t.Fatalf("webhook: %s", resp.Status)
		}
		f.waitForTenantRevision(t, "team-run", second)
	})
	t.Run("serves the status page and metrics", func(t *testing.T) {
		if code, body := get(t, base+"/status/"); code != http.StatusOK || !strings.Contains(body, "ml-team-alpha") {
			t.Errorf("/status/: %d, ml-team-alpha missing from:\n%s", code, body)
		}
		if code, body := get(t, base+"/metrics"); code != http.StatusOK || !strings.Contains(body, "raas_passes_total") {
			t.Errorf("/metrics: %d, no raas_passes_total in:\n%s", code, body)
		}
	})
	t.Run("a clean shutdown returns nil", func(t *testing.T) {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
			done <- nil // for the cleanup
		case <-time.After(2 * time.Minute):
			t.Fatal("Run did not return within 2 minutes of its context ending")
		}
	})
}

// waitForTenantRevision waits until tenant's Tenant object says revision was applied.
func (f *fixture) waitForTenantRevision(t *testing.T, tenant, revision string) {
	t.Helper()
	waitFor(t, tenant+" at "+revision[:12], 2*time.Minute, func(ctx context.Context) (bool, error) {
		var st v1alpha1.Tenant
		if err := f.client.Get(ctx, client.ObjectKey{Name: tenant}, &st); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		return st.Status.AppliedRevision == revision, nil
	})
}

// freeAddress is a loopback address with a port that was free a moment ago.
func freeAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	var resp *http.Response
	var err error
	for range 50 { // the listener may not be up yet
		if resp, err = http.Get(url); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}
