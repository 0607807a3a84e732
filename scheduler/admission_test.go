package scheduler_test

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	schedulingv1beta1 "volcano.sh/apis/pkg/apis/scheduling/v1beta1"

	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/scheduler"
)

// enforceTimeout bounds the wait for a new policy or binding to take effect: the API
// server compiles and starts enforcing them shortly after they are created.
const enforceTimeout = 30 * time.Second

// TestAdmission applies the examples' platform and tenants to a fresh host and checks that
// the API server enforces the policies: what breaks a rule is denied, with a message that
// says what is allowed, and the same objects within the rules are admitted.
func TestAdmission(t *testing.T) {
	cl, recorded, tenants := startExamples(t)
	alpha, vision, sandbox := tenants["ml-team-alpha"], tenants["vision-team"], tenants["data-sandbox"]
	if w := recorded.Take(); len(w) > 0 {
		t.Errorf("the API server warned:\n%s", strings.Join(w, "\n"))
	}

	t.Run("a PodGroup naming another tenant's queue is denied", func(t *testing.T) {
		denied(t, cl, podGroup(alpha.Namespace, "steal", vision.QueueName, nil),
			"PodGroup steal names queue tenant-vision-team; PodGroups in namespace tenant-ml-team-alpha must use queue tenant-ml-team-alpha")
		denied(t, cl, podGroup(sandbox.Namespace, "default-queue", "default", nil),
			"must use queue tenant-data-sandbox")
	})

	t.Run("a PodGroup moved to another tenant's queue is denied", func(t *testing.T) {
		pg := podGroup(alpha.Namespace, "move", alpha.QueueName, nil)
		waitEnforced(t, cl, podGroup(alpha.Namespace, "probe", vision.QueueName, nil))
		create(t, cl, pg)
		pg.Spec.Queue = vision.QueueName
		err := cl.Update(t.Context(), pg)
		checkDenied(t, err, "PodGroup move names queue tenant-vision-team")
	})

	t.Run("a PodGroup over maxPerJob GPUs is denied", func(t *testing.T) {
		denied(t, cl, podGroup(alpha.Namespace, "too-big", alpha.QueueName, gpus("nvidia.com/gpu", "9")),
			"PodGroup too-big asks for 9 GPUs in spec.minResources (counting nvidia.com/gpu, nvidia.com/gpu.shared); PodGroups in namespace tenant-ml-team-alpha may ask for at most 8")
		// Shared GPUs count too: 3 whole and 2 time-sliced are 5, above vision-team's 4.
		denied(t, cl, podGroup(vision.Namespace, "mixed", vision.QueueName, gpus("nvidia.com/gpu", "3", "nvidia.com/gpu.shared", "2")),
			"asks for 5 GPUs")
		denied(t, cl, podGroup(sandbox.Namespace, "one-gpu", sandbox.QueueName, gpus("nvidia.com/gpu", "1")),
			"may ask for at most 0")
		// minResources takes integers as well as quantity strings.
		integer := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": schedulingv1beta1.SchemeGroupVersion.String(),
			"kind":       "PodGroup",
			"metadata":   map[string]any{"name": "integer", "namespace": alpha.Namespace},
			"spec": map[string]any{
				"queue":        alpha.QueueName,
				"minResources": map[string]any{"nvidia.com/gpu": int64(6), "nvidia.com/gpu.shared": int64(3), "cpu": int64(64)},
			},
		}}
		denied(t, cl, integer, "PodGroup integer asks for 9 GPUs")
	})

	t.Run("a pod tolerating a foreign pool's taint is denied", func(t *testing.T) {
		h100 := corev1.Toleration{Key: "raas.dev/gpu-pool", Operator: corev1.TolerationOpEqual, Value: "h100", Effect: corev1.TaintEffectNoSchedule}
		denied(t, cl, pod(vision.Namespace, "h100", h100),
			"pods in namespace tenant-vision-team may not tolerate the taints of GPU pools h100 (raas.dev/gpu-pool=h100:NoSchedule); allowed pools: a10")
		denied(t, cl, pod(sandbox.Namespace, "h100", h100), "allowed pools: none")
		anyValue := corev1.Toleration{Key: "raas.dev/gpu-pool", Operator: corev1.TolerationOpExists}
		denied(t, cl, pod(vision.Namespace, "any-value", anyValue), "GPU pools h100")
		everything := corev1.Toleration{Operator: corev1.TolerationOpExists}
		denied(t, cl, pod(vision.Namespace, "everything", everything), "GPU pools h100")
	})

	t.Run("a pod that adds a foreign pool's toleration is denied", func(t *testing.T) {
		waitEnforced(t, cl, pod(vision.Namespace, "probe", corev1.Toleration{Operator: corev1.TolerationOpExists}))
		p := pod(vision.Namespace, "grows", corev1.Toleration{Key: "example.com/spot", Operator: corev1.TolerationOpExists})
		create(t, cl, p)
		p.Spec.Tolerations = append(p.Spec.Tolerations, alpha.Tolerations...)
		checkDenied(t, cl.Update(t.Context(), p), "may not tolerate the taints of GPU pools h100")
	})

	t.Run("the same objects within policy are admitted", func(t *testing.T) {
		// Wait until every rule is enforced in every namespace, so that an admission
		// below is a decision of the policy and not its absence.
		for _, s := range tenants {
			waitEnforced(t, cl, podGroup(s.Namespace, "probe", "default", nil))
			waitEnforced(t, cl, podGroup(s.Namespace, "probe", s.QueueName, gpus("nvidia.com/gpu", "9")))
		}
		// ml-team-alpha may use the only dedicated pool, so only the others can be probed.
		waitEnforced(t, cl, pod(vision.Namespace, "probe", alpha.Tolerations...), sandbox)

		create(t, cl, podGroup(alpha.Namespace, "ray-train-pg", alpha.QueueName, gpus("nvidia.com/gpu", "8")))
		// vision-team may ask for 3: its sandbox takes one of its four GPUs.
		create(t, cl, podGroup(vision.Namespace, "ray-vision-pg", vision.QueueName, gpus("nvidia.com/gpu", "2", "nvidia.com/gpu.shared", "1")))
		create(t, cl, podGroup(sandbox.Namespace, "ray-cpu-pg", sandbox.QueueName, corev1.ResourceList{"cpu": resource.MustParse("4")}))
		// The toleration vcluster enforces on the tenant's pods, next to the ones every
		// pod gets and tolerations of taints no pool carries.
		create(t, cl, pod(alpha.Namespace, "ray-head", append(alpha.Tolerations,
			corev1.Toleration{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute})...))
		create(t, cl, pod(vision.Namespace, "ray-worker", corev1.Toleration{Key: "example.com/spot", Operator: corev1.TolerationOpExists}))
		create(t, cl, pod(sandbox.Namespace, "ray-head"))
		// A PodGroup's status lives in the main resource; Volcano updates it freely.
		pg := &schedulingv1beta1.PodGroup{}
		if err := cl.Get(t.Context(), client.ObjectKey{Namespace: alpha.Namespace, Name: "ray-train-pg"}, pg); err != nil {
			t.Fatal(err)
		}
		pg.Status.Phase = schedulingv1beta1.PodGroupInqueue
		if err := cl.Update(t.Context(), pg); err != nil {
			t.Errorf("status update: %v", err)
		}
		if w := recorded.Take(); len(w) > 0 {
			t.Errorf("the API server warned:\n%s", strings.Join(w, "\n"))
		}
	})
}

// startExamples starts a host and applies the scheduler side of the examples to it, as
// raas renders it, with the namespaces the renderer writes. It returns a client whose
// warnings are recorded, and the tenants by name.
func startExamples(t *testing.T) (client.Client, *testenv.Warnings, map[string]*scheduler.Tenant) {
	t.Helper()
	repo := load(t, "../examples")
	host := testenv.StartHost(t, testenv.DefaultControlPlaneOptions())
	cfg, recorded := testenv.RecordWarnings(host.Config)
	cl, err := client.New(cfg, client.Options{Scheme: testenv.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	tenants := map[string]*scheduler.Tenant{}
	for _, tenant := range repo.Tenants {
		tenants[tenant.Metadata.Name] = scheduler.ForTenant(repo.Platform, tenant)
	}
	// The namespaces are the renderer's; they are stood in for here as it writes them.
	create(t, cl, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: scheduler.ConfigNamespace}})
	for _, s := range tenants {
		create(t, cl, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name:        s.Namespace,
			Annotations: map[string]string{"scheduling.volcano.sh/queue-name": s.QueueName},
		}})
		// No controller manager runs, so nobody creates the default ServiceAccount
		// that the ServiceAccount admission plugin looks up for every pod.
		create(t, cl, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: s.Namespace}})
	}
	objs, err := scheduler.Platform(repo.Platform)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range tenants {
		objs = append(objs, s.Queue())
		objs = append(objs, s.Objects()...)
	}
	for _, obj := range objs {
		testenv.Apply(t, cl, "raas", obj)
	}
	t.Logf("applied %d objects in %s", len(objs), time.Since(begin).Round(time.Millisecond))
	return cl, recorded, tenants
}

func create(t *testing.T, cl client.Client, obj client.Object) {
	t.Helper()
	if err := cl.Create(t.Context(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, client.ObjectKeyFromObject(obj), err)
	}
}

// denied creates obj in dry-run until the API server denies it, and checks that the
// message says want. Dry runs leave nothing behind while the policy is not yet enforced.
func denied(t *testing.T, cl client.Client, obj client.Object, want string) {
	t.Helper()
	checkDenied(t, dryRunUntilDenied(t, cl, obj), want)
}

// waitEnforced waits until a dry-run create of obj, which breaks a rule, is denied.
// Extra tenants name further namespaces to wait for, with obj moved into each.
func waitEnforced(t *testing.T, cl client.Client, obj client.Object, more ...*scheduler.Tenant) {
	t.Helper()
	if err := dryRunUntilDenied(t, cl, obj); !apierrors.IsForbidden(err) {
		t.Fatalf("%s is not denied: %v", client.ObjectKeyFromObject(obj), err)
	}
	for _, s := range more {
		moved := obj.DeepCopyObject().(client.Object)
		moved.SetNamespace(s.Namespace)
		if err := dryRunUntilDenied(t, cl, moved); !apierrors.IsForbidden(err) {
			t.Fatalf("%s is not denied: %v", client.ObjectKeyFromObject(moved), err)
		}
	}
}

func dryRunUntilDenied(t *testing.T, cl client.Client, obj client.Object) error {
	t.Helper()
	deadline := time.Now().Add(enforceTimeout)
	for {
		err := cl.Create(t.Context(), obj.DeepCopyObject().(client.Object), client.DryRunAll)
		if err != nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func checkDenied(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("admitted, want denied with %q", want)
	case !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "denied request"):
		t.Errorf("want a denial by a policy, got %v", err)
	case !strings.Contains(err.Error(), want):
		t.Errorf("denial does not say %q:\n%v", want, err)
	default:
		t.Logf("denied: %v", err)
	}
}

func podGroup(namespace, name, queue string, min corev1.ResourceList) *schedulingv1beta1.PodGroup {
	pg := &schedulingv1beta1.PodGroup{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec:       schedulingv1beta1.PodGroupSpec{MinMember: 2, Queue: queue},
	}
	if min != nil {
		pg.Spec.MinResources = &min
	}
	return pg
}

// gpus is a resource list of name, quantity pairs.
func gpus(pairs ...string) corev1.ResourceList {
	list := corev1.ResourceList{}
	for i := 0; i < len(pairs); i += 2 {
		list[corev1.ResourceName(pairs[i])] = resource.MustParse(pairs[i+1])
	}
	return list
}

func pod(namespace, name string, tolerations ...corev1.Toleration) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: corev1.PodSpec{
			SchedulerName: "volcano",
			Containers:    []corev1.Container{{Name: "ray", Image: "rayproject/ray:2.46.0"}},
			Tolerations:   tolerations,
		},
	}
}
