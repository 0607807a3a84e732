package render

import (
	"strconv"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/schema"
)

// RayPolicyName names the admission policy and binding applied inside each vcluster.
const RayPolicyName = "raas-ray-policy"

// rayPolicy returns the admission policy, and its binding, that keep a tenant's Ray
// clusters to its allowed Ray versions and images inside the vcluster. An empty policy
// renders nothing. The allowed set is written into the CEL itself: inside a vcluster
// there is one tenant, so there is nothing to parameterise.
func rayPolicy(r schema.RayPolicy) []client.Object {
	if len(r.Versions) == 0 && len(r.Images) == 0 {
		return nil
	}
	var validations []admissionregistrationv1.Validation
	if len(r.Versions) > 0 {
		validations = append(validations, admissionregistrationv1.Validation{
			Expression: "has(variables.cluster.rayVersion) && variables.cluster.rayVersion in " + celList(r.Versions),
			Message:    "rayVersion must be one of: " + strings.Join(r.Versions, ", "),
			Reason:     ptr(metav1.StatusReasonForbidden),
		})
	}
	if len(r.Images) > 0 {
		validations = append(validations, admissionregistrationv1.Validation{
			Expression: "variables.templates.all(t, " +
				"(has(t.spec.containers) ? t.spec.containers : []).all(c, " + imageAllowed(r.Images) + ") && " +
				"(has(t.spec.initContainers) ? t.spec.initContainers : []).all(c, " + imageAllowed(r.Images) + "))",
			Message: "every container image must be one of: " + strings.Join(r.Images, ", "),
			Reason:  ptr(metav1.StatusReasonForbidden),
		})
	}
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingAdmissionPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: RayPolicyName},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
						Rule: admissionregistrationv1.Rule{
							APIGroups:   []string{"ray.io"},
							APIVersions: []string{"*"},
							Resources:   []string{"rayclusters", "rayjobs", "rayservices"},
						},
					},
				}},
			},
			Variables: []admissionregistrationv1.Variable{
				{
					// The Ray cluster spec: a RayCluster's own, or the one a RayJob or
					// RayService creates.
					Name: "cluster",
					Expression: `request.resource.resource == "rayclusters" ? dyn(object.spec) : ` +
						`request.resource.resource == "rayjobs" ? (has(object.spec.rayClusterSpec) ? dyn(object.spec.rayClusterSpec) : dyn({})) : ` +
						`(has(object.spec.rayClusterConfig) ? dyn(object.spec.rayClusterConfig) : dyn({}))`,
				},
				{
					Name: "templates",
					Expression: `(has(variables.cluster.headGroupSpec) ? [variables.cluster.headGroupSpec.template] : []) + ` +
						`(has(variables.cluster.workerGroupSpecs) ? variables.cluster.workerGroupSpecs.map(g, g.template) : [])`,
				},
			},
			Validations: validations,
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingAdmissionPolicyBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: RayPolicyName},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        RayPolicyName,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
		},
	}
	return []client.Object{policy, binding}
}

func celList(items []string) string {
	quoted := make([]string, len(items))
	for i, s := range items {
		quoted[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

// imageAllowed is a CEL expression that is true when container c's image is one of
// images, where an entry ending in * is a prefix.
func imageAllowed(images []string) string {
	return celList(images) + `.exists(p, p.endsWith("*") ? c.image.startsWith(p.substring(0, p.size() - 1)) : c.image == p)`
}

func ptr[T any](v T) *T { return &v }
