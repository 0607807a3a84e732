package reconcile

import (
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/raas-dev/raas/render"
)

// Quota is the part of a tenant's spec a reviewer weighs, as render hands it over with the
// tenant's objects. Inventories record it, so that a diff can show totals before and
// after without the old tenant files.
type Quota = render.Quota

// addQuota adds o to q.
func addQuota(q, o *Quota) {
	if o == nil {
		return
	}
	sum := func(dst **resource.Quantity, v *resource.Quantity) {
		if v == nil {
			return
		}
		if *dst == nil {
			*dst = &resource.Quantity{Format: v.Format}
		}
		(*dst).Add(*v)
	}
	sum(&q.CPU, o.CPU)
	sum(&q.Memory, o.Memory)
	sum(&q.GPU, o.GPU)
	sum(&q.GuaranteedGPU, o.GuaranteedGPU)
}

// Totals adds up the quota of the tenants before and after the pass.
func (r *Result) Totals() (before, after Quota) {
	for _, t := range r.Tenants {
		addQuota(&before, t.Before)
		addQuota(&after, t.After)
	}
	return before, after
}
