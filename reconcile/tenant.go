package reconcile

import (
	"context"
	"fmt"

	"github.com/raas-dev/raas/render"
	"github.com/raas-dev/raas/schema"
)

// tenantRun is one tenant's share of a pass.
type tenantRun struct {
	result  TenantResult
	entries []Entry
	// rebuiltVirtual counts the objects inside the vcluster that a rebuilt inventory
	// found, for the tenant's Rebuilt record.
	rebuiltVirtual int
}

// reconcileTenant applies (or diffs) one tenant on both levels and prunes its stale
// objects.
func (r *Reconciler) reconcileTenant(ctx context.Context, p *pass, out *render.Output) tenantRun {
	name := out.Tenant
	old := p.invs.tenants[name]
	prev := old.byKey()
	st := p.tenantResult(name)
	st.File, st.After, st.Gang = out.File, out.Quota, out.Gang
	inv := &inventory{Tenant: name, File: out.File, RetainData: out.RetainData, Quota: out.Quota}
	if old != nil {
		st.Before = old.Quota
		inv.resourceVersion, inv.Revision = old.resourceVersion, old.Revision
	}
	fail := func(err error) tenantRun {
		st.Health, st.Reason = HealthFailed, err.Error()
		return tenantRun{result: st, entries: keepObjects(old, name, "not applied: "+err.Error())}
	}
	objs := map[render.Target][]*render.Object{render.Host: out.Host, render.Virtual: out.Virtual}
	if err := r.checkSize(prospective(old, inv, objs)); err != nil {
		return fail(err)
	}
	if err := r.recordPending(ctx, p, old, inv, objs); err != nil {
		return fail(err)
	}

	host := r.hostLevel(p)
	hostOuts := r.applyObjects(ctx, p, host, name, out.Host, prev)

	var virtOuts []outcome
	var virt *level
	var vcErr error
	rebuiltVirtual := 0
	switch {
	case out.Asleep:
		// The vcluster is scaled to zero: leave its objects as last applied, and stop the
		// workloads it had synced to the host.
		for _, o := range out.Virtual {
			virtOuts = append(virtOuts, notAttempted(render.Virtual, name, o, prev, "asleep"))
		}
		vcErr = p.w.sleep(ctx, st.Namespace)
	case p.dryRun:
		// A diff does not wait for vclusters: it compares with the inventory.
		virtOuts = r.diffVirtual(p, name, out.Virtual, prev)
	default:
		vc, idx, err := r.connectVCluster(ctx, st.Namespace, schema.Release(name), kindsOf(out.Virtual), p.vclusterDeadline)
		if err != nil {
			vcErr = err
			for _, o := range out.Virtual {
				virtOuts = append(virtOuts, notAttempted(render.Virtual, name, o, prev, "the vcluster is not up yet"))
			}
			break
		}
		if old != nil && old.damaged != "" {
			// What raas applied before may be of kinds it no longer renders: a rebuilt
			// inventory looks for raas's objects among every kind the vcluster serves.
			all, err := r.indexServed(ctx, vc)
			if err != nil {
				vcErr = fmt.Errorf("rebuilding the inventory inside the vcluster: %w", err)
				for _, o := range out.Virtual {
					virtOuts = append(virtOuts, notAttempted(render.Virtual, name, o, prev, "the inventory inside the vcluster could not be rebuilt"))
				}
				break
			}
			rebuiltVirtual = rebuildVirtual(old, all)
			prev = old.byKey()
		}
		virt = &level{target: render.Virtual, client: vc.client, mgr: vc.mgr, idx: idx}
		virtOuts = r.applyObjects(ctx, p, virt, name, out.Virtual, prev)
	}

	entries, records := collect(hostOuts, virtOuts)
	pruned, kept := r.pruneStale(ctx, p, name, stale(old, hostOuts, virtOuts), host, virt, inv.RetainData)
	entries = append(entries, pruned...)
	inv.Objects = append(records, kept...)

	st.Change = TenantUnchanged
	if wrote(entries) {
		st.Change = TenantChanged
	}
	if old == nil {
		st.Change = TenantAdded
	}
	if p.dryRun {
		// A diff says what would change, not how healthy the tenant would be.
		return tenantRun{result: st, entries: entries, rebuiltVirtual: rebuiltVirtual}
	}
	if inv.needsWrite(old, wrote(entries)) {
		inv.Revision = p.in.Revision
		if err := p.w.store(ctx, inv); err != nil {
			st.Health, st.Reason = HealthFailed, err.Error()
			return tenantRun{result: st, entries: entries, rebuiltVirtual: rebuiltVirtual}
		}
	}
	if out.Asleep {
		st.Health, st.Reason = asleepHealth(entries, vcErr)
		return tenantRun{result: st, entries: entries, rebuiltVirtual: rebuiltVirtual}
	}
	st.Health, st.Reason = r.health(p, out, hostOuts, virtOuts, vcErr, virt)
	return tenantRun{result: st, entries: entries, rebuiltVirtual: rebuiltVirtual}
}

// keepTenant reports a tenant whose file is broken: nothing is applied or pruned for it,
// and it is Stalled until a new commit fixes it.
func (r *Reconciler) keepTenant(p *pass, name string) tenantRun {
	inv := p.invs.tenants[name]
	st := p.tenantResult(name)
	st.Change, st.Health, st.Reason, st.Stalled = TenantUnchanged, HealthFailed, p.kept[name], true
	var entries []Entry
	if inv != nil {
		st.File, st.Before, st.After = inv.File, inv.Quota, inv.Quota
		for _, e := range inv.Objects {
			entries = append(entries, Entry{Tenant: name, Target: e.Target, Ref: e.Ref, APIVersion: e.APIVersion,
				Action: Skipped, Reason: "tenant file is broken; left as last applied"})
		}
	}
	return tenantRun{result: st, entries: entries}
}
