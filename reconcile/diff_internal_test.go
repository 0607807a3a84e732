package reconcile

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func secret(data map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]any{"name": "s", "namespace": "ns", "resourceVersion": "7", "managedFields": []any{}},
		"data":     data,
	}}
}

func TestUnifiedDiff(t *testing.T) {
	t.Run("masks Secret values, saying only which changed", func(t *testing.T) {
		live := secret(map[string]any{"kept": "c2FtZQ==", "changed": "b2xk", "gone": "eA=="})
		want := secret(map[string]any{"kept": "c2FtZQ==", "changed": "bmV3", "added": "eQ=="})
		d, err := unifiedDiff(live, want)
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{"c2FtZQ==", "b2xk", "bmV3", "eA==", "eQ=="} {
			if strings.Contains(d, secret) {
				t.Errorf("diff shows %q:\n%s", secret, d)
			}
		}
		for _, line := range []string{"-  changed: '*** (before)'", "+  changed: '*** (after)'", "+  added: '***'", "-  gone: '***'", "   kept: '***'"} {
			if !strings.Contains(d, line+"\n") {
				t.Errorf("diff lacks %q:\n%s", line, d)
			}
		}
	})

	t.Run("leaves out what the server sets", func(t *testing.T) {
		live := secret(nil)
		want := secret(nil)
		unstructured.SetNestedField(want.Object, "8", "metadata", "resourceVersion")
		unstructured.SetNestedField(want.Object, "x", "metadata", "uid")
		unstructured.SetNestedField(want.Object, map[string]any{"phase": "new"}, "status")
		d, err := unifiedDiff(live, want)
		if err != nil {
			t.Fatal(err)
		}
		if d != "" {
			t.Errorf("diff of objects that differ only in server fields:\n%s", d)
		}
	})
}
