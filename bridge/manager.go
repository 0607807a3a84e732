package bridge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
)

// Target is a Ready tenant whose PodGroups are bridged.
type Target struct {
	Tenant, HostNamespace, Queue string
	// Release is the vcluster release, whose kubeconfig Secret is read from HostNamespace.
	Release string
	// Host reaches the host cluster the tenant runs on, for a fleet of several; nil
	// means the manager's host.
	Host *rest.Config
}

// Manager runs one Bridge per target, started and stopped as Sync is told of tenants.
type Manager struct {
	hostConfig *rest.Config
	host       kubernetes.Interface
	opts       Options

	mu      sync.Mutex
	running map[string]*runningBridge
	others  map[*rest.Config]kubernetes.Interface // clients of the other hosts of a fleet
}

// hostOf returns how to reach the host of t, and a client for it.
func (m *Manager) hostOf(t Target) (*rest.Config, kubernetes.Interface, error) {
	if t.Host == nil || t.Host == m.hostConfig {
		return m.hostConfig, m.host, nil
	}
	if cs := m.others[t.Host]; cs != nil {
		return t.Host, cs, nil
	}
	cfg := rest.CopyConfig(t.Host)
	if m.opts.QPS > 0 {
		cfg.QPS, cfg.Burst = m.opts.QPS, m.opts.Burst
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("podgroup bridge: host: %w", err)
	}
	if m.others == nil {
		m.others = map[*rest.Config]kubernetes.Interface{}
	}
	m.others[t.Host] = cs
	return t.Host, cs, nil
}

type runningBridge struct {
	target Target
	// kubeconfig is the digest of the vcluster kubeconfig the bridge was built from.
	kubeconfig string
	bridge     *Bridge
	cancel     context.CancelFunc
	done       chan struct{}
}

// NewManager returns a manager of bridges to the host. opts applies to every bridge; its
// Tenant, HostNamespace and Queue are taken from each Target.
func NewManager(host *rest.Config, opts Options) (*Manager, error) {
	cfg := rest.CopyConfig(host)
	if opts.QPS > 0 {
		cfg.QPS, cfg.Burst = opts.QPS, opts.Burst
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("podgroup bridges: host: %w", err)
	}
	return &Manager{hostConfig: host, host: cs, opts: opts, running: map[string]*runningBridge{}}, nil
}

// Sync makes the running bridges those of targets: it starts a bridge for each new target,
// restarts one whose target or vcluster kubeconfig changed or that stopped, and stops the
// bridges of tenants that are no longer listed. The bridges outlive ctx; Stop ends them.
// It returns the errors of the targets whose bridge could not start, joined; the others
// run regardless.
func (m *Manager) Sync(ctx context.Context, targets []Target) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	want := map[string]bool{}
	var errs []error
	for _, t := range targets {
		want[t.Tenant] = true
		hostCfg, hostClient, err := m.hostOf(t)
		if err != nil {
			errs = append(errs, fmt.Errorf("tenant %s: %w", t.Tenant, err))
			m.stop(t.Tenant)
			continue
		}
		cfg, digest, err := virtualConfig(ctx, hostClient, hostCfg, t.HostNamespace, t.Release)
		if err != nil {
			errs = append(errs, fmt.Errorf("tenant %s: podgroup bridge: %w", t.Tenant, err))
			m.stop(t.Tenant)
			continue
		}
		if r := m.running[t.Tenant]; r != nil {
			if r.target == t && r.kubeconfig == digest && !isDone(r.done) {
				continue
			}
			m.stop(t.Tenant)
		}
		if err := m.start(ctx, t, hostCfg, cfg, digest); err != nil {
			errs = append(errs, err)
		}
	}
	for tenant := range m.running {
		if !want[tenant] {
			m.stop(tenant)
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) start(ctx context.Context, t Target, host, virtual *rest.Config, digest string) error {
	opts := m.opts
	opts.Tenant, opts.HostNamespace, opts.Queue = t.Tenant, t.HostNamespace, t.Queue
	b, err := New(host, virtual, opts)
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &runningBridge{target: t, kubeconfig: digest, bridge: b, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if err := b.Run(runCtx); err != nil {
			klog.FromContext(runCtx).Error(err, "podgroup bridge stopped", "tenant", t.Tenant)
		}
	}()
	m.running[t.Tenant] = r
	return nil
}

// stop ends the bridge of tenant, if any, and waits for it.
func (m *Manager) stop(tenant string) {
	r := m.running[tenant]
	if r == nil {
		return
	}
	r.cancel()
	<-r.done
	delete(m.running, tenant)
}

// StopTenants ends the bridges of tenants, if they run, and waits for them; the others
// run on. A replica that no longer owns a tenant (daemon/shard) stops its bridge at once
// rather than at its next Sync.
func (m *Manager) StopTenants(tenants ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, tenant := range tenants {
		m.stop(tenant)
	}
}

// Stop ends every bridge and waits for them.
func (m *Manager) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for tenant := range m.running {
		m.stop(tenant)
	}
}

// Status returns the status of every running bridge, by tenant.
func (m *Manager) Status() []Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	list := make([]Status, 0, len(m.running))
	for _, r := range m.running {
		list = append(list, r.bridge.Status())
	}
	slices.SortFunc(list, func(x, y Status) int { return strings.Compare(x.Tenant, y.Tenant) })
	return list
}

func isDone(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
