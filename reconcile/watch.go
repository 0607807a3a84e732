package reconcile

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	raasschema "github.com/raas-dev/raas/schema"
)

// syncTimeout bounds how long a pass waits for new watches to list their kinds, all
// together. A kind whose watch has not synced by then (raas may not watch it: its RBAC
// from before watches, say) is listed by each pass instead, without waiting again, until
// its watch syncs; a list that fails fails the pass, as without watches.
const syncTimeout = 30 * time.Second

// hostWatch keeps the host's index in watches: one informer per kind that raas renders,
// limited to the objects labelled as raas's, started when a pass first needs the kind and
// kept until the Reconciler's Watch context ends. A pass then reads the live state from
// memory instead of listing every kind (issue 15: at 1,000 tenants the lists were most
// of the cost of a pass with nothing to do).
//
// The objects are kept as metadata without managedFields, and the health kinds
// (healthKinds) with only what their kstatus reads, so that 21,000 objects cost a few
// tens of MiB.
//
// A watch may lag the API server by a moment. That is safe for what the index is used
// for: an object whose version the watch has not caught up with is compared by dry run,
// and one it has not seen yet is looked up before it is created.
type hostWatch struct {
	ctx context.Context
	// changed is told the tenant ("" for the platform) of each object that changes after
	// its kind's first list.
	changed func(tenant string)
	mapper  meta.RESTMapper
	meta    metadata.Interface
	dyn     dynamic.Interface

	mu    sync.Mutex
	kinds map[schema.GroupKind]*kindWatch
	// own are raas's own writes on the host: the versions its applies returned, and ""
	// for a delete. Their events are not news.
	own map[Ref][]string
	// events wait eventDelay before they are told: the event of raas's own write may come
	// before the write's response has been noted in own.
	events []event
}

type event struct {
	ref             Ref
	resourceVersion string // "" for a delete
	tenant          string
	at              time.Time
}

// eventDelay is how long an event waits for raas's own write that it may answer.
const eventDelay = 500 * time.Millisecond

// wrote notes that raas itself wrote ref, leaving it at resourceVersion ("" for a delete).
func (w *hostWatch) wrote(ref Ref, resourceVersion string) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.own[ref] = append(w.own[ref], resourceVersion)
}

// observe queues an event of ref. A delete is noted with an empty version.
func (w *hostWatch) observe(ref Ref, resourceVersion, tenant string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events = append(w.events, event{ref, resourceVersion, tenant, time.Now()})
}

// tell tells changed of each event older than eventDelay that is not raas's own write,
// once per tenant, until ctx ends.
func (w *hostWatch) tell() {
	tick := time.NewTicker(eventDelay / 2)
	defer tick.Stop()
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-tick.C:
		}
		tenants := map[string]bool{}
		w.mu.Lock()
		cut := time.Now().Add(-eventDelay)
		i := 0
		for ; i < len(w.events) && w.events[i].at.Before(cut); i++ {
			e := w.events[i]
			if own := w.own[e.ref]; slices.Contains(own, e.resourceVersion) {
				if own = slices.DeleteFunc(own, func(rv string) bool { return rv == e.resourceVersion }); len(own) == 0 {
					delete(w.own, e.ref)
				} else {
					w.own[e.ref] = own
				}
				continue
			}
			tenants[e.tenant] = true
		}
		w.events = slices.Delete(w.events, 0, i)
		w.mu.Unlock()
		for _, t := range slices.Sorted(maps.Keys(tenants)) {
			w.changed(t)
		}
	}
}

type kindWatch struct {
	gvk      schema.GroupVersionKind
	informer cache.SharedIndexInformer
	full     bool
	waited   atomic.Bool // a pass has waited syncTimeout for it
}

func newHostWatch(ctx context.Context, cfg *rest.Config, mapper meta.RESTMapper, changed func(string)) (*hostWatch, error) {
	mc, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	if changed == nil {
		changed = func(string) {}
	}
	w := &hostWatch{ctx: ctx, changed: changed, mapper: mapper, meta: mc, dyn: dc,
		kinds: map[schema.GroupKind]*kindWatch{}, own: map[Ref][]string{}}
	go w.tell()
	return w, nil
}

// Watch keeps the host's live state in watches until ctx ends, for the passes of a
// long-running raas: a pass then lists nothing on the host. Without it every pass lists
// each kind it applies. changed, if set, is told the tenant ("" for the platform) of every
// object of raas's that is created, changed or deleted on the host after its kind's
// first list by someone other than raas: it can start a pass for that tenant.
func (r *Reconciler) Watch(ctx context.Context, changed func(tenant string)) error {
	w, err := newHostWatch(ctx, r.hostCfg, r.host.RESTMapper(), changed)
	if err != nil {
		return fmt.Errorf("host watch: %w", err)
	}
	r.watchMu.Lock()
	r.watch = w
	r.watchMu.Unlock()
	context.AfterFunc(ctx, func() {
		r.watchMu.Lock()
		if r.watch == w {
			r.watch = nil
		}
		r.watchMu.Unlock()
	})
	return nil
}

// hostWatching returns the host's watch, or nil.
func (r *Reconciler) hostWatching() *hostWatch {
	r.watchMu.Lock()
	defer r.watchMu.Unlock()
	return r.watch
}

// hostIndex returns the host's index of kinds: from the watches when the Reconciler
// watches, else by listing.
func (r *Reconciler) hostIndex(ctx context.Context, kinds []schema.GroupVersionKind) (*liveIndex, error) {
	w := r.hostWatching()
	if w == nil {
		return buildIndex(ctx, r.host, kinds)
	}
	return w.index(ctx, r.host, kinds)
}

// index reads kinds from their watches, starting the ones not started yet. A kind the
// server does not serve is left out, as buildIndex leaves it out; a kind whose watch does
// not sync in time is listed.
func (w *hostWatch) index(ctx context.Context, c client.Client, kinds []schema.GroupVersionKind) (*liveIndex, error) {
	var watched []*kindWatch
	for _, gvk := range kinds {
		kw, err := w.kind(gvk)
		if meta.IsNoMatchError(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("watch %s: %w", gvk.GroupKind(), err)
		}
		watched = append(watched, kw)
	}
	waitSynced(ctx, watched)
	x := newLiveIndex()
	var listed []schema.GroupVersionKind
	for _, kw := range watched {
		if !kw.informer.HasSynced() {
			listed = append(listed, kw.gvk)
			continue
		}
		for _, item := range kw.informer.GetStore().List() {
			kw.add(x, item)
		}
	}
	if len(listed) > 0 {
		more, err := buildIndex(ctx, c, listed)
		if err != nil {
			return nil, err
		}
		x.merge(more)
	}
	return x, nil
}

// waitSynced waits up to syncTimeout for the watches that have neither synced nor been
// waited for before.
func waitSynced(ctx context.Context, kws []*kindWatch) {
	var pending []cache.InformerSynced
	for _, kw := range kws {
		if !kw.informer.HasSynced() && !kw.waited.Load() {
			pending = append(pending, kw.informer.HasSynced)
		}
	}
	if len(pending) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	cache.WaitForCacheSync(ctx.Done(), pending...)
	for _, kw := range kws {
		kw.waited.Store(true)
	}
}

// kind returns the watch of gvk's kind, started on first use.
func (w *hostWatch) kind(gvk schema.GroupVersionKind) (*kindWatch, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if kw := w.kinds[gvk.GroupKind()]; kw != nil && kw.gvk == gvk {
		return kw, nil
	}
	mapping, err := w.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, err
	}
	selector := func(o *metav1.ListOptions) {
		o.LabelSelector = raasschema.LabelManagedBy + "=" + raasschema.ManagedBy
	}
	kw := &kindWatch{gvk: gvk, full: slices.Contains(healthKinds, gvk.GroupKind())}
	if kw.full {
		kw.informer = dynamicinformer.NewFilteredDynamicInformer(w.dyn, mapping.Resource, metav1.NamespaceAll, 0,
			cache.Indexers{}, selector).Informer()
	} else {
		kw.informer = metadatainformer.NewFilteredMetadataInformer(w.meta, mapping.Resource, metav1.NamespaceAll, 0,
			cache.Indexers{}, selector).Informer()
	}
	if err := kw.informer.SetTransform(kw.trim); err != nil {
		return nil, err
	}
	observe := func(obj any, deleted bool) {
		if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		m, err := meta.Accessor(obj)
		if err != nil {
			return
		}
		rv := m.GetResourceVersion()
		if deleted {
			rv = ""
		}
		w.observe(refFor(gvk.GroupKind(), m), rv, m.GetLabels()[raasschema.LabelTenant])
	}
	_, err = kw.informer.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj any, initial bool) {
			if !initial {
				observe(obj, false)
			}
		},
		UpdateFunc: func(before, after any) {
			// A resync or a relist hands back objects at the same version: nothing changed.
			if b, err := meta.Accessor(before); err == nil {
				if a, err := meta.Accessor(after); err == nil && a.GetResourceVersion() == b.GetResourceVersion() {
					return
				}
			}
			observe(after, false)
		},
		DeleteFunc: func(obj any) { observe(obj, true) },
	})
	if err != nil {
		return nil, err
	}
	go kw.informer.RunWithContext(w.ctx)
	w.kinds[gvk.GroupKind()] = kw
	return kw, nil
}

// trim keeps what the index reads of an object: its metadata without managedFields and,
// for the health kinds, what kstatus computes from.
func (kw *kindWatch) trim(obj any) (any, error) {
	switch o := obj.(type) {
	case *metav1.PartialObjectMetadata:
		o.ManagedFields = nil
		return o, nil
	case *unstructured.Unstructured:
		return trimForHealth(o), nil
	}
	return obj, nil
}

// trimForHealth returns u with its metadata (no managedFields), status, and the parts of
// its spec that kstatus reads for StatefulSets and Deployments.
func trimForHealth(u *unstructured.Unstructured) *unstructured.Unstructured {
	u.SetManagedFields(nil)
	spec, _, _ := unstructured.NestedMap(u.Object, "spec")
	kept := map[string]any{}
	for _, field := range []string{"replicas", "updateStrategy", "paused", "progressDeadlineSeconds", "minReadySeconds"} {
		if v, ok := spec[field]; ok {
			kept[field] = v
		}
	}
	out := map[string]any{"apiVersion": u.GetAPIVersion(), "kind": u.GetKind(), "metadata": u.Object["metadata"], "spec": kept}
	if st, ok := u.Object["status"]; ok {
		out["status"] = st
	}
	u.Object = out
	return u
}

// add puts one object of the watch's store into x.
func (kw *kindWatch) add(x *liveIndex, item any) {
	switch o := item.(type) {
	case *metav1.PartialObjectMetadata:
		x.add(kw.gvk, o)
	case *unstructured.Unstructured:
		// The store's object is shared: the index holds a copy, with the rendered kind.
		x.addObject(kw.gvk, o.DeepCopy())
	}
}
