package bridge

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	schedulingv1beta1 "volcano.sh/apis/pkg/apis/scheduling/v1beta1"
	"volcano.sh/apis/pkg/client/clientset/versioned"
	schedulinginformers "volcano.sh/apis/pkg/client/informers/externalversions/scheduling/v1beta1"
	schedulinglisters "volcano.sh/apis/pkg/client/listers/scheduling/v1beta1"

	"github.com/raas-dev/raas/schema"
)

// byName indexes the virtual PodGroups by name: the PodGroups of all virtual namespaces
// that map to one host name.
const byName = "name"

// Bridge mirrors the PodGroups of one tenant's vcluster into its host namespace. It works
// from two informers, one on the virtual PodGroups of all namespaces and one on the
// PodGroups of the host namespace, and one rate-limited queue of PodGroup names: every
// event on either side queues the name, and a sync of a name converges both sides for it.
//
// What it guarantees, for the tenant's host namespace:
//   - Each host PodGroup it writes mirrors exactly one live virtual PodGroup of the same
//     name, with that PodGroup's spec and the tenant's queue. Labels, annotations and
//     owner references of the virtual PodGroup are not copied.
//   - It never writes a host PodGroup it did not create, and never replaces the copy of
//     a virtual PodGroup that still exists with the copy of another.
//   - A host copy whose virtual PodGroup is gone (or was created anew) is deleted,
//     including those left by a bridge that was down, on start and on every resync.
//   - The virtual PodGroup's status is the host copy's; nothing else of it is written.
//
// What it refuses, in Status and as Warning Events inside the vcluster and on the host: a
// second virtual PodGroup of a name already mirrored, a name held on the host by a PodGroup
// raas does not manage, and a copy the host's admission denies.
type Bridge struct {
	opts     Options
	host     versioned.Interface
	virtual  versioned.Interface
	hostKube kubernetes.Interface
	virtKube kubernetes.Interface

	hostInformer    cache.SharedIndexInformer
	virtualInformer cache.SharedIndexInformer
	hostLister      schedulinglisters.PodGroupNamespaceLister
	queue           workqueue.TypedRateLimitingInterface[string]
	selector        labels.Selector

	// Set by Run before the workers start.
	hostEvents    record.EventRecorder
	virtualEvents record.EventRecorder

	started atomic.Bool
	synced  atomic.Bool

	mu sync.Mutex
	// mirrored maps a host name to the virtual namespace/name it mirrors.
	mirrored map[string]string
	// refused holds the refusals of each name, replaced by each sync of the name.
	refused map[string][]Refusal
	// reported holds, per name, the refusals already recorded as Events, so that a
	// resync does not record them again.
	reported map[string]map[string]bool
	// failing holds the names whose last sync failed, with the error.
	failing     map[string]error
	lastErr     error
	lastErrTime metav1.Time
}

// New returns a bridge between the host and the tenant's vcluster. It does not contact
// either API server; Run does.
func New(host, virtual *rest.Config, opts Options) (*Bridge, error) {
	if opts.Tenant == "" || opts.HostNamespace == "" || opts.Queue == "" {
		return nil, fmt.Errorf("podgroup bridge: tenant, host namespace and queue are required (got %q, %q, %q)",
			opts.Tenant, opts.HostNamespace, opts.Queue)
	}
	def := DefaultOptions()
	if opts.Workers <= 0 {
		opts.Workers = def.Workers
	}
	if opts.Now == nil {
		opts.Now = def.Now
	}
	b := &Bridge{
		opts:     opts,
		mirrored: map[string]string{},
		refused:  map[string][]Refusal{},
		reported: map[string]map[string]bool{},
		failing:  map[string]error{},
	}
	var err error
	if b.host, b.hostKube, err = clients(host, opts); err != nil {
		return nil, fmt.Errorf("tenant %s: podgroup bridge: host: %w", opts.Tenant, err)
	}
	if b.virtual, b.virtKube, err = clients(virtual, opts); err != nil {
		return nil, fmt.Errorf("tenant %s: podgroup bridge: vcluster: %w", opts.Tenant, err)
	}

	b.selector = ownedSelector(opts.Tenant)
	// Every PodGroup of the host namespace, not only the bridge's copies: a name taken by
	// another PodGroup must be seen before a copy is created under it.
	b.hostInformer = schedulinginformers.NewPodGroupInformer(b.host, opts.HostNamespace, opts.Resync,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	b.virtualInformer = schedulinginformers.NewPodGroupInformer(b.virtual, metav1.NamespaceAll, opts.Resync,
		cache.Indexers{byName: func(obj any) ([]string, error) {
			m, err := meta.Accessor(obj)
			if err != nil {
				return nil, err
			}
			return []string{m.GetName()}, nil
		}})
	for _, inf := range []cache.SharedIndexInformer{b.hostInformer, b.virtualInformer} {
		// Managed fields are a large share of each object and the bridge never reads them.
		if err := inf.SetTransform(dropManagedFields); err != nil {
			return nil, fmt.Errorf("tenant %s: podgroup bridge: %w", opts.Tenant, err)
		}
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    b.enqueue,
			UpdateFunc: func(_, obj any) { b.enqueue(obj) },
			DeleteFunc: b.enqueue,
		}); err != nil {
			return nil, fmt.Errorf("tenant %s: podgroup bridge: %w", opts.Tenant, err)
		}
	}
	b.hostLister = schedulinglisters.NewPodGroupLister(b.hostInformer.GetIndexer()).PodGroups(opts.HostNamespace)
	b.queue = workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "raas-bridge-" + opts.Tenant})
	return b, nil
}

// ownedSelector selects the host copies of tenant's bridge.
func ownedSelector(tenant string) labels.Selector {
	must := func(key string, op selection.Operator, values ...string) labels.Requirement {
		r, err := labels.NewRequirement(key, op, values)
		if err != nil {
			panic(err) // the keys are constants and the tenant a validated DNS label
		}
		return *r
	}
	return labels.NewSelector().Add(
		must(schema.LabelTenant, selection.Equals, tenant),
		must(schema.LabelManagedBy, selection.Equals, schema.ManagedBy),
		must(LabelSourceNamespace, selection.Exists),
	)
}

func clients(cfg *rest.Config, opts Options) (versioned.Interface, kubernetes.Interface, error) {
	cfg = rest.CopyConfig(cfg)
	if opts.QPS > 0 {
		cfg.QPS, cfg.Burst = opts.QPS, opts.Burst
	}
	cfg.UserAgent = FieldManager
	if opts.WrapTransport != nil {
		cfg.Wrap(opts.WrapTransport)
	}
	vc, err := versioned.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	return vc, kc, nil
}

func dropManagedFields(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// enqueue queues the name of a PodGroup from either side, or of a deleted one.
func (b *Bridge) enqueue(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	if m, err := meta.Accessor(obj); err == nil {
		b.queue.Add(m.GetName())
	}
}

// eventScheme resolves the kind of the objects Events are recorded on.
var eventScheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(schedulingv1beta1.AddToScheme(s))
	return s
}()

// Run starts the informers, waits until both have listed, and syncs PodGroup names with
// Options.Workers workers until ctx is done. It returns nil once stopped by ctx; it may be
// called once. A vcluster or host that does not answer is retried by the informers, and
// Status reports Synced false meanwhile.
func (b *Bridge) Run(ctx context.Context) error {
	if !b.started.CompareAndSwap(false, true) {
		return fmt.Errorf("tenant %s: podgroup bridge: Run called twice", b.opts.Tenant)
	}
	log := klog.FromContext(ctx).WithValues("tenant", b.opts.Tenant)
	ctx = klog.NewContext(ctx, log)
	defer b.queue.ShutDown()

	source := corev1.EventSource{Component: FieldManager}
	hostBroadcaster := record.NewBroadcaster(record.WithContext(ctx))
	defer hostBroadcaster.Shutdown()
	hostBroadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: b.hostKube.CoreV1().Events(b.opts.HostNamespace)})
	b.hostEvents = hostBroadcaster.NewRecorder(eventScheme, source)
	virtualBroadcaster := record.NewBroadcaster(record.WithContext(ctx))
	defer virtualBroadcaster.Shutdown()
	virtualBroadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: b.virtKube.CoreV1().Events("")})
	b.virtualEvents = virtualBroadcaster.NewRecorder(eventScheme, source)

	var informers sync.WaitGroup
	defer informers.Wait()
	informers.Go(func() { b.hostInformer.Run(ctx.Done()) })
	informers.Go(func() { b.virtualInformer.Run(ctx.Done()) })
	if !cache.WaitForCacheSync(ctx.Done(), b.hostInformer.HasSynced, b.virtualInformer.HasSynced) {
		return nil // stopped before both sides listed
	}
	b.synced.Store(true)
	log.V(1).Info("podgroup bridge synced", "hostNamespace", b.opts.HostNamespace, "queue", b.opts.Queue)

	var workers sync.WaitGroup
	for range b.opts.Workers {
		workers.Go(func() {
			for b.processNext(ctx) {
			}
		})
	}
	<-ctx.Done()
	b.queue.ShutDown()
	workers.Wait()
	return nil
}

// errWait asks for the name to be synced again later without counting as a failure.
var errWait = errors.New("waiting")

func (b *Bridge) processNext(ctx context.Context) bool {
	name, shutdown := b.queue.Get()
	if shutdown {
		return false
	}
	defer b.queue.Done(name)
	err := b.sync(ctx, name)
	switch {
	case err == nil:
		b.queue.Forget(name)
		b.setFailing(name, nil)
	case errors.Is(err, errWait):
		b.queue.AddRateLimited(name)
	case ctx.Err() != nil:
		// Stopping; the next start lists everything again.
	default:
		klog.FromContext(ctx).V(1).Info("podgroup sync failed", "name", name, "err", err)
		b.setFailing(name, err)
		b.queue.AddRateLimited(name)
	}
	return true
}
