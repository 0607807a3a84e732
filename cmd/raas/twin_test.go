package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	kschema "k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/bridge"
	"github.com/raas-dev/raas/internal/exampletest"
	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/internal/vclusterconfig"
	"github.com/raas-dev/raas/schema"
)

// twinOutput is where the twin's processes log; set RAAS_TWIN_LOG to a file to keep it.
func twinOutput(t *testing.T) *os.File {
	t.Helper()
	path := os.Getenv("RAAS_TWIN_LOG")
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// TestTwinApply is the product end to end on the twin: `raas apply`, run from outside
// the cluster (this process, where the vcluster's in-cluster name does not resolve),
// installs the CPU tenant data-sandbox; the real vcluster v0.25.0 syncer brings its
// vcluster up from the StatefulSet raas rendered; raas reaches it by port-forward
// through the host API server and applies KubeRay inside; the KubeRay operator v1.5.0
// runs as its ServiceAccount with the args raas rendered; and a RayCluster created inside
// becomes ready, its pods put on kwok Nodes by kube-scheduler after the syncer's name
// translation. Pods never run containers (the twin's one pretence): the head looks
// Ready to KubeRay because kwok says so.
func TestTwinApply(t *testing.T) {
	const tenant = "data-sandbox"
	tw := applyOnTwin(t, tenant)
	ctx, host, virtual, namespace, release := t.Context(), tw.twin.Host, tw.virtual, tw.namespace, tw.release
	for _, want := range []string{
		"CustomResourceDefinition.apiextensions.k8s.io rayclusters.ray.io",
		"Deployment.apps kuberay-system/kuberay-operator",
	} {
		if !appliedInside(tw.out, tenant, want) {
			t.Errorf("raas apply did not create virtual %s:\n%s", want, tw.out)
		}
	}

	waitFor(t, 5*time.Minute, "the KubeRay operator Deployment inside the vcluster to be available", func(ctx context.Context) (bool, string) {
		var d appsv1.Deployment
		if err := virtual.Get(ctx, types.NamespacedName{Namespace: "kuberay-system", Name: "kuberay-operator"}, &d); err != nil {
			return false, err.Error()
		}
		return d.Status.AvailableReplicas == 1, fmt.Sprintf("status %+v", d.Status)
	})

	// The operator's pod, as the syncer put it on the host, with the real translation.
	if host := syncedPod(t, host.Client, virtual, namespace, release, "kuberay-system", "app.kubernetes.io/name=kuberay"); host.Spec.NodeName == "" {
		t.Errorf("host pod %s is not bound", host.Name)
	}

	rc := testenv.SampleRayCluster("default", "sample")
	if err := virtual.Create(ctx, rc); err != nil {
		t.Fatalf("create RayCluster: %v", err)
	}
	waitFor(t, 5*time.Minute, "the RayCluster to be ready", func(ctx context.Context) (bool, string) {
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(rc.GroupVersionKind())
		if err := virtual.Get(ctx, client.ObjectKeyFromObject(rc), got); err != nil {
			return false, err.Error()
		}
		state, _, _ := unstructured.NestedString(got.Object, "status", "state")
		return state == "ready", fmt.Sprintf("status %v", got.Object["status"])
	})
	head := syncedPod(t, host.Client, virtual, namespace, release, "default", "ray.io/node-type=head")
	if head.Spec.NodeName == "" {
		t.Errorf("host pod %s of the Ray head is not bound", head.Name)
	}
}

// syncedPod finds the pod inside the vcluster that matches selector in vnamespace, and
// the host pod the syncer made of it in namespace: a name of the syncer's making
// (<name>-x-<namespace>-x-<release>, or a digest of it when that is too long), whose
// annotations name the virtual pod and whose label names the vcluster.
func syncedPod(t *testing.T, host, virtual client.Client, namespace, release, vnamespace, selector string) *corev1.Pod {
	t.Helper()
	sel, err := labels.Parse(selector)
	if err != nil {
		t.Fatal(err)
	}
	var vpods corev1.PodList
	if err := virtual.List(t.Context(), &vpods, client.InNamespace(vnamespace), client.MatchingLabelsSelector{Selector: sel}); err != nil || len(vpods.Items) == 0 {
		t.Fatalf("no pod %s in %s inside the vcluster: %v", selector, vnamespace, err)
	}
	vpod := vpods.Items[0]
	var pods corev1.PodList
	if err := host.List(t.Context(), &pods, client.InNamespace(namespace), client.MatchingLabels{"vcluster.loft.sh/managed-by": release}); err != nil {
		t.Fatal(err)
	}
	for i, p := range pods.Items {
		if p.Annotations["vcluster.loft.sh/object-name"] == vpod.Name && p.Annotations["vcluster.loft.sh/object-namespace"] == vpod.Namespace {
			if p.Name == vpod.Name {
				t.Errorf("host pod %s kept its virtual name", p.Name)
			}
			return &pods.Items[i]
		}
	}
	t.Fatalf("no host pod in %s for %s/%s", namespace, vpod.Namespace, vpod.Name)
	return nil
}

// appliedInside says whether apply's output has tenant's virtual object created.
func appliedInside(out, tenant, object string) bool {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 5 && f[0] == tenant && f[1] == "virtual" && f[2]+" "+f[3] == object && f[4] == "created" {
			return true
		}
	}
	return false
}

var podGroupGVK = kschema.GroupVersion{Group: "scheduling.volcano.sh", Version: "v1beta1"}.WithKind("PodGroup")

// twinTenant is one tenant that `raas apply` installed on a twin of its own.
type twinTenant struct {
	twin               *testenv.Twin
	virtual            client.Client
	namespace, release string
	out                string
}

// applyOnTwin starts a twin for the example platform with only tenant, runs `raas
// apply` from this process (outside the cluster) and returns a client of the tenant's
// vcluster, reached by port-forward as raas reached it.
func applyOnTwin(t *testing.T, tenant string) *twinTenant {
	t.Helper()
	if err := testenv.CheckTwin(); err != nil {
		t.Fatalf("the twin cannot run here: %v", err)
	}
	ctx := t.Context()
	dir := exampletest.Dir(t)
	entries, err := os.ReadDir(filepath.Join(dir, "tenants"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != tenant+".yaml" {
			if err := os.Remove(filepath.Join(dir, "tenants", e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	repo, err := schema.Load(os.DirFS(dir))
	if err != nil || !repo.OK() {
		t.Fatalf("repository: %v %v", err, repo.Problems)
	}
	opts := testenv.DefaultTwinOptions()
	if f := twinOutput(t); f != nil {
		opts.Output = f
	}
	twin, err := testenv.StartTwin(ctx, repo.Platform, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := twin.Stop(); err != nil {
			t.Error(err)
		}
	})
	t.Logf("twin up in %s (%d nodes)", twin.StartupTime.Round(time.Millisecond), len(twin.Controllers.Nodes))
	host := twin.Host
	if err := host.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "volcano-system"}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := host.WriteKubeConfig(kubeconfig); err != nil {
		t.Fatal(err)
	}
	tw := &twinTenant{twin: twin, namespace: repo.Platform.Namespace(tenant), release: schema.Release(tenant)}

	begin := time.Now()
	out, stderr, code := runAt(t, time.Now, "apply", dir, "--kubeconfig", kubeconfig,
		"--catalog", exampletest.Catalog(t), "--vcluster-timeout", "8m")
	if code != 0 {
		t.Fatalf("raas apply: exit %d\n%s\n%s", code, out, stderr)
	}
	t.Logf("raas apply took %s:\n%s", time.Since(begin).Round(time.Second), out)
	tw.out = out

	// The syncer, not raas, wrote the kubeconfig; it names the in-cluster Service, which
	// does not resolve here, so the client goes by port-forward as raas did.
	hostKube, err := kubernetes.NewForConfig(host.Config)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := vclusterconfig.Read(ctx, hostKube.CoreV1(), tw.namespace, tw.release)
	if err != nil {
		t.Fatal(err)
	}
	vcfg, err := kc.RESTConfigVia(host.Config)
	if err != nil {
		t.Fatal(err)
	}
	if vcfg.Dial == nil {
		t.Fatalf("the vcluster's address %s resolves here; the test cannot show the port-forward", vcfg.Host)
	}
	if tw.virtual, err = client.New(vcfg, client.Options{}); err != nil {
		t.Fatal(err)
	}
	return tw
}

// waitFor polls cond until it holds or timeout passes, and fails with its last word.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func(context.Context) (bool, string)) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(t.Context(), time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		ok, why := cond(ctx)
		last = why
		return ok, nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v (last: %s)", what, err, last)
	}
}

// TestTwinGang is a gang tenant on the twin: KubeRay 1.5.0 with --batch-scheduler=volcano
// inside ml-team-alpha's vcluster groups a RayCluster's pods, the real syncer puts them on
// the host, and there they carry what Volcano reads (schedulerName, the group annotation,
// the tenant's queue) and what confines the GPU worker to the h100 pool (raas's
// MutatingAdmissionPolicy on the host: the pool's toleration and node group). The twin
// runs no Volcano scheduler, so the pods stay Pending, unbound: this test shows what
// Volcano is handed, not what it does with it (that was checked against the real
// Volcano v1.12.4, issue 11). raas's PodGroup bridge, reaching the vcluster by
// port-forward as the daemon would from outside, copies the group to the host under the
// name the pods carry.
func TestTwinGang(t *testing.T) {
	const tenant = "ml-team-alpha"
	tw := applyOnTwin(t, tenant)
	ctx, host, virtual := t.Context(), tw.twin.Host, tw.virtual
	bridges, err := bridge.NewManager(host.Config, bridge.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bridges.Stop)
	if err := bridges.Sync(ctx, []bridge.Target{{Tenant: tenant, HostNamespace: tw.namespace, Queue: tw.namespace, Release: tw.release}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Minute, "the KubeRay operator Deployment inside the vcluster to be available", func(ctx context.Context) (bool, string) {
		var d appsv1.Deployment
		if err := virtual.Get(ctx, types.NamespacedName{Namespace: "kuberay-system", Name: "kuberay-operator"}, &d); err != nil {
			return false, err.Error()
		}
		return d.Status.AvailableReplicas == 1, fmt.Sprintf("status %+v", d.Status)
	})

	rc := testenv.SampleRayCluster("default", "gang")
	worker := map[string]any{"containers": []any{map[string]any{
		"name": "ray-worker", "image": "rayproject/ray:2.46.0",
		"resources": map[string]any{
			"requests": map[string]any{"cpu": "1", "memory": "2Gi", "nvidia.com/gpu": "1"},
			"limits":   map[string]any{"cpu": "1", "memory": "2Gi", "nvidia.com/gpu": "1"},
		},
	}}}
	if err := unstructured.SetNestedSlice(rc.Object, []any{map[string]any{
		"groupName": "gpu", "replicas": int64(1), "minReplicas": int64(1), "maxReplicas": int64(1),
		"rayStartParams": map[string]any{}, "template": map[string]any{"spec": worker},
	}}, "spec", "workerGroupSpecs"); err != nil {
		t.Fatal(err)
	}
	// standard@3's Ray policy (raas's admission policy inside the vcluster) asks for it.
	if err := unstructured.SetNestedField(rc.Object, "2.46.0", "spec", "rayVersion"); err != nil {
		t.Fatal(err)
	}
	if err := virtual.Create(ctx, rc); err != nil {
		t.Fatalf("create RayCluster: %v", err)
	}

	var head, gpu *corev1.Pod
	waitFor(t, 5*time.Minute, "the head and the GPU worker on the host", func(ctx context.Context) (bool, string) {
		var vpods corev1.PodList
		if err := virtual.List(ctx, &vpods, client.InNamespace("default")); err != nil {
			return false, err.Error()
		}
		if len(vpods.Items) < 2 {
			return false, fmt.Sprintf("%d pods inside", len(vpods.Items))
		}
		var pods corev1.PodList
		if err := host.Client.List(ctx, &pods, client.InNamespace(tw.namespace), client.MatchingLabels{"vcluster.loft.sh/managed-by": tw.release}); err != nil {
			return false, err.Error()
		}
		head, gpu = nil, nil
		for i, p := range pods.Items {
			if p.Annotations["vcluster.loft.sh/object-namespace"] != "default" {
				continue
			}
			switch name := p.Annotations["vcluster.loft.sh/object-name"]; {
			case strings.HasPrefix(name, "gang-head-"):
				head = &pods.Items[i]
			case strings.HasPrefix(name, "gang-gpu-"):
				gpu = &pods.Items[i]
			}
		}
		return head != nil && gpu != nil, fmt.Sprintf("head %v, worker %v", head != nil, gpu != nil)
	})
	for _, p := range []*corev1.Pod{head, gpu} {
		if p.Spec.SchedulerName != "volcano" {
			t.Errorf("host pod %s: schedulerName %q, want volcano", p.Name, p.Spec.SchedulerName)
		}
		if p.Annotations["scheduling.k8s.io/group-name"] == "" {
			t.Errorf("host pod %s has no group annotation: %v", p.Name, p.Annotations)
		}
		if q := p.Annotations["scheduling.volcano.sh/queue-name"]; q != tw.namespace {
			t.Errorf("host pod %s: queue %q, want %q", p.Name, q, tw.namespace)
		}
	}
	if head.Annotations["scheduling.k8s.io/group-name"] != gpu.Annotations["scheduling.k8s.io/group-name"] {
		t.Errorf("head and worker are in different groups: %q, %q",
			head.Annotations["scheduling.k8s.io/group-name"], gpu.Annotations["scheduling.k8s.io/group-name"])
	}
	tolerates := false
	for _, tol := range gpu.Spec.Tolerations {
		tolerates = tolerates || (tol.Key == "raas.dev/gpu-pool" && tol.Value == "h100")
	}
	if !tolerates {
		t.Errorf("GPU worker %s does not tolerate the h100 pool: %+v", gpu.Name, gpu.Spec.Tolerations)
	}
	confined := false
	if a := gpu.Spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
			for _, e := range term.MatchExpressions {
				confined = confined || (e.Key == "volcano.sh/nodegroup-name" && e.Operator == corev1.NodeSelectorOpIn && len(e.Values) == 1 && e.Values[0] == "h100")
			}
		}
	}
	if !confined {
		t.Errorf("GPU worker %s is not confined to the h100 node group: %+v", gpu.Name, gpu.Spec.Affinity)
	}
	group := head.Annotations["scheduling.k8s.io/group-name"]
	waitFor(t, 2*time.Minute, "the bridge's host PodGroup "+group, func(ctx context.Context) (bool, string) {
		pg := &unstructured.Unstructured{}
		pg.SetGroupVersionKind(podGroupGVK)
		if err := host.Client.Get(ctx, types.NamespacedName{Namespace: tw.namespace, Name: group}, pg); err != nil {
			return false, err.Error()
		}
		queue, _, _ := unstructured.NestedString(pg.Object, "spec", "queue")
		return queue == tw.namespace, "queue " + queue
	})

	// No Volcano scheduler runs in the twin, and kube-scheduler leaves pods of another
	// scheduler alone: the gang waits, unbound.
	time.Sleep(5 * time.Second)
	for _, p := range []*corev1.Pod{head, gpu} {
		var cur corev1.Pod
		if err := host.Client.Get(ctx, client.ObjectKeyFromObject(p), &cur); err != nil {
			t.Fatal(err)
		}
		if cur.Spec.NodeName != "" || cur.Status.Phase != corev1.PodPending {
			t.Errorf("host pod %s is %s on %q; with no Volcano scheduler it must wait Pending", cur.Name, cur.Status.Phase, cur.Spec.NodeName)
		}
	}
}
