package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/raas-dev/raas/schema"
)

// StartHost starts a pristine host control plane for one test and stops it on cleanup.
// It fails the test, never skips it, when bin/ has not been built.
func StartHost(t testing.TB, opts ControlPlaneOptions) *ControlPlane {
	t.Helper()
	cp, err := StartControlPlane(t.Context(), opts)
	if err != nil {
		t.Fatalf("start host: %v", err)
	}
	t.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			t.Errorf("stop host: %v", err)
		}
	})
	t.Logf("host control plane started in %s", cp.StartupTime.Round(time.Millisecond))
	return cp
}

// shared is the host control plane shared by the tests of one test binary.
var shared struct {
	main bool
	once sync.Once
	cp   *ControlPlane
	err  error
}

// Main runs the tests of a package that calls Shared and then stops the shared host.
// Call it from TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
func Main(m *testing.M) {
	shared.main = true
	code := m.Run()
	if shared.cp != nil {
		if err := shared.cp.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: stop shared host: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// Shared returns the host control plane (default options) shared by every test in the
// test binary, starting it on first use. The package's TestMain must call Main, which
// stops it. Tests sharing it should work in their own Namespace.
func Shared(t testing.TB) *ControlPlane {
	t.Helper()
	if !shared.main {
		t.Fatal("testenv.Shared needs TestMain to call testenv.Main(m)")
	}
	shared.once.Do(func() {
		shared.cp, shared.err = StartControlPlane(context.Background(), DefaultControlPlaneOptions())
		if shared.err == nil {
			t.Logf("shared host control plane started in %s", shared.cp.StartupTime.Round(time.Millisecond))
		}
	})
	if shared.err != nil {
		t.Fatalf("start shared host: %v", shared.err)
	}
	return shared.cp
}

var notDNS = regexp.MustCompile(`[^a-z0-9]+`)

// Namespace creates a namespace named after the test with a random suffix and deletes
// it on cleanup. Unless StartHostControllers runs on the control plane, no namespace
// controller runs, so a deleted namespace stays Terminating with its objects; the unique
// name keeps tests apart regardless.
func (cp *ControlPlane) Namespace(t testing.TB) string {
	t.Helper()
	prefix := strings.Trim(notDNS.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(prefix) > 40 {
		prefix = strings.TrimRight(prefix[:40], "-")
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	if err := cp.Client.Create(t.Context(), ns); err != nil {
		t.Fatalf("namespace %s: %v", prefix, err)
	}
	t.Cleanup(func() {
		if err := cp.Client.Delete(context.Background(), ns); err != nil {
			t.Errorf("delete namespace %s: %v", ns.Name, err)
		}
	})
	return ns.Name
}

// StartVCluster starts a stand-in vcluster for release in the host namespace, writes
// its vc-<release> Secret there and stops it on cleanup.
func (cp *ControlPlane) StartVCluster(t testing.TB, namespace, release string, opts VClusterOptions) *VCluster {
	t.Helper()
	vc, err := StartVCluster(t.Context(), cp, namespace, release, opts)
	if err != nil {
		t.Fatalf("start %v", err)
	}
	t.Cleanup(func() {
		if err := vc.Stop(); err != nil {
			t.Errorf("stop vcluster %s/%s: %v", namespace, release, err)
		}
	})
	t.Logf("stand-in vcluster %s/%s started in %s", namespace, release, vc.StartupTime.Round(time.Millisecond))
	return vc
}

// StartVClusters starts a stand-in vcluster for each of names at once, in the host
// namespace and under the release name that place gives for it, and stops them on
// cleanup. It returns them keyed by name.
func (cp *ControlPlane) StartVClusters(t testing.TB, names []string, place func(name string) (namespace, release string), opts VClusterOptions) map[string]*VCluster {
	t.Helper()
	begin := time.Now()
	var mu sync.Mutex
	var errs []error
	vcs := map[string]*VCluster{}
	var wg sync.WaitGroup
	for _, name := range names {
		namespace, release := place(name)
		wg.Go(func() {
			vc, err := StartVCluster(t.Context(), cp, namespace, release, opts)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			vcs[name] = vc
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, vc := range vcs {
			if err := vc.Stop(); err != nil {
				t.Errorf("stop vcluster %s/%s: %v", vc.HostNamespace, vc.Release, err)
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("start %v", err)
	}
	t.Logf("%d stand-in vclusters started in %s", len(vcs), time.Since(begin).Round(time.Millisecond))
	return vcs
}

// WriteKubeConfigFile writes the control plane's kubeconfig into the test's temporary
// directory and returns its path.
func (cp *ControlPlane) WriteKubeConfigFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := cp.WriteKubeConfig(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// StartHostControllers starts kube-controller-manager, kube-scheduler and kwok on the
// control plane with the Nodes of platform (see StartHostControllers), and stops them on
// cleanup. It fails the test, never skips it, when bin/ lacks them.
func (cp *ControlPlane) StartHostControllers(t testing.TB, platform *schema.Platform, opts HostControllersOptions) *HostControllers {
	t.Helper()
	h, err := StartHostControllers(t.Context(), cp, platform, opts)
	if err != nil {
		t.Fatalf("start host controllers: %v", err)
	}
	t.Cleanup(func() {
		if err := h.Stop(); err != nil {
			t.Errorf("stop host controllers: %v", err)
		}
	})
	t.Logf("host controllers and %d kwok nodes started in %s", len(h.Nodes), h.StartupTime.Round(time.Millisecond))
	return h
}
