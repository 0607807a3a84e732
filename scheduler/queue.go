package scheduler

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	schedulingv1beta1 "volcano.sh/apis/pkg/apis/scheduling/v1beta1"

	"github.com/raas-dev/raas/schema"
)

// Queue is the tenant's Volcano queue. The cluster-scoped Queue is named QueueName and caps
// the tenant at its quota. It carries no node-group affinity: the placement policies
// (PolicyPodPlacement) confine the tenant's pods by node affinity instead, which every
// scheduler honours, and Volcano 1.12's nodegroup plugin would strand other queues.
func (s *Tenant) Queue() *schedulingv1beta1.Queue {
	q := &schedulingv1beta1.Queue{
		TypeMeta: metav1.TypeMeta{
			APIVersion: schedulingv1beta1.SchemeGroupVersion.String(),
			Kind:       "Queue",
		},
		ObjectMeta: metav1.ObjectMeta{Name: s.QueueName, Labels: s.labels()},
		Spec: schedulingv1beta1.QueueSpec{
			Weight:      s.Weight,
			Capability:  s.Capability.DeepCopy(),
			Reclaimable: ptr(s.Reclaimable),
			Guarantee:   schedulingv1beta1.Guarantee{Resource: s.Guarantee.DeepCopy()},
			Deserved:    s.Deserved.DeepCopy(),
			Priority:    s.Priority,
			Parent:      s.Parent,
		},
	}
	return q
}

// parentQueue is one of the platform's parent queues, for hierarchical queues.
func parentQueue(p *schema.Platform, q schema.ParentQueue) *schedulingv1beta1.Queue {
	resources := func(r schema.Resources) corev1.ResourceList {
		l := corev1.ResourceList{}
		set(l, corev1.ResourceCPU, r.CPU)
		set(l, corev1.ResourceMemory, r.Memory)
		set(l, corev1.ResourceName(p.Spec.GPU.Resource), r.GPU)
		return l
	}
	spec := schedulingv1beta1.QueueSpec{
		Weight:      value(q.Weight, schema.DefaultWeight),
		Capability:  resources(q.Capability),
		Guarantee:   schedulingv1beta1.Guarantee{Resource: resources(q.Guarantee)},
		Reclaimable: ptr(true),
		Parent:      q.Parent,
	}
	if p.Spec.Scheduler.Plugin == PluginCapacity {
		spec.Deserved = resources(q.Guarantee)
	}
	return &schedulingv1beta1.Queue{
		TypeMeta: metav1.TypeMeta{
			APIVersion: schedulingv1beta1.SchemeGroupVersion.String(),
			Kind:       "Queue",
		},
		ObjectMeta: metav1.ObjectMeta{Name: q.Name, Labels: map[string]string{schema.LabelManagedBy: schema.ManagedBy}},
		Spec:       spec,
	}
}

func ptr[T any](v T) *T { return &v }
