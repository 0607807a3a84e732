package testenv

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/raas-dev/raas/render"
)

// operatorDeployment is a Deployment shaped like KubeRay's, with container fields
// replaced by container.
func operatorDeployment(container map[string]any) *render.Object {
	c := map[string]any{"name": "kuberay-operator", "image": "quay.io/kuberay/operator:v1.5.0", "args": []any{"--feature-gates=A=true"}}
	for k, v := range container {
		c[k] = v
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1",
		"kind":       "Deployment",
		"metadata":   map[string]any{"name": "kuberay-operator", "namespace": "kuberay-system"},
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
			"serviceAccountName": "kuberay-operator",
			"containers":         []any{c},
		}}},
	}}
	return &render.Object{Unstructured: u}
}

func TestKubeRayArgs(t *testing.T) {
	t.Run("keeps the rendered args first and adds only what a process outside a pod needs", func(t *testing.T) {
		d, err := kubeRayDeployment([]*render.Object{operatorDeployment(nil)})
		if err != nil {
			t.Fatal(err)
		}
		if d.version != "v1.5.0" || d.serviceAccount != "kuberay-operator" || d.namespace != "kuberay-system" {
			t.Errorf("deployment = %+v", d)
		}
		args, err := kubeRayArgs(d, "/k", "127.0.0.1:1", "127.0.0.1:2")
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"--feature-gates=A=true", "--kubeconfig=/k", "--leader-election-namespace=kuberay-system",
			"--metrics-addr=127.0.0.1:1", "--health-probe-bind-address=127.0.0.1:2"}
		if !slices.Equal(args, want) {
			t.Errorf("args = %q, want %q", args, want)
		}
	})

	t.Run("runs the binary under the container's command name", func(t *testing.T) {
		d, err := kubeRayDeployment([]*render.Object{operatorDeployment(map[string]any{"command": []any{"/manager"}})})
		if err != nil {
			t.Fatal(err)
		}
		if d.argv0 != "/manager" {
			t.Errorf("argv0 = %q, want /manager", d.argv0)
		}
	})

	t.Run("keeps a rendered leader-election namespace", func(t *testing.T) {
		d, err := kubeRayDeployment([]*render.Object{operatorDeployment(map[string]any{"args": []any{"--leader-election-namespace=x"}})})
		if err != nil {
			t.Fatal(err)
		}
		args, err := kubeRayArgs(d, "/k", "a", "b")
		if err != nil {
			t.Fatal(err)
		}
		if n := len(slices.DeleteFunc(args, func(a string) bool { return !strings.HasPrefix(a, "--leader-election-namespace") })); n != 1 {
			t.Errorf("args = %q, want one --leader-election-namespace", args)
		}
	})

	t.Run("refuses a config file, which would override the added flags", func(t *testing.T) {
		d, err := kubeRayDeployment([]*render.Object{operatorDeployment(map[string]any{"args": []any{"--config", "/etc/c.yaml"}})})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kubeRayArgs(d, "/k", "a", "b"); err == nil || !strings.Contains(err.Error(), "--config") {
			t.Errorf("err = %v, want one naming --config", err)
		}
	})

	t.Run("refuses env that only a pod can fill", func(t *testing.T) {
		env := []any{map[string]any{"name": "POD", "valueFrom": map[string]any{"fieldRef": map[string]any{"fieldPath": "metadata.name"}}}}
		if _, err := kubeRayDeployment([]*render.Object{operatorDeployment(map[string]any{"env": env})}); err == nil || !strings.Contains(err.Error(), "POD") {
			t.Errorf("err = %v, want one naming env POD", err)
		}
	})

	t.Run("fails without an operator Deployment", func(t *testing.T) {
		other := operatorDeployment(map[string]any{"image": "busybox:1"})
		if _, err := kubeRayDeployment([]*render.Object{other}); err == nil {
			t.Error("no error")
		}
	})
}
