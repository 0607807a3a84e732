package reconcile

import (
	"context"
	"fmt"

	"github.com/fluxcd/pkg/ssa"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/render"
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

// applyObjects applies objs in two stages: namespaces and CRDs first, settled by the
// writer (a pass waits until the ones it created or changed are active and established),
// then the rest. Within a stage objects go in the order rendered.
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
	}
	p.w.settle(ctx, lv, outs, defs)
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
// record that, so the Reconciler remembers it). Any other object is compared by a
// server-side dry run (fluxcd/pkg/ssa), and written only when the dry run differs from the
// live object, so that a pass with nothing to do writes nothing. A difference while the
// rendered digest is the one last applied is drift: someone edited or deleted the object
// by hand.
//
// A diff compares more than a pass needs: it dry-runs new objects too (it is how it finds
// what the API server would reject), shows the change of every configured object, and
// falls back on the inventory where its credentials may not dry-run.
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
	if ref.Namespace != "" && lv.newNamespaces[ref.Namespace] {
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
		// settles it, and spares a new object a dry run.
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
			return applyFailed(e, err, failed)
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
	if err := p.w.apply(ctx, lv, u); err != nil {
		return applyFailed(e, err, failed)
	}
	rec.ResourceVersion = u.GetResourceVersion()
	return outcome{entry: e, record: rec, live: u}
}
