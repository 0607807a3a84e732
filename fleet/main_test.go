package fleet_test

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/raas-dev/raas/fleet"
	"github.com/raas-dev/raas/internal/exampletest"
	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/reconcile"
	"github.com/raas-dev/raas/render"
	"github.com/raas-dev/raas/render/catalog"
)

func TestMain(m *testing.M) {
	log.SetLogger(logr.Discard())
	os.Exit(m.Run())
}

// twoClusters declares cluster a, the one raas runs in, with the H100 pool, and cluster
// b, reached through the kubeconfig Secret cluster-b, with the A10 pool.
const twoClusters = `  clusters:
    - name: a
      capacity: {gpu: 16}
      pools: [h100]
    - name: b
      kubeconfig: {name: cluster-b}
      capacity: {gpu: 16}
      pools: [a10]
`

// env is two host control planes, a fleet whose home is a, and a log of the requests
// each host received.
type env struct {
	a, b  *testenv.ControlPlane
	fleet *fleet.Fleet
	log   *requestLog
	dir   string
}

// request is one request a host received, with when it was sent and answered.
type request struct {
	host, method, path, query string
	start, end                time.Time
}

type requestLog struct {
	mu   sync.Mutex
	reqs []request
}

func (l *requestLog) wrap(rt http.RoundTripper) http.RoundTripper {
	return testenv.RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
		start := time.Now()
		resp, err := rt.RoundTrip(req)
		l.mu.Lock()
		l.reqs = append(l.reqs, request{host: req.URL.Host, method: req.Method, path: req.URL.Path, query: req.URL.RawQuery, start: start, end: time.Now()})
		l.mu.Unlock()
		return resp, err
	})
}

// take returns the requests logged since the last take.
func (l *requestLog) take() []request {
	l.mu.Lock()
	defer l.mu.Unlock()
	reqs := l.reqs
	l.reqs = nil
	return reqs
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{log: &requestLog{}}
	e.a = testenv.StartHost(t, testenv.DefaultControlPlaneOptions())
	e.b = testenv.StartHost(t, testenv.DefaultControlPlaneOptions())
	for _, cp := range []*testenv.ControlPlane{e.a, e.b} {
		for _, ns := range []string{"volcano-system", reconcile.SystemNamespace} {
			if err := cp.Client.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cluster-b", Namespace: reconcile.SystemNamespace},
		Data: map[string][]byte{"kubeconfig": e.b.KubeConfig}}
	if err := e.a.Client.Create(t.Context(), secret); err != nil {
		t.Fatal(err)
	}
	var err error
	opts := reconcile.DefaultOptions()
	opts.VClusterTimeout = time.Second
	opts.PollInterval = 100 * time.Millisecond
	opts.WaitTimeout = 2 * time.Minute
	opts.WrapTransport = e.log.wrap
	if e.fleet, err = fleet.New(e.a.Config, opts); err != nil {
		t.Fatal(err)
	}
	e.dir = exampletest.Dir(t)
	e.edit(t, "raas.yaml", "  capacity:\n", twoClusters+"  capacity:\n")
	return e
}

// edit replaces old with new in the repository file name.
func (e *env) edit(t *testing.T, name, old, new string) {
	t.Helper()
	path := filepath.Join(e.dir, name)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), old) {
		t.Fatalf("%s does not contain %q", name, old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(data), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (e *env) render(t *testing.T) *render.Result {
	t.Helper()
	opts := render.DefaultOptions()
	opts.Catalog = catalog.Options{Dirs: []string{exampletest.Catalog(t)}}
	res, err := render.Repo(os.DirFS(e.dir), e.dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (e *env) apply(t *testing.T) *reconcile.Result {
	t.Helper()
	res := e.render(t)
	if !res.OK() {
		t.Fatalf("render: %v %v", res.Repo.Problems, res.Failed)
	}
	out, err := e.fleet.Apply(t.Context(), reconcile.Input{Render: res, Revision: "test"})
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	for _, err := range out.Errors {
		t.Errorf("apply: %v", err)
	}
	for _, en := range out.Entries {
		if en.Action == reconcile.Failed {
			t.Errorf("apply: %s on %s", en, en.Cluster)
		}
	}
	return out
}

// host returns the control plane of the cluster called name.
func (e *env) host(name string) *testenv.ControlPlane {
	if name == "a" {
		return e.a
	}
	return e.b
}

// hostOf is the address requests to cp go to.
func hostOf(cp *testenv.ControlPlane) string {
	u, err := url.Parse(cp.Config.Host)
	if err != nil {
		return cp.Config.Host
	}
	return u.Host
}

// exists reports whether the namespace, or the object in it, exists on cp.
func exists(t *testing.T, cp *testenv.ControlPlane, obj client.Object, namespace, name string) bool {
	t.Helper()
	err := cp.Client.Get(t.Context(), client.ObjectKey{Namespace: namespace, Name: name}, obj)
	if apierrors.IsNotFound(err) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// markReady writes the statuses the StatefulSet and Deployment controllers would: no
// controller runs on these hosts.
func markReady(ctx context.Context, t *testing.T, host, vc client.Client, namespace, release string) {
	t.Helper()
	if err := testenv.MarkStatefulSetReady(ctx, host, namespace, release); err != nil {
		t.Fatal(err)
	}
	if vc == nil {
		return
	}
	if err := testenv.MarkDeploymentAvailable(ctx, vc, render.KubeRayNamespace, "kuberay-operator"); err != nil {
		t.Fatal(err)
	}
}
