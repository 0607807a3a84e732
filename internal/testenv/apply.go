package testenv

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Apply applies a copy of obj server-side through c, as field manager owner, taking over
// fields that another manager owns, and fails the test on error. obj must carry its kind.
func Apply(t testing.TB, c client.Client, owner string, obj client.Object) {
	t.Helper()
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	ac := client.ApplyConfigurationFromUnstructured(&unstructured.Unstructured{Object: runtime.DeepCopyJSON(u)})
	if err := c.Apply(t.Context(), ac, client.FieldOwner(owner), client.ForceOwnership); err != nil {
		name := obj.GetName()
		if ns := obj.GetNamespace(); ns != "" {
			name = ns + "/" + name
		}
		t.Fatalf("apply %s %s: %v", obj.GetObjectKind().GroupVersionKind().Kind, name, err)
	}
}
