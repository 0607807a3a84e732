package scheduler_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/raas-dev/raas/scheduler"
	"github.com/raas-dev/raas/schema"
)

// forTenant derives the scheduler side of tenant name in the repository at dir.
func forTenant(t *testing.T, dir, name string) *scheduler.Tenant {
	t.Helper()
	repo := load(t, dir)
	tenant := repo.Tenant(name)
	if tenant == nil {
		t.Fatalf("%s: no valid tenant %s", dir, name)
	}
	return scheduler.ForTenant(repo.Platform, tenant)
}

func TestForTenant(t *testing.T) {
	t.Run("derives a GPU tenant on a dedicated pool", func(t *testing.T) {
		s := forTenant(t, "../examples", "ml-team-alpha")
		want := &scheduler.Tenant{
			Name: "ml-team-alpha", Namespace: "tenant-ml-team-alpha", QueueName: "tenant-ml-team-alpha",
			Capability: corev1.ResourceList{"cpu": resource.MustParse("64"), "memory": resource.MustParse("256Gi"), "nvidia.com/gpu": resource.MustParse("8")},
			Guarantee:  corev1.ResourceList{"cpu": resource.MustParse("16"), "memory": resource.MustParse("64Gi"), "nvidia.com/gpu": resource.MustParse("4")},
			Deserved:   corev1.ResourceList{"cpu": resource.MustParse("16"), "memory": resource.MustParse("64Gi"), "nvidia.com/gpu": resource.MustParse("4")},
			Weight:     2, Reclaimable: true, Gang: true,
			Pools: []schema.GPUPool{{
				Name: "h100", NodeGroup: "h100", Product: "NVIDIA-H100-80GB-HBM3", GPUs: new(int64(16)),
				Taint: &schema.Taint{Key: "raas.dev/gpu-pool", Value: "h100", Effect: "NoSchedule"},
			}},
			Tolerations:       []corev1.Toleration{{Key: "raas.dev/gpu-pool", Operator: corev1.TolerationOpEqual, Value: "h100", Effect: corev1.TaintEffectNoSchedule}},
			MutatingAdmission: true,
			MaxGPUsPerJob:     8,
			GPUResources:      []string{"nvidia.com/gpu"},
		}
		if diff := cmp.Diff(want, s); diff != "" {
			t.Errorf("ForTenant (-want +got):\n%s", diff)
		}
	})
	t.Run("counts the resources of the sharing mode as GPUs", func(t *testing.T) {
		s := forTenant(t, "../examples", "vision-team")
		if diff := cmp.Diff([]string{"nvidia.com/gpu", "nvidia.com/gpu.shared"}, s.GPUResources); diff != "" {
			t.Errorf("GPUResources (-want +got):\n%s", diff)
		}
		for _, r := range s.GPUResources {
			// Four GPUs, less the one its sandbox vision-team-next takes.
			if q := s.Capability[corev1.ResourceName(r)]; q.Cmp(resource.MustParse("3")) != 0 {
				t.Errorf("capability %s = %s, want the GPU quota 3", r, &q)
			}
		}
		if len(s.Tolerations) != 0 {
			t.Errorf("a shared pool needs no tolerations, got %v", s.Tolerations)
		}
	})
	t.Run("gives a CPU-only tenant no GPUs, no guarantee and a queue without node-group affinity", func(t *testing.T) {
		s := forTenant(t, "../examples", "data-sandbox")
		want := corev1.ResourceList{"cpu": resource.MustParse("8"), "memory": resource.MustParse("32Gi")}
		if diff := cmp.Diff(want, s.Capability); diff != "" {
			t.Errorf("Capability (-want +got):\n%s", diff)
		}
		if s.Guarantee != nil || s.Deserved != nil || s.Pools != nil || s.Gang || s.MaxGPUsPerJob != 0 {
			t.Errorf("want no guarantee, pools, gang or GPUs, got %+v", s)
		}
		if a := s.Queue().Spec.Affinity; a != nil {
			t.Errorf("queue affinity = %+v, want none (Volcano 1.12's nodegroup plugin is not configured)", a)
		}
	})
	t.Run("resolves products to pools", func(t *testing.T) {
		s := forTenant(t, "../testdata/scheduler/hierarchy/input", "llm")
		var pools []string
		for _, p := range s.Pools {
			pools = append(pools, p.Name)
		}
		if diff := cmp.Diff([]string{"a100", "l4"}, pools); diff != "" {
			t.Errorf("pools (-want +got):\n%s", diff)
		}
		want := []corev1.Toleration{{Key: "raas.dev/a100", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}}
		if diff := cmp.Diff(want, s.Tolerations); diff != "" {
			t.Errorf("a taint without a value is tolerated by key (-want +got):\n%s", diff)
		}
	})
	t.Run("sets no deserved share under the proportion plugin", func(t *testing.T) {
		repo := load(t, "../examples")
		repo.Platform.Spec.Scheduler.Plugin = "proportion"
		s := scheduler.ForTenant(repo.Platform, repo.Tenant("ml-team-alpha"))
		if s.Deserved != nil || s.Queue().Spec.Deserved != nil {
			t.Errorf("deserved = %v, want none", s.Deserved)
		}
		if s.Guarantee == nil {
			t.Error("the guarantee went missing")
		}
	})
}
