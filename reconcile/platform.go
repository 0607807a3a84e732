package reconcile

import (
	"context"

	"github.com/raas-dev/raas/render"
)

// reconcilePlatform applies the platform-wide objects and prunes the ones no longer
// rendered, with an inventory of their own.
func (r *Reconciler) reconcilePlatform(ctx context.Context, p *pass) ([]Entry, error) {
	objs := p.in.Render.Platform
	old := p.invs.platform
	prev := old.byKey()
	inv := &inventory{}
	if old != nil {
		inv.resourceVersion, inv.Revision = old.resourceVersion, old.Revision
	}
	if objs == nil {
		// The platform failed to render: its objects stay as they are.
		return keepObjects(old, "", "the platform objects failed to render; left as last applied"), nil
	}
	if err := r.checkSize(prospective(old, inv, map[render.Target][]*render.Object{render.Host: objs})); err != nil {
		return keepObjects(old, "", "not applied: "+err.Error()), err
	}
	if err := r.recordPending(ctx, p, old, inv, map[render.Target][]*render.Object{render.Host: objs}); err != nil {
		return nil, err
	}
	lv := r.hostLevel(p)
	outs := r.applyObjects(ctx, p, lv, "", objs, prev)
	entries, records := collect(outs)
	pruned, kept := r.pruneStale(ctx, p, "", stale(old, outs), lv, nil, false)
	entries = append(entries, pruned...)
	inv.Objects = append(records, kept...)
	if !inv.needsWrite(old, wrote(entries)) {
		return entries, nil
	}
	inv.Revision = p.in.Revision
	return entries, p.w.store(ctx, inv)
}

// keepObjects reports the inventory's objects as skipped.
func keepObjects(inv *inventory, tenant, reason string) []Entry {
	if inv == nil {
		return nil
	}
	entries := make([]Entry, 0, len(inv.Objects))
	for _, o := range inv.Objects {
		entries = append(entries, Entry{Tenant: tenant, Target: o.Target, Ref: o.Ref, APIVersion: o.APIVersion, Action: Skipped, Reason: reason})
	}
	return entries
}
