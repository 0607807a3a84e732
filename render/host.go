package render

import (
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/internal/volcano"
	"github.com/raas-dev/raas/scheduler"
	"github.com/raas-dev/raas/schema"
)

// Names of the objects raas writes into every tenant namespace.
const (
	quotaName         = "raas-quota"
	limitRangeName    = "raas-limits"
	isolationPolicy   = "raas-isolation"
	egressPolicy      = "raas-egress"
	podSecurityLabel  = "pod-security.kubernetes.io/enforce"
	podSecurityVerLbl = "pod-security.kubernetes.io/enforce-version"
	metadataEndpoint  = "169.254.169.254/32"
)

// hostObjects are the objects raas writes itself into a tenant's host namespace, next to
// the vcluster chart and the scheduler's objects.
func hostObjects(p *schema.Platform, t *schema.Tenant, s *scheduler.Tenant) []client.Object {
	return []client.Object{
		namespace(t, s),
		resourceQuota(p, t, s),
		limitRange(p, s),
		isolationNetworkPolicy(p, t, s),
		egressNetworkPolicy(s),
	}
}

func namespace(t *schema.Tenant, s *scheduler.Tenant) *corev1.Namespace {
	labels := maps.Clone(t.Metadata.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[podSecurityLabel] = t.Spec.PodSecurity
	labels[podSecurityVerLbl] = "latest"
	annotations := maps.Clone(t.Metadata.Annotations)
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[volcano.QueueAnnotation] = s.QueueName
	return &corev1.Namespace{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: s.Namespace, Labels: labels, Annotations: annotations},
	}
}

// resourceQuota caps the namespace at the tenant's quota plus what the vcluster's own
// pods and volume take. Compute resources are set on both requests.* and limits.*, so
// that neither form escapes the cap; extended resources such as GPUs take requests.* only.
func resourceQuota(p *schema.Platform, t *schema.Tenant, s *scheduler.Tenant) *corev1.ResourceQuota {
	q := &t.Spec.Quota
	hard := corev1.ResourceList{}
	overheadRequests := sumRequests(controlPlaneResources, corednsResources)
	overheadLimits := sumLimits(controlPlaneResources, corednsResources)
	if q.CPU != nil {
		hard[corev1.ResourceRequestsCPU] = plus(*q.CPU, overheadRequests[corev1.ResourceCPU])
		hard[corev1.ResourceLimitsCPU] = plus(*q.CPU, overheadLimits[corev1.ResourceCPU])
	}
	if q.Memory != nil {
		hard[corev1.ResourceRequestsMemory] = plus(*q.Memory, overheadRequests[corev1.ResourceMemory])
		hard[corev1.ResourceLimitsMemory] = plus(*q.Memory, overheadLimits[corev1.ResourceMemory])
	}
	// Every GPU resource of the platform is listed: an extended resource the quota does
	// not name is unlimited. Those of sharing modes the tenant did not pick get zero.
	for _, name := range platformGPUResources(p) {
		q := resource.MustParse("0")
		if slices.Contains(s.GPUResources, name) {
			q = *t.Spec.Quota.GPU
		}
		hard[corev1.ResourceName("requests."+name)] = q
	}
	if q.Storage != nil {
		hard[corev1.ResourceRequestsStorage] = plus(*q.Storage, *t.Spec.VCluster.Storage)
	}
	if q.Pods != nil {
		hard[corev1.ResourcePods] = *resource.NewQuantity(*q.Pods+controlPlanePods, resource.DecimalSI)
	}
	return &corev1.ResourceQuota{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ResourceQuota"},
		ObjectMeta: metav1.ObjectMeta{Name: quotaName, Namespace: s.Namespace},
		Spec:       corev1.ResourceQuotaSpec{Hard: hard},
	}
}

// limitRange gives containers that name no resources the platform's defaults, so that
// they count against the quota and are admitted.
func limitRange(p *schema.Platform, s *scheduler.Tenant) *corev1.LimitRange {
	d := &p.Spec.Defaults.Container
	item := corev1.LimitRangeItem{
		Type:           corev1.LimitTypeContainer,
		DefaultRequest: resourceList(d.Request),
		Default:        resourceList(d.Limit),
	}
	return &corev1.LimitRange{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "LimitRange"},
		ObjectMeta: metav1.ObjectMeta{Name: limitRangeName, Namespace: s.Namespace},
		Spec:       corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{item}},
	}
}

// isolationNetworkPolicy admits traffic into the namespace only from itself, from the
// namespaces the platform trusts (such as raas's own, which reaches the vcluster API),
// and from those the tenant lists.
func isolationNetworkPolicy(p *schema.Platform, t *schema.Tenant, s *scheduler.Tenant) *networkingv1.NetworkPolicy {
	peers := []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}}
	from := append(append([]string(nil), p.Spec.Network.AllowFrom...), t.Spec.Network.AllowFrom...)
	for _, ns := range sortedUnique(from) {
		peers = append(peers, networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{
			MatchLabels: map[string]string{corev1.LabelMetadataName: ns},
		}})
	}
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: isolationPolicy, Namespace: s.Namespace},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: peers}},
		},
	}
}

// egressNetworkPolicy lets pods reach anything but the cloud metadata endpoint, which
// would hand out the node's credentials.
func egressNetworkPolicy(s *scheduler.Tenant) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: egressPolicy, Namespace: s.Namespace},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				To: []networkingv1.NetworkPolicyPeer{
					{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0", Except: []string{metadataEndpoint}}},
					{IPBlock: &networkingv1.IPBlock{CIDR: "::/0"}},
				},
			}},
		},
	}
}

func resourceList(r schema.Resources) corev1.ResourceList {
	l := corev1.ResourceList{}
	if r.CPU != nil {
		l[corev1.ResourceCPU] = *r.CPU
	}
	if r.Memory != nil {
		l[corev1.ResourceMemory] = *r.Memory
	}
	if len(l) == 0 {
		return nil
	}
	return l
}

func sumRequests(rs ...corev1.ResourceRequirements) corev1.ResourceList {
	total := corev1.ResourceList{}
	for _, r := range rs {
		addTo(total, r.Requests)
	}
	return total
}

func sumLimits(rs ...corev1.ResourceRequirements) corev1.ResourceList {
	total := corev1.ResourceList{}
	for _, r := range rs {
		addTo(total, r.Limits)
	}
	return total
}

func addTo(total, l corev1.ResourceList) {
	for name, q := range l {
		sum := total[name]
		sum.Add(q)
		total[name] = sum
	}
}

func plus(a, b resource.Quantity) resource.Quantity {
	a.Add(b)
	return a
}

func sortedUnique(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

// platformGPUResources lists every extended resource that counts as a GPU on the
// platform: whole GPUs and the resources of every sharing mode.
func platformGPUResources(p *schema.Platform) []string {
	names := []string{p.Spec.GPU.Resource}
	for _, mode := range p.Spec.GPU.Sharing {
		names = append(names, mode.Resources...)
	}
	return sortedUnique(names)
}
