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
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
	if err := testenv.CheckTwin(); err != nil {
		t.Fatalf("the twin cannot run here: %v", err)
	}
	ctx := t.Context()
	const tenant = "data-sandbox"
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
	namespace := repo.Platform.Namespace(tenant)
	release := schema.Release(tenant)

	begin := time.Now()
	out, stderr, code := runAt(t, time.Now, "apply", dir, "--kubeconfig", kubeconfig,
		"--catalog", exampletest.Catalog(t), "--vcluster-timeout", "8m")
	if code != 0 {
		t.Fatalf("raas apply: exit %d\n%s\n%s", code, out, stderr)
	}
	t.Logf("raas apply took %s:\n%s", time.Since(begin).Round(time.Second), out)
	for _, want := range []string{
		"CustomResourceDefinition.apiextensions.k8s.io rayclusters.ray.io",
		"Deployment.apps kuberay-system/kuberay-operator",
	} {
		if !appliedInside(out, tenant, want) {
			t.Errorf("raas apply did not create virtual %s:\n%s", want, out)
		}
	}

	// The syncer, not raas, wrote the kubeconfig; it names the in-cluster Service, which
	// does not resolve here, so the client goes by port-forward as raas did.
	hostKube, err := kubernetes.NewForConfig(host.Config)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := vclusterconfig.Read(ctx, hostKube.CoreV1(), namespace, release)
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
	virtual, err := client.New(vcfg, client.Options{})
	if err != nil {
		t.Fatal(err)
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
