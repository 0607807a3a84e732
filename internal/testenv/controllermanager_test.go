package testenv_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/internal/testenv"
)

func TestControllerManager(t *testing.T) {
	host := testenv.Shared(t)
	vc := host.StartVCluster(t, host.Namespace(t), "vc", testenv.DefaultVClusterOptions())
	opts := testenv.ControllerManagerOptions{Name: "vc-kcm", Controllers: []string{"deployment-controller", "replicaset-controller"}}
	if os.Getenv("RAAS_TWIN_LOGS") != "" {
		opts.Output = os.Stderr
	}
	kcm, err := testenv.StartControllerManager(vc.ControlPlane, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := kcm.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})

	t.Run("turns a Deployment inside a virtual control plane into its pods", func(t *testing.T) {
		labels := map[string]string{"app": "ray-operator"}
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "kuberay-operator", Namespace: "default"},
			Spec: appsv1.DeploymentSpec{
				Replicas: new(int32(2)),
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: pod("", "", nil).Spec},
			},
		}
		if err := vc.Client.Create(t.Context(), d); err != nil {
			t.Fatal(err)
		}
		// No scheduler and no nodes run in there: the pods exist and stay Pending, as
		// in a vcluster, whose syncer would copy them to the host.
		eventually(t, "pods of the deployment", func(ctx context.Context) (bool, string, error) {
			var pods corev1.PodList
			err := vc.Client.List(ctx, &pods, client.InNamespace("default"), client.MatchingLabels(labels))
			return len(pods.Items) == int(*d.Spec.Replicas), fmt.Sprintf("%d pods", len(pods.Items)), err
		})
	})
}

// eventually polls cond until it holds or settle passes, then fails with its last word.
func eventually(t *testing.T, what string, cond func(ctx context.Context) (bool, string, error)) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, settle, true, func(ctx context.Context) (bool, error) {
		ok, msg, err := cond(ctx)
		last = msg
		return ok, err
	})
	if err != nil {
		t.Fatalf("%s: %v; last seen: %s", what, err, last)
	}
}

func pod(ns, name string, mutate func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name:  "ray",
			Image: "rayproject/ray:2.46.0",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("1Gi"),
			}},
		}}},
	}
	if mutate != nil {
		mutate(p)
	}
	return p
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
