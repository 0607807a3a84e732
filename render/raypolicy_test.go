package render_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/render"
)

func rayCluster(version, image string) *unstructured.Unstructured {
	worker := map[string]any{
		"groupName": "gpu", "replicas": int64(2), "minReplicas": int64(0), "maxReplicas": int64(4),
		"rayStartParams": map[string]any{},
		"template": map[string]any{"spec": map[string]any{"containers": []any{
			map[string]any{"name": "ray-worker", "image": "rayproject/ray:2.46.0-gpu"},
		}}},
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "ray.io/v1", "kind": "RayCluster",
		"metadata": map[string]any{"name": "demo", "namespace": "default"},
		"spec": map[string]any{
			"rayVersion": version,
			"headGroupSpec": map[string]any{
				"rayStartParams": map[string]any{},
				"template": map[string]any{"spec": map[string]any{"containers": []any{
					map[string]any{"name": "ray-head", "image": image},
				}}},
			},
			"workerGroupSpecs": []any{worker},
		},
	}}
}

// TestRayPolicy applies ml-team-alpha's Ray policy (Ray 2.46.0, rayproject/ray:2.46.0*)
// to a real API server that stands in for its vcluster, with KubeRay's CRDs, and sends it
// Ray clusters.
func TestRayPolicy(t *testing.T) {
	res := renderExamples(t)
	var alpha *render.Output
	for _, out := range res.Tenants {
		if out.Tenant == "ml-team-alpha" {
			alpha = out
		}
	}
	opts := testenv.DefaultControlPlaneOptions()
	crds, err := filepath.Abs("../.catalog/kuberay/1.5.0/config/crd/bases")
	if err != nil {
		t.Fatal(err)
	}
	opts.CRDDirs = []string{crds}
	vc := testenv.StartHost(t, opts)
	c := newChecker(t, vc.Config)
	for _, o := range alpha.Virtual {
		if o.GetName() == render.RayPolicyName {
			c.apply(o, false)
		}
	}

	// create dry-runs a RayCluster until the policy has been picked up, which takes a
	// moment after it is created, and returns the final answer.
	create := func(t *testing.T, rc *unstructured.Unstructured, wantDenied bool) error {
		t.Helper()
		var last error
		err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			last = c.client.Create(ctx, rc.DeepCopy(), client.DryRunAll)
			return (last != nil) == wantDenied, nil
		})
		if err != nil {
			t.Fatalf("no answer as expected within the deadline; last: %v", last)
		}
		return last
	}

	t.Run("admits a Ray cluster with an allowed version and images", func(t *testing.T) {
		// Allowed is the final state too: wait for the policy with a denied probe first.
		create(t, rayCluster("2.46.0", "quay.io/evil/ray:latest"), true)
		if err := create(t, rayCluster("2.46.0", "rayproject/ray:2.46.0-py311"), false); err != nil {
			t.Errorf("denied: %v", err)
		}
	})
	t.Run("denies a disallowed image and says what is allowed", func(t *testing.T) {
		err := create(t, rayCluster("2.46.0", "quay.io/evil/ray:latest"), true)
		if !strings.Contains(err.Error(), "rayproject/ray:2.46.0*, docker.io/rayproject/ray:2.46.0*") {
			t.Errorf("message does not name the allowed images: %v", err)
		}
	})
	t.Run("denies a disallowed Ray version and says what is allowed", func(t *testing.T) {
		err := create(t, rayCluster("2.9.0", "rayproject/ray:2.46.0"), true)
		if !strings.Contains(err.Error(), "rayVersion must be one of: 2.46.0") {
			t.Errorf("message does not name the allowed versions: %v", err)
		}
	})
	t.Run("denies a RayJob whose cluster uses a disallowed image", func(t *testing.T) {
		job := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "ray.io/v1", "kind": "RayJob",
			"metadata": map[string]any{"name": "job", "namespace": "default"},
			"spec": map[string]any{
				"entrypoint":     "python -c 'print(1)'",
				"rayClusterSpec": rayCluster("2.46.0", "python:3.12").Object["spec"],
			},
		}}
		err := create(t, job, true)
		if !strings.Contains(err.Error(), "every container image must be one of") {
			t.Errorf("unexpected denial: %v", err)
		}
	})
}
