// Package testenv runs a real Kubernetes control plane (kube-apiserver and etcd built
// into bin/ by `make controlplane`) for tests and for `make run`. A host control plane
// carries the Volcano CRDs; a second API server stands in for a tenant's vcluster and
// exports its kubeconfig Secret into the host the way vcluster v0.25 does. Nothing is
// downloaded at run time and nothing is faked. Tests in every package share its helpers
// for working with these control planes, such as Apply and StartVClusters. For fault
// tests, kube-apiserver and etcd can be stopped and started again with their data.
// StartKubeRay runs the real KubeRay operator (built into bin/ by `make twin-kuberay`)
// against a virtual API server, with the args raas rendered and as its ServiceAccount.
package testenv
