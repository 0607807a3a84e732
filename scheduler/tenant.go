package scheduler

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/raas-dev/raas/schema"
)

// Tenant is everything the scheduler side derives for one tenant, computed once, so that the
// ResourceQuota, the Queue, the vcluster values and the KubeRay flags use the same numbers.
type Tenant struct {
	// Name is the tenant's name; Namespace and QueueName are its host namespace and
	// Volcano queue.
	Name, Namespace, QueueName string
	// Capability is the queue's hard cap: the quota's cpu and memory and, when the GPU
	// quota is above zero, each of GPUResources at the GPU quota.
	Capability corev1.ResourceList
	// Guarantee is reserved for the tenant: cpu, memory and, like Capability, each of
	// GPUResources at the GPU guarantee.
	Guarantee corev1.ResourceList
	// Deserved is what the capacity plugin reclaims for the tenant: the guarantee. It is
	// nil under the proportion plugin, which divides by weight instead.
	Deserved         corev1.ResourceList
	Weight, Priority int32
	Reclaimable      bool
	// Parent is the parent queue, for hierarchical queues.
	Parent string
	// Gang turns on --batch-scheduler=volcano for the tenant's KubeRay operator.
	Gang bool
	// Pools are the GPU pools the tenant may use, in the platform's order.
	Pools []schema.GPUPool
	// Tolerations tolerate the taints of the allowed dedicated (tainted) pools. The
	// placement policy adds them to the tenant's GPU pods.
	Tolerations []corev1.Toleration
	// MutatingAdmission says whether the host serves MutatingAdmissionPolicy, so that the
	// tenant binds the mutating placement policy (PolicyPodPlacement).
	MutatingAdmission bool
	// MaxGPUsPerJob caps the GPUs, of all GPUResources together, that one PodGroup asks for.
	MaxGPUsPerJob int64
	// GPUResources are the extended resources counted as GPUs: the platform's GPU resource,
	// then the resources of the tenant's sharing mode.
	GPUResources []string
}

// ForTenant derives the scheduler side of tenant t on platform p. Both must have been
// defaulted and validated.
func ForTenant(p *schema.Platform, t *schema.Tenant) *Tenant {
	name := t.Metadata.Name
	sc := &t.Spec.Scheduling
	s := &Tenant{
		Name:          name,
		Namespace:     p.Namespace(name),
		QueueName:     p.Queue(name),
		Weight:        value(sc.Weight, schema.DefaultWeight),
		Priority:      value(sc.Priority, 0),
		Reclaimable:   value(sc.Reclaimable, true),
		Parent:        sc.Parent,
		Gang:          value(sc.Gang.Enabled, true),
		MaxGPUsPerJob: value(sc.GPU.MaxPerJob, 0),
		GPUResources:  tenantGPUResources(p, sc.GPU.Sharing),
		Pools:         p.AllowedPools(sc.GPU),
	}

	q := &t.Spec.Quota
	s.Capability = corev1.ResourceList{}
	set(s.Capability, corev1.ResourceCPU, q.CPU)
	set(s.Capability, corev1.ResourceMemory, q.Memory)
	if q.GPU != nil && q.GPU.Sign() > 0 {
		for _, r := range s.GPUResources {
			set(s.Capability, corev1.ResourceName(r), q.GPU)
		}
	}

	g := &sc.Guarantee
	guarantee := corev1.ResourceList{}
	set(guarantee, corev1.ResourceCPU, g.CPU)
	set(guarantee, corev1.ResourceMemory, g.Memory)
	for _, r := range s.GPUResources {
		set(guarantee, corev1.ResourceName(r), g.GPU)
	}
	if len(guarantee) > 0 {
		s.Guarantee = guarantee
		if p.Spec.Scheduler.Plugin == PluginCapacity {
			s.Deserved = guarantee.DeepCopy()
		}
	}

	for _, pool := range s.Pools {
		if pool.Taint != nil {
			s.Tolerations = append(s.Tolerations, toleration(*pool.Taint))
		}
	}
	s.MutatingAdmission = MutatingAdmission(p)
	return s
}

// tenantGPUResources lists the platform's GPU resource and those of sharing mode.
func tenantGPUResources(p *schema.Platform, sharing string) []string {
	resources := []string{p.Spec.GPU.Resource}
	for _, mode := range p.Spec.GPU.Sharing {
		if mode.Name == sharing {
			for _, r := range mode.Resources {
				resources = appendNew(resources, r)
			}
		}
	}
	return resources
}

// platformGPUResources lists every resource counted as a GPU on the platform, sorted: the
// GPU resource and the resources of all sharing modes.
func platformGPUResources(p *schema.Platform) []string {
	resources := []string{p.Spec.GPU.Resource}
	for _, mode := range p.Spec.GPU.Sharing {
		for _, r := range mode.Resources {
			resources = appendNew(resources, r)
		}
	}
	slices.Sort(resources)
	return resources
}

// toleration tolerates taint: Equal with a value, Exists without one.
func toleration(taint schema.Taint) corev1.Toleration {
	tol := corev1.Toleration{Key: taint.Key, Operator: corev1.TolerationOpEqual, Value: taint.Value, Effect: corev1.TaintEffect(taint.Effect)}
	if taint.Value == "" {
		tol.Operator = corev1.TolerationOpExists
	}
	return tol
}

func enforceToleration(tol corev1.Toleration) string {
	if tol.Operator == corev1.TolerationOpExists {
		return tol.Key + ":" + string(tol.Effect)
	}
	return tol.Key + "=" + tol.Value + ":" + string(tol.Effect)
}

// labels are the labels of every per-tenant object.
func (s *Tenant) labels() map[string]string {
	return map[string]string{schema.LabelTenant: s.Name, schema.LabelManagedBy: schema.ManagedBy}
}

func set(list corev1.ResourceList, name corev1.ResourceName, q *resource.Quantity) {
	if q != nil && !q.IsZero() {
		list[name] = q.DeepCopy()
	}
}

func value[T any](v *T, def T) T {
	if v == nil {
		return def
	}
	return *v
}

func appendNew(list []string, v string) []string {
	if v == "" || slices.Contains(list, v) {
		return list
	}
	return append(list, v)
}
