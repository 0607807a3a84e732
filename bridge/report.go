package bridge

import (
	"cmp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	schedulingv1beta1 "volcano.sh/apis/pkg/apis/scheduling/v1beta1"
)

// Status is what a bridge reports for the tenant's status.
type Status struct {
	Tenant string
	// Synced is true once both informers have listed their side.
	Synced bool
	// Mirrored counts the virtual PodGroups whose host copy is in place.
	Mirrored int
	// Refused lists the virtual PodGroups that are not mirrored, or whose copy is out of
	// date, sorted by namespace and name.
	Refused []Refusal
	// Failing counts the PodGroup names whose last sync failed and is being retried;
	// LastError is the most recent of those failures.
	Failing       int
	LastError     string
	LastErrorTime time.Time
}

// Refusal is a virtual PodGroup the bridge does not mirror, and why.
type Refusal struct {
	// Namespace and Name are the virtual PodGroup's.
	Namespace, Name string
	// Reason is one of ReasonNameCollision, ReasonNameTaken and ReasonHostDenied.
	Reason  string
	Message string
}

// Status returns a snapshot of the bridge's state.
func (b *Bridge) Status() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := Status{Tenant: b.opts.Tenant, Synced: b.synced.Load(), Mirrored: len(b.mirrored), Failing: len(b.failing)}
	for _, list := range b.refused {
		s.Refused = append(s.Refused, list...)
	}
	slices.SortFunc(s.Refused, func(x, y Refusal) int {
		return cmp.Or(cmp.Compare(x.Namespace, y.Namespace), cmp.Compare(x.Name, y.Name), cmp.Compare(x.Reason, y.Reason))
	})
	if len(b.failing) > 0 && b.lastErr != nil {
		s.LastError = b.lastErr.Error()
		s.LastErrorTime = b.lastErrTime.Time
	}
	return s
}

func (b *Bridge) setMirrored(name, source string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if source == "" {
		delete(b.mirrored, name)
	} else {
		b.mirrored[name] = source
	}
}

func (b *Bridge) setFailing(name string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		delete(b.failing, name)
		return
	}
	b.failing[name] = err
	b.lastErr = err
	b.lastErrTime = metav1.NewTime(b.opts.Now())
}

// refuseAll refuses every candidate of name for reason.
func (b *Bridge) refuseAll(name string, candidates []*schedulingv1beta1.PodGroup, reason, message string, host *schedulingv1beta1.PodGroup) {
	var refusals []Refusal
	for _, c := range candidates {
		refusals = append(refusals, Refusal{Namespace: c.Namespace, Name: c.Name, Reason: reason,
			Message: strings.Replace(message, "PodGroup "+name, "PodGroup "+c.Namespace+"/"+name, 1)})
	}
	b.setRefused(name, refusals, host)
}

// setRefused replaces the refusals of name, and records an Event for each new one: a
// Warning on the virtual PodGroup, where the tenant sees it in `kubectl describe`, and one
// in the host namespace on the host PodGroup of that name, for the platform team.
func (b *Bridge) setRefused(name string, refusals []Refusal, host *schedulingv1beta1.PodGroup) {
	b.mu.Lock()
	seen := b.reported[name]
	var fresh []Refusal
	now := map[string]bool{}
	for _, r := range refusals {
		key := r.Namespace + "/" + r.Reason
		now[key] = true
		if !seen[key] {
			fresh = append(fresh, r)
		}
	}
	if len(refusals) == 0 {
		delete(b.refused, name)
		delete(b.reported, name)
	} else {
		b.refused[name] = refusals
		b.reported[name] = now
	}
	b.mu.Unlock()

	for _, r := range fresh {
		b.recordRefusal(r, host)
	}
}

func (b *Bridge) recordRefusal(r Refusal, host *schedulingv1beta1.PodGroup) {
	if b.virtualEvents == nil {
		return
	}
	virtualRef := &corev1.ObjectReference{
		APIVersion: schedulingv1beta1.SchemeGroupVersion.String(), Kind: "PodGroup",
		Namespace: r.Namespace, Name: r.Name,
	}
	if obj, ok, _ := b.virtualInformer.GetIndexer().GetByKey(r.Namespace + "/" + r.Name); ok {
		if pg, ok := obj.(*schedulingv1beta1.PodGroup); ok {
			virtualRef.UID, virtualRef.ResourceVersion = pg.UID, pg.ResourceVersion
		}
	}
	b.virtualEvents.Event(virtualRef, corev1.EventTypeWarning, r.Reason, r.Message)

	var hostObj runtime.Object = &corev1.ObjectReference{
		APIVersion: schedulingv1beta1.SchemeGroupVersion.String(), Kind: "PodGroup",
		Namespace: b.opts.HostNamespace, Name: r.Name,
	}
	if host != nil {
		hostObj = host
	}
	b.hostEvents.Eventf(hostObj, corev1.EventTypeWarning, r.Reason, "tenant %s: %s", b.opts.Tenant, r.Message)
}
