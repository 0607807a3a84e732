package testenv

import "k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

// SampleRayCluster is a RayCluster of one small head (Ray 2.46.0), written by raas for the
// twin's tests and `make run`. Its container meets the restricted Pod Security Standard,
// which the CPU example tenant enforces.
func SampleRayCluster(namespace, name string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "ray.io/v1",
		"kind":       "RayCluster",
		"metadata":   map[string]any{"name": name, "namespace": namespace},
		"spec": map[string]any{"headGroupSpec": map[string]any{
			"rayStartParams": map[string]any{},
			"template": map[string]any{"spec": map[string]any{"containers": []any{map[string]any{
				"name": "ray-head", "image": "rayproject/ray:2.46.0",
				"resources": map[string]any{
					"requests": map[string]any{"cpu": "500m", "memory": "1Gi"},
					"limits":   map[string]any{"cpu": "1", "memory": "2Gi"},
				},
				"securityContext": map[string]any{
					"allowPrivilegeEscalation": false, "runAsNonRoot": true, "runAsUser": int64(1000),
					"capabilities":   map[string]any{"drop": []any{"ALL"}},
					"seccompProfile": map[string]any{"type": "RuntimeDefault"},
				},
			}}}},
		}},
	}}
}
