package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fluxcd/pkg/ssa"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/internal/vclusterconfig"
)

// attemptTimeout bounds one attempt to reach a vcluster's API, so that an address that
// swallows packets does not use up the whole wait.
const attemptTimeout = 10 * time.Second

// requestTimeout bounds any one request to a vcluster; a KubeRay CRD is 1.3 MB.
const requestTimeout = time.Minute

// vcluster is a connection to one tenant's virtual API server.
type vcluster struct {
	// key is the digest of the kubeconfig it was built from: a new kubeconfig (a
	// recreated vcluster, rotated certificates) makes a new connection.
	key       string
	client    client.Client
	mgr       *ssa.ResourceManager
	discovery discovery.DiscoveryInterface
}

// vclusterCache keeps one connection per vcluster across passes, so that each pass does
// not rediscover every API group.
type vclusterCache struct {
	mu sync.Mutex
	m  map[string]*vcluster
}

// errVClusterNotUp is wrapped by the error connectVCluster returns when the vcluster did
// not come up in time. It is not a failure: the tenant is Progressing.
var errVClusterNotUp = errors.New("vcluster is not up")

// connectVCluster waits until the vcluster of release in the host namespace has exported
// its kubeconfig Secret and its API answers, then returns a connection to it and an index
// of kinds inside it. It gives up at deadline, after one attempt at least, with an error
// wrapping errVClusterNotUp.
func (r *Reconciler) connectVCluster(ctx context.Context, namespace, release string, kinds []schema.GroupVersionKind, deadline time.Time) (*vcluster, *liveIndex, error) {
	for {
		vc, idx, err := r.tryVCluster(ctx, namespace, release, kinds, deadline)
		if err == nil {
			return vc, idx, nil
		}
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		if !r.now().Add(r.opts.PollInterval).Before(deadline) {
			return nil, nil, fmt.Errorf("%w: %w", errVClusterNotUp, err)
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(r.opts.PollInterval):
		}
	}
}

// minAttempt is the least time one attempt gets, even past the deadline: the pass gives
// every vcluster one chance.
const minAttempt = time.Second

func (r *Reconciler) tryVCluster(ctx context.Context, namespace, release string, kinds []schema.GroupVersionKind, deadline time.Time) (*vcluster, *liveIndex, error) {
	kubeconfig, err := vclusterconfig.Read(ctx, r.secrets, namespace, release)
	if apierrors.IsNotFound(err) {
		return nil, nil, fmt.Errorf("waiting for the vcluster to export its kubeconfig: secret %s/%s not found", namespace, vclusterconfig.SecretName(release))
	}
	if err != nil {
		return nil, nil, err
	}
	vc, err := r.vclusterFor(namespace+"/"+release, kubeconfig)
	if err != nil {
		return nil, nil, fmt.Errorf("secret %s/%s: %w", namespace, vclusterconfig.SecretName(release), err)
	}
	// An API that accepts connections and never answers must not hold the pass past its
	// deadline: the attempt ends with it.
	actx, cancel := context.WithTimeout(ctx, min(attemptTimeout, max(deadline.Sub(r.now()), minAttempt)))
	defer cancel()
	// The client's REST mapper discovers API groups without the context, bounded only by
	// the TLS handshake and request timeouts: wait for the index no longer than actx.
	type indexed struct {
		idx *liveIndex
		err error
	}
	done := make(chan indexed, 1)
	go func() {
		idx, err := buildIndex(actx, vc.client, kinds)
		done <- indexed{idx, err}
	}()
	select {
	case got := <-done:
		if got.err != nil {
			return nil, nil, fmt.Errorf("vcluster API does not answer: %w", got.err)
		}
		return vc, got.idx, nil
	case <-actx.Done():
		return nil, nil, fmt.Errorf("vcluster API does not answer: %w", actx.Err())
	}
}

// vclusterFor returns the cached connection for key if it was built from kubeconfig, or a
// new one.
func (r *Reconciler) vclusterFor(key string, kubeconfig vclusterconfig.Kubeconfig) (*vcluster, error) {
	digest := kubeconfig.Digest()
	r.vclusters.mu.Lock()
	defer r.vclusters.mu.Unlock()
	if vc := r.vclusters.m[key]; vc != nil && vc.key == digest {
		return vc, nil
	}
	// From outside the host cluster the exported in-cluster address does not resolve:
	// the vcluster is reached by port-forward through the host API server.
	cfg, err := kubeconfig.RESTConfigVia(r.hostCfg)
	if err != nil {
		return nil, err
	}
	cfg = r.restConfig(cfg)
	cfg.Timeout = requestTimeout
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	d, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("discovery client: %w", err)
	}
	vc := &vcluster{key: digest, client: c, mgr: r.resourceManager(c), discovery: d}
	if r.vclusters.m == nil {
		r.vclusters.m = map[string]*vcluster{}
	}
	r.vclusters.m[key] = vc
	return vc, nil
}

// indexServed indexes raas's objects of every kind the vcluster serves that can be listed
// and deleted, for rebuilding a lost inventory (rarely: it discovers every API group). A
// group whose discovery fails, such as an aggregated API that is down, is left out: its
// objects stay unlisted, so they are orphaned, never deleted by mistake.
func (r *Reconciler) indexServed(ctx context.Context, vc *vcluster) (*liveIndex, error) {
	lists, err := vc.discovery.ServerPreferredResources()
	if err != nil && !discovery.IsGroupDiscoveryFailedError(err) {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	var kinds []schema.GroupVersionKind
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, res := range l.APIResources {
			if strings.Contains(res.Name, "/") || !slices.Contains(res.Verbs, "list") || !slices.Contains(res.Verbs, "delete") {
				continue // a subresource, or nothing raas could have applied and pruned
			}
			kinds = append(kinds, gv.WithKind(res.Kind))
		}
	}
	slices.SortFunc(kinds, func(a, b schema.GroupVersionKind) int { return strings.Compare(a.String(), b.String()) })
	return buildIndex(ctx, vc.client, kinds)
}

// forgetVCluster drops the connection to a removed tenant's vcluster.
func (r *Reconciler) forgetVCluster(namespace, release string) {
	r.vclusters.mu.Lock()
	defer r.vclusters.mu.Unlock()
	delete(r.vclusters.m, namespace+"/"+release)
}

// restConfig copies cfg with the reconciler's rate limits and transport wrapper.
func (r *Reconciler) restConfig(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = r.opts.QPS, r.opts.Burst
	if r.opts.WrapTransport != nil {
		cfg.Wrap(r.opts.WrapTransport)
	}
	return cfg
}
