package reconcile

import (
	"context"

	"github.com/raas-dev/raas/render"
)

// What a pass records in the inventories: the objects it is about to apply for the first
// time, before it applies them, and after the pass every object it applied and every
// stale one it could not prune yet.

// recordPending adds the objects about to be applied for the first time to the stored
// inventory before applying them, so that a crash between the apply and the final
// inventory write cannot leave objects that no inventory knows and no prune finds.
func (r *Reconciler) recordPending(ctx context.Context, p *pass, old, inv *inventory, objs map[render.Target][]*render.Object) error {
	prev := old.byKey()
	pending := &inventory{Tenant: inv.Tenant, File: inv.File, Revision: inv.Revision, RetainData: inv.RetainData, Quota: inv.Quota,
		resourceVersion: inv.resourceVersion}
	if old != nil {
		pending.Objects = append(pending.Objects, old.Objects...)
		pending.RetainData = old.RetainData || inv.RetainData
	}
	n := 0
	for _, target := range []render.Target{render.Host, render.Virtual} {
		for _, o := range objs[target] {
			ref := refOf(o.Unstructured)
			if _, ok := prev[entryKey{target, ref}]; ok {
				continue
			}
			pending.Objects = append(pending.Objects, objectEntry{Target: target, APIVersion: o.GetAPIVersion(), Ref: ref})
			n++
		}
	}
	if n == 0 {
		return nil
	}
	if err := p.w.store(ctx, pending); err != nil {
		return err
	}
	inv.resourceVersion = pending.resourceVersion
	return nil
}

// prospective is the inventory a tenant (or the platform) would have after a pass: every
// object of objs, and the old inventory's others, still to prune.
func prospective(old, inv *inventory, objs map[render.Target][]*render.Object) *inventory {
	next := *inv
	next.Objects = nil
	rendered := map[entryKey]bool{}
	for _, target := range []render.Target{render.Host, render.Virtual} {
		for _, o := range objs[target] {
			e := objectEntry{Target: target, APIVersion: o.GetAPIVersion(), Ref: refOf(o.Unstructured)}
			rendered[e.key()] = true
			next.Objects = append(next.Objects, e)
		}
	}
	if old != nil {
		for _, e := range old.Objects {
			if !rendered[e.key()] {
				next.Objects = append(next.Objects, e)
			}
		}
	}
	return &next
}

// wrote reports whether any entry writes.
func wrote(entries []Entry) bool {
	for _, e := range entries {
		if e.Action.Writes() {
			return true
		}
	}
	return false
}

// collect returns the entries of outs and their inventory records.
func collect(outs ...[]outcome) ([]Entry, []objectEntry) {
	var entries []Entry
	var records []objectEntry
	for _, list := range outs {
		for _, o := range list {
			entries = append(entries, o.entry)
			if o.record != nil {
				records = append(records, *o.record)
			}
		}
	}
	return entries, records
}

// stale returns the objects of the old inventory that this pass did not render, in
// inventory order.
func stale(old *inventory, outs ...[]outcome) []objectEntry {
	if old == nil {
		return nil
	}
	rendered := map[entryKey]bool{}
	for _, list := range outs {
		for _, o := range list {
			rendered[entryKey{o.entry.Target, o.entry.Ref}] = true
		}
	}
	var out []objectEntry
	for _, e := range old.Objects {
		if !rendered[e.key()] {
			out = append(out, e)
		}
	}
	return out
}
