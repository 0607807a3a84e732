package render

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// Object is one rendered Kubernetes object. Objects may be shared between tenants (the
// KubeRay base is rendered once per version), so they must not be modified once rendered.
// Its digest is computed once and kept; so is its YAML form when it is shared, since
// every tenant that shares it writes it. A tenant's own objects do not keep their YAML: a
// long-running raas holds every tenant's objects, and their YAML doubled what that costs
// (issue 15).
type Object struct {
	*unstructured.Unstructured

	shared bool

	once sync.Once
	yaml []byte
	err  error

	digestOnce sync.Once
	digest     string
	digestErr  error
}

func newObject(u *unstructured.Unstructured) *Object { return &Object{Unstructured: u} }

// fromTyped converts a typed object, whose TypeMeta must be set, into an Object.
func fromTyped(obj client.Object) (*Object, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("%T %s: %w", obj, obj.GetName(), err)
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	return newObject(&unstructured.Unstructured{Object: m}), nil
}

// YAML returns the object as YAML with keys in sorted order: the same object always
// gives the same bytes.
func (o *Object) YAML() ([]byte, error) {
	if !o.shared {
		return yaml.Marshal(o.Object)
	}
	o.once.Do(func() { o.yaml, o.err = yaml.Marshal(o.Object) })
	return o.yaml, o.err
}

// Digest returns the hex SHA-256 of the object's YAML, which stands for the object in
// inventories and caches.
func (o *Object) Digest() (string, error) {
	o.digestOnce.Do(func() {
		data, err := o.YAML()
		if err != nil {
			o.digestErr = err
			return
		}
		sum := sha256.Sum256(data)
		o.digest = hex.EncodeToString(sum[:])
	})
	return o.digest, o.digestErr
}

// ID names the object as group/kind namespace/name, for messages and sorting.
func (o *Object) ID() string {
	gvk := o.GroupVersionKind()
	ns := o.GetNamespace()
	if ns != "" {
		ns += "/"
	}
	return fmt.Sprintf("%s/%s %s%s", gvk.Group, gvk.Kind, ns, o.GetName())
}

// kindOrder ranks kinds so that what others depend on comes first, as Helm's install
// order does: namespaces and CRDs, then policy and identity, then workloads.
var kindOrder = []string{
	"Namespace",
	"CustomResourceDefinition",
	"ValidatingAdmissionPolicy",
	"ValidatingAdmissionPolicyBinding",
	"MutatingAdmissionPolicy",
	"MutatingAdmissionPolicyBinding",
	"PriorityClass",
	"Queue",
	"ResourceQuota",
	"LimitRange",
	"NetworkPolicy",
	"ServiceAccount",
	"Secret",
	"ConfigMap",
	"ClusterRole",
	"ClusterRoleBinding",
	"Role",
	"RoleBinding",
	"Service",
	"DaemonSet",
	"Deployment",
	"StatefulSet",
	"Job",
}

func kindRank(kind string) int {
	if i := slices.Index(kindOrder, kind); i >= 0 {
		return i
	}
	return len(kindOrder)
}

// sortObjects orders objects by kind rank, then group, kind, namespace and name.
func sortObjects(objs []*Object) {
	slices.SortStableFunc(objs, func(a, b *Object) int {
		ga, gb := a.GroupVersionKind(), b.GroupVersionKind()
		return cmp.Or(
			cmp.Compare(kindRank(ga.Kind), kindRank(gb.Kind)),
			cmp.Compare(ga.Group, gb.Group),
			cmp.Compare(ga.Kind, gb.Kind),
			cmp.Compare(a.GetNamespace(), b.GetNamespace()),
			cmp.Compare(a.GetName(), b.GetName()),
		)
	})
}
