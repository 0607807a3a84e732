// Package render turns a validated tenant into the exact Kubernetes objects it needs:
// host objects (namespace, quota, policies, the vcluster chart, the Volcano queue) and
// virtual objects applied inside its vcluster (KubeRay, the PodGroup CRD). It runs offline
// and is deterministic: the same input renders to the same bytes.
package render
