// Package testenv runs a real Kubernetes control plane (kube-apiserver and etcd built
// into bin/ by `make controlplane`) for tests and for `make run`. A host control plane
// carries the Volcano CRDs; a second API server stands in for a tenant's vcluster and
// exports its kubeconfig Secret into the host the way vcluster v0.25 does. On the host,
// StartHostControllers adds kube-controller-manager, kube-scheduler and kwok nodes made
// from the platform config (`make twin-host`); pods on those nodes look Running but no
// container runs. Nothing is downloaded at run time and nothing is faked. A reaper kills
// every process testenv started once the process that started it dies, even by panic or
// SIGKILL. For fault tests, kube-apiserver and etcd can be stopped and started again.
package testenv
