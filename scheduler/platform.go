package scheduler

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/schema"
)

// Platform returns the platform-wide host objects: the ValidatingAdmissionPolicies that
// the tenants bind, and the ConfigMap volcano-system/volcano-scheduler-configmap that holds
// Config.
func Platform(p *schema.Platform) ([]client.Object, error) {
	conf, err := Config(p)
	if err != nil {
		return nil, fmt.Errorf("platform %s: %w", p.Metadata.Name, err)
	}
	var objs []client.Object
	for _, policy := range policies(p) {
		objs = append(objs, policy)
	}
	mutating, check := placementPolicies(p)
	if mutating != nil {
		objs = append(objs, mutating)
	}
	objs = append(objs, check)
	for _, q := range p.Spec.Scheduler.Queues {
		objs = append(objs, parentQueue(p, q))
	}
	objs = append(objs, &corev1.ConfigMap{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      ConfigName,
			Namespace: ConfigNamespace,
			Labels:    map[string]string{schema.LabelManagedBy: schema.ManagedBy},
		},
		Data: map[string]string{ConfigKey: conf},
	})
	return objs, nil
}
