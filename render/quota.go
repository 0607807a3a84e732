package render

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

// quotaOf copies the quota out of a tenant's (defaulted) spec.
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

// retainData reports whether removing the tenant keeps its vcluster's data volumes.
func retainData(t *schema.Tenant) bool {
	return t.Spec.VCluster.RetainData == nil || *t.Spec.VCluster.RetainData
}
