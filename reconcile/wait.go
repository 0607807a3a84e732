package reconcile

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// waitDefinitions waits until the namespaces and CRDs that the pass created or changed are
// active and established, and records their resourceVersion once they are: the API server
// updates a new CRD's status right after creating it.
func (r *Reconciler) waitDefinitions(ctx context.Context, lv *level, outs []outcome, defs []int) {
	deadline := r.now().Add(r.opts.WaitTimeout)
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
			if ctx.Err() != nil || r.now().After(deadline) {
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
