package scheduler_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/internal/volcano"
	"github.com/raas-dev/raas/scheduler"
)

// TestPlacement applies the examples' platform and tenants to a real API server and
// creates pods as vcluster syncs them (with its managed-by label), to show what Volcano
// and the default scheduler will read from each pod: its queue, its required node
// affinity and its tolerations. Which node a pod then lands on is the schedulers' work;
// no scheduler runs here (the issue note records the check against the real Volcano).
func TestPlacement(t *testing.T) {
	cl, recorded, tenants := startExamples(t)
	alpha, vision, sandbox := tenants["ml-team-alpha"], tenants["vision-team"], tenants["data-sandbox"]
	create(t, cl, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "other"}})
	create(t, cl, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: "other"}})
	for _, s := range tenants {
		waitMutated(t, cl, synced(s.Namespace, "probe", nil))
	}

	h100 := corev1.Toleration{Key: "raas.dev/gpu-pool", Operator: corev1.TolerationOpEqual, Value: "h100", Effect: corev1.TaintEffectNoSchedule}
	onGroups := func(op corev1.NodeSelectorOperator, groups ...string) corev1.NodeSelectorRequirement {
		return corev1.NodeSelectorRequirement{Key: volcano.LabelNodeGroupName, Operator: op, Values: groups}
	}

	t.Run("a GPU worker without a queue gets its tenant's queue, pools and toleration", func(t *testing.T) {
		got := dryRun(t, cl, synced(alpha.Namespace, "worker", gpu("nvidia.com/gpu", "1")))
		checkQueue(t, got, alpha.QueueName)
		checkTerms(t, got, [][]corev1.NodeSelectorRequirement{{onGroups(corev1.NodeSelectorOpIn, "h100")}})
		checkTolerations(t, got, []corev1.Toleration{h100})
	})
	t.Run("a Ray head, which asks for no GPU, is kept to the shared CPU groups, without the pool's toleration", func(t *testing.T) {
		got := dryRun(t, cl, synced(alpha.Namespace, "head", corev1.ResourceList{"cpu": resource.MustParse("2")}))
		checkQueue(t, got, alpha.QueueName)
		checkTerms(t, got, [][]corev1.NodeSelectorRequirement{{onGroups(corev1.NodeSelectorOpIn, "cpu")}})
		checkTolerations(t, got, nil)
	})
	t.Run("a GPU count of zero is a CPU pod", func(t *testing.T) {
		got := dryRun(t, cl, synced(alpha.Namespace, "zero", gpu("nvidia.com/gpu", "0")))
		checkTerms(t, got, [][]corev1.NodeSelectorRequirement{{onGroups(corev1.NodeSelectorOpIn, "cpu")}})
	})
	t.Run("a pod naming another tenant's queue is put back on its own", func(t *testing.T) {
		p := synced(alpha.Namespace, "steal", gpu("nvidia.com/gpu", "1"))
		p.Labels[volcano.QueueLabel] = vision.QueueName
		p.Annotations = map[string]string{volcano.QueueAnnotation: vision.QueueName, "volcano.sh/queue-name": "default"}
		got := dryRun(t, cl, p)
		checkQueue(t, got, alpha.QueueName)
		checkTerms(t, got, [][]corev1.NodeSelectorRequirement{{onGroups(corev1.NodeSelectorOpIn, "h100")}})
	})
	t.Run("a pod relabelled with a foreign queue later is put back too", func(t *testing.T) {
		p := synced(alpha.Namespace, "relabel", nil)
		create(t, cl, p)
		p.Labels[volcano.QueueLabel] = vision.QueueName
		if err := cl.Update(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		checkQueue(t, p, alpha.QueueName)
	})
	t.Run("the pod's own node affinity terms each get the requirement, and keep theirs", func(t *testing.T) {
		p := synced(alpha.Namespace, "zoned", gpu("nvidia.com/gpu", "2"))
		zoneA := corev1.NodeSelectorRequirement{Key: "topology.kubernetes.io/zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"a"}}
		hostname := corev1.NodeSelectorRequirement{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"gpu-7"}}
		p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
				{MatchExpressions: []corev1.NodeSelectorRequirement{zoneA}},
				{MatchFields: []corev1.NodeSelectorRequirement{hostname}},
			}},
		}}
		p.Spec.Tolerations = []corev1.Toleration{{Key: "example.com/spot", Operator: corev1.TolerationOpExists}}
		got := dryRun(t, cl, p)
		want := []corev1.NodeSelectorTerm{
			{MatchExpressions: []corev1.NodeSelectorRequirement{zoneA, onGroups(corev1.NodeSelectorOpIn, "h100")}},
			{MatchExpressions: []corev1.NodeSelectorRequirement{onGroups(corev1.NodeSelectorOpIn, "h100")}, MatchFields: []corev1.NodeSelectorRequirement{hostname}},
		}
		if diff := cmp.Diff(want, got.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms); diff != "" {
			t.Errorf("node selector terms (-want +got):\n%s", diff)
		}
		checkTolerations(t, got, []corev1.Toleration{p.Spec.Tolerations[0], h100})
	})
	t.Run("a pod that already tolerates its pool is not given the toleration twice", func(t *testing.T) {
		p := synced(alpha.Namespace, "tolerant", gpu("nvidia.com/gpu", "1"))
		p.Spec.Tolerations = []corev1.Toleration{h100}
		checkTolerations(t, dryRun(t, cl, p), []corev1.Toleration{h100})
	})
	t.Run("shared GPUs of an untainted pool place the pod there, with no toleration", func(t *testing.T) {
		got := dryRun(t, cl, synced(vision.Namespace, "worker", gpu("nvidia.com/gpu.shared", "1")))
		checkQueue(t, got, vision.QueueName)
		checkTerms(t, got, [][]corev1.NodeSelectorRequirement{{onGroups(corev1.NodeSelectorOpIn, "a10")}})
		checkTolerations(t, got, nil)
	})
	t.Run("a GPU pod of a tenant without pools may go to no pool", func(t *testing.T) {
		got := dryRun(t, cl, synced(sandbox.Namespace, "worker", gpu("nvidia.com/gpu", "1")))
		checkTerms(t, got, [][]corev1.NodeSelectorRequirement{{onGroups(corev1.NodeSelectorOpNotIn, "h100", "a10")}})
		got = dryRun(t, cl, synced(sandbox.Namespace, "head", nil))
		checkTerms(t, got, [][]corev1.NodeSelectorRequirement{{onGroups(corev1.NodeSelectorOpIn, "cpu")}})
	})
	t.Run("pods vcluster did not sync, and pods outside tenant namespaces, are left alone", func(t *testing.T) {
		own := pod(alpha.Namespace, "control-plane")
		if got := dryRun(t, cl, own); got.Spec.Affinity != nil || got.Labels[volcano.QueueLabel] != "" {
			t.Errorf("the vcluster's own pod was changed: %+v %v", got.Spec.Affinity, got.Labels)
		}
		other := synced("other", "volcano-job", gpu("nvidia.com/gpu", "1"))
		other.Annotations = map[string]string{volcano.QueueAnnotation: "default"}
		got := dryRun(t, cl, other)
		if got.Spec.Affinity != nil || got.Annotations[volcano.QueueAnnotation] != "default" || got.Labels[volcano.QueueLabel] != "" {
			t.Errorf("a pod outside the tenants was changed: %+v %v %v", got.Spec.Affinity, got.Labels, got.Annotations)
		}
	})
	t.Run("without the mutating binding, a pod on a foreign queue or without node affinity is refused", func(t *testing.T) {
		binding := &admissionregistrationv1.MutatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: scheduler.PolicyPodPlacement + "." + vision.Namespace}}
		if err := cl.Delete(t.Context(), binding); err != nil {
			t.Fatal(err)
		}
		steal := synced(vision.Namespace, "steal", nil)
		steal.Labels[volcano.QueueLabel] = alpha.QueueName
		denied(t, cl, steal, "pod steal names queue tenant-ml-team-alpha; pods in namespace tenant-vision-team run on queue tenant-vision-team")
		own := synced(vision.Namespace, "loose", gpu("nvidia.com/gpu", "1"))
		own.Labels[volcano.QueueLabel] = vision.QueueName
		denied(t, cl, own, "pod loose lacks the node affinity volcano.sh/nodegroup-name In (a10)")
	})
	if w := recorded.Take(); len(w) > 0 {
		t.Errorf("the API server warned:\n%s", strings.Join(w, "\n"))
	}
}

// synced is a pod as vcluster creates it on the host: with its managed-by label, and
// requests (and limits) of resources in its one container.
func synced(namespace, name string, resources corev1.ResourceList) *corev1.Pod {
	p := pod(namespace, name)
	p.Labels = map[string]string{"vcluster.loft.sh/managed-by": strings.TrimPrefix(namespace, "tenant-")}
	p.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: resources, Limits: resources}
	return p
}

func gpu(name, count string) corev1.ResourceList {
	return corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceName(name): resource.MustParse(count)}
}

// dryRun creates p in dry-run and returns the pod as the API server would store it.
func dryRun(t *testing.T, cl client.Client, p *corev1.Pod) *corev1.Pod {
	t.Helper()
	got := p.DeepCopy()
	if err := cl.Create(t.Context(), got, client.DryRunAll); err != nil {
		t.Fatalf("create pod %s: %v", client.ObjectKeyFromObject(p), err)
	}
	return got
}

// waitMutated waits until the placement policy mutates p in its namespace.
func waitMutated(t *testing.T, cl client.Client, p *corev1.Pod) {
	t.Helper()
	deadline := time.Now().Add(enforceTimeout)
	for {
		got := p.DeepCopy()
		err := cl.Create(t.Context(), got, client.DryRunAll)
		if err == nil && got.Labels[volcano.QueueLabel] != "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pods in %s are not placed after %s (last error: %v)", p.Namespace, enforceTimeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func checkQueue(t *testing.T, p *corev1.Pod, queue string) {
	t.Helper()
	got := map[string]string{
		"label " + volcano.QueueLabel:           p.Labels[volcano.QueueLabel],
		"annotation " + volcano.QueueAnnotation: p.Annotations[volcano.QueueAnnotation],
		"annotation volcano.sh/queue-name":      p.Annotations["volcano.sh/queue-name"],
	}
	want := map[string]string{}
	for k := range got {
		want[k] = queue
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pod %s queue (-want +got):\n%s", p.Name, diff)
	}
}

// terms lists the match expressions of each of the pod's required node selector terms.
func terms(p *corev1.Pod) [][]corev1.NodeSelectorRequirement {
	var got [][]corev1.NodeSelectorRequirement
	if a := p.Spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
			got = append(got, term.MatchExpressions)
		}
	}
	return got
}

func checkTerms(t *testing.T, p *corev1.Pod, want [][]corev1.NodeSelectorRequirement) {
	t.Helper()
	if diff := cmp.Diff(want, terms(p)); diff != "" {
		t.Errorf("pod %s required node affinity (-want +got):\n%s", p.Name, diff)
	}
}

// checkTolerations compares the pod's tolerations, leaving out the two that the API
// server's DefaultTolerationSeconds plugin adds to every pod.
func checkTolerations(t *testing.T, p *corev1.Pod, want []corev1.Toleration) {
	t.Helper()
	var got []corev1.Toleration
	for _, tol := range p.Spec.Tolerations {
		if tol.TolerationSeconds == nil {
			got = append(got, tol)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pod %s tolerations (-want +got):\n%s", p.Name, diff)
	}
}

// TestPlacementCPUPodsOnPools changes the platform under running tenants: with
// gpu.cpuPodsOnPools, Ray heads may also run on their tenant's own pools, and without
// shared node groups every pod that asks for no GPU keeps off the pools of others.
func TestPlacementCPUPodsOnPools(t *testing.T) {
	repo := load(t, "../examples")
	cl, _, tenants := startExamples(t)
	alpha := tenants["ml-team-alpha"]
	waitMutated(t, cl, synced(alpha.Namespace, "probe", nil))
	onGroups := func(op corev1.NodeSelectorOperator, groups ...string) [][]corev1.NodeSelectorRequirement {
		return [][]corev1.NodeSelectorRequirement{{{Key: volcano.LabelNodeGroupName, Operator: op, Values: groups}}}
	}
	for _, c := range []struct {
		name   string
		shared []string
		want   [][]corev1.NodeSelectorRequirement
	}{
		{"with shared node groups, a head may use them and the tenant's pools", []string{"cpu"}, onGroups(corev1.NodeSelectorOpIn, "cpu", "h100")},
		{"without shared node groups, a head may use any node but other tenants' pools", nil, onGroups(corev1.NodeSelectorOpNotIn, "a10")},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := *repo.Platform
			p.Spec.GPU.CPUPodsOnPools = true
			p.Spec.Scheduler.SharedNodeGroups = c.shared
			objs, err := scheduler.Platform(&p)
			if err != nil {
				t.Fatal(err)
			}
			for _, obj := range objs {
				testenv.Apply(t, cl, "raas", obj)
			}
			// The API server picks up the changed policies shortly after, each on its
			// own: until both have, a pod may be refused (and vcluster retries it).
			deadline := time.Now().Add(enforceTimeout)
			for {
				got := synced(alpha.Namespace, "head", nil)
				err := cl.Create(t.Context(), got, client.DryRunAll)
				if (err != nil || !cmp.Equal(c.want, terms(got))) && time.Now().Before(deadline) {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				checkTerms(t, got, c.want)
				break
			}
		})
	}
}
