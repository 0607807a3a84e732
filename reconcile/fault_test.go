package reconcile_test

import (
	"net"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/reconcile"
	"github.com/raas-dev/raas/render"
	"github.com/raas-dev/raas/schema"
)

// silentServer accepts connections and never answers, like an API server whose process
// hangs or a load balancer in front of nothing.
func silentServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "https://" + l.Addr().String()
}

// exportKubeConfig writes the kubeconfig Secret of a vcluster at server, as vcluster would.
func exportKubeConfig(t *testing.T, host *testenv.ControlPlane, namespace, release, server string) {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["vc"] = &clientcmdapi.Cluster{Server: server, InsecureSkipTLSVerify: true}
	cfg.AuthInfos["vc"] = &clientcmdapi.AuthInfo{Token: "never-checked"}
	cfg.Contexts["vc"] = &clientcmdapi.Context{Cluster: "vc", AuthInfo: "vc"}
	cfg.CurrentContext = "vc"
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	ensureNamespace(t, host.Client, namespace)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: testenv.SecretName(release)},
		Data:       map[string][]byte{"config": data},
	}
	if err := host.Client.Create(t.Context(), secret); err != nil {
		t.Fatal(err)
	}
}

// TestSilentVCluster gives one tenant a vcluster API that accepts connections and never
// answers: the pass does not wait on it past the vcluster timeout, the tenant is
// Progressing, and the tenant beside it, whose vcluster answers, converges.
func TestSilentVCluster(t *testing.T) {
	host := testenv.Shared(t)
	const prefix = "silent-"
	repo := exampleRepo(t, prefix)
	repo.remove("tenants/vision-team.yaml")
	repo.remove("tenants/vision-team-next.yaml")
	res := repo.render()
	if !res.OK() {
		t.Fatalf("render: %v %v", res.Repo.Problems, res.Failed)
	}
	const silent, live = "data-sandbox", "ml-team-alpha"
	exportKubeConfig(t, host, prefix+silent, schema.Release(silent), silentServer(t))
	host.StartVCluster(t, prefix+live, schema.Release(live), testenv.DefaultVClusterOptions())
	const timeout = 3 * time.Second
	r, _, _ := newReconciler(t, host, timeout)

	check := func(t *testing.T, out *reconcile.Result, elapsed time.Duration) {
		t.Helper()
		if st := out.Tenant(silent); st == nil || st.Health != reconcile.HealthProgressing {
			t.Errorf("%s: %+v, want Progressing", silent, st)
		}
		applied := 0
		for _, e := range out.Select(live, render.Virtual) {
			if e.Action == reconcile.Failed || e.Action == reconcile.Skipped {
				t.Errorf("%s: %s", live, e)
			}
			applied++
		}
		if applied == 0 {
			t.Errorf("%s: no virtual objects in the result", live)
		}
		t.Logf("pass took %s with a vcluster timeout of %s", elapsed.Round(time.Millisecond), timeout)
	}
	t.Run("the first pass converges the other tenant", func(t *testing.T) {
		begin := time.Now()
		out := apply(t, r, res)
		check(t, out, time.Since(begin))
	})
	t.Run("a pass with nothing else to do ends soon after the timeout", func(t *testing.T) {
		begin := time.Now()
		out := apply(t, r, res)
		elapsed := time.Since(begin)
		check(t, out, elapsed)
		// One attempt used to take 10s whatever the timeout.
		if limit := timeout + 4*time.Second; elapsed > limit {
			t.Errorf("the pass took %s, more than %s", elapsed.Round(time.Millisecond), limit)
		}
	})
}
