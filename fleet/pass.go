package fleet

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/raas-dev/raas/reconcile"
	"github.com/raas-dev/raas/schema"
)

// Apply places the tenants, applies each cluster's share of the checkout to it, and
// removes each moved tenant from its old cluster once it is Ready on the new one.
func (f *Fleet) Apply(ctx context.Context, in reconcile.Input) (*reconcile.Result, error) {
	return f.pass(ctx, in, false)
}

// Diff says what Apply would do on each cluster, changing nothing: a moved tenant is
// created on its new cluster and left on its old one, which removes it once it is Ready.
func (f *Fleet) Diff(ctx context.Context, in reconcile.Input) (*reconcile.Result, error) {
	return f.pass(ctx, in, true)
}

// onCluster is what a pass knows of one cluster.
type onCluster struct {
	name string
	host *host
	// residents are read at the start of the pass; err is why the cluster cannot be
	// reached.
	residents reconcile.Residents
	err       error
	res       *reconcile.Result
}

// fleetPass is the state of one Apply or Diff over the fleet.
type fleetPass struct {
	in       reconcile.Input
	dryRun   bool
	clusters []*onCluster // in declaration order
	// placement is where each tenant goes.
	placement schema.Placement
	// inventoried lists the clusters that hold each tenant's inventory.
	inventoried map[string][]string
	// held are tenants placed nowhere in this pass, with the reason.
	held map[string]string
	// overCommitted are the clusters whose capacity the placement exceeds, though the
	// offline placement validation checked does not.
	overCommitted []error
}

func (f *Fleet) pass(ctx context.Context, in reconcile.Input, dryRun bool) (*reconcile.Result, error) {
	res := in.Render
	if res == nil || res.Repo == nil || res.Repo.Platform == nil || len(res.Repo.Platform.Spec.Clusters) == 0 {
		// One host: the Reconciler refuses what it cannot apply.
		return run(ctx, f.local, in, dryRun)
	}
	fp := f.begin(ctx, in, dryRun)
	var wg sync.WaitGroup
	for _, c := range fp.clusters {
		if c.err != nil {
			continue
		}
		wg.Go(func() {
			c.res, c.err = run(ctx, c.host.rec, fp.input(c.name, nil), dryRun)
			if c.err != nil {
				c.err = fmt.Errorf("cluster %s: %w", c.name, c.err)
			}
		})
	}
	wg.Wait()
	evicted := map[string]*reconcile.Result{}
	if !dryRun {
		evicted = f.evict(ctx, fp)
	}
	out := fp.merge(evicted)
	out.Errors = append(out.Errors, f.watchErrors()...)
	return out, nil
}

func run(ctx context.Context, r *reconcile.Reconciler, in reconcile.Input, dryRun bool) (*reconcile.Result, error) {
	if dryRun {
		return r.Diff(ctx, in)
	}
	return r.Apply(ctx, in)
}

// begin connects to every declared cluster, reads which tenants each holds, and places
// the tenants.
func (f *Fleet) begin(ctx context.Context, in reconcile.Input, dryRun bool) *fleetPass {
	p := in.Render.Repo.Platform
	fp := &fleetPass{in: in, dryRun: dryRun, inventoried: map[string][]string{}, held: map[string]string{}}
	hosts, down := f.connect(ctx, p)
	var wg sync.WaitGroup
	for _, decl := range p.Spec.Clusters {
		c := &onCluster{name: decl.Name, host: hosts[decl.Name], err: down[decl.Name]}
		fp.clusters = append(fp.clusters, c)
		if c.err != nil {
			continue
		}
		wg.Go(func() {
			c.residents, c.err = c.host.rec.Residents(ctx)
			if c.err != nil {
				c.err = fmt.Errorf("cluster %s: %w", c.name, c.err)
			}
		})
	}
	wg.Wait()

	// where is the cluster each running tenant runs on: one holding its inventory
	// before one holding only its namespace, then in declaration order.
	where := map[string]string{}
	var silent []string
	for _, c := range fp.clusters {
		if c.err != nil {
			silent = append(silent, c.name)
			continue
		}
		for _, t := range sortedKeys(c.residents.Inventoried) {
			fp.inventoried[t] = append(fp.inventoried[t], c.name)
			if where[t] == "" {
				where[t] = c.name
			}
		}
	}
	for _, c := range fp.clusters {
		for _, t := range sortedKeys(c.residents.Namespaced) {
			if where[t] == "" {
				where[t] = c.name
			}
		}
	}
	fp.placement = schema.Place(in.Render.Repo, where)
	offline := map[string]bool{}
	for _, prob := range in.Render.Repo.Problems {
		offline[prob.Error()] = true
	}
	for _, prob := range in.Render.Repo.CheckPlacement(fp.placement).Errors() {
		if !offline[prob.Error()] {
			// Validation placed the tenants offline; where they run, the cluster is
			// over-committed all the same.
			fp.overCommitted = append(fp.overCommitted, fmt.Errorf("where the tenants run: %w", prob))
		}
	}
	if len(silent) > 0 {
		// A tenant that may run on a silent cluster is placed nowhere, so that it is
		// not created a second time elsewhere.
		for _, t := range in.Render.Repo.Tenants {
			name := t.Metadata.Name
			if t.Spec.Cluster == "" && where[name] == "" {
				fp.held[name] = fmt.Sprintf("not placed: it may run on cluster %s, which cannot be reached", strings.Join(silent, ", "))
			}
		}
	}
	return fp
}

// input is the pass's input for one cluster: the tenants placed there, and the tenants
// to evict from it.
func (fp *fleetPass) input(cluster string, evict map[string]string) reconcile.Input {
	in := fp.in
	share := *in.Render
	share.Tenants = nil
	for _, out := range in.Render.Tenants {
		if fp.placement[out.Tenant] == cluster && fp.held[out.Tenant] == "" {
			share.Tenants = append(share.Tenants, out)
		}
	}
	in.Render = &share
	if evict != nil {
		// The first phase applied the platform objects; this one only removes.
		in.Evict, in.SkipPlatform = evict, true
		in.Only = map[string]bool{}
		for name := range evict {
			in.Only[name] = true
		}
	}
	return in
}

// evict removes, from their old clusters, the moved tenants that are Ready on their new
// one. It returns each old cluster's result of doing so.
func (f *Fleet) evict(ctx context.Context, fp *fleetPass) map[string]*reconcile.Result {
	byName := map[string]*onCluster{}
	for _, c := range fp.clusters {
		byName[c.name] = c
	}
	evict := map[string]map[string]string{}
	for tenant, holders := range fp.inventoried {
		to := byName[fp.placement[tenant]]
		if to == nil || to.res == nil {
			continue
		}
		if st := to.res.Tenant(tenant); st == nil || st.Health != reconcile.HealthReady {
			continue
		}
		for _, from := range holders {
			if from != to.name && byName[from].err == nil {
				if evict[from] == nil {
					evict[from] = map[string]string{}
				}
				evict[from][tenant] = to.name
			}
		}
	}
	out := map[string]*reconcile.Result{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for from, tenants := range evict {
		wg.Go(func() {
			res, err := run(ctx, byName[from].host.rec, fp.input(from, tenants), false)
			if err != nil {
				res = &reconcile.Result{Errors: []error{fmt.Errorf("cluster %s: removing moved tenants: %w", from, err)}}
			}
			res.Tenants = slices.DeleteFunc(res.Tenants, func(t reconcile.TenantResult) bool { return tenants[t.Name] == "" })
			res.Entries = slices.DeleteFunc(res.Entries, func(e reconcile.Entry) bool { return tenants[e.Tenant] == "" })
			mu.Lock()
			out[from] = res
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// merge makes one result of the clusters' results: each tenant once, from the cluster
// it is placed on, and every entry tagged with its cluster.
func (fp *fleetPass) merge(evicted map[string]*reconcile.Result) *reconcile.Result {
	out := &reconcile.Result{Revision: fp.in.Revision, DryRun: fp.dryRun, HeldBack: fp.in.FetchErr,
		Deprecated: fp.in.Render.Repo.Deprecated}
	for _, c := range fp.clusters {
		out.Clusters = append(out.Clusters, c.name)
	}
	out.Errors = append(out.Errors, fp.overCommitted...)
	rows := map[string]reconcile.TenantResult{}
	from := map[string]string{} // the cluster each row came from
	take := func(cluster string, res *reconcile.Result) {
		if out.PruneBlocked == "" {
			out.PruneBlocked = res.PruneBlocked
		}
		for _, err := range res.Errors {
			out.Errors = append(out.Errors, fmt.Errorf("cluster %s: %w", cluster, err))
		}
		out.Rebuilt = append(out.Rebuilt, res.Rebuilt...)
		for _, e := range res.Entries {
			e.Cluster = cluster
			out.Entries = append(out.Entries, e)
		}
		for _, t := range res.Tenants {
			t.Cluster = cluster
			prev, seen := rows[t.Name]
			switch {
			case !seen:
			case fp.placement[t.Name] == cluster && from[t.Name] != cluster:
			case fp.placement[t.Name] == "" && prev.File == "" && t.File != "":
				// A broken file is reported from the cluster holding its inventory.
			default:
				continue
			}
			rows[t.Name], from[t.Name] = t, cluster
		}
	}
	for _, c := range fp.clusters {
		switch {
		case c.err != nil:
			out.Errors = append(out.Errors, c.err)
		case c.res != nil:
			take(c.name, c.res)
		}
	}
	// Tenants on a cluster that cannot be reached, and tenants placed nowhere.
	for _, t := range fp.in.Render.Repo.Tenants {
		name := t.Metadata.Name
		if _, seen := rows[name]; seen || !fp.covers(name) {
			continue
		}
		st := reconcile.TenantResult{Name: name, File: t.Source.File, Namespace: fp.in.Render.Repo.Platform.Namespace(name),
			Queue: fp.in.Render.Repo.Platform.Queue(name), Change: reconcile.TenantUnchanged, Health: reconcile.HealthProgressing,
			Cluster: fp.placement[name]}
		switch {
		case fp.held[name] != "":
			st.Reason, st.Cluster = fp.held[name], ""
		case fp.clusterErr(st.Cluster) != nil:
			st.Reason = fp.clusterErr(st.Cluster).Error()
		default:
			continue
		}
		rows[name] = st
	}
	// Moves: the tenant is reported from its new cluster, with the old one's removal.
	for _, c := range fp.clusters {
		res := evicted[c.name]
		if res == nil {
			continue
		}
		for _, e := range res.Entries {
			e.Cluster = c.name
			out.Entries = append(out.Entries, e)
		}
		out.Errors = append(out.Errors, res.Errors...)
		for _, t := range res.Tenants {
			row := rows[t.Name]
			if t.Health != reconcile.HealthRemoved {
				row.Reason = appendReason(row.Reason, fmt.Sprintf("still on cluster %s: %s", c.name, t.Reason))
			}
			rows[t.Name] = row
		}
	}
	for name, holders := range fp.inventoried {
		row, ok := rows[name]
		if !ok || row.Cluster == "" {
			continue
		}
		for _, h := range holders {
			if h == row.Cluster {
				continue
			}
			if res := evicted[h]; res != nil {
				if st := res.Tenant(name); st != nil && st.Health == reconcile.HealthRemoved {
					continue
				}
			}
			row.MovingFrom = h
			if row.Health != reconcile.HealthReady {
				row.Reason = appendReason(row.Reason, fmt.Sprintf("moving from cluster %s, where it stays until it is Ready here", h))
			}
		}
		rows[name] = row
	}
	for _, name := range sortedKeys(rows) {
		out.Tenants = append(out.Tenants, rows[name])
	}
	slices.SortStableFunc(out.Entries, func(a, b reconcile.Entry) int { return strings.Compare(a.Tenant, b.Tenant) })
	return out
}

// covers reports whether the pass reports on the tenant called name.
func (fp *fleetPass) covers(name string) bool {
	return (fp.in.Owns == nil || fp.in.Owns(name)) && (fp.in.Only == nil || fp.in.Only[name])
}

func (fp *fleetPass) clusterErr(name string) error {
	for _, c := range fp.clusters {
		if c.name == name {
			return c.err
		}
	}
	return nil
}

// appendReason adds more to a tenant's reason.
func appendReason(reason, more string) string {
	if reason == "" {
		return more
	}
	return reason + "; " + more
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
