package reconcile

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fluxcd/pkg/ssa"
	ssaerrors "github.com/fluxcd/pkg/ssa/errors"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/render"
	"github.com/raas-dev/raas/schema"
)

// Apply runs one reconcile pass: it applies the platform objects, then each tenant's host
// objects and, once its vcluster answers, its virtual objects, all with server-side apply;
// it prunes what is no longer rendered, within the safety rails; and it reports each
// tenant's health. One tenant's trouble does not stop the others.
//
// It returns an error only when the pass cannot start: no checkout, or the host cluster
// or the inventories cannot be read. Everything else is in the Result.
func (r *Reconciler) Apply(ctx context.Context, in Input) (*Result, error) {
	p, err := r.begin(ctx, in, false)
	if err != nil {
		return nil, err
	}
	return r.run(ctx, p), nil
}

// level is one API server that a set of objects goes to.
type level struct {
	target render.Target
	client client.Client
	mgr    *ssa.ResourceManager
	idx    *liveIndex
	// newNamespaces are the namespaces a dry run would create. Objects in them cannot be
	// dry-run, since their namespace does not exist yet; they would be created.
	newNamespaces map[string]bool
}

func (r *Reconciler) hostLevel(p *pass) *level {
	return &level{target: render.Host, client: r.host, mgr: r.hostMgr, idx: p.hostIdx, newNamespaces: map[string]bool{}}
}

// outcome is what happened to one object.
type outcome struct {
	entry Entry
	// record is the object's inventory entry after the pass; nil when the object was not
	// attempted and never was before.
	record *objectEntry
	// live is the object as the API server returned it after a write, for its health.
	live *unstructured.Unstructured
}

// isDefinition reports whether others may need o to exist first: namespaces and CRDs.
func isDefinition(o *render.Object) bool {
	gvk := o.GroupVersionKind()
	return (gvk.Group == "" && gvk.Kind == "Namespace") ||
		(gvk.Group == "apiextensions.k8s.io" && gvk.Kind == "CustomResourceDefinition")
}

// applyObjects applies objs in two stages: namespaces and CRDs first, waiting until the
// ones it created or changed are active and established, then the rest. Within a stage
// objects go in the order rendered.
func (r *Reconciler) applyObjects(ctx context.Context, p *pass, lv *level, tenant string, objs []*render.Object, prev map[entryKey]objectEntry) []outcome {
	outs := make([]outcome, len(objs))
	var defs, rest []int
	for i, o := range objs {
		if isDefinition(o) {
			defs = append(defs, i)
		} else {
			rest = append(rest, i)
		}
	}
	for _, i := range defs {
		outs[i] = r.applyObject(ctx, p, lv, tenant, objs[i], prev)
		if p.dryRun && outs[i].entry.Action == Created && outs[i].entry.Kind == "Namespace" {
			lv.newNamespaces[outs[i].entry.Name] = true
		}
	}
	if !p.dryRun {
		r.waitDefinitions(ctx, lv, outs, defs)
	}
	blocked := ""
	for _, i := range defs {
		if outs[i].entry.Action == Failed {
			blocked = fmt.Sprintf("%s failed first", outs[i].entry.Ref)
			break
		}
	}
	for _, i := range rest {
		if blocked != "" {
			outs[i] = notAttempted(lv.target, tenant, objs[i], prev, blocked)
			continue
		}
		outs[i] = r.applyObject(ctx, p, lv, tenant, objs[i], prev)
	}
	return outs
}

// notAttempted reports an object left alone; its inventory entry stays as it was. One that
// was never applied stays as recordPending put it, with no digest: dropping it would
// make every pass write it into the inventory again before applying, and out after.
func notAttempted(target render.Target, tenant string, o *render.Object, prev map[entryKey]objectEntry, reason string) outcome {
	ref := refOf(o.Unstructured)
	out := outcome{entry: Entry{Tenant: tenant, Target: target, Ref: ref, APIVersion: o.GetAPIVersion(), Action: Skipped, Reason: reason}}
	if old, ok := prev[entryKey{target, ref}]; ok {
		out.record = &old
	} else {
		out.record = &objectEntry{Target: target, APIVersion: o.GetAPIVersion(), Ref: ref}
	}
	return out
}

// applyObject applies one object, or in a dry run says what applying it would do.
//
// An object whose rendered form has the digest the inventory recorded, and whose live
// resourceVersion is still the one recorded right after raas last wrote it, is unchanged:
// neither side moved. So is one that an earlier pass of this Reconciler found unchanged by
// dry run at the same digest and resourceVersion (a controller may have bumped the version
// after raas wrote it, with a status update; a no-op pass does not write inventories to
// record that, so the Reconciler remembers it). Any other object is compared by a server-side dry run
// (fluxcd/pkg/ssa), and applied only when the dry run differs from the live object, so
// that a pass with nothing to do writes nothing. A difference while the rendered digest
// is the one last applied is drift: someone edited or deleted the object by hand.
func (r *Reconciler) applyObject(ctx context.Context, p *pass, lv *level, tenant string, obj *render.Object, prev map[entryKey]objectEntry) outcome {
	ref := refOf(obj.Unstructured)
	e := Entry{Tenant: tenant, Target: lv.target, Ref: ref, APIVersion: obj.GetAPIVersion()}
	digest, err := p.digests.of(obj)
	if err != nil {
		e.Action, e.Reason = Failed, err.Error()
		return outcome{entry: e}
	}
	old, had := prev[entryKey{lv.target, ref}]
	rec := &objectEntry{Target: lv.target, APIVersion: obj.GetAPIVersion(), Ref: ref, Digest: digest}
	failed := func(reason string) outcome {
		e.Action, e.Reason = Failed, reason
		if had {
			old.ResourceVersion = ""
			return outcome{entry: e, record: &old}
		}
		// raas does not know whether the object came to exist: keep track of it.
		rec.Digest = ""
		return outcome{entry: e, record: rec}
	}

	key := entryKey{lv.target, ref}
	liveVersion := lv.idx.version(ref)
	if !r.opts.Verify && liveVersion != "" && ((had && old.Digest == digest && old.ResourceVersion == liveVersion) ||
		r.checked.match(tenant, key, digest, liveVersion)) {
		e.Action = Unchanged
		rec.ResourceVersion = liveVersion
		return outcome{entry: e, record: rec}
	}
	if p.dryRun && ref.Namespace != "" && lv.newNamespaces[ref.Namespace] {
		e.Action = Created
		return outcome{entry: e}
	}

	// The rendered object is shared and must not change: ssa and the apply work on a copy.
	u := obj.Unstructured.DeepCopy()
	action := ssa.CreatedAction
	var live, dry *unstructured.Unstructured
	exists := liveVersion != ""
	if !exists && !p.dryRun {
		// Not among the objects labelled as raas's: most likely new. A metadata read
		// settles it, and spares a new object a dry run. (A diff does dry-run new objects:
		// it is how it finds what the API server would reject.)
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(obj.GroupVersionKind())
		err := lv.client.Get(ctx, client.ObjectKeyFromObject(obj.Unstructured), m)
		switch {
		case err == nil:
			exists = true
		case !apierrors.IsNotFound(err):
			return failed(errorReason(err))
		case tenant == "" && ref.Namespace != "":
			// A platform object outside raas's namespaces: see whether its namespace
			// exists before trying a write that would fail.
			ns := &metav1.PartialObjectMetadata{}
			ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
			err := lv.client.Get(ctx, client.ObjectKey{Name: ref.Namespace}, ns)
			if apierrors.IsNotFound(err) {
				return skipMissingNamespace(e, ref.Namespace, failed)
			}
		}
	}
	if exists || p.dryRun {
		cse, l, d, err := lv.mgr.Diff(ctx, u, ssa.DiffOptions{})
		if p.dryRun && apierrors.IsForbidden(err) {
			return outcome{entry: readOnlyDiff(e, had, old, digest, exists)}
		}
		if err != nil {
			return r.applyFailed(e, err, failed)
		}
		action, live, dry = cse.Action, l, d
	}
	drift := had && old.Digest == digest
	switch action {
	case ssa.UnchangedAction:
		e.Action = Unchanged
		rec.ResourceVersion = liveVersion
		r.checked.store(tenant, key, digest, liveVersion)
		return outcome{entry: e, record: rec}
	case ssa.CreatedAction:
		e.Action = Created
		if drift {
			e.Action, e.Reason = Drifted, "deleted by hand; created again"
		}
	case ssa.ConfiguredAction:
		e.Action = Configured
		if drift || p.dryRun {
			if e.Diff, err = unifiedDiff(live, dry); err != nil {
				return failed(err.Error())
			}
		}
		if drift {
			e.Action, e.Reason = Drifted, "edited by hand; put back"
		}
	default:
		return failed(fmt.Sprintf("unexpected dry-run result %q", action))
	}
	if p.dryRun {
		return outcome{entry: e}
	}
	err = lv.client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u),
		client.ForceOwnership, client.FieldOwner(r.opts.FieldManager))
	if err != nil {
		return r.applyFailed(e, err, failed)
	}
	rec.ResourceVersion = u.GetResourceVersion()
	return outcome{entry: e, record: rec, live: u}
}

// readOnlyReason marks entries a diff judged without a dry run.
const readOnlyReason = "compared with the inventory: these credentials may not dry-run"

// readOnlyDiff judges an object a diff may not dry-run, as with read-only credentials in
// CI: by the digest the inventory recorded when raas last applied it. It says whether the
// object would change, not how, and cannot see drift.
func readOnlyDiff(e Entry, had bool, old objectEntry, digest string, exists bool) Entry {
	switch {
	case !exists && !had:
		e.Action = Created
	case had && old.Digest == digest:
		e.Action = Unchanged
	default:
		e.Action = Configured
	}
	e.Reason = readOnlyReason
	return e
}

// applyFailed reports an object the API server refused. A platform object whose namespace
// does not exist is skipped: the Volcano scheduler's ConfigMap goes into volcano-system,
// which Volcano's own install creates and owns. raas does not create it, since Volcano's
// Helm release would then refuse to adopt the namespace's ConfigMap.
func (r *Reconciler) applyFailed(e Entry, err error, failed func(string) outcome) outcome {
	if ns, ok := missingNamespace(err); ok && e.Tenant == "" {
		return skipMissingNamespace(e, ns, failed)
	}
	return failed(errorReason(err))
}

// skipMissingNamespace skips a platform object whose namespace does not exist. Its
// inventory record stays as for a failure (recorded, not known applied), so that a pass
// in which nothing changed writes no inventory.
func skipMissingNamespace(e Entry, ns string, failed func(string) outcome) outcome {
	out := failed("")
	out.entry = e
	out.entry.Action = Skipped
	out.entry.Reason = fmt.Sprintf("namespace %s does not exist: install Volcano first; raas does not create namespaces it does not own", ns)
	return out
}

// waitDefinitions waits until the namespaces and CRDs that the pass created or changed are
// active and established, and records their resourceVersion once they are: the API server
// updates a new CRD's status right after creating it.
func (r *Reconciler) waitDefinitions(ctx context.Context, lv *level, outs []outcome, defs []int) {
	deadline := time.Now().Add(r.opts.WaitTimeout)
	for _, i := range defs {
		o := &outs[i]
		if o.live == nil {
			continue
		}
		for {
			cur := &unstructured.Unstructured{}
			cur.SetGroupVersionKind(o.live.GroupVersionKind())
			err := lv.client.Get(ctx, client.ObjectKeyFromObject(o.live), cur)
			if err == nil && definitionReady(cur) {
				o.live = cur
				o.record.ResourceVersion = cur.GetResourceVersion()
				break
			}
			if err == nil {
				err = errors.New("not ready")
			}
			if ctx.Err() != nil || time.Now().After(deadline) {
				o.entry.Action = Failed
				o.entry.Reason = fmt.Sprintf("applied, but not active or established after %s: %v", r.opts.WaitTimeout, err)
				o.record.ResourceVersion = ""
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(r.opts.PollInterval):
			}
		}
	}
}

// definitionReady reports whether a CRD is established or a namespace is active.
func definitionReady(u *unstructured.Unstructured) bool {
	if u.GetKind() == "Namespace" {
		phase, _, _ := unstructured.NestedString(u.Object, "status", "phase")
		return phase == "Active"
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// missingNamespace reports whether err says that the object's namespace does not exist.
func missingNamespace(err error) (string, bool) {
	var status apierrors.APIStatus
	if !errors.As(err, &status) || !apierrors.IsNotFound(err) {
		return "", false
	}
	d := status.Status().Details
	if d == nil || d.Kind != "namespaces" {
		return "", false
	}
	return d.Name, true
}

// errorReason is err without the object name ssa prefixes: the entry names it already.
func errorReason(err error) string {
	var dry *ssaerrors.DryRunErr
	if errors.As(err, &dry) {
		if ssaerrors.IsImmutableError(err) {
			return "an immutable field changed; raas does not recreate objects: delete it by hand to let the next pass create it: " + errors.Unwrap(dry).Error()
		}
		if inner := errors.Unwrap(dry); inner != nil {
			return "dry run: " + inner.Error()
		}
	}
	return err.Error()
}

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
		return r.keepObjects(old, "", "the platform objects failed to render; left as last applied"), nil
	}
	if err := checkSize(prospective(old, inv, &render.Output{Host: objs})); err != nil {
		return r.keepObjects(old, "", "not applied: "+err.Error()), err
	}
	if !p.dryRun {
		if err := r.recordPending(ctx, old, inv, map[render.Target][]*render.Object{render.Host: objs}); err != nil {
			return nil, err
		}
	}
	lv := r.hostLevel(p)
	outs := r.applyObjects(ctx, p, lv, "", objs, prev)
	entries, records := collect(outs)
	pruned, kept := r.pruneStale(ctx, p, "", stale(old, outs), lv, nil, false)
	entries = append(entries, pruned...)
	inv.Objects = append(records, kept...)
	if p.dryRun || !inv.needsWrite(old, wrote(entries)) {
		return entries, nil
	}
	inv.Revision = p.in.Revision
	return entries, r.storeInventory(ctx, inv)
}

// keepObjects reports the inventory's objects as skipped.
func (r *Reconciler) keepObjects(inv *inventory, tenant, reason string) []Entry {
	if inv == nil {
		return nil
	}
	entries := make([]Entry, 0, len(inv.Objects))
	for _, o := range inv.Objects {
		entries = append(entries, Entry{Tenant: tenant, Target: o.Target, Ref: o.Ref, APIVersion: o.APIVersion, Action: Skipped, Reason: reason})
	}
	return entries
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

// recordPending adds the objects about to be applied for the first time to the stored
// inventory before applying them, so that a crash between the apply and the final
// inventory write cannot leave objects that no inventory knows and no prune finds.
func (r *Reconciler) recordPending(ctx context.Context, old, inv *inventory, objs map[render.Target][]*render.Object) error {
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
	if err := r.storeInventory(ctx, pending); err != nil {
		return err
	}
	inv.resourceVersion = pending.resourceVersion
	return nil
}

// reconcileTenant applies (or diffs) one tenant on both levels and prunes its stale
// objects.
func (r *Reconciler) reconcileTenant(ctx context.Context, p *pass, out *render.Output, t *schema.Tenant) tenantRun {
	name := out.Tenant
	old := p.invs.tenants[name]
	prev := old.byKey()
	st := TenantStatus{Name: name, File: out.File, After: quotaOf(t)}
	inv := &inventory{Tenant: name, File: out.File, RetainData: retainData(t), Quota: st.After}
	if old != nil {
		st.Before = old.Quota
		inv.resourceVersion, inv.Revision = old.resourceVersion, old.Revision
	}
	fail := func(err error) tenantRun {
		st.Health, st.Reason = HealthFailed, err.Error()
		return tenantRun{status: st, entries: r.keepObjects(old, name, "not applied: "+err.Error())}
	}
	if err := checkSize(prospective(old, inv, out)); err != nil {
		return fail(err)
	}
	if !p.dryRun {
		err := r.recordPending(ctx, old, inv, map[render.Target][]*render.Object{render.Host: out.Host, render.Virtual: out.Virtual})
		if err != nil {
			return fail(err)
		}
	}

	host := r.hostLevel(p)
	hostOuts := r.applyObjects(ctx, p, host, name, out.Host, prev)

	var virtOuts []outcome
	var virt *level
	var vcErr error
	switch {
	case out.Asleep:
		// The vcluster is scaled to zero: leave its objects as last applied, and stop the
		// workloads it had synced to the host.
		for _, o := range out.Virtual {
			virtOuts = append(virtOuts, notAttempted(render.Virtual, name, o, prev, "asleep"))
		}
		if !p.dryRun {
			vcErr = r.sleepWorkloads(ctx, p.platform.Namespace(name))
		}
	case p.dryRun:
		virtOuts = r.diffVirtual(p, name, out.Virtual, prev)
	default:
		vc, idx, err := r.connectVCluster(ctx, p.platform.Namespace(name), schema.Release(name), kindsOf(out.Virtual), p.vclusterDeadline)
		if err != nil {
			vcErr = err
			for _, o := range out.Virtual {
				virtOuts = append(virtOuts, notAttempted(render.Virtual, name, o, prev, "the vcluster is not up yet"))
			}
			break
		}
		if old != nil && old.damaged != "" {
			rebuildVirtual(old, idx)
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
		return tenantRun{status: st, entries: entries}
	}
	if inv.needsWrite(old, wrote(entries)) {
		inv.Revision = p.in.Revision
		if err := r.storeInventory(ctx, inv); err != nil {
			st.Health, st.Reason = HealthFailed, err.Error()
			return tenantRun{status: st, entries: entries}
		}
	}
	if out.Asleep {
		st.Health, st.Reason = asleepHealth(entries, vcErr)
		return tenantRun{status: st, entries: entries}
	}
	st.Health, st.Reason = r.health(p, out, hostOuts, virtOuts, vcErr, virt)
	return tenantRun{status: st, entries: entries}
}

// prospective is the inventory a tenant would have after a pass: every rendered object,
// and the old inventory's others, still to prune.
func prospective(old, inv *inventory, out *render.Output) *inventory {
	next := *inv
	next.Objects = nil
	rendered := map[entryKey]bool{}
	for target, objs := range map[render.Target][]*render.Object{render.Host: out.Host, render.Virtual: out.Virtual} {
		for _, o := range objs {
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

// asleepHealth is the health of an expired sandbox: Asleep, unless putting it to sleep
// failed.
func asleepHealth(entries []Entry, sleepErr error) (Health, string) {
	for _, e := range entries {
		if e.Action == Failed {
			return HealthFailed, fmt.Sprintf("%s %s: %s", e.Target, e.Ref, e.Reason)
		}
	}
	if sleepErr != nil {
		return HealthFailed, sleepErr.Error()
	}
	return HealthAsleep, "the sandbox has expired: its vcluster is scaled to zero and its data kept; remove its file"
}

// vclusterMarker labels the host pods a vcluster synced.
const vclusterMarker = "vcluster.loft.sh/managed-by"

// sleepWorkloads deletes the pods a vcluster synced into namespace. Their controllers run
// inside the vcluster, which is scaled to zero, so they do not come back until it wakes;
// volumes are untouched.
func (r *Reconciler) sleepWorkloads(ctx context.Context, namespace string) error {
	var pods corev1.PodList
	sel, err := labels.Parse(vclusterMarker)
	if err != nil {
		return err
	}
	if err := r.host.List(ctx, &pods, client.InNamespace(namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return fmt.Errorf("asleep: list synced pods: %w", err)
	}
	for i := range pods.Items {
		if err := r.host.Delete(ctx, &pods.Items[i]); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("asleep: stop pod %s: %w", pods.Items[i].Name, err)
		}
	}
	return nil
}

func retainData(t *schema.Tenant) bool {
	return t.Spec.VCluster.RetainData == nil || *t.Spec.VCluster.RetainData
}
