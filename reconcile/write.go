package reconcile

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/render"
	"github.com/raas-dev/raas/schema"
)

// writer makes every change a pass makes: to objects, to inventories, to the workloads of
// a sleeping vcluster, and to what the Reconciler remembers. Apply's pass writes with the
// clusterWriter; Diff's with dryWriter, which changes nothing, so that its entries say what
// the writes would do. begin chooses the writer once per pass.
type writer interface {
	// apply server-side applies u, forcing raas's ownership; u becomes the live object.
	apply(ctx context.Context, lv *level, u *unstructured.Unstructured) error
	// delete deletes the object m read, in the background, as long as its UID is m's.
	delete(ctx context.Context, lv *level, m *metav1.PartialObjectMetadata) error
	// settle follows the definitions (namespaces and CRDs) of outs at defs, applied before
	// the objects that need them.
	settle(ctx context.Context, lv *level, outs []outcome, defs []int)
	// store writes an inventory; remove deletes one.
	store(ctx context.Context, inv *inventory) error
	remove(ctx context.Context, inv *inventory) error
	// sleep stops the pods an asleep vcluster had synced into namespace.
	sleep(ctx context.Context, namespace string) error
	// forget drops what the Reconciler keeps of a removed tenant between passes.
	forget(tenant, namespace string)
}

var (
	_ writer = clusterWriter{}
	_ writer = dryWriter{}
)

// clusterWriter writes to the host, the vclusters and the inventories.
type clusterWriter struct{ r *Reconciler }

func (w clusterWriter) apply(ctx context.Context, lv *level, u *unstructured.Unstructured) error {
	err := lv.client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u),
		client.ForceOwnership, client.FieldOwner(w.r.opts.FieldManager))
	if err == nil && lv.target == render.Host {
		w.r.hostWatching().wrote(refOf(u), u.GetResourceVersion())
	}
	return err
}

func (w clusterWriter) delete(ctx context.Context, lv *level, m *metav1.PartialObjectMetadata) error {
	uid := m.GetUID()
	if lv.target == render.Host {
		w.r.hostWatching().wrote(refFor(m.GroupVersionKind().GroupKind(), m), "")
	}
	return lv.client.Delete(ctx, m, client.Preconditions{UID: &uid}, client.PropagationPolicy(metav1.DeletePropagationBackground))
}

// settle waits until the definitions are active and established (waitDefinitions).
func (w clusterWriter) settle(ctx context.Context, lv *level, outs []outcome, defs []int) {
	w.r.waitDefinitions(ctx, lv, outs, defs)
}

func (w clusterWriter) store(ctx context.Context, inv *inventory) error {
	return w.r.storeInventory(ctx, inv)
}

func (w clusterWriter) remove(ctx context.Context, inv *inventory) error {
	return w.r.deleteInventory(ctx, inv)
}

func (w clusterWriter) sleep(ctx context.Context, namespace string) error {
	return w.r.sleepWorkloads(ctx, namespace)
}

func (w clusterWriter) forget(tenant, namespace string) {
	w.r.forgetVCluster(namespace, schema.Release(tenant))
	w.r.checked.forget(tenant)
}

// dryWriter is Diff's writer: it writes nothing. A namespace it would create is noted on its
// level, since the objects in it cannot be dry-run before it exists: they would be
// created.
type dryWriter struct{}

func (dryWriter) apply(context.Context, *level, *unstructured.Unstructured) error { return nil }

func (dryWriter) delete(context.Context, *level, *metav1.PartialObjectMetadata) error { return nil }

func (dryWriter) settle(_ context.Context, lv *level, outs []outcome, defs []int) {
	for _, i := range defs {
		if e := outs[i].entry; e.Action == Created && e.Kind == "Namespace" {
			if lv.newNamespaces == nil {
				lv.newNamespaces = map[string]bool{}
			}
			lv.newNamespaces[e.Name] = true
		}
	}
}

func (dryWriter) store(context.Context, *inventory) error { return nil }

func (dryWriter) remove(context.Context, *inventory) error { return nil }

func (dryWriter) sleep(context.Context, string) error { return nil }

func (dryWriter) forget(string, string) {}

// tenantKey carries, in a context, the tenant whose share of a pass it is ("" for the
// platform objects), for the fence.
type tenantKey struct{}

func withTenant(ctx context.Context, tenant string) context.Context {
	return context.WithValue(ctx, tenantKey{}, tenant)
}

func tenantOf(ctx context.Context) string {
	tenant, _ := ctx.Value(tenantKey{}).(string)
	return tenant
}

// fenced returns w, or, when in has a Fence, w with every write to a cluster asking the
// fence first for the tenant the context names (Input.Fence).
func fenced(w writer, in Input) writer {
	if in.Fence == nil {
		return w
	}
	return fencedWriter{writer: w, fence: in.Fence, timeout: in.FenceTimeout}
}

// fencedWriter asks the fence before each write, and bounds the write by the timeout.
type fencedWriter struct {
	writer
	fence   func(tenant string) error
	timeout time.Duration
}

// do runs the write once the fence allows it for the tenant of ctx, bounded by the
// timeout.
func (w fencedWriter) do(ctx context.Context, write func(context.Context) error) error {
	if err := w.fence(tenantOf(ctx)); err != nil {
		return err
	}
	if w.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, w.timeout)
		defer cancel()
	}
	return write(ctx)
}

func (w fencedWriter) apply(ctx context.Context, lv *level, u *unstructured.Unstructured) error {
	return w.do(ctx, func(ctx context.Context) error { return w.writer.apply(ctx, lv, u) })
}

func (w fencedWriter) delete(ctx context.Context, lv *level, m *metav1.PartialObjectMetadata) error {
	return w.do(ctx, func(ctx context.Context) error { return w.writer.delete(ctx, lv, m) })
}

func (w fencedWriter) store(ctx context.Context, inv *inventory) error {
	return w.do(ctx, func(ctx context.Context) error { return w.writer.store(ctx, inv) })
}

func (w fencedWriter) remove(ctx context.Context, inv *inventory) error {
	return w.do(ctx, func(ctx context.Context) error { return w.writer.remove(ctx, inv) })
}

func (w fencedWriter) sleep(ctx context.Context, namespace string) error {
	return w.do(ctx, func(ctx context.Context) error { return w.writer.sleep(ctx, namespace) })
}
