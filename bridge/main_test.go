package bridge_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	schedulingv1beta1 "volcano.sh/apis/pkg/apis/scheduling/v1beta1"
	"volcano.sh/apis/pkg/client/clientset/versioned"

	"github.com/raas-dev/raas/bridge"
	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/schema"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// waitTimeout bounds every wait for the bridge to converge.
const waitTimeout = 30 * time.Second

// env is a host, a stand-in vcluster exporting its kubeconfig into a host namespace, and
// clients to both.
type env struct {
	host                *testenv.ControlPlane
	vc                  *testenv.VCluster
	hostNS, release     string
	hostKube, virtKube  kubernetes.Interface
	hostPGs, virtualPGs versioned.Interface
	// virtual is the vcluster's config as read back from its kubeconfig Secret.
	virtual *rest.Config
}

// newEnv starts a stand-in vcluster with the PodGroup CRD for a tenant on host, in host
// namespace hostNS (created when missing; a fresh one when empty).
func newEnv(t testing.TB, host *testenv.ControlPlane, hostNS, release string) *env {
	t.Helper()
	if hostNS == "" {
		hostNS = host.Namespace(t)
	}
	opts := testenv.DefaultVClusterOptions()
	opts.ControlPlane.CRDDirs = []string{testenv.VolcanoCRDs}
	e := &env{host: host, hostNS: hostNS, release: release}
	e.vc = host.StartVCluster(t, hostNS, release, opts)
	e.hostKube, e.hostPGs = clients(t, host.Config)
	virtual, err := bridge.VirtualConfig(t.Context(), e.hostKube, hostNS, release)
	if err != nil {
		t.Fatal(err)
	}
	e.virtual = virtual
	e.virtKube, e.virtualPGs = clients(t, virtual)
	return e
}

func clients(t testing.TB, cfg *rest.Config) (kubernetes.Interface, versioned.Interface) {
	t.Helper()
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 500, 1000
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	vc, err := versioned.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return kc, vc
}

func (e *env) options(tenant, queue string) bridge.Options {
	opts := bridge.DefaultOptions()
	opts.Tenant, opts.HostNamespace, opts.Queue = tenant, e.hostNS, queue
	return opts
}

// running is a bridge running in the background.
type running struct {
	*bridge.Bridge
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// stop stops the bridge and fails the test if Run returned an error.
func (r *running) stop(t testing.TB) {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		if err := <-r.done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// start runs a new bridge from the host to e's vcluster until stopped or the test ends.
func (e *env) start(t testing.TB, opts bridge.Options) *running {
	t.Helper()
	b, err := bridge.New(e.host.Config, e.virtual, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Bridge: b, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- b.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	eventually(t, "the bridge to sync", func(context.Context) (bool, error) { return b.Status().Synced, nil })
	return r
}

// namespace creates a namespace inside the vcluster.
func (e *env) namespace(t testing.TB, name string) {
	t.Helper()
	_, err := e.virtKube.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// podGroup is a PodGroup as KubeRay writes it for a RayCluster with two workers.
func podGroup(namespace, name, queue string) *schedulingv1beta1.PodGroup {
	min := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("3"), corev1.ResourceMemory: resource.MustParse("6Gi")}
	return &schedulingv1beta1.PodGroup{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec:       schedulingv1beta1.PodGroupSpec{MinMember: 3, MinResources: &min, Queue: queue},
	}
}

func (e *env) createVirtual(t testing.TB, pg *schedulingv1beta1.PodGroup) *schedulingv1beta1.PodGroup {
	t.Helper()
	got, err := e.virtualPGs.SchedulingV1beta1().PodGroups(pg.Namespace).Create(t.Context(), pg, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create podgroup %s/%s in the vcluster: %v", pg.Namespace, pg.Name, err)
	}
	return got
}

func (e *env) getVirtual(t testing.TB, namespace, name string) *schedulingv1beta1.PodGroup {
	t.Helper()
	pg, err := e.virtualPGs.SchedulingV1beta1().PodGroups(namespace).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pg
}

func (e *env) deleteVirtual(t testing.TB, namespace, name string) {
	t.Helper()
	if err := e.virtualPGs.SchedulingV1beta1().PodGroups(namespace).Delete(t.Context(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// updateVirtual changes the virtual PodGroup as KubeRay does: a read, a change, an update.
func (e *env) updateVirtual(t testing.TB, namespace, name string, change func(*schedulingv1beta1.PodGroup)) {
	t.Helper()
	pgs := e.virtualPGs.SchedulingV1beta1().PodGroups(namespace)
	err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		pg, err := pgs.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		change(pg)
		_, err = pgs.Update(ctx, pg, metav1.UpdateOptions{})
		return err == nil, ignoreConflict(err)
	})
	if err != nil {
		t.Fatalf("update podgroup %s/%s in the vcluster: %v", namespace, name, err)
	}
}

// updateHostStatus changes the host copy's status as Volcano does: through the main
// resource, the CRD having no status subresource.
func (e *env) updateHostStatus(t testing.TB, name string, status schedulingv1beta1.PodGroupStatus) {
	t.Helper()
	pgs := e.hostPGs.SchedulingV1beta1().PodGroups(e.hostNS)
	err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		pg, err := pgs.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		pg.Status = status
		_, err = pgs.Update(ctx, pg, metav1.UpdateOptions{})
		return err == nil, ignoreConflict(err)
	})
	if err != nil {
		t.Fatalf("update status of host podgroup %s/%s: %v", e.hostNS, name, err)
	}
}

func ignoreConflict(err error) error {
	if apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// waitHost waits until the host copy name exists and satisfies ok, and returns it.
func (e *env) waitHost(t testing.TB, name string, what string, ok func(*schedulingv1beta1.PodGroup) bool) *schedulingv1beta1.PodGroup {
	t.Helper()
	var got *schedulingv1beta1.PodGroup
	eventually(t, "host podgroup "+name+" "+what, func(ctx context.Context) (bool, error) {
		pg, err := e.hostPGs.SchedulingV1beta1().PodGroups(e.hostNS).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		got = pg
		return ok(pg), nil
	})
	return got
}

// waitHostGone waits until the host namespace holds no PodGroup name.
func (e *env) waitHostGone(t testing.TB, name string) {
	t.Helper()
	eventually(t, "host podgroup "+name+" to be deleted", func(ctx context.Context) (bool, error) {
		_, err := e.hostPGs.SchedulingV1beta1().PodGroups(e.hostNS).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
}

// hostPodGroups lists every PodGroup in the host namespace.
func (e *env) hostPodGroups(t testing.TB) []schedulingv1beta1.PodGroup {
	t.Helper()
	list, err := e.hostPGs.SchedulingV1beta1().PodGroups(e.hostNS).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// mirrors reports whether host is the copy of virtual, with queue.
func mirrors(host, virtual *schedulingv1beta1.PodGroup, queue string) bool {
	return host.Annotations[bridge.AnnotationSourceUID] == string(virtual.UID) &&
		host.Annotations[bridge.AnnotationSource] == virtual.Namespace+"/"+virtual.Name &&
		host.Spec.Queue == queue &&
		host.Spec.MinMember == virtual.Spec.MinMember &&
		host.Spec.PriorityClassName == virtual.Spec.PriorityClassName
}

// events waits for an Event with reason on the object name in namespace, and returns
// their messages.
func events(t testing.TB, kc kubernetes.Interface, namespace, name, reason string) []string {
	t.Helper()
	var messages []string
	eventually(t, "a "+reason+" event on "+namespace+"/"+name, func(ctx context.Context) (bool, error) {
		list, err := kc.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{
			FieldSelector: fields.Set{"involvedObject.name": name, "reason": reason}.String(),
		})
		if err != nil {
			return false, err
		}
		messages = messages[:0]
		for _, ev := range list.Items {
			if ev.Type == corev1.EventTypeWarning && ev.Source.Component == bridge.FieldManager {
				messages = append(messages, ev.Message)
			}
		}
		return len(messages) > 0, nil
	})
	return messages
}

// eventually polls cond until it holds, failing the test after waitTimeout. An error from
// cond is retried; the last one is reported if cond never holds.
func eventually(t testing.TB, what string, cond func(context.Context) (bool, error)) {
	t.Helper()
	begin := time.Now()
	var last error
	err := wait.PollUntilContextTimeout(t.Context(), 20*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		ok, err := cond(ctx)
		if err != nil {
			last = err
		}
		return ok && err == nil, nil
	})
	if err != nil {
		t.Fatalf("gave up waiting %s for %s (last error: %v)", time.Since(begin).Round(time.Millisecond), what, last)
	}
}

// consistently runs check every 100ms for d; check fails the test when it does not hold.
func consistently(t testing.TB, d time.Duration, check func()) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); {
		check()
		select {
		case <-t.Context().Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	check()
}

func contains(list []string, want string) bool {
	for _, s := range list {
		if strings.Contains(s, want) {
			return true
		}
	}
	return false
}

// ownedLabels are the labels every host copy carries.
func ownedLabels(tenant, sourceNamespace string) map[string]string {
	return map[string]string{
		schema.LabelTenant:          tenant,
		schema.LabelManagedBy:       schema.ManagedBy,
		bridge.LabelSourceNamespace: sourceNamespace,
	}
}
