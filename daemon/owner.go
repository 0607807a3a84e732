package daemon

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/raas-dev/raas/daemon/shard"
	"github.com/raas-dev/raas/reconcile"
	"github.com/raas-dev/raas/render"
)

// Owner tells a Loop which tenants are its own when it shares them with other replicas:
// a *shard.Member. Keys are tenant names, and shard.PlatformKey for the platform objects.
type Owner interface {
	// Owns reports whether this replica owns key now.
	Owns(key string) bool
	// Fence returns nil if this replica may write key now, and an error saying why not
	// otherwise. It is asked before every write.
	Fence(key string) error
	// Margin is the time a write that Fence allowed may take to land.
	Margin() time.Duration
	// Changes is signalled whenever the keys owned may have changed.
	Changes() <-chan struct{}
}

var _ Owner = (*shard.Member)(nil)

// fenceKey is the Owner's key for a tenant of the reconcile engine, where "" is the
// platform.
func fenceKey(tenant string) string {
	if tenant == "" {
		return shard.PlatformKey
	}
	return tenant
}

// followOwner follows the Owner's changes until ctx ends: each one forgets the tenants
// lost, marks the tenants gained dirty, and starts a pass. The pass covers the tenants
// gained (scope); and since it covers the tenants being removed and the platform
// objects whatever it is asked to cover, it takes up those too when they are gained.
func (l *Loop) followOwner(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.opts.Owner.Changes():
		}
		l.reown(l.knownTenants())
		l.trigger.Trigger("the shard ring changed")
	}
}

// knownTenants lists the tenants of the newest good revision and of the last pass.
func (l *Loop) knownTenants() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var names []string
	if l.lastGood != nil && l.lastGood.render != nil {
		names = tenantNames(l.lastGood.render)
	}
	if l.last != nil {
		for _, t := range l.last.Tenants {
			names = append(names, t.Name)
		}
	}
	return names
}

// tenantNames lists the valid tenants of a revision: those rendered, and, when a
// sharded loop renders only its own, the others, which it may gain.
func tenantNames(rendered *render.Result) []string {
	names := make([]string, 0, len(rendered.Repo.Tenants))
	for _, t := range rendered.Repo.Tenants {
		names = append(names, t.Metadata.Name)
	}
	return names
}

// reown asks the Owner which of names the loop owns now. The tenants it gained are
// marked dirty, for the next pass to cover. The ones it lost, and any other tenant it
// keeps something of but does not own (one lost while a pass reported it), are
// forgotten: dropped from Last, the metrics, the backoff and the scope, and their
// PodGroup bridges stopped, so that the replica that owns them now is their only writer.
func (l *Loop) reown(names []string) {
	o := l.opts.Owner
	l.mu.Lock()
	owned := map[string]bool{}
	gained := 0
	for _, n := range names {
		if !owned[n] && o.Owns(n) {
			owned[n] = true
			if !l.owned[n] {
				l.dirty[n] = true
				gained++
			}
		}
	}
	kept := map[string]bool{}
	for n := range l.owned {
		kept[n] = true
	}
	for n := range l.applied {
		kept[n] = true
	}
	for n := range l.retryAt {
		kept[n] = true
	}
	for n := range l.failures {
		kept[n] = true
	}
	if l.last != nil {
		for _, t := range l.last.Tenants {
			kept[t.Name] = true
		}
	}
	var lost, forgotten []string
	for n := range kept {
		if owned[n] || o.Owns(n) {
			continue
		}
		forgotten = append(forgotten, n)
		if l.owned[n] {
			lost = append(lost, n)
		}
	}
	l.owned = owned
	l.mu.Unlock()
	if gained > 0 {
		l.log.Info("tenants taken over", "gained", gained, "owned", len(owned))
	}
	if len(lost) > 0 {
		slices.Sort(lost)
		l.log.Info("tenants no longer owned: another replica takes them", "tenants", lost, "owned", len(owned))
	}
	if len(forgotten) > 0 {
		l.forget(forgotten)
	}
}

// forget drops what the loop keeps of tenants it no longer owns, and stops their
// bridges. A pass running meanwhile may start a bridge again; the pass that reown's
// caller starts next stops it, and Pass drops the tenants it does not own from what it
// reports.
func (l *Loop) forget(tenants []string) {
	l.mu.Lock()
	for _, n := range tenants {
		delete(l.applied, n)
		delete(l.failures, n)
		delete(l.retryAt, n)
		delete(l.logged, n)
		delete(l.dirty, n)
		delete(l.bridgeReported, n)
	}
	l.last = without(l.last, tenants)
	view := l.last
	l.mu.Unlock()
	if l.opts.Metrics != nil {
		l.opts.Metrics.forget(tenants, view)
	}
	if l.bridges != nil {
		l.bridges.StopTenants(tenants...)
	}
}

// mine returns res without the tenants the loop does not own now, or res itself without
// an Owner.
func (l *Loop) mine(res *reconcile.Result) *reconcile.Result {
	o := l.opts.Owner
	if o == nil || res == nil {
		return res
	}
	var others []string
	for _, t := range res.Tenants {
		if !o.Owns(t.Name) {
			others = append(others, t.Name)
		}
	}
	return without(res, others)
}

// without returns res without the tenants called names, and their entries.
func without(res *reconcile.Result, names []string) *reconcile.Result {
	if res == nil || len(names) == 0 {
		return res
	}
	drop := map[string]bool{}
	for _, n := range names {
		drop[n] = true
	}
	out := *res
	out.Tenants = slices.DeleteFunc(slices.Clone(res.Tenants), func(t reconcile.TenantResult) bool { return drop[t.Name] })
	out.Entries = slices.DeleteFunc(slices.Clone(res.Entries), func(e reconcile.Entry) bool { return drop[e.Tenant] })
	return &out
}

// share gives a pass the Owner's answers: it covers only the tenants owned when it
// begins (each tenant asked once, so that the pass sees one answer throughout), applies
// the platform objects only if it owns them, and fences each write.
func (l *Loop) share(in *reconcile.Input) {
	o := l.opts.Owner
	if o == nil {
		return
	}
	var mu sync.Mutex
	asked := map[string]bool{}
	in.Owns = func(tenant string) bool {
		mu.Lock()
		defer mu.Unlock()
		owns, ok := asked[tenant]
		if !ok {
			owns = o.Owns(tenant)
			asked[tenant] = owns
		}
		return owns
	}
	in.SkipPlatform = !o.Owns(shard.PlatformKey)
	in.Fence = func(tenant string) error { return o.Fence(fenceKey(tenant)) }
	in.FenceTimeout = o.Margin()
}
