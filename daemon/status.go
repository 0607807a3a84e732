package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/api/v1alpha1"
	"github.com/raas-dev/raas/bridge"
	"github.com/raas-dev/raas/reconcile"
	"github.com/raas-dev/raas/render"
	"github.com/raas-dev/raas/schema"
	"github.com/raas-dev/raas/source"
)

// statusWriter keeps one v1alpha1.Tenant per tenant in the host cluster, and records an
// Event on the tenant's namespace whenever its phase changes.
type statusWriter struct {
	client  client.Client
	log     *slog.Logger
	now     func() time.Time
	missing bool // the Tenant CRD is not installed; said once
	// fence, when set, is asked before each write of a tenant's Tenant object or Events
	// (Owner.Fence), and the write is given fenceTimeout to land.
	fence        func(tenant string) error
	fenceTimeout time.Duration
}

// errFenced marks a write the fence refused.
var errFenced = errors.New("not written")

// fenced runs write if the fence lets the replica write tenant now, under the fence's
// timeout.
func (w *statusWriter) fenced(ctx context.Context, tenant string, write func(context.Context) error) error {
	if w.fence == nil {
		return write(ctx)
	}
	if err := w.fence(tenant); err != nil {
		return fmt.Errorf("%w: %w", errFenced, err)
	}
	if w.fenceTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, w.fenceTimeout)
		defer cancel()
	}
	return write(ctx)
}

// phaseOf maps a tenant's health after a pass to its phase. A tenant whose file does not
// validate or render is Stalled: its objects stay as last applied.
func phaseOf(t reconcile.TenantResult) v1alpha1.Phase {
	switch {
	case t.Stalled:
		return v1alpha1.Stalled
	case t.Health == reconcile.HealthReady:
		return v1alpha1.Ready
	case t.Health == reconcile.HealthAsleep:
		return v1alpha1.Asleep
	case t.Health == reconcile.HealthProgressing:
		return v1alpha1.Progressing
	default:
		return v1alpha1.Failed
	}
}

// reasonOf is a CamelCase word for a tenant's phase.
func reasonOf(phase v1alpha1.Phase, t reconcile.TenantResult) string {
	switch phase {
	case v1alpha1.Ready:
		return "Reconciled"
	case v1alpha1.Stalled:
		return "InvalidSpec"
	case v1alpha1.Progressing:
		return "WaitingForVCluster"
	case v1alpha1.Asleep:
		return "SandboxExpired"
	}
	return "ReconcileFailed"
}

// write records the outcome of a pass, over every tenant if all is set. Tenants that were
// removed lose their Tenant object. Only the tenants of res are written: with a fence,
// those the replica owns, each write fenced, so that the Tenant objects of other
// replicas' tenants are neither rewritten nor deleted.
func (w *statusWriter) write(ctx context.Context, res *reconcile.Result, all bool, rendered *render.Result, bridges map[string]bridge.Status) {
	if w.missing {
		return
	}
	outputs := map[string]*render.Output{}
	for _, out := range rendered.Tenants {
		outputs[out.Tenant] = out
	}
	existing, err := w.read(ctx, res.Tenants, all)
	if err != nil {
		if meta.IsNoMatchError(err) || isCRDMissing(err) {
			w.missing = true
			w.log.Warn("the Tenant CRD is not installed; status is not written (apply deploy/crds)", "error", err)
			return
		}
		w.log.Error("read tenant status", "error", err)
		return
	}
	for _, t := range res.Tenants {
		if err := w.writeOne(ctx, res, t, rendered.Repo, existing[t.Name], outputs[t.Name], bridges); err != nil {
			if meta.IsNoMatchError(err) || isCRDMissing(err) {
				w.missing = true
				w.log.Warn("the Tenant CRD is not installed; status is not written (apply deploy/crds)", "error", err)
				return
			}
			if errors.Is(err, errFenced) {
				w.log.Info("tenant status not written: no longer the owner", "tenant", t.Name, "error", err)
				continue
			}
			w.log.Error("write tenant status", "tenant", t.Name, "error", err)
		}
	}
}

// fewTenants is the most tenants whose Tenant objects are read one by one rather than
// listed: a pass over a few tenants of many reads only theirs.
const fewTenants = 32

// read returns the Tenant objects of tenants that exist, by name: all of them listed
// after a pass over every tenant (all) or many, else one by one.
func (w *statusWriter) read(ctx context.Context, tenants []reconcile.TenantResult, all bool) (map[string]*v1alpha1.Tenant, error) {
	existing := map[string]*v1alpha1.Tenant{}
	if all || len(tenants) > fewTenants {
		var list v1alpha1.TenantList
		if err := w.client.List(ctx, &list); err != nil {
			return nil, err
		}
		for i := range list.Items {
			existing[list.Items[i].Name] = &list.Items[i]
		}
		return existing, nil
	}
	for _, t := range tenants {
		obj := &v1alpha1.Tenant{}
		err := w.client.Get(ctx, client.ObjectKey{Name: t.Name}, obj)
		switch {
		case err == nil:
			existing[t.Name] = obj
		case !apierrors.IsNotFound(err) || isCRDMissing(err):
			return nil, err
		}
	}
	return existing, nil
}

// sameSpec compares two specs, the tenant's source by meaning: the API server may return
// the JSON with another key order.
func sameSpec(a, b v1alpha1.TenantSpec) bool {
	var sa, sb any
	if len(a.Source.Raw) > 0 && json.Unmarshal(a.Source.Raw, &sa) != nil {
		return false
	}
	if len(b.Source.Raw) > 0 && json.Unmarshal(b.Source.Raw, &sb) != nil {
		return false
	}
	a.Source, b.Source = runtime.RawExtension{}, runtime.RawExtension{}
	return equality.Semantic.DeepEqual(a, b) && equality.Semantic.DeepEqual(sa, sb)
}

// isCRDMissing reports whether err says the tenants resource does not exist (rather
// than, say, that raas may not read it).
func isCRDMissing(err error) bool {
	if !apierrors.IsNotFound(err) {
		return false
	}
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return false
	}
	d := status.Status().Details
	return d != nil && d.Kind == "tenants" && d.Name == ""
}

func (w *statusWriter) writeOne(ctx context.Context, res *reconcile.Result, t reconcile.TenantResult, repo *schema.Repo, obj *v1alpha1.Tenant, out *render.Output, bridges map[string]bridge.Status) error {
	switch {
	case t.Health == reconcile.HealthRemoved:
		if obj != nil {
			return w.fenced(ctx, t.Name, func(ctx context.Context) error {
				return client.IgnoreNotFound(w.client.Delete(ctx, obj))
			})
		}
		return nil
	case obj == nil:
		obj = &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: t.Name}}
	}

	spec := v1alpha1.TenantSpec{File: t.File, Namespace: t.Namespace, Queue: t.Queue}
	if tn := repo.Tenant(t.Name); tn != nil {
		raw, err := json.Marshal(tn.Spec)
		if err != nil {
			return err
		}
		spec.Source = runtime.RawExtension{Raw: raw}
	} else if obj.Spec.Source.Raw != nil {
		spec.Source = obj.Spec.Source // an invalid file keeps the last good spec
	}
	labels := map[string]string{schema.LabelManagedBy: schema.ManagedBy}
	if obj.ResourceVersion == "" {
		obj.Labels, obj.Spec = labels, spec
		if err := w.fenced(ctx, t.Name, func(ctx context.Context) error { return w.client.Create(ctx, obj) }); err != nil {
			return err
		}
	} else if !sameSpec(obj.Spec, spec) || !equality.Semantic.DeepEqual(obj.Labels, labels) {
		obj.Labels, obj.Spec = labels, spec
		if err := w.fenced(ctx, t.Name, func(ctx context.Context) error { return w.client.Update(ctx, obj) }); err != nil {
			return err
		}
	}

	phase := phaseOf(t)
	before := obj.Status.DeepCopy()
	previous := before.Phase
	st := &obj.Status
	st.Phase = phase
	st.Reason = reasonOf(phase, t)
	st.Message = t.Reason
	st.Cluster, st.MovingFrom = t.Cluster, t.MovingFrom
	st.ObservedRevision = res.Revision
	if phase == v1alpha1.Ready || phase == v1alpha1.Progressing || phase == v1alpha1.Asleep {
		st.AppliedRevision = res.Revision
		st.LastError = ""
	} else {
		st.LastError = t.Reason
	}
	if out != nil {
		st.Objects = len(out.Host) + len(out.Virtual)
	}
	st.PodGroups = nil
	if b, ok := bridges[t.Name]; ok {
		st.PodGroups = &v1alpha1.PodGroupStatus{Mirrored: b.Mirrored}
		for _, r := range b.Refused {
			st.PodGroups.Collisions = append(st.PodGroups.Collisions, fmt.Sprintf("%s/%s: %s", r.Namespace, r.Name, r.Reason))
		}
	}
	held := heldCondition(res.HeldBack)
	if res.HeldBack != nil {
		var sig *source.SignatureError
		if errors.As(res.HeldBack, &sig) {
			st.ObservedRevision = sig.Commit
		}
		st.LastError = res.HeldBack.Error()
	}
	heldBefore := meta.FindStatusCondition(st.Conditions, conditionCurrent)
	heldChanged := res.HeldBack != nil && (heldBefore == nil || heldBefore.Status != held.Status || heldBefore.Message != held.Message)
	held.ObservedGeneration = obj.Generation
	meta.SetStatusCondition(&st.Conditions, held)
	readyStatus := metav1.ConditionFalse
	if phase == v1alpha1.Ready {
		readyStatus = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: "Ready", Status: readyStatus, Reason: st.Reason, Message: truncate(t.Reason, 1024),
		ObservedGeneration: obj.Generation,
	})
	// A pass that changed nothing for the tenant writes nothing: times move only with
	// something else.
	if equality.Semantic.DeepEqual(before, st) {
		return nil
	}
	now := metav1.NewTime(w.now())
	if previous != phase {
		st.LastTransitionTime = &now
	}
	if t.Change != reconcile.TenantUnchanged || st.LastAppliedTime == nil {
		st.LastAppliedTime = &now
	}
	if err := w.fenced(ctx, t.Name, func(ctx context.Context) error { return w.client.Status().Update(ctx, obj) }); err != nil {
		return err
	}
	if previous != phase {
		w.event(ctx, spec.Namespace, obj, previous, phase, t.Reason)
	}
	if heldChanged {
		w.record(ctx, spec.Namespace, obj, corev1.EventTypeWarning, held.Reason,
			fmt.Sprintf("tenant %s stays at revision %s: %s", obj.Name, res.Revision, held.Message))
	}
	return nil
}

// conditionCurrent is the condition that says whether the revision applied is the newest
// one, and why not when it is not.
const conditionCurrent = "RevisionCurrent"

// heldCondition is the RevisionCurrent condition for a pass held back by err (nil: not
// held back).
func heldCondition(err error) metav1.Condition {
	switch {
	case err == nil:
		return metav1.Condition{Type: conditionCurrent, Status: metav1.ConditionTrue, Reason: "Current",
			Message: "the newest revision is applied"}
	case errors.Is(err, source.ErrUnverified):
		return metav1.Condition{Type: conditionCurrent, Status: metav1.ConditionFalse, Reason: "UnverifiedCommit",
			Message: truncate("the newest commit is refused, the last verified revision stays applied and nothing is pruned: "+err.Error(), 1024)}
	}
	return metav1.Condition{Type: conditionCurrent, Status: metav1.ConditionFalse, Reason: "FetchFailed",
		Message: truncate("the newest revision could not be used, the last good one stays applied and nothing is pruned: "+err.Error(), 1024)}
}

// record creates an Event on the tenant's namespace.
func (w *statusWriter) record(ctx context.Context, namespace string, obj *v1alpha1.Tenant, kind, reason, msg string) {
	if namespace == "" {
		return
	}
	now := metav1.NewTime(w.now())
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "raas-" + obj.Name + "-", Namespace: namespace},
		InvolvedObject: corev1.ObjectReference{
			APIVersion: "v1", Kind: "Namespace", Name: namespace, Namespace: namespace,
		},
		Reason: reason, Message: truncate(msg, 1024), Type: kind,
		Source:         corev1.EventSource{Component: "raas"},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: "raas.dev/reconciler", ReportingInstance: "raas",
	}
	w.createEvent(ctx, obj.Name, ev)
}

// createEvent creates ev, an Event about tenant, if the fence allows it.
func (w *statusWriter) createEvent(ctx context.Context, tenant string, ev *corev1.Event) {
	err := w.fenced(ctx, tenant, func(ctx context.Context) error { return w.client.Create(ctx, ev) })
	if err != nil && !apierrors.IsNotFound(err) {
		w.log.Warn("record event", "tenant", tenant, "error", err)
	}
}

// event records a phase change on the tenant's namespace, for `kubectl describe` and
// `kubectl get events`.
func (w *statusWriter) event(ctx context.Context, namespace string, obj *v1alpha1.Tenant, from, to v1alpha1.Phase, why string) {
	if namespace == "" {
		return
	}
	kind := corev1.EventTypeNormal
	if to == v1alpha1.Failed || to == v1alpha1.Stalled {
		kind = corev1.EventTypeWarning
	}
	msg := fmt.Sprintf("tenant %s is %s", obj.Name, to)
	if from != "" {
		msg = fmt.Sprintf("tenant %s went from %s to %s", obj.Name, from, to)
	}
	if why != "" {
		msg += ": " + why
	}
	now := metav1.NewTime(w.now())
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "raas-" + obj.Name + "-", Namespace: namespace},
		// The API server wants the involved object's namespace to be the Event's, even for
		// a Namespace (kubectl describe namespace finds it there).
		InvolvedObject: corev1.ObjectReference{
			APIVersion: "v1", Kind: "Namespace", Name: namespace, Namespace: namespace,
		},
		Reason: string(to), Message: truncate(msg, 1024), Type: kind,
		Source:         corev1.EventSource{Component: "raas"},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: "raas.dev/reconciler", ReportingInstance: "raas",
	}
	w.createEvent(ctx, obj.Name, ev)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
