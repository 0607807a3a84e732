package reconcile

import (
	"errors"
	"fmt"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/raas-dev/raas/render"
)

// health sums up a tenant after its pass. It is Ready when every object applied, the
// vcluster's StatefulSet on the host is ready and the KubeRay operator Deployment inside the
// vcluster is available, both by kstatus; Failed when an object failed; Progressing
// otherwise, with the first thing still missing as the reason.
func (r *Reconciler) health(p *pass, out *render.Output, hostOuts, virtOuts []outcome, vcErr error, virt *level) (Health, string) {
	var failed []Entry
	for _, list := range [][]outcome{hostOuts, virtOuts} {
		for _, o := range list {
			if o.entry.Action == Failed {
				failed = append(failed, o.entry)
			}
		}
	}
	if len(failed) > 0 {
		return HealthFailed, fmt.Sprintf("%d object(s) failed; %s %s: %s", len(failed), failed[0].Target, failed[0].Ref, failed[0].Reason)
	}
	if vcErr != nil {
		if errors.Is(vcErr, errVClusterNotUp) {
			return HealthProgressing, vcErr.Error()
		}
		return HealthFailed, vcErr.Error()
	}
	if h, why := workloadHealth("vcluster", out.Host, hostOuts, p.hostIdx, "StatefulSet"); h != HealthReady {
		return h, why
	}
	if h, why := workloadHealth("KubeRay operator", out.Virtual, virtOuts, virt.idx, "Deployment"); h != HealthReady {
		return h, why
	}
	return HealthReady, ""
}

// workloadHealth computes the kstatus of each apps/kind object of objs: the live object
// written this pass if any, or the one the index read at the start of the pass.
func workloadHealth(what string, objs []*render.Object, outs []outcome, idx *liveIndex, kind string) (Health, string) {
	for i, o := range objs {
		gvk := o.GroupVersionKind()
		if gvk.Group != "apps" || gvk.Kind != kind {
			continue
		}
		ref := refOf(o.Unstructured)
		live := outs[i].live
		if live == nil {
			live = idx.object(ref)
		}
		if live == nil {
			return HealthProgressing, fmt.Sprintf("%s %s %s not found", what, kind, ref.Namespace+"/"+ref.Name)
		}
		h, why := kstatus(live)
		if h != HealthReady {
			return h, fmt.Sprintf("%s %s %s: %s", what, kind, ref.Namespace+"/"+ref.Name, why)
		}
	}
	return HealthReady, ""
}

// kstatus maps an object's kstatus onto a tenant's health.
func kstatus(u *unstructured.Unstructured) (Health, string) {
	res, err := status.Compute(u)
	if err != nil {
		return HealthFailed, err.Error()
	}
	switch res.Status {
	case status.CurrentStatus:
		return HealthReady, ""
	case status.FailedStatus:
		return HealthFailed, res.Message
	}
	msg := res.Message
	if msg == "" {
		msg = string(res.Status)
	}
	return HealthProgressing, msg
}
