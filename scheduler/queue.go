package scheduler

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	schedulingv1beta1 "volcano.sh/apis/pkg/apis/scheduling/v1beta1"
)

// Queue is the tenant's Volcano queue. The cluster-scoped Queue is named QueueName and caps
// the tenant at its quota. Its node-group affinity, when the tenant has node groups,
// keeps its pods on those groups (Volcano's nodegroup plugin enforces it).
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
	if len(s.NodeGroups) > 0 {
		q.Spec.Affinity = &schedulingv1beta1.Affinity{
			NodeGroupAffinity: &schedulingv1beta1.NodeGroupAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: append([]string(nil), s.NodeGroups...),
			},
		}
	}
	return q
}

func ptr[T any](v T) *T { return &v }
