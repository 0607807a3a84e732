package reconcile_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
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
	res := repo.renderOK()
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

// overloadProxy sits in front of a real API server and answers every fourth write
// itself, in turn 429 Too Many Requests and 503 Service Unavailable, both with
// Retry-After: 1, as an overloaded API server does (API Priority and Fairness, or a
// restarting server behind a load balancer).
type overloadProxy struct {
	mu       sync.Mutex
	n        int
	injected map[string]time.Time // method and URI of the refused requests, when refused
	gaps     []retry              // from each refusal to the same request's next try
	statuses map[int]int
}

func newOverloadProxy(t *testing.T, upstream *rest.Config) (*overloadProxy, *rest.Config) {
	t.Helper()
	target, err := url.Parse(upstream.Host)
	if err != nil {
		t.Fatal(err)
	}
	transport, err := rest.TransportFor(upstream)
	if err != nil {
		t.Fatal(err)
	}
	p := &overloadProxy{injected: map[string]time.Time{}, statuses: map[int]int{}}
	proxy := &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(target) },
		Transport: transport,
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if code := p.refuse(req); code != 0 {
			w.Header().Set("Retry-After", "1")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			reason := map[int]string{http.StatusTooManyRequests: "TooManyRequests", http.StatusServiceUnavailable: "ServiceUnavailable"}[code]
			fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"overloaded","reason":%q,"code":%d}`, reason, code)
			return
		}
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		t.Logf("overload proxy: %d requests, refused %v", p.n, p.statuses)
	})
	return p, &rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
}

// retry is a refused request tried again.
type retry struct {
	key string
	gap time.Duration
}

func (p *overloadProxy) refuse(req *http.Request) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if req.Method == http.MethodGet {
		// Concurrent workers may read the same URL: only writes are told apart by it.
		return 0
	}
	// Creates of different objects share a URL: the body tells them apart, and a retry
	// sends the same body again.
	body, _ := io.ReadAll(req.Body)
	req.Body = io.NopCloser(bytes.NewReader(body))
	sum := sha256.Sum256(body)
	key := req.Method + " " + req.URL.RequestURI() + " " + hex.EncodeToString(sum[:6])
	if at, ok := p.injected[key]; ok {
		p.gaps = append(p.gaps, retry{key, time.Since(at)})
		delete(p.injected, key)
		return 0 // the retry goes through
	}
	p.n++
	if p.n%4 != 1 {
		return 0
	}
	code := http.StatusTooManyRequests
	if (p.n/4)%2 == 1 {
		code = http.StatusServiceUnavailable
	}
	p.injected[key] = time.Now()
	p.statuses[code]++
	return code
}

// TestOverloadedAPIServer runs passes through an API server that refuses one write in
// four with 429 or 503 and Retry-After: the pass converges, every refused request is
// tried again no sooner than it was told, and the next pass finds nothing to do.
func TestOverloadedAPIServer(t *testing.T) {
	host := testenv.Shared(t)
	const prefix = "busy-"
	repo := exampleRepo(t, prefix)
	res := repo.renderOK()
	p, cfg := newOverloadProxy(t, host.Config)
	_, _, opts := newReconciler(t, host, 100*time.Millisecond)
	opts.WrapTransport = nil
	r, err := reconcile.New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	first := apply(t, r, res)
	if first.Count()[reconcile.Created] == 0 {
		t.Fatalf("the first pass created nothing: %s", first.Summary())
	}
	second := apply(t, r, res)
	if second.Changed() {
		t.Errorf("the second pass changed things: %s", second.Summary())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.statuses[http.StatusTooManyRequests] == 0 || p.statuses[http.StatusServiceUnavailable] == 0 {
		t.Fatalf("refused %v; want both 429 and 503", p.statuses)
	}
	if len(p.gaps) == 0 {
		t.Fatal("no refused request was tried again")
	}
	for _, r := range p.gaps {
		if r.gap < 900*time.Millisecond {
			t.Errorf("%s: refused, came back after %s, before its Retry-After of 1s", r.key, r.gap.Round(time.Millisecond))
		}
	}
}
