package reconcile_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sschema "k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/yaml"

	"github.com/raas-dev/raas/internal/exampletest"
	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/reconcile"
	"github.com/raas-dev/raas/render"
	"github.com/raas-dev/raas/render/catalog"
	"github.com/raas-dev/raas/schema"
)

func TestMain(m *testing.M) {
	// controller-runtime's clients log through a global logger; without one they print a
	// warning with a stack trace.
	log.SetLogger(logr.Discard())
	testenv.Main(m)
}

// repo is a copy of examples/ that a test may change, with its own namespace prefix so
// that tests sharing one host do not meet.
type repo struct {
	t   testing.TB
	dir string
}

// exampleRepo copies examples/ into a temporary directory, giving its tenants the host
// namespace prefix prefix.
func exampleRepo(t testing.TB, prefix string) *repo {
	t.Helper()
	dir := exampletest.Dir(t)
	r := &repo{t: t, dir: dir}
	r.edit("raas.yaml", "namespacePrefix: tenant-", "namespacePrefix: "+prefix)
	return r
}

// edit replaces old with new in the repository file name, which must contain old.
func (r *repo) edit(name, old, new string) {
	r.t.Helper()
	path := filepath.Join(r.dir, name)
	data, err := os.ReadFile(path)
	if err != nil {
		r.t.Fatal(err)
	}
	if !strings.Contains(string(data), old) {
		r.t.Fatalf("%s does not contain %q", name, old)
	}
	r.write(name, strings.Replace(string(data), old, new, 1))
}

func (r *repo) write(name, content string) {
	r.t.Helper()
	path := filepath.Join(r.dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// set sets the field at path of the repository YAML file name to value. Comments are lost.
func (r *repo) set(name string, value any, path ...string) {
	r.t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(r.read(name)), &doc); err != nil {
		r.t.Fatal(err)
	}
	m := doc
	for _, key := range path[:len(path)-1] {
		next, ok := m[key].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[key] = next
		}
		m = next
	}
	m[path[len(path)-1]] = value
	data, err := yaml.Marshal(doc)
	if err != nil {
		r.t.Fatal(err)
	}
	r.write(name, string(data))
}

func (r *repo) read(name string) string {
	r.t.Helper()
	data, err := os.ReadFile(filepath.Join(r.dir, name))
	if err != nil {
		r.t.Fatal(err)
	}
	return string(data)
}

func (r *repo) removeAll(name string) {
	r.t.Helper()
	if err := os.RemoveAll(filepath.Join(r.dir, name)); err != nil {
		r.t.Fatal(err)
	}
}

func (r *repo) remove(name string) {
	r.t.Helper()
	if err := os.Remove(filepath.Join(r.dir, name)); err != nil {
		r.t.Fatal(err)
	}
}

// render renders the repository with the catalog that `make catalog` fills.
func (r *repo) render() *render.Result {
	r.t.Helper()
	return renderDir(r.t, r.dir)
}

// renderOK renders the repository and fails the test unless every tenant renders.
func (r *repo) renderOK() *render.Result {
	r.t.Helper()
	res := r.render()
	if !res.OK() {
		r.t.Fatalf("render: %v %v", res.Repo.Problems, res.Failed)
	}
	return res
}

func renderDir(t testing.TB, dir string) *render.Result {
	t.Helper()
	return renderDirAt(t, dir, time.Now())
}

// renderDirAt renders dir with sandbox expiry judged at now.
func renderDirAt(t testing.TB, dir string, now time.Time) *render.Result {
	t.Helper()
	cat := exampletest.Catalog(t)
	opts := render.DefaultOptions()
	opts.Catalog = catalog.Options{Dirs: []string{cat}}
	opts.Now = func() time.Time { return now }
	res, err := render.Repo(os.DirFS(dir), dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// counter counts the requests that go through it: reads, and writes that are not dry runs.
type counter struct {
	reads, writes, dryRuns atomic.Int64
	mu                     sync.Mutex
	written                []string
}

func (c *counter) wrap(rt http.RoundTripper) http.RoundTripper {
	return testenv.RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
		switch {
		case req.Method == http.MethodGet || req.Method == http.MethodHead:
			c.reads.Add(1)
		case req.URL.Query().Has("dryRun"):
			c.dryRuns.Add(1)
		default:
			c.writes.Add(1)
			c.mu.Lock()
			c.written = append(c.written, req.Method+" "+req.URL.Path)
			c.mu.Unlock()
		}
		return rt.RoundTrip(req)
	})
}

func (c *counter) reset() {
	c.reads.Store(0)
	c.writes.Store(0)
	c.dryRuns.Store(0)
	c.mu.Lock()
	c.written = nil
	c.mu.Unlock()
}

func (c *counter) writesList() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.written...)
}

// newReconciler returns a reconciler on host with its own inventory namespace, short
// waits, and a request counter.
func newReconciler(t testing.TB, host *testenv.ControlPlane, vclusterTimeout time.Duration) (*reconcile.Reconciler, *counter, reconcile.Options) {
	t.Helper()
	// Volcano's namespace, where the platform's scheduler ConfigMap goes.
	ensureNamespace(t, host.Client, "volcano-system")
	return newReconcilerIn(t, host, host.Namespace(t), vclusterTimeout)
}

// newReconcilerIn returns a reconciler on host that keeps its inventories in namespace
// (raas creates it if missing), with short waits and a request counter.
func newReconcilerIn(t testing.TB, host *testenv.ControlPlane, namespace string, vclusterTimeout time.Duration) (*reconcile.Reconciler, *counter, reconcile.Options) {
	t.Helper()
	c := &counter{}
	opts := reconcile.DefaultOptions()
	opts.InventoryNamespace = namespace
	opts.VClusterTimeout = vclusterTimeout
	opts.PollInterval = 100 * time.Millisecond
	opts.WaitTimeout = 2 * time.Minute // a bound, not a goal: 1.3 MB KubeRay CRDs take long to be established on a busy 2-core machine
	opts.WrapTransport = c.wrap
	r, err := reconcile.New(host.Config, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r, c, opts
}

func apply(t testing.TB, r *reconcile.Reconciler, res *render.Result) *reconcile.Result {
	t.Helper()
	out, err := r.Apply(t.Context(), reconcile.Input{Render: res, Revision: "test"})
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	for _, e := range out.Entries {
		if e.Action == reconcile.Failed {
			t.Errorf("apply: %s", e)
		}
	}
	return out
}

// get reads obj's live state into a fresh object, or returns nil if it does not exist.
func get(t testing.TB, c client.Client, o *render.Object) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(o.GroupVersionKind())
	err := c.Get(context.Background(), client.ObjectKeyFromObject(o.Unstructured), u)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("get %s: %v", o.ID(), err)
	}
	return u
}

// ensureNamespace creates a namespace that tests share, such as volcano-system.
func ensureNamespace(t testing.TB, c client.Client, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := c.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// actions returns the action of each entry, keyed by its String without the action.
func actions(entries []reconcile.Entry) map[string]reconcile.Action {
	m := map[string]reconcile.Action{}
	for _, e := range entries {
		m[string(e.Target)+" "+e.Ref.String()] = e.Action
	}
	return m
}

func schemaGVK(group, version, kind string) k8sschema.GroupVersionKind {
	return k8sschema.GroupVersionKind{Group: group, Version: version, Kind: kind}
}

// shareVCluster makes one stand-in vcluster answer for every tenant in names: it copies
// the stand-in's kubeconfig Secret into each tenant's host namespace under the tenant's
// release name. Tenants on different KubeRay versions then take turns owning its CRDs, so
// it suits tests that apply once, and benchmarks of identical tenants.
func shareVCluster(t testing.TB, host *testenv.ControlPlane, vc *testenv.VCluster, prefix string, names []string) {
	t.Helper()
	ctx := context.Background()
	var secret corev1.Secret
	if err := host.Client.Get(ctx, client.ObjectKey{Namespace: vc.HostNamespace, Name: testenv.SecretName(vc.Release)}, &secret); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		ensureNamespace(t, host.Client, prefix+name)
		copied := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: prefix + name, Name: testenv.SecretName(schema.Release(name)), Labels: secret.Labels},
			Type:       secret.Type,
			Data:       secret.Data,
		}
		if err := host.Client.Create(ctx, copied); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
}

func tenantNames(res *render.Result) []string {
	var names []string
	for _, out := range res.Tenants {
		names = append(names, out.Tenant)
	}
	return names
}
