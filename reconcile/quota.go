package reconcile

import (
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/raas-dev/raas/schema"
)

// Quota is the part of a tenant's spec a reviewer weighs: its hard caps and the GPUs it is
// guaranteed. Inventories record it, so that a diff can show totals before and after
// without the old tenant files.
type Quota struct {
	CPU           *resource.Quantity `json:"cpu,omitempty"`
	Memory        *resource.Quantity `json:"memory,omitempty"`
	GPU           *resource.Quantity `json:"gpu,omitempty"`
	GuaranteedGPU *resource.Quantity `json:"guaranteedGPU,omitempty"`
	// Profile is the offering the tenant pins (NAME@VERSION), if any. It is not summed.
	Profile string `json:"profile,omitempty"`
}

func quotaOf(t *schema.Tenant) *Quota {
	cp := func(q *resource.Quantity) *resource.Quantity {
		if q == nil {
			return nil
		}
		c := q.DeepCopy()
		return &c
	}
	return &Quota{
		CPU:           cp(t.Spec.Quota.CPU),
		Memory:        cp(t.Spec.Quota.Memory),
		GPU:           cp(t.Spec.Quota.GPU),
		GuaranteedGPU: cp(t.Spec.Scheduling.Guarantee.GPU),
		Profile:       t.Spec.Profile,
	}
}

// add adds o to q.
func (q *Quota) add(o *Quota) {
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
		before.add(t.Before)
		after.add(t.After)
	}
	return before, after
}
