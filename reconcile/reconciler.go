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
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/render"
	"github.com/raas-dev/raas/schema"
)

// Reconciler applies rendered tenants to a host cluster and into each tenant's vcluster.
// It keeps connections to the vclusters between passes; it is safe for one pass at a
// time.
type Reconciler struct {
	opts      Options
	now       func() time.Time
	host      client.Client
	hostCfg   *rest.Config
	secrets   corev1client.SecretsGetter
	hostMgr   *ssa.ResourceManager
	vclusters vclusterCache
	checked   checkedCache
	sizes     sizeCache
	decoded   decodedCache

	watchMu sync.Mutex
	watch   *hostWatch // set while Watch runs
}

// New returns a Reconciler for the host cluster that cfg reaches.
func New(cfg *rest.Config, opts Options) (*Reconciler, error) {
	if opts.FieldManager == "" || opts.InventoryNamespace == "" {
		return nil, errors.New("reconcile: options need a field manager and an inventory namespace; start from DefaultOptions")
	}
	r := &Reconciler{opts: opts, now: opts.Now}
	if r.now == nil {
		r.now = time.Now
	}
	c, err := client.New(r.restConfig(cfg), client.Options{})
	if err != nil {
		return nil, fmt.Errorf("host client: %w", err)
	}
	r.host, r.hostCfg = c, r.restConfig(cfg)
	// The vclusters' kubeconfig Secrets are read as the PodGroup bridges read them.
	if r.secrets, err = corev1client.NewForConfig(r.restConfig(cfg)); err != nil {
		return nil, fmt.Errorf("host client: %w", err)
	}
	r.hostMgr = r.resourceManager(c)
	return r, nil
}

func (r *Reconciler) resourceManager(c client.Client) *ssa.ResourceManager {
	// The status poller is only used by ssa's own wait helpers, which raas does not use:
	// it waits for exactly the CRDs and namespaces a pass changed.
	return ssa.NewResourceManager(c, nil, ssa.Owner{Field: r.opts.FieldManager, Group: schema.Group})
}

// pass is the state of one Apply or Diff.
type pass struct {
	in Input
	// w makes the pass's changes; a diff's makes none. dryRun is set on a diff, which
	// compares more than a pass needs to (applyObject) and reports no health.
	w        writer
	dryRun   bool
	platform *schema.Platform
	invs     *inventories
	hostIdx  *liveIndex
	digests  digestCache
	// vclusterDeadline ends the wait for vclusters, for the whole pass: a pass over many
	// new tenants takes VClusterTimeout at most, not that much per tenant.
	vclusterDeadline time.Time

	// pruneBlocked says why nothing may be deleted in this pass; empty when pruning is
	// allowed.
	pruneBlocked string
	// removed are tenants with an inventory and no file; removeErr refuses removing them.
	removed   []string
	removeErr error
	// kept are tenants whose file exists but did not validate or render; their objects
	// are left as they are.
	kept map[string]string
	// rebuilt are the inventories rebuilt from live objects in this pass.
	rebuilt []Rebuilt
}

// begin reads the inventories and the live index and decides what this pass may delete.
func (r *Reconciler) begin(ctx context.Context, in Input, dryRun bool) (*pass, error) {
	res := in.Render
	if res == nil || res.Repo == nil {
		return nil, errors.New("no rendered checkout: nothing applied, nothing pruned")
	}
	p := &pass{in: in, w: fenced(clusterWriter{r}, in), dryRun: dryRun, platform: res.Repo.Platform, kept: map[string]string{},
		vclusterDeadline: r.now().Add(r.opts.VClusterTimeout)}
	if dryRun {
		p.w = dryWriter{}
	}
	invs, err := r.loadInventories(ctx)
	if err != nil {
		return nil, err
	}
	p.invs = invs

	objs := [][]*render.Object{res.Platform}
	for _, out := range res.Tenants {
		if in.covers(out.Tenant) {
			objs = append(objs, out.Host)
		}
	}
	if p.hostIdx, err = r.hostIndex(ctx, kindsOf(objs...)); err != nil {
		return nil, fmt.Errorf("host: %w", err)
	}
	r.rebuildInventories(p)

	for _, rej := range res.Repo.Rejected {
		p.kept[rej.Name] = fmt.Sprintf("%s does not validate; its objects are left as last applied", rej.File)
	}
	for _, f := range res.Failed {
		p.kept[f.Tenant] = fmt.Sprintf("%s failed to render (%v); its objects are left as last applied", f.File, f.Err)
	}
	p.pruneBlocked = r.pruneGate(in)
	p.removed, p.removeErr = r.removals(p)
	return p, nil
}

// pruneGate returns why nothing may be deleted in this pass, or "".
func (r *Reconciler) pruneGate(in Input) string {
	res := in.Render
	switch {
	case !r.opts.Prune:
		return "pruning is off"
	case in.FetchErr != nil:
		return fmt.Sprintf("fetching the newest revision failed (%v)", in.FetchErr)
	case !res.Repo.Usable():
		return "the platform config is invalid"
	case res.Platform == nil:
		return "the platform objects failed to render"
	}
	var problems []string
	if n := len(res.Repo.Problems.Errors()); n > 0 {
		problems = append(problems, fmt.Sprintf("%d validation error(s)", n))
	}
	if n := len(res.Failed); n > 0 {
		problems = append(problems, fmt.Sprintf("%d tenant(s) failed to render", n))
	}
	if len(problems) > 0 {
		return "the checkout has " + joinAnd(problems) + "; nothing is pruned until it is fixed"
	}
	return ""
}

// tenantResult starts the result of the tenant called name: where it lives on the host.
func (p *pass) tenantResult(name string) TenantResult {
	return TenantResult{Name: name, Namespace: p.platform.Namespace(name), Queue: p.platform.Queue(name)}
}

// tenantNames returns every tenant the pass reports on, sorted: rendered (those in
// Input.Only, if set), kept, removed, and those rendered here whose inventory was
// rebuilt. Each is rendered, kept or removed.
func (p *pass) tenantNames() []string {
	seen := map[string]bool{}
	var names []string
	add := func(n string) {
		if !seen[n] && p.in.owns(n) {
			seen[n] = true
			names = append(names, n)
		}
	}
	rendered := map[string]bool{}
	for _, out := range p.in.Render.Tenants {
		rendered[out.Tenant] = true
		if p.in.covers(out.Tenant) {
			add(out.Tenant)
		}
	}
	for n := range p.kept {
		add(n)
	}
	for _, n := range p.removed {
		add(n)
	}
	for _, rb := range p.rebuilt {
		// Its rebuilt inventory is stored by its pass; a tenant placed on another
		// cluster (not rendered here, nor removed) is left alone.
		if rb.Tenant != "" && p.invs.tenants[rb.Tenant] != nil && rendered[rb.Tenant] {
			add(rb.Tenant)
		}
	}
	slices.Sort(names)
	return names
}

// run reconciles (or diffs) the platform and every tenant, and assembles the result.
func (r *Reconciler) run(ctx context.Context, p *pass) *Result {
	res := &Result{Revision: p.in.Revision, DryRun: p.dryRun, PruneBlocked: p.pruneBlocked,
		Deprecated: p.in.Render.Repo.Deprecated, Rebuilt: p.rebuilt, HeldBack: p.in.FetchErr}
	if p.removeErr != nil {
		res.Errors = append(res.Errors, p.removeErr)
	}
	if p.platform == nil {
		res.Errors = append(res.Errors, errors.New("the platform config is invalid: nothing applied, nothing pruned"))
		return res
	}
	if !p.in.SkipPlatform {
		platform, err := r.reconcilePlatform(withTenant(ctx, ""), p)
		res.Entries = append(res.Entries, platform...)
		if err != nil {
			res.Errors = append(res.Errors, err)
		}
	}

	outputs := map[string]*render.Output{}
	for _, out := range p.in.Render.Tenants {
		outputs[out.Tenant] = out
	}
	names := p.tenantNames()
	runs := make([]tenantRun, len(names))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(max(r.opts.Workers, 1), len(names)) {
		wg.Go(func() {
			for i := range next {
				name := names[i]
				ctx := withTenant(ctx, name)
				switch {
				case outputs[name] != nil:
					runs[i] = r.reconcileTenant(ctx, p, outputs[name])
				case p.kept[name] != "":
					runs[i] = r.keepTenant(p, name)
				default: // tenantNames has no other
					runs[i] = r.removeTenant(ctx, p, p.invs.tenants[name])
				}
			}
		})
	}
	for i := range names {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, run := range runs {
		res.Entries = append(res.Entries, run.entries...)
		res.Tenants = append(res.Tenants, run.result)
		if run.rebuiltVirtual > 0 {
			for i := range res.Rebuilt {
				if res.Rebuilt[i].Tenant == run.result.Name {
					res.Rebuilt[i].Objects += run.rebuiltVirtual
				}
			}
		}
	}
	return res
}

func joinAnd(parts []string) string {
	if len(parts) < 2 {
		return strings.Join(parts, "")
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}
