package daemon_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/api/v1alpha1"
	"github.com/raas-dev/raas/daemon"
	"github.com/raas-dev/raas/internal/exampletest"
	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/internal/trigger"
	"github.com/raas-dev/raas/reconcile"
	"github.com/raas-dev/raas/render/catalog"
	"github.com/raas-dev/raas/source"
)

const webhookSecret = "webhook-secret-for-tests"

// gitRepo is a tenants repository on disk, made from examples/, that tests commit to.
type gitRepo struct {
	t    testing.TB
	dir  string
	repo *git.Repository
}

func newGitRepo(t testing.TB) *gitRepo {
	t.Helper()
	dir := exampletest.Dir(t)
	repo, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: "refs/heads/main"},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &gitRepo{t: t, dir: dir, repo: repo}
	r.commit("examples", nil)
	return r
}

// commit writes files (an empty content removes one) and commits everything, unsigned.
func (r *gitRepo) commit(msg string, files map[string]string) string {
	r.t.Helper()
	return r.signedCommit(msg, files, nil)
}

func (r *gitRepo) read(name string) string {
	data, err := os.ReadFile(filepath.Join(r.dir, name))
	if err != nil {
		r.t.Fatal(err)
	}
	return string(data)
}

// fixture is a host control plane with raas's CRD, a tenants repository, and a loop.
type fixture struct {
	host    *testenv.ControlPlane
	client  client.Client
	repo    *gitRepo
	loop    *daemon.Loop
	metrics *daemon.Metrics
	logs    *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func hostOptions(t testing.TB) testenv.ControlPlaneOptions {
	t.Helper()
	crds := exampletest.Path(t, "deploy", "crds")
	opts := testenv.DefaultControlPlaneOptions()
	opts.CRDDirs = append(opts.CRDDirs, crds)
	return opts
}

func loopOptions(t testing.TB, src source.Source, logs *syncBuffer) daemon.Options {
	t.Helper()
	cat := exampletest.Catalog(t)
	opts := daemon.DefaultOptions()
	opts.Source = src
	opts.Catalog = catalog.Options{Dirs: []string{cat}, CacheDir: t.TempDir()}
	// No stand-in vclusters here: tenants stop at the host level, Progressing.
	opts.Reconcile.VClusterTimeout = time.Second
	opts.RetryBase, opts.RetryMax = time.Hour, time.Hour // no retries during a test
	opts.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.Metrics = daemon.NewMetrics()
	return opts
}

// newFixture returns a fixture whose loop has loopOptions changed by each of with.
func newFixture(t *testing.T, with ...func(*daemon.Options)) *fixture {
	t.Helper()
	host := testenv.StartHost(t, hostOptions(t))
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(host.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	repo := newGitRepo(t)
	gopts := source.DefaultGitOptions()
	gopts.URL, gopts.CacheDir = repo.dir, t.TempDir()
	src, err := source.NewGit(gopts)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	opts := loopOptions(t, src, logs)
	for _, w := range with {
		w(&opts)
	}
	l, err := daemon.New(host.Config, opts)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{host: host, client: c, repo: repo, loop: l, metrics: opts.Metrics, logs: logs}
}

// run starts the loop until the test ends.
func (f *fixture) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.loop.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, timeout, true, cond); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// waitQuiet waits until no pass has run or been asked for in a second.
func (f *fixture) waitQuiet(t *testing.T) {
	t.Helper()
	last, since := f.loop.Last(), time.Now()
	waitFor(t, "the loop to be quiet", time.Minute, func(context.Context) (bool, error) {
		if now := f.loop.Last(); now != last || f.loop.Trigger().Pending() {
			last, since = now, time.Now()
		}
		return time.Since(since) > time.Second, nil
	})
}

// waitForRevision waits until a pass has applied revision.
func (f *fixture) waitForRevision(t *testing.T, revision string) *reconcile.Result {
	t.Helper()
	waitFor(t, "a pass of "+revision[:12], 2*time.Minute, func(context.Context) (bool, error) {
		last := f.loop.Last()
		return last != nil && last.Revision == revision, nil
	})
	return f.loop.Last()
}

func (f *fixture) tenant(t *testing.T, name string) *v1alpha1.Tenant {
	t.Helper()
	var st v1alpha1.Tenant
	if err := f.client.Get(t.Context(), client.ObjectKey{Name: name}, &st); err != nil {
		t.Fatalf("tenant %s: %v", name, err)
	}
	return &st
}

func signedPush(t *testing.T, url, secret string) *http.Response {
	t.Helper()
	body := []byte(`{"ref":"refs/heads/main"}`)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", "test")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func newTenantFile(base, name string) string {
	return strings.Replace(base, "name: data-sandbox", "name: "+name, 1)
}

func TestLoop(t *testing.T) {
	f := newFixture(t)
	webhook, err := trigger.NewWebhook(f.loop.Trigger(), trigger.WebhookOptions{GitHubSecret: webhookSecret, MaxBodyBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(daemon.Handler(nil, webhook, f.loop.Ready))
	defer srv.Close()
	first := f.repo.commit("nothing new", nil)
	f.run(t) // no poller: only the webhook and the test trigger passes
	f.waitForRevision(t, first)

	t.Run("reports every tenant in a Tenant object", func(t *testing.T) {
		for _, name := range []string{"data-sandbox", "ml-team-alpha", "vision-team", "vision-team-next"} {
			st := f.tenant(t, name)
			if st.Status.Phase != v1alpha1.Progressing || st.Status.AppliedRevision != first {
				t.Errorf("%s: phase %s, revision %s; want Progressing (no vcluster runs) at %s", name, st.Status.Phase, st.Status.AppliedRevision, first)
			}
		}
	})

	t.Run("applies a commit that adds a tenant as soon as the webhook fires", func(t *testing.T) {
		rev := f.repo.commit("add new-team", map[string]string{
			"tenants/new-team.yaml": newTenantFile(f.repo.read("tenants/data-sandbox.yaml"), "new-team"),
		})
		if resp := signedPush(t, srv.URL+"/webhook", webhookSecret); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("webhook answered %s", resp.Status)
		}
		f.waitForRevision(t, rev)
		var ns corev1.Namespace
		if err := f.client.Get(t.Context(), client.ObjectKey{Name: "tenant-new-team"}, &ns); err != nil {
			t.Fatalf("namespace of the new tenant: %v", err)
		}
		if st := f.tenant(t, "new-team"); st.Status.ObservedRevision != rev {
			t.Errorf("new-team observed %s, want %s", st.Status.ObservedRevision, rev)
		}
	})

	t.Run("rejects a webhook with a wrong signature and runs no pass", func(t *testing.T) {
		// The watch starts a pass for the tenants the last one wrote to; wait it out.
		f.waitQuiet(t)
		before := f.loop.Last()
		if resp := signedPush(t, srv.URL+"/webhook", "not-the-secret"); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("webhook answered %s, want 403 Forbidden", resp.Status)
		}
		if f.loop.Trigger().Pending() || f.loop.Last() != before {
			t.Error("a pass was triggered")
		}
	})

	t.Run("keeps converging the others and prunes nothing when a commit breaks one tenant", func(t *testing.T) {
		sandbox := f.repo.read("tenants/data-sandbox.yaml")
		rev := f.repo.commit("break alpha, grow the sandbox", map[string]string{
			"tenants/ml-team-alpha.yaml": f.repo.read("tenants/ml-team-alpha.yaml") + "  oops: true\n",
			"tenants/data-sandbox.yaml":  strings.Replace(sandbox, `cpu: "8"`, `cpu: "10"`, 1),
		})
		f.loop.Trigger().Trigger("test")
		res := f.waitForRevision(t, rev)
		var quota corev1.ResourceQuota
		if err := f.client.Get(t.Context(), client.ObjectKey{Namespace: "tenant-data-sandbox", Name: "raas-quota"}, &quota); err != nil {
			t.Fatal(err)
		}
		if got := quota.Spec.Hard.Name("requests.cpu", "").String(); got != "10220m" {
			t.Errorf("data-sandbox requests.cpu = %s, want 10220m (the new quota)", got)
		}
		for _, e := range res.Entries {
			if e.Action == reconcile.Deleted {
				t.Errorf("deleted %s", e)
			}
		}
		if res.PruneBlocked == "" {
			t.Error("pruning was not blocked")
		}
		var ns corev1.Namespace
		if err := f.client.Get(t.Context(), client.ObjectKey{Name: "tenant-ml-team-alpha"}, &ns); err != nil {
			t.Errorf("the broken tenant's namespace: %v", err)
		}
		if st := f.tenant(t, "ml-team-alpha"); st.Status.Phase != v1alpha1.Stalled || st.Status.AppliedRevision == rev {
			t.Errorf("ml-team-alpha: phase %s at %s; want Stalled, still at its last good revision", st.Status.Phase, st.Status.AppliedRevision)
		}
	})

	t.Run("keeps the last good revision when the remote is unreachable", func(t *testing.T) {
		good := f.loop.Last().Revision
		moved := f.repo.dir + ".gone"
		if err := os.Rename(f.repo.dir, moved); err != nil {
			t.Fatal(err)
		}
		defer os.Rename(moved, f.repo.dir)
		before := f.loop.Last()
		f.loop.Trigger().Trigger("test")
		waitFor(t, "a pass", time.Minute, func(context.Context) (bool, error) { return f.loop.Last() != before, nil })
		res := f.loop.Last()
		if res.Revision != good {
			t.Errorf("applied %s, want the last good %s", res.Revision, good)
		}
		if !strings.Contains(res.PruneBlocked, "fetching the newest revision failed") {
			t.Errorf("prune blocked = %q, want it blocked by the failed fetch", res.PruneBlocked)
		}
		if !strings.Contains(f.logs.String(), "keeping the last good revision") {
			t.Error("the logs do not say the last good revision is kept")
		}
	})
}

func TestLease(t *testing.T) {
	host := testenv.StartHost(t, testenv.DefaultControlPlaneOptions())
	ns := &corev1.Namespace{}
	ns.Name = "raas-system"
	if err := host.Client.Create(t.Context(), ns); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	active, most, led := 0, 0, map[string]int{}
	opts := daemon.DefaultLeaderOptions()
	opts.LeaseDuration, opts.RenewDeadline, opts.RetryPeriod = 2*time.Second, 1500*time.Millisecond, 200*time.Millisecond
	cancels := map[string]context.CancelFunc{}
	var wg sync.WaitGroup
	for _, id := range []string{"replica-a", "replica-b"} {
		ctx, cancel := context.WithCancel(context.Background())
		cancels[id] = cancel
		o := opts
		o.Identity = id
		wg.Go(func() {
			daemon.RunAsLeader(ctx, host.Config, o, func(ctx context.Context) {
				mu.Lock()
				active++
				led[id]++
				most = max(most, active)
				mu.Unlock()
				<-ctx.Done()
				mu.Lock()
				active--
				mu.Unlock()
			})
		})
	}
	defer func() {
		for _, c := range cancels {
			c()
		}
		wg.Wait()
	}()
	leader := func() string {
		mu.Lock()
		defer mu.Unlock()
		for id, n := range led {
			if n > 0 && active > 0 {
				return id
			}
		}
		return ""
	}
	waitFor(t, "a leader", 30*time.Second, func(context.Context) (bool, error) { return leader() != "", nil })
	first := leader()
	t.Run("never lets both replicas lead at once", func(t *testing.T) {
		time.Sleep(3 * opts.LeaseDuration) // both campaign all along
		mu.Lock()
		defer mu.Unlock()
		if most != 1 || len(led) != 1 {
			t.Errorf("at most %d led at once, %d distinct leaders; want exactly one", most, len(led))
		}
	})
	t.Run("hands over when the leader stops", func(t *testing.T) {
		cancels[first]()
		waitFor(t, "the other replica to lead", 30*time.Second, func(context.Context) (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			return len(led) == 2 && active == 1, nil
		})
		mu.Lock()
		defer mu.Unlock()
		if most != 1 {
			t.Errorf("%d replicas led at once", most)
		}
	})
}

func TestCredentialsStayOutOfLogs(t *testing.T) {
	const token = "ghp_SuperSecretToken123"
	host := testenv.StartHost(t, hostOptions(t))
	gopts := source.DefaultGitOptions()
	gopts.URL = "http://raas:" + token + "@127.0.0.1:1/tenants.git"
	gopts.Credentials = source.Credentials{Token: token}
	gopts.CacheDir = t.TempDir()
	gopts.Timeout = 5 * time.Second
	src, err := source.NewGit(gopts)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	opts := loopOptions(t, src, logs)
	gopts.Logger = opts.Logger
	l, err := daemon.New(host.Config, opts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Pass(t.Context(), "test")
	if err == nil {
		t.Fatal("a pass against an unreachable remote succeeded")
	}
	for what, text := range map[string]string{"error": err.Error(), "logs": logs.String(), "source": src.String()} {
		if strings.Contains(text, token) {
			t.Errorf("the %s show the token: %s", what, text)
		}
	}
	if !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("the error does not say which remote failed: %v", err)
	}
}

// TestLoopBridge runs the loop with a stand-in vcluster for ml-team-alpha and checks that
// a PodGroup made inside reaches the host on the tenant's queue.
func TestLoopBridge(t *testing.T) {
	f := newFixture(t)
	vc := f.host.StartVCluster(t, "tenant-ml-team-alpha", "ml-team-alpha", testenv.DefaultVClusterOptions())
	f.run(t)
	waitFor(t, "the first pass", 2*time.Minute, func(context.Context) (bool, error) { return f.loop.Ready(), nil })

	pg := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "scheduling.volcano.sh/v1beta1", "kind": "PodGroup",
		"metadata": map[string]any{"name": "ray-demo-pg", "namespace": "default"},
		"spec":     map[string]any{"minMember": int64(3), "queue": "someone-elses"},
	}}
	// raas applied the PodGroup CRD inside the vcluster; create the PodGroup once it serves.
	waitFor(t, "the PodGroup CRD in the vcluster", time.Minute, func(ctx context.Context) (bool, error) {
		return vc.Client.Create(ctx, pg.DeepCopy()) == nil, nil
	})
	t.Run("mirrors a PodGroup made inside the vcluster onto the tenant's queue", func(t *testing.T) {
		host := &unstructured.Unstructured{}
		host.SetAPIVersion("scheduling.volcano.sh/v1beta1")
		host.SetKind("PodGroup")
		waitFor(t, "the host copy", time.Minute, func(ctx context.Context) (bool, error) {
			err := f.client.Get(ctx, client.ObjectKey{Namespace: "tenant-ml-team-alpha", Name: "ray-demo-pg"}, host)
			return err == nil, nil
		})
		if q, _, _ := unstructured.NestedString(host.Object, "spec", "queue"); q != "tenant-ml-team-alpha" {
			t.Errorf("host copy on queue %q, want tenant-ml-team-alpha", q)
		}
	})
	t.Run("reports the bridge in the tenant's status", func(t *testing.T) {
		f.loop.Trigger().Trigger("test")
		waitFor(t, "the status to count the PodGroup", time.Minute, func(ctx context.Context) (bool, error) {
			var st v1alpha1.Tenant
			if err := f.client.Get(ctx, client.ObjectKey{Name: "ml-team-alpha"}, &st); err != nil {
				return false, nil
			}
			return st.Status.PodGroups != nil && st.Status.PodGroups.Mirrored == 1, nil
		})
	})
}

func TestEvents(t *testing.T) {
	f := newFixture(t)
	if _, err := f.loop.Pass(t.Context(), "test"); err != nil {
		t.Fatal(err)
	}
	var events corev1.EventList
	if err := f.client.List(t.Context(), &events, client.InNamespace("tenant-ml-team-alpha")); err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		if e.Source.Component == "raas" && e.Reason == string(v1alpha1.Progressing) && strings.Contains(e.Message, "ml-team-alpha is Progressing") {
			return
		}
	}
	t.Errorf("no raas Event on the tenant's namespace; events: %+v", events.Items)
}

func TestEndpoints(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(daemon.Handler(f.metrics, nil, f.loop.Ready))
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	t.Run("is alive at once and ready only after a pass", func(t *testing.T) {
		if code, _ := get("/healthz"); code != http.StatusOK {
			t.Errorf("/healthz: %d", code)
		}
		if code, _ := get("/readyz"); code != http.StatusServiceUnavailable {
			t.Errorf("/readyz before a pass: %d, want 503", code)
		}
		if _, err := f.loop.Pass(t.Context(), "test"); err != nil {
			t.Fatal(err)
		}
		if code, _ := get("/readyz"); code != http.StatusOK {
			t.Errorf("/readyz after a pass: %d", code)
		}
	})
	t.Run("serves raas metrics", func(t *testing.T) {
		_, body := get("/metrics")
		for _, name := range []string{"raas_tenants", "raas_render_cache_total", "raas_git_fetch_duration_seconds",
			"raas_git_fetch_errors_total", "raas_apply_actions_total", "raas_passes_total", "raas_reconcile_duration_seconds"} {
			if !strings.Contains(body, name) {
				t.Errorf("/metrics lacks %s", name)
			}
		}
	})
}

// TestForwardToLeader sends a signed webhook to a standby, which must hand it to the
// leader named in the Lease.
func TestForwardToLeader(t *testing.T) {
	host := testenv.StartHost(t, testenv.DefaultControlPlaneOptions())
	leaderTrigger, standbyTrigger := trigger.New(), trigger.New()
	opts := trigger.WebhookOptions{GitHubSecret: webhookSecret, MaxBodyBytes: 1 << 20}
	leaderHook, err := trigger.NewWebhook(leaderTrigger, opts)
	if err != nil {
		t.Fatal(err)
	}
	standbyHook, err := trigger.NewWebhook(standbyTrigger, opts)
	if err != nil {
		t.Fatal(err)
	}
	leader := httptest.NewServer(daemon.Handler(nil, leaderHook, nil))
	defer leader.Close()
	lo := daemon.DefaultLeaderOptions()
	lo.Identity = "standby_127.0.0.1:1"
	standby := httptest.NewServer(daemon.Handler(nil,
		daemon.ForwardToLeader(standbyHook, func() bool { return false }, host.Config, lo, slog.New(slog.DiscardHandler)), nil))
	defer standby.Close()

	t.Run("answers 503 while there is no leader", func(t *testing.T) {
		if resp := signedPush(t, standby.URL+"/webhook", webhookSecret); resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("standby answered %s, want 503", resp.Status)
		}
	})
	ns := &corev1.Namespace{}
	ns.Name = lo.Namespace
	if err := host.Client.Create(t.Context(), ns); err != nil {
		t.Fatal(err)
	}
	holder := "leader_" + strings.TrimPrefix(leader.URL, "http://")
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: lo.Namespace, Name: lo.Name},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder},
	}
	if err := host.Client.Create(t.Context(), lease); err != nil {
		t.Fatal(err)
	}
	t.Run("hands a webhook to the leader", func(t *testing.T) {
		if resp := signedPush(t, standby.URL+"/webhook", webhookSecret); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("standby answered %s, want the leader's 202", resp.Status)
		}
		if !leaderTrigger.Pending() || standbyTrigger.Pending() {
			t.Errorf("leader triggered %v, standby triggered %v; want only the leader", leaderTrigger.Pending(), standbyTrigger.Pending())
		}
	})
	t.Run("passes a wrong signature on, and the leader refuses it", func(t *testing.T) {
		leaderTrigger.Wait(t.Context())
		if resp := signedPush(t, standby.URL+"/webhook", "wrong"); resp.StatusCode != http.StatusForbidden {
			t.Errorf("answered %s, want 403", resp.Status)
		}
		if leaderTrigger.Pending() {
			t.Error("a mis-signed webhook triggered the leader")
		}
	})
}
