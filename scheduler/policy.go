package scheduler

import (
	"fmt"
	"strconv"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	schedulingv1beta1 "volcano.sh/apis/pkg/apis/scheduling/v1beta1"

	"github.com/raas-dev/raas/schema"
)

// The platform-wide ValidatingAdmissionPolicies, one per rule. Each tenant binds all three
// to its namespace with its own parameters.
const (
	// PolicyPodGroupQueue keeps a tenant's PodGroups on the tenant's queue.
	PolicyPodGroupQueue = "raas-podgroup-queue"
	// PolicyPodGroupGPUs caps the GPUs one PodGroup asks for in spec.minResources.
	PolicyPodGroupGPUs = "raas-podgroup-gpus"
	// PolicyPodTolerations keeps a tenant's pods off the dedicated pools of others.
	PolicyPodTolerations = "raas-pod-tolerations"
)

// ParamsName is the ConfigMap in each tenant namespace that holds the tenant's parameters
// of the policies, under the keys Param*.
const ParamsName = "raas-scheduling"

// The keys of the parameters ConfigMap.
const (
	ParamQueue         = "queue"
	ParamMaxGPUsPerJob = "maxGPUsPerJob"
	// ParamAllowedPools lists the GPU pools the tenant may use, comma-separated.
	ParamAllowedPools = "allowedPools"
)

// Objects returns the tenant's host objects besides the Queue: the parameters ConfigMap
// and a binding of each policy to the tenant namespace.
func (s *Tenant) Objects() []client.Object {
	pools := make([]string, len(s.Pools))
	for i, pool := range s.Pools {
		pools[i] = pool.Name
	}
	objs := []client.Object{&corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: ParamsName, Namespace: s.Namespace, Labels: s.labels()},
		Data: map[string]string{
			ParamQueue:         s.QueueName,
			ParamMaxGPUsPerJob: strconv.FormatInt(s.MaxGPUsPerJob, 10),
			ParamAllowedPools:  strings.Join(pools, ","),
		},
	}}
	for _, policy := range []string{PolicyPodGroupQueue, PolicyPodGroupGPUs, PolicyPodTolerations, PolicyPodPlacement} {
		objs = append(objs, s.binding(policy))
	}
	if s.MutatingAdmission {
		objs = append(objs, s.placementBinding())
	}
	return objs
}

// binding binds policy to the tenant namespace, with the tenant's parameters. A missing
// parameters ConfigMap denies, rather than admitting everything.
func (s *Tenant) binding(policy string) *admissionregistrationv1.ValidatingAdmissionPolicyBinding {
	return &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		TypeMeta: metav1.TypeMeta{
			APIVersion: admissionregistrationv1.SchemeGroupVersion.String(),
			Kind:       "ValidatingAdmissionPolicyBinding",
		},
		ObjectMeta: metav1.ObjectMeta{Name: policy + "." + s.Namespace, Labels: s.labels()},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        policy,
			ParamRef:          s.paramRef(),
			MatchResources:    s.matchNamespace(),
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
		},
	}
}

// paramRef refers a binding to the tenant's parameters ConfigMap.
func (s *Tenant) paramRef() *admissionregistrationv1.ParamRef {
	return &admissionregistrationv1.ParamRef{
		Name:                    ParamsName,
		Namespace:               s.Namespace,
		ParameterNotFoundAction: ptr(admissionregistrationv1.DenyAction),
	}
}

// matchNamespace limits a binding to the tenant namespace.
func (s *Tenant) matchNamespace() *admissionregistrationv1.MatchResources {
	return &admissionregistrationv1.MatchResources{
		NamespaceSelector: &metav1.LabelSelector{
			MatchLabels: map[string]string{corev1.LabelMetadataName: s.Namespace},
		},
	}
}

// policies returns the platform-wide policies. The GPU resources and the pools' taints are
// written into the expressions; what differs per tenant comes from the parameters.
func policies(p *schema.Platform) []*admissionregistrationv1.ValidatingAdmissionPolicy {
	podGroups := rules(schedulingv1beta1.GroupName, schedulingv1beta1.GroupVersion, "podgroups")
	// PodGroups carry their status in the main resource: Volcano's status updates are
	// not judged again, only changes to the spec.
	specChanged := []admissionregistrationv1.MatchCondition{{
		Name:       "spec-changed",
		Expression: `request.operation == "CREATE" || object.spec != oldObject.spec`,
	}}
	gpuResources := platformGPUResources(p)
	// The expressions read the parameters under the keys Param*.
	return []*admissionregistrationv1.ValidatingAdmissionPolicy{
		policy(PolicyPodGroupQueue, podGroups, specChanged, nil, admissionregistrationv1.Validation{
			Expression: `has(object.spec.queue) && object.spec.queue == params.data.queue`,
			Message:    "PodGroups must use the queue of their namespace",
			MessageExpression: `"PodGroup " + object.metadata.name + " names queue " + ` +
				`(has(object.spec.queue) ? object.spec.queue : "none") + ` +
				`"; PodGroups in namespace " + request.namespace + " must use queue " + params.data.queue`,
		}),
		policy(PolicyPodGroupGPUs, podGroups, specChanged, []admissionregistrationv1.Variable{
			{Name: "minResources", Expression: `object.spec.?minResources.orValue({})`},
			{Name: "gpus", Expression: gpuSum(gpuResources)},
		}, admissionregistrationv1.Validation{
			Expression: `!variables.gpus.isGreaterThan(quantity(params.data.maxGPUsPerJob))`,
			Message:    "PodGroups may not ask for more GPUs than the tenant's maxPerJob",
			MessageExpression: `"PodGroup " + object.metadata.name + " asks for " + ` +
				`string(variables.gpus.asApproximateFloat()) + " GPUs in spec.minResources (counting ` +
				strings.Join(gpuResources, ", ") + `); PodGroups in namespace " + request.namespace + ` +
				`" may ask for at most " + params.data.maxGPUsPerJob`,
		}),
		policy(PolicyPodTolerations, rules("", "v1", "pods"), []admissionregistrationv1.MatchCondition{{
			Name:       "has-tolerations",
			Expression: `has(object.spec.tolerations)`,
		}}, []admissionregistrationv1.Variable{
			{Name: "pools", Expression: taintedPools(p)},
			{Name: "allowed", Expression: `params.data.?allowedPools.orValue("").split(",")`},
			// On update only the tolerations added are judged (a pod may add tolerations
			// but never remove them), so that pods from before a policy change can still
			// be updated and deleted.
			{Name: "added", Expression: `request.operation == "CREATE" ? object.spec.tolerations : ` +
				`object.spec.tolerations.filter(t, !(t in oldObject.spec.?tolerations.orValue([])))`},
			{Name: "foreign", Expression: `variables.pools.filter(p, !(p.name in variables.allowed) && ` +
				`variables.added.exists(t, ` + tolerates + `))`},
		}, admissionregistrationv1.Validation{
			Expression: `variables.foreign.size() == 0`,
			Message:    "pods may not tolerate the taints of GPU pools the tenant may not use",
			MessageExpression: `"pods in namespace " + request.namespace + " may not tolerate the taints of GPU pools " + ` +
				`variables.foreign.map(p, p.name + " (" + p.key + "=" + p.value + ":" + p.effect + ")").join(", ") + ` +
				`"; allowed pools: " + (params.data.?allowedPools.orValue("") == "" ? "none" : params.data.allowedPools)`,
		}),
	}
}

func policy(name string, rules []admissionregistrationv1.NamedRuleWithOperations, conditions []admissionregistrationv1.MatchCondition,
	variables []admissionregistrationv1.Variable, validations ...admissionregistrationv1.Validation,
) *admissionregistrationv1.ValidatingAdmissionPolicy {
	for i := range validations {
		validations[i].Reason = ptr(metav1.StatusReasonForbidden)
	}
	return &admissionregistrationv1.ValidatingAdmissionPolicy{
		TypeMeta: metav1.TypeMeta{
			APIVersion: admissionregistrationv1.SchemeGroupVersion.String(),
			Kind:       "ValidatingAdmissionPolicy",
		},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{schema.LabelManagedBy: schema.ManagedBy}},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			ParamKind:        &admissionregistrationv1.ParamKind{APIVersion: "v1", Kind: "ConfigMap"},
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: rules},
			MatchConditions:  conditions,
			Variables:        variables,
			Validations:      validations,
			FailurePolicy:    ptr(admissionregistrationv1.Fail),
		},
	}
}

func rules(group, version, resource string) []admissionregistrationv1.NamedRuleWithOperations {
	return []admissionregistrationv1.NamedRuleWithOperations{{
		RuleWithOperations: admissionregistrationv1.RuleWithOperations{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
			Rule: admissionregistrationv1.Rule{
				APIGroups:   []string{group},
				APIVersions: []string{version},
				Resources:   []string{resource},
				Scope:       ptr(admissionregistrationv1.NamespacedScope),
			},
		},
	}}
}

// gpuSum is a CEL expression adding up the quantities of resources in
// variables.minResources. Its values are integers or quantity strings.
func gpuSum(resources []string) string {
	var b strings.Builder
	b.WriteString(`quantity("0")`)
	for _, r := range resources {
		fmt.Fprintf(&b, `.add(%[1]s in variables.minResources ? quantity(string(variables.minResources[%[1]s])) : quantity("0"))`, celString(r))
	}
	return b.String()
}

// taintedPools is a CEL list of the platform's dedicated pools and their taints.
func taintedPools(p *schema.Platform) string {
	var items []string
	for _, pool := range p.Spec.GPU.Pools {
		if pool.Taint == nil {
			continue
		}
		items = append(items, fmt.Sprintf(`{"name": %s, "key": %s, "value": %s, "effect": %s}`,
			celString(pool.Name), celString(pool.Taint.Key), celString(pool.Taint.Value), celString(pool.Taint.Effect)))
	}
	return "[" + strings.Join(items, ", ") + "]"
}

// tolerates is a CEL expression that is true when toleration t tolerates the taint of
// pool p, by the rules of the Kubernetes scheduler: an empty effect matches every effect;
// Exists with an empty key matches every key; Exists matches any value of its key; Equal,
// the default operator, matches its value only.
const tolerates = `(t.?effect.orValue("") == "" || t.effect == p.effect) && ` +
	`(t.?operator.orValue("") == "Exists" ? ` +
	`(t.?key.orValue("") == "" || t.key == p.key) : ` +
	`(t.?key.orValue("") == p.key && t.?value.orValue("") == p.value))`

// celString quotes s as a CEL string literal. CEL takes Go's escapes.
func celString(s string) string {
	return strconv.Quote(s)
}
