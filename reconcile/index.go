package reconcile

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/render"
	raasschema "github.com/raas-dev/raas/schema"
)

// listPageSize bounds one page of an index list.
const listPageSize = 500

// liveIndex is what one API server holds of the objects raas manages, read with one list
// per kind: the resourceVersion of each object, and the whole object for the kinds whose
// status makes a tenant's health. It lets a pass find the unchanged objects without a
// request per object.
type liveIndex struct {
	versions map[Ref]string
	objects  map[Ref]*unstructured.Unstructured
	// owners is what a lost inventory is rebuilt from: each object's version, tenant
	// label and whether it is a retained namespace.
	owners map[Ref]owner
}

// owner is what an object's metadata says about who it belongs to.
type owner struct {
	apiVersion, tenant string
	retained           bool
	// deleting is set once the object's deletion has begun.
	deleting bool
}

func newLiveIndex() *liveIndex {
	return &liveIndex{versions: map[Ref]string{}, objects: map[Ref]*unstructured.Unstructured{}, owners: map[Ref]owner{}}
}

// merge adds what y holds to x.
func (x *liveIndex) merge(y *liveIndex) {
	maps.Copy(x.versions, y.versions)
	maps.Copy(x.objects, y.objects)
	maps.Copy(x.owners, y.owners)
}

// refFor names the object of kind gk that m describes.
func refFor(gk schema.GroupKind, m metav1.Object) Ref {
	return Ref{Group: gk.Group, Kind: gk.Kind, Namespace: m.GetNamespace(), Name: m.GetName()}
}

// add puts the object of kind gvk that m describes into x.
func (x *liveIndex) add(gvk schema.GroupVersionKind, m metav1.Object) {
	ref := refFor(gvk.GroupKind(), m)
	x.versions[ref] = m.GetResourceVersion()
	_, retained := m.GetAnnotations()[AnnotationRetained]
	x.owners[ref] = owner{apiVersion: gvk.GroupVersion().String(), tenant: m.GetLabels()[raasschema.LabelTenant],
		retained: retained, deleting: m.GetDeletionTimestamp() != nil}
}

// addObject puts u, of kind gvk, into x whole, for its health.
func (x *liveIndex) addObject(gvk schema.GroupVersionKind, u *unstructured.Unstructured) {
	u.SetGroupVersionKind(gvk)
	x.add(gvk, u)
	x.objects[refOf(u)] = u
}

// healthKinds are listed in full rather than as metadata: their status is the health.
var healthKinds = []schema.GroupKind{
	{Group: "apps", Kind: "StatefulSet"},
	{Group: "apps", Kind: "Deployment"},
}

func (x *liveIndex) version(ref Ref) string {
	if x == nil {
		return ""
	}
	return x.versions[ref]
}

func (x *liveIndex) object(ref Ref) *unstructured.Unstructured {
	if x == nil {
		return nil
	}
	return x.objects[ref]
}

// kindsOf returns the distinct group-version-kinds of objs, in a stable order.
func kindsOf(objs ...[]*render.Object) []schema.GroupVersionKind {
	seen := map[schema.GroupKind]bool{}
	var kinds []schema.GroupVersionKind
	for _, list := range objs {
		for _, o := range list {
			gvk := o.GroupVersionKind()
			if !seen[gvk.GroupKind()] {
				seen[gvk.GroupKind()] = true
				kinds = append(kinds, gvk)
			}
		}
	}
	slices.SortFunc(kinds, func(a, b schema.GroupVersionKind) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.Kind, b.Kind))
	})
	return kinds
}

// buildIndex lists every kind in kinds across all namespaces, limited to objects labelled
// as managed by raas. A kind the server does not serve yet (its CRD is about to be applied)
// is left out; its objects then go the slow way, with a dry run.
func buildIndex(ctx context.Context, c client.Client, kinds []schema.GroupVersionKind) (*liveIndex, error) {
	x := newLiveIndex()
	selector := client.MatchingLabels{raasschema.LabelManagedBy: raasschema.ManagedBy}
	for _, gvk := range kinds {
		full := slices.Contains(healthKinds, gvk.GroupKind())
		listGVK := gvk.GroupVersion().WithKind(gvk.Kind + "List")
		next := ""
		for {
			opts := []client.ListOption{selector, client.Limit(listPageSize)}
			if next != "" {
				opts = append(opts, client.Continue(next))
			}
			var err error
			if full {
				list := &unstructured.UnstructuredList{}
				list.SetGroupVersionKind(listGVK)
				if err = c.List(ctx, list, opts...); err == nil {
					for i := range list.Items {
						x.addObject(gvk, &list.Items[i])
					}
					next = list.GetContinue()
				}
			} else {
				list := &metav1.PartialObjectMetadataList{}
				list.SetGroupVersionKind(listGVK)
				if err = c.List(ctx, list, opts...); err == nil {
					for i := range list.Items {
						x.add(gvk, &list.Items[i])
					}
					next = list.Continue
				}
			}
			if meta.IsNoMatchError(err) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("list %s: %w", gvk.GroupKind(), err)
			}
			if next == "" {
				break
			}
		}
	}
	return x, nil
}
