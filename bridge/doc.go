// Package bridge closes the gap that keeps gang scheduling from working across the
// vcluster boundary: it mirrors the Volcano PodGroups that KubeRay creates inside a
// tenant's vcluster into the tenant's host namespace, under the name the synced pods'
// scheduling.k8s.io/group-name annotation carries, with spec.queue forced to the tenant's
// queue, and copies the host PodGroup's status back. Name collisions between virtual
// namespaces are refused and reported. A Manager runs one Bridge per Ready tenant.
package bridge
