package fleet

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/raas-dev/raas/reconcile"
	"github.com/raas-dev/raas/schema"
)

// Fleet applies rendered checkouts to the host clusters their platform config declares.
// Like a Reconciler, it is safe for one pass at a time; Watch may run beside the passes.
type Fleet struct {
	home    *rest.Config
	opts    reconcile.Options
	secrets kubernetes.Interface
	local   *reconcile.Reconciler // the cluster raas runs in, or is pointed at

	mu        sync.Mutex
	hosts     map[string]*host // connected clusters by name
	watch     *watchState      // set once Watch is called
	watchErrs []error          // watches that failed to start, reported by the next pass
}

// host is one connected cluster of the fleet.
type host struct {
	name string
	// digest identifies the kubeconfig the host was connected with, to reconnect
	// when its Secret changes; empty for the local cluster.
	digest   [32]byte
	cfg      *rest.Config
	rec      *reconcile.Reconciler
	watching bool
}

type watchState struct {
	ctx     context.Context
	changed func(tenant string)
}

// New returns a fleet whose home is the cluster cfg reaches: the cluster a declared
// cluster without a kubeconfig is, the cluster the kubeconfig Secrets are read from (in
// opts.InventoryNamespace), and the one host when the platform declares no clusters.
func New(cfg *rest.Config, opts reconcile.Options) (*Fleet, error) {
	local, err := reconcile.New(cfg, opts)
	if err != nil {
		return nil, err
	}
	secrets, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("home cluster: %w", err)
	}
	return &Fleet{home: cfg, opts: opts, secrets: secrets, local: local, hosts: map[string]*host{}}, nil
}

// Watch keeps each connected cluster's live state in watches until ctx ends
// (reconcile.Reconciler.Watch), and clusters connected later are watched from their
// first pass. changed is told the tenant of every object changed by someone else.
func (f *Fleet) Watch(ctx context.Context, changed func(tenant string)) error {
	f.mu.Lock()
	f.watch = &watchState{ctx: ctx, changed: changed}
	f.mu.Unlock()
	// Without declared clusters the one host is the local one: watch it at once, as
	// a Reconciler's Watch does.
	return f.local.Watch(ctx, changed)
}

// connect returns a host for each declared cluster, or why it cannot be reached.
func (f *Fleet) connect(ctx context.Context, p *schema.Platform) (map[string]*host, map[string]error) {
	hosts, errs := map[string]*host{}, map[string]error{}
	for _, c := range p.Spec.Clusters {
		h, err := f.connectOne(ctx, c)
		if err != nil {
			errs[c.Name] = fmt.Errorf("cluster %s: %w", c.Name, err)
			continue
		}
		hosts[c.Name] = h
	}
	return hosts, errs
}

func (f *Fleet) connectOne(ctx context.Context, c schema.Cluster) (*host, error) {
	if c.Kubeconfig == nil {
		return &host{name: c.Name, cfg: f.home, rec: f.local}, nil
	}
	key := c.Kubeconfig.Key
	if key == "" {
		key = "kubeconfig"
	}
	secret, err := f.secrets.CoreV1().Secrets(f.opts.InventoryNamespace).Get(ctx, c.Kubeconfig.Name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("kubeconfig Secret %s/%s: %w", f.opts.InventoryNamespace, c.Kubeconfig.Name, err)
	}
	data := secret.Data[key]
	if len(data) == 0 {
		return nil, fmt.Errorf("kubeconfig Secret %s/%s has no key %q", f.opts.InventoryNamespace, c.Kubeconfig.Name, key)
	}
	digest := sha256.Sum256(data)
	f.mu.Lock()
	defer f.mu.Unlock()
	if h := f.hosts[c.Name]; h != nil && h.digest == digest {
		return h, nil
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(data)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig Secret %s/%s: %w", f.opts.InventoryNamespace, c.Kubeconfig.Name, err)
	}
	rec, err := reconcile.New(cfg, f.opts)
	if err != nil {
		return nil, err
	}
	h := &host{name: c.Name, digest: digest, cfg: cfg, rec: rec}
	f.hosts[c.Name] = h
	if f.watch != nil {
		// A cluster connected after Watch began is watched from now on; a watch that
		// cannot start leaves its passes listing, as a Reconciler's does.
		if err := rec.Watch(f.watch.ctx, f.watch.changed); err != nil {
			f.watchErrs = append(f.watchErrs, fmt.Errorf("cluster %s: watch: %w", c.Name, err))
		}
	}
	return h, nil
}

// Config returns how to reach the cluster called name once a pass has connected to it,
// or nil. The cluster raas runs in, and the one host of a platform without clusters
// (name ""), are always known.
func (f *Fleet) Config(name string) *rest.Config {
	f.mu.Lock()
	defer f.mu.Unlock()
	if h := f.hosts[name]; h != nil {
		return h.cfg
	}
	if name == "" {
		return f.home
	}
	return nil
}

// watchErrors returns, once, the watches that failed to start.
func (f *Fleet) watchErrors() []error {
	f.mu.Lock()
	defer f.mu.Unlock()
	errs := f.watchErrs
	f.watchErrs = nil
	return errs
}
