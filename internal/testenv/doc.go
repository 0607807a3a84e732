// Package testenv runs a real Kubernetes control plane (kube-apiserver and etcd built
// into bin/ by `make controlplane`) for tests and for `make run`. A host control plane
// carries the Volcano CRDs; a second API server stands in for a tenant's vcluster and
// exports its kubeconfig Secret into the host the way vcluster v0.25 does. Nothing is
// downloaded at run time and nothing is faked. Tests in every package share its helpers
// for working with these control planes, such as Apply and StartVClusters. For fault
// tests, kube-apiserver and etcd can be stopped and started again with their data.
//
// The twin (twin.go, `make twin`) is the production stack from real code: on the host,
// StartHostControllers adds kube-controller-manager, kube-scheduler and kwok Nodes made
// from the platform config; the twin's kubelet runs the real vcluster syncer for each
// vcluster pod and the real KubeRay operator for each operator pod the syncer puts on
// the host; StartKubeRay runs the operator against a stand-in alone. Pods look Running
// but no container runs. A reaper kills every process testenv started once the process
// that started it dies, even by panic or SIGKILL.
package testenv
