// Package status defines the Tenant object that raas keeps in the host cluster for each
// tenant of the repository: a copy of its spec from Git and the status of its last pass,
// so that `kubectl get tenants` and `raas status` show where every tenant stands.
//
// +kubebuilder:object:generate=true
// +groupName=raas.dev
// +versionName=v1alpha1
package v1alpha1
