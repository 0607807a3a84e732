package reconcile

import (
	"context"
	"fmt"
	"math"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/render"
	raasschema "github.com/raas-dev/raas/schema"
)

// Pruning deletes what raas applied before and no longer renders. It is where raas can do
// the most harm, so it is fenced in:
//
//   - Nothing is deleted in a pass whose checkout has any validation error or render
//     failure, whose fetch failed, or whose platform config is invalid or missing (an
//     empty or unreadable checkout). A tenant whose file is broken keeps its objects.
//   - Only objects listed in an inventory are candidates, and only if the live object
//     still carries app.kubernetes.io/managed-by=raas (and, on the host, no other
//     tenant's raas.dev/tenant label). The delete is conditional on the UID read.
//   - Removing tenants whose files are gone is refused when it would remove more than
//     Options.MaxDeleteShare of the known tenants (at least one may always go), or every
//     tenant because the checkout has none, unless Options.AllowMassDelete is set. The
//     refusal is a MassDeleteError in Result.Errors and every object stays.
//
// Removing a tenant deletes its host objects: the vcluster (StatefulSet, services, RBAC),
// its queue, quota, policies and admission bindings. Its vcluster's data volumes are kept
// unless the tenant said otherwise (spec.vcluster.retainData, which defaults from the
// platform to true, as recorded in the inventory at the last apply): the volumes are
// PersistentVolumeClaims in the tenant namespace, created by the StatefulSet rather than by
// raas, and deleting the namespace would delete them. So raas keeps the namespace: it
// re-applies it with only raas's labels and the annotation raas.dev/retained, which says
// why it is there, and forgets it. Adding the tenant back adopts the namespace and the
// new vcluster finds its old volume, since the claim name is the same. Deleting the
// namespace by hand deletes the data. With retainData false the namespace is deleted too,
// and the volumes with it. The objects inside the vcluster are not deleted one by one:
// they live in its data volume, and go or stay with it.
//
// The same holds for a namespace that an existing tenant stops rendering (the platform's
// namespacePrefix changed): it is kept when the tenant retains data.

// removals returns the tenants that have an inventory but no file, and an error if
// removing them is refused.
func (r *Reconciler) removals(p *pass) ([]string, error) {
	repo := p.in.Render.Repo
	present := map[string]bool{}
	for _, t := range repo.Tenants {
		present[t.Metadata.Name] = true
	}
	for _, rej := range repo.Rejected {
		present[rej.Name] = true
	}
	var removed, evicted []string
	for _, name := range p.invs.names() {
		switch {
		case !present[name]:
			removed = append(removed, name)
		case p.in.Evict[name] != "":
			evicted = append(evicted, name)
		}
	}
	// Evictions are moves: nothing is lost, so they are not weighed.
	return append(removed, evicted...), r.refuseMassDelete(p, removed)
}

// refuseMassDelete returns why removing the tenants whose files are gone is refused, or
// nil.
func (r *Reconciler) refuseMassDelete(p *pass, removed []string) error {
	if len(removed) == 0 || p.pruneBlocked != "" || r.opts.AllowMassDelete {
		return nil
	}
	repo := p.in.Render.Repo
	known := len(p.invs.tenants)
	allowed := max(1, int(math.Floor(r.opts.MaxDeleteShare*float64(known)+1e-9)))
	switch {
	case len(repo.Tenants)+len(repo.Rejected) == 0:
		return &MassDeleteError{Tenants: removed, Known: known, Allowed: allowed, Empty: true}
	case len(removed) > allowed:
		return &MassDeleteError{Tenants: removed, Known: known, Allowed: allowed}
	}
	return nil
}

// removeTenant prunes a tenant whose file is gone, or says why it does not.
func (r *Reconciler) removeTenant(ctx context.Context, p *pass, inv *inventory) tenantRun {
	name := inv.Tenant
	st := p.tenantResult(name)
	st.File, st.Change, st.Before = inv.File, TenantRemoved, inv.Quota
	gone := "tenant file removed"
	to := p.in.Evict[name]
	if to != "" {
		gone = "moved to cluster " + to
	}
	switch {
	case p.removeErr != nil && to == "":
		st.Health, st.Reason, st.After = HealthFailed, p.removeErr.Error(), inv.Quota
		return tenantRun{result: st, entries: keepObjects(inv, name, gone+"; not pruned: mass deletion refused")}
	case p.pruneBlocked != "":
		st.Health, st.Reason, st.After = HealthProgressing, gone+"; not pruned: "+p.pruneBlocked, inv.Quota
		return tenantRun{result: st, entries: keepObjects(inv, name, gone+"; not pruned: "+p.pruneBlocked)}
	}

	host := r.hostLevel(p)
	var hostObjs []objectEntry
	var entries []Entry
	for _, o := range inv.Objects {
		if o.Target == render.Host {
			hostObjs = append(hostObjs, o)
		}
	}
	pruned, kept := r.pruneStale(ctx, p, name, hostObjs, host, nil, inv.RetainData)
	entries = append(entries, pruned...)
	inside := "deleted with the vcluster's data volume"
	if inv.RetainData {
		inside = "kept in the vcluster's retained data volume"
	}
	for _, o := range inv.Objects {
		if o.Target == render.Virtual {
			entries = append(entries, Entry{Tenant: name, Target: o.Target, Ref: o.Ref, APIVersion: o.APIVersion,
				Action: Skipped, Reason: "inside the removed vcluster; " + inside})
		}
	}

	st.Health, st.Reason = HealthRemoved, gone+"; objects pruned"
	for _, e := range pruned {
		if e.Action == Retained {
			st.Reason += fmt.Sprintf("; namespace %s kept with the vcluster's data volumes", e.Name)
		}
	}
	if p.dryRun {
		// A diff says what would be pruned; what follows records how the prune went.
		return tenantRun{result: st, entries: entries}
	}
	p.w.forget(name, st.Namespace)
	var err error
	if len(kept) == 0 {
		err = p.w.remove(ctx, inv)
	} else {
		st.Health, st.Reason, st.After = HealthFailed, fmt.Sprintf("%d object(s) could not be pruned; retried on the next pass", len(kept)), inv.Quota
		next := *inv
		next.Objects = kept
		err = p.w.store(ctx, &next)
	}
	if err != nil {
		st.Health, st.Reason = HealthFailed, err.Error()
	}
	return tenantRun{result: st, entries: entries}
}

// pruneStale deletes the stale objects, last applied first, and returns their entries and
// the objects that must stay in the inventory: those not deleted yet. virt is nil when the
// vcluster cannot be reached (or in a dry run, which never reaches it). retain keeps a
// stale host namespace instead of deleting it.
func (r *Reconciler) pruneStale(ctx context.Context, p *pass, tenant string, stale []objectEntry, host, virt *level, retain bool) ([]Entry, []objectEntry) {
	var entries []Entry
	var kept []objectEntry
	for _, o := range slices.Backward(stale) {
		e := Entry{Tenant: tenant, Target: o.Target, Ref: o.Ref, APIVersion: o.APIVersion}
		lv := host
		if o.Target == render.Virtual {
			lv = virt
		}
		switch {
		case p.pruneBlocked != "":
			e.Action, e.Reason = Skipped, "no longer rendered; not pruned: "+p.pruneBlocked
		case lv == nil && p.dryRun:
			e.Action, e.Reason = Deleted, "no longer rendered (per the inventory; the vcluster is not consulted)"
		case lv == nil:
			e.Action, e.Reason = Skipped, "no longer rendered; pruned once the vcluster answers"
		case retain && o.Target == render.Host && o.Group == "" && o.Kind == "Namespace":
			e = r.retainNamespace(ctx, p, tenant, o)
		default:
			e = r.deleteObject(ctx, p, lv, tenant, o)
		}
		entries = append(entries, e)
		if e.Action != Deleted && e.Action != Retained && !(e.Action == Skipped && e.Reason == reasonNotOurs) {
			kept = append(kept, o)
		}
	}
	slices.Reverse(kept)
	return entries, kept
}

const reasonNotOurs = "no longer labelled " + raasschema.LabelManagedBy + "=" + raasschema.ManagedBy + "; left in place and forgotten"

// ownedLive reads the live object's metadata and checks that raas may delete it. It
// returns nil and a final entry when the object is gone or not raas's to delete.
func (r *Reconciler) ownedLive(ctx context.Context, lv *level, tenant string, o objectEntry) (*metav1.PartialObjectMetadata, *Entry) {
	e := Entry{Tenant: tenant, Target: o.Target, Ref: o.Ref, APIVersion: o.APIVersion}
	gv, err := schema.ParseGroupVersion(o.APIVersion)
	if err != nil {
		e.Action, e.Reason = Failed, err.Error()
		return nil, &e
	}
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(gv.WithKind(o.Kind))
	err = lv.client.Get(ctx, client.ObjectKey{Namespace: o.Namespace, Name: o.Name}, m)
	switch {
	case apierrors.IsNotFound(err):
		e.Action, e.Reason = Deleted, "already gone"
		return nil, &e
	case err != nil:
		e.Action, e.Reason = Failed, err.Error()
		return nil, &e
	}
	labels := m.GetLabels()
	if labels[raasschema.LabelManagedBy] != raasschema.ManagedBy {
		e.Action, e.Reason = Skipped, reasonNotOurs
		return nil, &e
	}
	if owner := labels[raasschema.LabelTenant]; o.Target == render.Host && tenant != "" && owner != "" && owner != tenant {
		e.Action, e.Reason = Skipped, fmt.Sprintf("labelled for tenant %s; left in place", owner)
		return nil, &e
	}
	return m, nil
}

// deleteObject deletes one stale object if raas may (a diff's writer only says it would).
func (r *Reconciler) deleteObject(ctx context.Context, p *pass, lv *level, tenant string, o objectEntry) Entry {
	m, final := r.ownedLive(ctx, lv, tenant, o)
	if final != nil {
		return *final
	}
	e := Entry{Tenant: tenant, Target: o.Target, Ref: o.Ref, APIVersion: o.APIVersion, Action: Deleted}
	if err := p.w.delete(ctx, lv, m); err != nil && !apierrors.IsNotFound(err) {
		e.Action, e.Reason = Failed, err.Error()
	}
	return e
}

// retainNamespace keeps a removed tenant's namespace for its data volumes: it applies the
// namespace with only raas's labels and the retained annotation, which drops every other
// field raas set (pod security, queue), and leaves it out of the inventory.
func (r *Reconciler) retainNamespace(ctx context.Context, p *pass, tenant string, o objectEntry) Entry {
	host := r.hostLevel(p)
	_, final := r.ownedLive(ctx, host, tenant, o)
	if final != nil {
		return *final
	}
	e := Entry{Tenant: tenant, Target: o.Target, Ref: o.Ref, APIVersion: o.APIVersion, Action: Retained,
		Reason: "kept with the vcluster's data volumes (retainData); delete it by hand to delete them"}
	ns := &unstructured.Unstructured{}
	ns.SetAPIVersion("v1")
	ns.SetKind("Namespace")
	ns.SetName(o.Name)
	ns.SetLabels(map[string]string{raasschema.LabelManagedBy: raasschema.ManagedBy, raasschema.LabelTenant: tenant})
	ns.SetAnnotations(map[string]string{AnnotationRetained: fmt.Sprintf(
		"tenant %s is no longer in the tenants repository; this namespace holds its vcluster's data volumes. "+
			"Delete it to delete them, or add the tenant back to reuse them.", tenant)})
	if err := p.w.apply(ctx, host, ns); err != nil {
		e.Action, e.Reason = Failed, err.Error()
	}
	return e
}
