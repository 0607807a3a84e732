package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the API group and version of the Tenant object.
var GroupVersion = schema.GroupVersion{Group: "raas.dev", Version: "v1alpha1"}

// Phase is where a tenant stands.
type Phase string

const (
	// Ready: host objects applied, the vcluster is up and KubeRay is available inside.
	Ready Phase = "Ready"
	// Progressing: applied, waiting for the vcluster or the operator to come up.
	Progressing Phase = "Progressing"
	// Failed: the last pass failed for this tenant; Reason and Message say why.
	Failed Phase = "Failed"
	// Stalled: the tenant's file does not validate or render; its objects are left as
	// last applied.
	Stalled Phase = "Stalled"
	// Asleep: an expired sandbox; its vcluster is scaled to zero and its data kept.
	Asleep Phase = "Asleep"
)

// Tenant mirrors one tenant of the repository in the host cluster.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=rt
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Cluster",type=string,JSONPath=`.status.cluster`
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.status.appliedRevision`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Tenant struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   TenantSpec   `json:"spec,omitempty"`
	Status TenantStatus `json:"status,omitempty"`
}

// TenantSpec records where the tenant comes from and what it was given.
type TenantSpec struct {
	// File is the tenant's file in the repository.
	File string `json:"file,omitempty"`
	// Namespace is the tenant's host namespace.
	Namespace string `json:"namespace,omitempty"`
	// Queue is the tenant's Volcano queue.
	Queue string `json:"queue,omitempty"`
	// Source is the tenant's spec as written in Git.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +optional
	Source runtime.RawExtension `json:"source,omitempty"`
}

// TenantStatus is the outcome of the tenant's last pass.
type TenantStatus struct {
	Phase Phase `json:"phase,omitempty"`
	// Reason is a CamelCase word for the phase, such as VClusterNotReady.
	Reason string `json:"reason,omitempty"`
	// Message says what happened, for people.
	Message string `json:"message,omitempty"`
	// AppliedRevision is the last revision applied to this tenant successfully.
	AppliedRevision string `json:"appliedRevision,omitempty"`
	// Cluster is the host cluster of the fleet the tenant runs on (raas.yaml's
	// spec.clusters); empty when the platform declares none.
	Cluster string `json:"cluster,omitempty"`
	// MovingFrom is the cluster the tenant still runs on while it moves to Cluster.
	MovingFrom string `json:"movingFrom,omitempty"`
	// ObservedRevision is the newest revision raas has seen.
	ObservedRevision string `json:"observedRevision,omitempty"`
	// LastError is the last error, kept until a pass succeeds.
	LastError string `json:"lastError,omitempty"`
	// LastTransitionTime is when Phase last changed.
	LastTransitionTime *metav1.Time `json:"lastTransitionTime,omitempty"`
	// LastAppliedTime is when the tenant was last applied.
	LastAppliedTime *metav1.Time `json:"lastAppliedTime,omitempty"`
	// Objects counts the objects raas manages for the tenant, on both levels.
	Objects int `json:"objects,omitempty"`
	// Conditions follow the Kubernetes conventions: Ready, HostApplied, VClusterReady.
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// PodGroups reports the PodGroup bridge: how many PodGroups are mirrored and which
	// were refused because their names collide.
	PodGroups *PodGroupStatus `json:"podGroups,omitempty"`
}

// PodGroupStatus is the PodGroup bridge's report for the tenant.
type PodGroupStatus struct {
	Mirrored   int      `json:"mirrored"`
	Collisions []string `json:"collisions,omitempty"`
}

// TenantList is a list of Tenants.
//
// +kubebuilder:object:root=true
type TenantList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Tenant `json:"items"`
}

// AddToScheme registers the Tenant types.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &Tenant{}, &TenantList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
