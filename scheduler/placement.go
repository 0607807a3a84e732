package scheduler

import (
	"fmt"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilversion "k8s.io/apimachinery/pkg/util/version"

	"github.com/raas-dev/raas/internal/volcano"
	"github.com/raas-dev/raas/schema"
)

// PolicyPodPlacement names the pair of platform-wide policies that confine every pod a
// tenant's vcluster syncs to the host, whatever the pod says:
//   - a MutatingAdmissionPolicy puts the tenant's queue on the pod (label and annotations,
//     on create and update, so a foreign queue is corrected) and, on create, a required
//     node affinity and the tolerations of the tenant's dedicated pools;
//   - a ValidatingAdmissionPolicy of the same name refuses a synced pod that still names
//     another queue, or that was created without that node affinity, so that a missing
//     or broken mutation fails closed rather than letting the pod run anywhere.
//
// A pod that asks for a GPU (any of the platform's GPU resources above zero, in any
// container) may run only on the node groups of the tenant's pools; other pods only on
// the scheduler's sharedNodeGroups or, without those, on no GPU pool's nodes. The node
// affinity binds Volcano (its predicates plugin) and the default scheduler alike, so it
// also holds for tenants without gang scheduling and for pods that pick their scheduler.
const PolicyPodPlacement = "raas-pod-placement"

// labelSyncedBy is the label vcluster puts on every host pod it syncs (its value is the
// vcluster's name; vcluster overwrites whatever the virtual pod says). Only those pods are
// placed: the vcluster's own control plane is raas's, and follows the platform's overlays.
const labelSyncedBy = "vcluster.loft.sh/managed-by"

// MutatingAdmission reports whether the platform's host serves MutatingAdmissionPolicy, so
// that raas renders the mutating half of the placement policies. On older hosts validation
// refuses platforms that need placement; without pools and shared node groups only the
// queue check remains, and a pod naming a foreign queue is refused instead of corrected.
func MutatingAdmission(p *schema.Platform) bool {
	host, err := utilversion.ParseSemantic(p.Spec.HostKubernetes)
	return err == nil && host.AtLeast(utilversion.MustParseSemantic(schema.MinHostKubernetesForPlacement))
}

// placementVariables are the CEL variables both placement policies share. params is the
// tenant's ConfigMap ParamsName.
func placementVariables(p *schema.Platform) []admissionregistrationv1.Variable {
	return []admissionregistrationv1.Variable{
		{Name: "queue", Expression: `params.data.queue`},
		{Name: "gpuResources", Expression: celList(platformGPUResources(p))},
		// A GPU pod asks for more than zero of a GPU resource in a limit or, for resources
		// that default their limit, a request. Init containers count.
		{Name: "gpu", Expression: `(object.spec.containers + object.spec.?initContainers.orValue([])).exists(c, ` +
			`variables.gpuResources.exists(r, ` +
			`quantity(string(c.?resources.?limits[?r].orValue(c.?resources.?requests[?r].orValue("0")))).isGreaterThan(quantity("0"))))`},
		{Name: "allowed", Expression: `params.data.?allowedPools.orValue("").split(",")`},
		{Name: "pools", Expression: poolList(p)},
		{Name: "ownGroups", Expression: `variables.pools.filter(p, p.name in variables.allowed).map(p, p.nodeGroup)`},
		// The node selector requirements, zero or one, that the pod must meet.
		{Name: "required", Expression: `variables.gpu ? ` + gpuRequirement(p) + ` : ` + cpuRequirement(p)},
		// Whether every node selector term of the pod already has each requirement.
		{Name: "placed", Expression: `object.spec.?affinity.?nodeAffinity.?requiredDuringSchedulingIgnoredDuringExecution.?nodeSelectorTerms.orValue([]).size() > 0 && ` +
			`object.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms.all(t, ` +
			`variables.required.all(r, ` + hasRequirement + `))`},
	}
}

// hasRequirement is a CEL expression that is true when node selector term t has the
// requirement r.
const hasRequirement = `t.?matchExpressions.orValue([]).exists(e, e.key == r.key && e.operator == r.operator && e.?values.orValue([]) == r.values)`

// gpuRequirement is a CEL list with the requirement on GPU pods: the tenant's pools, or,
// for a tenant with none, any node outside the platform's pools (where no GPU pod fits).
func gpuRequirement(p *schema.Platform) string {
	all := poolGroups(p)
	if len(all) == 0 {
		return `[]`
	}
	return `(variables.ownGroups.size() > 0 ? ` + requirement("In", `variables.ownGroups`) +
		` : ` + requirement("NotIn", celList(all)) + `)`
}

// cpuRequirement is a CEL list with the requirement on pods that ask for no GPU: the shared
// node groups, or outside every pool; with spec.gpu.cpuPodsOnPools, the tenant's own pools
// as well.
func cpuRequirement(p *schema.Platform) string {
	shared := p.Spec.Scheduler.SharedNodeGroups
	all := poolGroups(p)
	own := p.Spec.GPU.CPUPodsOnPools
	switch {
	case len(shared) > 0 && own:
		return requirement("In", celList(shared)+` + variables.ownGroups`)
	case len(shared) > 0:
		return requirement("In", celList(shared))
	case len(all) > 0 && own:
		return `(variables.ownGroups.size() == ` + fmt.Sprint(len(all)) + ` ? [] : ` +
			requirement("NotIn", celList(all)+`.filter(g, !(g in variables.ownGroups))`) + `)`
	case len(all) > 0:
		return requirement("NotIn", celList(all))
	}
	return `[]`
}

// requirement is a CEL list of one node selector requirement on the node-group label.
func requirement(operator, values string) string {
	return fmt.Sprintf(`[{"key": dyn(%s), "operator": dyn(%s), "values": dyn(%s)}]`, celString(volcano.LabelNodeGroupName), celString(operator), values)
}

// poolList is a CEL list of the platform's pools: name, node group, and the key, operator,
// value and effect of the toleration of the pool's taint (an empty key for an untainted
// pool).
func poolList(p *schema.Platform) string {
	items := make([]string, 0, len(p.Spec.GPU.Pools))
	for _, pool := range p.Spec.GPU.Pools {
		var tol struct{ key, operator, value, effect string }
		if pool.Taint != nil {
			t := toleration(*pool.Taint)
			tol.key, tol.operator, tol.value, tol.effect = t.Key, string(t.Operator), t.Value, string(t.Effect)
		}
		items = append(items, fmt.Sprintf(`{"name": %s, "nodeGroup": %s, "key": %s, "operator": %s, "value": %s, "effect": %s}`,
			celString(pool.Name), celString(pool.NodeGroup), celString(tol.key), celString(tol.operator), celString(tol.value), celString(tol.effect)))
	}
	return "[" + strings.Join(items, ", ") + "]"
}

// poolGroups lists the node groups of the platform's pools, in declaration order.
func poolGroups(p *schema.Platform) []string {
	var groups []string
	for _, pool := range p.Spec.GPU.Pools {
		groups = appendNew(groups, pool.NodeGroup)
	}
	return groups
}

// placementMatch limits the placement policies to pods vcluster synced.
var placementMatch = []admissionregistrationv1.MatchCondition{{
	Name:       "synced-by-vcluster",
	Expression: `has(object.metadata.labels) && ` + celString(labelSyncedBy) + ` in object.metadata.labels`,
}}

// The JSON patch paths of the node affinity, from the outside in.
const (
	pathAffinity     = "/spec/affinity"
	pathNodeAffinity = pathAffinity + "/nodeAffinity"
	pathRequired     = pathNodeAffinity + "/requiredDuringSchedulingIgnoredDuringExecution"
	pathTerms        = pathRequired + "/nodeSelectorTerms"
)

// placementMutations are the mutations of the MutatingAdmissionPolicy.
func placementMutations() []admissionregistrationv1.Mutation {
	queue := fmt.Sprintf(`Object{metadata: Object.metadata{labels: {%[1]s: variables.queue}, `+
		`annotations: {%[1]s: variables.queue, %[2]s: variables.queue}}}`, celString(volcano.QueueLabel), celString(volcano.QueueAnnotation))

	// Tolerations is an atomic list, so the tolerations are patched in, not applied.
	tolerations := `(variables.addTolerations.size() == 0 || has(object.spec.tolerations) ? [] : ` +
		`[JSONPatch{op: "add", path: "/spec/tolerations", value: []}]) + ` +
		`variables.addTolerations.map(t, JSONPatch{op: "add", path: "/spec/tolerations/-", value: t})`

	// The required node affinity: added where the pod has none; otherwise the requirement
	// is added to each of the pod's node selector terms (which are ORed), so that it holds
	// whichever term matches. The patch values are typed objects, which marshal to JSON.
	const (
		affinityType = "Object.spec.affinity"
		nodeType     = affinityType + ".nodeAffinity"
		requiredType = nodeType + ".requiredDuringSchedulingIgnoredDuringExecution"
		termType     = requiredType + ".nodeSelectorTerms"
	)
	requirement := func(kind, r string) string {
		return termType + "." + kind + "{key: " + r + ".key, operator: " + r + ".operator, ?values: " + r + ".?values}"
	}
	required := `variables.required.map(r, ` + requirement("matchExpressions", "r") + `)`
	missing := `variables.required.filter(r, !(` + hasRequirement + `)).map(r, ` + requirement("matchExpressions", "r") + `)`
	terms := `[` + termType + `{matchExpressions: ` + required + `}]`
	selector := requiredType + `{nodeSelectorTerms: ` + terms + `}`
	node := nodeType + `{requiredDuringSchedulingIgnoredDuringExecution: ` + selector + `}`
	affinity := `variables.required.size() == 0 || variables.placed ? [] : ` +
		`!has(object.spec.affinity) ? [JSONPatch{op: "add", path: "` + pathAffinity + `", value: ` + affinityType + `{nodeAffinity: ` + node + `}}] : ` +
		`!has(object.spec.affinity.nodeAffinity) ? [JSONPatch{op: "add", path: "` + pathNodeAffinity + `", value: ` + node + `}] : ` +
		`!has(object.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution) ? [JSONPatch{op: "add", path: "` + pathRequired + `", value: ` + selector + `}] : ` +
		`[JSONPatch{op: "replace", path: "` + pathTerms + `", value: ` +
		`object.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms.map(t, ` + termType + `{` +
		`matchExpressions: t.?matchExpressions.orValue([]).map(e, ` + requirement("matchExpressions", "e") + `) + ` + missing + `, ` +
		`matchFields: t.?matchFields.orValue([]).map(e, ` + requirement("matchFields", "e") + `)})}]`

	return []admissionregistrationv1.Mutation{
		{
			PatchType:          admissionregistrationv1.PatchTypeApplyConfiguration,
			ApplyConfiguration: &admissionregistrationv1.ApplyConfiguration{Expression: queue},
		},
		{
			PatchType: admissionregistrationv1.PatchTypeJSONPatch,
			JSONPatch: &admissionregistrationv1.JSONPatch{Expression: `request.operation != "CREATE" ? [] : ` + tolerations},
		},
		{
			PatchType: admissionregistrationv1.PatchTypeJSONPatch,
			JSONPatch: &admissionregistrationv1.JSONPatch{Expression: `request.operation != "CREATE" ? [] : ` + affinity},
		},
	}
}

// placementValidations are the checks of the ValidatingAdmissionPolicy: what the
// mutation should have done, done. bound says whether the mutation is rendered at all.
func placementValidations(bound bool) []admissionregistrationv1.Validation {
	// Every queue key the pod carries names the tenant's queue; with the mutation bound,
	// the label must be there too.
	keys := fmt.Sprintf(`[object.metadata.?labels[?%[1]s], object.metadata.?annotations[?%[1]s], object.metadata.?annotations[?%[2]s]]`,
		celString(volcano.QueueLabel), celString(volcano.QueueAnnotation))
	queue := keys + `.all(q, !q.hasValue() || q.value() == variables.queue)`
	if bound {
		queue = `object.metadata.?labels[?` + celString(volcano.QueueLabel) + `].orValue("") == variables.queue && ` + queue
	}
	validations := []admissionregistrationv1.Validation{{
		Expression: queue,
		Message:    "pods must run on the queue of their tenant",
		MessageExpression: `"pod " + object.metadata.name + " names queue " + ` +
			`object.metadata.?labels[?` + celString(volcano.QueueLabel) + `].orValue(object.metadata.?annotations[?` + celString(volcano.QueueAnnotation) + `].orValue("none")) + ` +
			`"; pods in namespace " + request.namespace + " run on queue " + variables.queue`,
	}}
	if bound {
		// On create only: node affinity is immutable, and pods from before a change of
		// the rules must stay updatable.
		validations = append(validations, admissionregistrationv1.Validation{
			Expression: `request.operation != "CREATE" || variables.required.size() == 0 || variables.placed`,
			Message:    "pods must be placed on the node groups of their tenant",
			MessageExpression: `"pod " + object.metadata.name + " lacks the node affinity " + ` +
				`variables.required.map(r, r.key + " " + r.operator + " (" + r.values.join(", ") + ")").join(", ") + ` +
				`" that raas's MutatingAdmissionPolicy ` + PolicyPodPlacement + ` gives every pod in namespace " + request.namespace`,
		})
	}
	return validations
}

// placementPolicies returns the MutatingAdmissionPolicy (on hosts that serve it) and the
// ValidatingAdmissionPolicy of PolicyPodPlacement.
func placementPolicies(p *schema.Platform) (*admissionregistrationv1.MutatingAdmissionPolicy, *admissionregistrationv1.ValidatingAdmissionPolicy) {
	pods := rules("", "v1", "pods")
	bound := MutatingAdmission(p)
	check := policy(PolicyPodPlacement, pods, placementMatch, placementVariables(p), placementValidations(bound)...)
	if !bound {
		return nil, check
	}
	return &admissionregistrationv1.MutatingAdmissionPolicy{
		TypeMeta: metav1.TypeMeta{
			APIVersion: admissionregistrationv1.SchemeGroupVersion.String(),
			Kind:       "MutatingAdmissionPolicy",
		},
		ObjectMeta: metav1.ObjectMeta{Name: PolicyPodPlacement, Labels: map[string]string{schema.LabelManagedBy: schema.ManagedBy}},
		Spec: admissionregistrationv1.MutatingAdmissionPolicySpec{
			ParamKind:        &admissionregistrationv1.ParamKind{APIVersion: "v1", Kind: "ConfigMap"},
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: pods},
			MatchConditions:  placementMatch,
			Variables: append(placementVariables(p), admissionregistrationv1.Variable{
				// The tolerations of the tenant's dedicated pools, for GPU pods, each
				// unless the pod has it already.
				Name: "addTolerations",
				Expression: `variables.gpu ? variables.pools.filter(p, p.name in variables.allowed && p.key != "" && ` +
					`!object.spec.?tolerations.orValue([]).exists(t, t.?key.orValue("") == p.key && ` +
					`t.?operator.orValue("Equal") == p.operator && t.?value.orValue("") == p.value && ` +
					`t.?effect.orValue("") == p.effect)).map(p, {"key": p.key, "operator": p.operator, "value": p.value, "effect": p.effect}) : []`,
			}),
			Mutations:          placementMutations(),
			FailurePolicy:      ptr(admissionregistrationv1.Fail),
			ReinvocationPolicy: admissionregistrationv1.IfNeededReinvocationPolicy,
		},
	}, check
}

// placementBinding binds the MutatingAdmissionPolicy to the tenant namespace, with the
// tenant's parameters. A missing parameters ConfigMap denies.
func (s *Tenant) placementBinding() *admissionregistrationv1.MutatingAdmissionPolicyBinding {
	return &admissionregistrationv1.MutatingAdmissionPolicyBinding{
		TypeMeta: metav1.TypeMeta{
			APIVersion: admissionregistrationv1.SchemeGroupVersion.String(),
			Kind:       "MutatingAdmissionPolicyBinding",
		},
		ObjectMeta: metav1.ObjectMeta{Name: PolicyPodPlacement + "." + s.Namespace, Labels: s.labels()},
		Spec: admissionregistrationv1.MutatingAdmissionPolicyBindingSpec{
			PolicyName:     PolicyPodPlacement,
			ParamRef:       s.paramRef(),
			MatchResources: s.matchNamespace(),
		},
	}
}

// celList is a CEL list literal of strings.
func celList(values []string) string {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = celString(v)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}
