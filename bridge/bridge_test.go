package bridge_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	schedulingv1beta1 "volcano.sh/apis/pkg/apis/scheduling/v1beta1"

	"github.com/raas-dev/raas/bridge"
	"github.com/raas-dev/raas/internal/testenv"
)

// TestBridge runs one bridge between the shared host and a stand-in vcluster; each case
// works on PodGroup names of its own.
func TestBridge(t *testing.T) {
	e := newEnv(t, testenv.Shared(t), "", "team-a")
	const tenant, queue = "team-a", "tenant-team-a"
	b := e.start(t, e.options(tenant, queue))
	e.namespace(t, "research")
	e.namespace(t, "prod")

	t.Run("a PodGroup created inside appears on the host with the tenant's queue, even when it named another", func(t *testing.T) {
		pg := podGroup("research", "ray-train-pg", "tenant-someone-else")
		pg.Spec.PriorityClassName = "high"
		pg.Spec.MinTaskMember = map[string]int32{"headgroup": 1, "workers": 2}
		gpus := (*pg.Spec.MinResources).DeepCopy()
		gpus["nvidia.com/gpu"] = resource.MustParse("2")
		pg.Spec.MinResources = &gpus
		pg.Labels = map[string]string{"volcano.sh/queue-name": "tenant-someone-else"}
		pg.OwnerReferences = []metav1.OwnerReference{{APIVersion: "ray.io/v1", Kind: "RayCluster", Name: "train", UID: "0a0a0a0a-1111-2222-3333-444444444444"}}
		virtual := e.createVirtual(t, pg)
		unnamed := e.createVirtual(t, podGroup("prod", "ray-serve-pg", ""))

		host := e.waitHost(t, "ray-train-pg", "to mirror research/ray-train-pg", func(h *schedulingv1beta1.PodGroup) bool { return mirrors(h, virtual, queue) })
		want := virtual.Spec.DeepCopy()
		want.Queue = queue
		if !apiequality.Semantic.DeepEqual(*want, host.Spec) {
			t.Errorf("host spec (-want +got):\n%s", cmp.Diff(*want, host.Spec))
		}
		if diff := cmp.Diff(ownedLabels(tenant, "research"), host.Labels); diff != "" {
			t.Errorf("host labels (-want +got):\n%s", diff)
		}
		if len(host.OwnerReferences) != 0 {
			t.Errorf("host copy carries the virtual owner references %v", host.OwnerReferences)
		}
		// The virtual PodGroup keeps the queue its author wrote.
		if got := e.getVirtual(t, "research", "ray-train-pg").Spec.Queue; got != "tenant-someone-else" {
			t.Errorf("virtual queue = %q, want it untouched", got)
		}
		e.waitHost(t, "ray-serve-pg", "to mirror prod/ray-serve-pg", func(h *schedulingv1beta1.PodGroup) bool { return mirrors(h, unnamed, queue) })
	})

	t.Run("a spec change inside reaches the host copy", func(t *testing.T) {
		virtual := e.createVirtual(t, podGroup("research", "ray-scale-pg", ""))
		e.waitHost(t, "ray-scale-pg", "to mirror it", func(h *schedulingv1beta1.PodGroup) bool { return mirrors(h, virtual, queue) })
		e.updateVirtual(t, "research", "ray-scale-pg", func(pg *schedulingv1beta1.PodGroup) {
			pg.Spec.MinMember = 9
			pg.Spec.Queue = "default"
		})
		e.waitHost(t, "ray-scale-pg", "to have minMember 9 on the tenant's queue", func(h *schedulingv1beta1.PodGroup) bool {
			return h.Spec.MinMember == 9 && h.Spec.Queue == queue
		})
	})

	t.Run("a status change on the host reaches the virtual PodGroup", func(t *testing.T) {
		virtual := e.createVirtual(t, podGroup("research", "ray-status-pg", ""))
		e.waitHost(t, "ray-status-pg", "to mirror it", func(h *schedulingv1beta1.PodGroup) bool { return mirrors(h, virtual, queue) })
		status := schedulingv1beta1.PodGroupStatus{
			Phase:   schedulingv1beta1.PodGroupRunning,
			Running: 3,
			Conditions: []schedulingv1beta1.PodGroupCondition{{
				Type: schedulingv1beta1.PodGroupScheduled, Status: corev1.ConditionTrue,
				TransitionID: "a1b2", LastTransitionTime: metav1.NewTime(time.Now().Truncate(time.Second)),
				Reason: "tasks in gang are ready to be scheduled", Message: "3/3 tasks in gang unschedulable: none",
			}},
		}
		e.updateHostStatus(t, "ray-status-pg", status)
		var got *schedulingv1beta1.PodGroup
		eventually(t, "the status to reach the vcluster", func(ctx context.Context) (bool, error) {
			got = e.getVirtual(t, "research", "ray-status-pg")
			return apiequality.Semantic.DeepEqual(got.Status, status), nil
		})
		// The bridge owns the status and nothing else of the virtual PodGroup.
		for _, mf := range got.ManagedFields {
			if mf.Manager != bridge.FieldManager {
				continue
			}
			var fields map[string]any
			if err := json.Unmarshal(mf.FieldsV1.Raw, &fields); err != nil {
				t.Fatal(err)
			}
			for key := range fields {
				if key != "f:status" {
					t.Errorf("the bridge owns %s of the virtual PodGroup, want only f:status", key)
				}
			}
		}
		if got.Spec.MinMember != 3 || got.Spec.Queue != "default" {
			t.Errorf("virtual spec changed to %+v", got.Spec)
		}

		status.Phase, status.Running, status.Succeeded = schedulingv1beta1.PodGroupCompleted, 0, 3
		e.updateHostStatus(t, "ray-status-pg", status)
		eventually(t, "the second status to reach the vcluster", func(ctx context.Context) (bool, error) {
			return apiequality.Semantic.DeepEqual(e.getVirtual(t, "research", "ray-status-pg").Status, status), nil
		})
	})

	t.Run("deleting the virtual PodGroup removes the host copy", func(t *testing.T) {
		virtual := e.createVirtual(t, podGroup("research", "ray-gone-pg", ""))
		e.waitHost(t, "ray-gone-pg", "to mirror it", func(h *schedulingv1beta1.PodGroup) bool { return mirrors(h, virtual, queue) })
		e.deleteVirtual(t, "research", "ray-gone-pg")
		e.waitHostGone(t, "ray-gone-pg")
	})

	t.Run("a host copy deleted by hand is mirrored again", func(t *testing.T) {
		virtual := e.createVirtual(t, podGroup("research", "ray-again-pg", ""))
		host := e.waitHost(t, "ray-again-pg", "to mirror it", func(h *schedulingv1beta1.PodGroup) bool { return mirrors(h, virtual, queue) })
		if err := e.hostPGs.SchedulingV1beta1().PodGroups(e.hostNS).Delete(t.Context(), "ray-again-pg", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		e.waitHost(t, "ray-again-pg", "to be mirrored again", func(h *schedulingv1beta1.PodGroup) bool {
			return h.UID != host.UID && mirrors(h, virtual, queue)
		})
	})

	t.Run("a name collision is refused and reported, and the first copy is untouched", func(t *testing.T) {
		first := e.createVirtual(t, podGroup("research", "ray-shared-pg", ""))
		before := e.waitHost(t, "ray-shared-pg", "to mirror research/ray-shared-pg", func(h *schedulingv1beta1.PodGroup) bool { return mirrors(h, first, queue) })

		second := podGroup("prod", "ray-shared-pg", "")
		second.Spec.MinMember = 17
		e.createVirtual(t, second)
		want := bridge.Refusal{Namespace: "prod", Name: "ray-shared-pg", Reason: bridge.ReasonNameCollision}
		eventually(t, "the collision in Status", func(context.Context) (bool, error) {
			return hasRefusal(b.Status(), want), nil
		})
		msgs := events(t, e.virtKube, "prod", "ray-shared-pg", bridge.ReasonNameCollision)
		if !contains(msgs, "already holds ray-shared-pg for research/ray-shared-pg") {
			t.Errorf("vcluster events %q do not name the PodGroup that holds the name", msgs)
		}
		msgs = events(t, e.hostKube, e.hostNS, "ray-shared-pg", bridge.ReasonNameCollision)
		if !contains(msgs, "tenant team-a: PodGroup prod/ray-shared-pg is not mirrored") {
			t.Errorf("host events %q do not name the refused PodGroup", msgs)
		}

		after := e.waitHost(t, "ray-shared-pg", "to exist", func(*schedulingv1beta1.PodGroup) bool { return true })
		if after.ResourceVersion != before.ResourceVersion || !mirrors(after, first, queue) {
			t.Errorf("the first copy changed: resourceVersion %s -> %s, source %s, minMember %d",
				before.ResourceVersion, after.ResourceVersion, after.Annotations[bridge.AnnotationSource], after.Spec.MinMember)
		}
		if n := countNamed(e.hostPodGroups(t), "ray-shared-pg"); n != 1 {
			t.Errorf("%d host PodGroups named ray-shared-pg, want 1", n)
		}
	})

	t.Run("once the first of two colliding PodGroups is deleted the second is mirrored", func(t *testing.T) {
		e.deleteVirtual(t, "research", "ray-shared-pg")
		second := e.getVirtual(t, "prod", "ray-shared-pg")
		e.waitHost(t, "ray-shared-pg", "to mirror prod/ray-shared-pg", func(h *schedulingv1beta1.PodGroup) bool {
			return mirrors(h, second, queue) && h.Spec.MinMember == 17
		})
		eventually(t, "the collision to leave Status", func(context.Context) (bool, error) {
			return !hasRefusal(b.Status(), bridge.Refusal{Namespace: "prod", Name: "ray-shared-pg", Reason: bridge.ReasonNameCollision}), nil
		})
	})

	t.Run("a host name held by a PodGroup raas does not manage is refused", func(t *testing.T) {
		foreign := podGroup(e.hostNS, "ray-taken-pg", queue)
		foreign.Spec.MinMember = 1
		if _, err := e.hostPGs.SchedulingV1beta1().PodGroups(e.hostNS).Create(t.Context(), foreign, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		e.createVirtual(t, podGroup("research", "ray-taken-pg", ""))
		eventually(t, "the refusal in Status", func(context.Context) (bool, error) {
			return hasRefusal(b.Status(), bridge.Refusal{Namespace: "research", Name: "ray-taken-pg", Reason: bridge.ReasonNameTaken}), nil
		})
		events(t, e.virtKube, "research", "ray-taken-pg", bridge.ReasonNameTaken)
		got := e.waitHost(t, "ray-taken-pg", "to exist", func(*schedulingv1beta1.PodGroup) bool { return true })
		if got.Spec.MinMember != 1 || len(got.Annotations) != 0 {
			t.Errorf("the unmanaged PodGroup was changed: minMember %d, annotations %v", got.Spec.MinMember, got.Annotations)
		}
	})

	t.Run("once the unmanaged PodGroup is deleted the name is mirrored", func(t *testing.T) {
		if err := e.hostPGs.SchedulingV1beta1().PodGroups(e.hostNS).Delete(t.Context(), "ray-taken-pg", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		virtual := e.getVirtual(t, "research", "ray-taken-pg")
		e.waitHost(t, "ray-taken-pg", "to mirror research/ray-taken-pg", func(h *schedulingv1beta1.PodGroup) bool { return mirrors(h, virtual, queue) })
		eventually(t, "the refusal to leave Status", func(context.Context) (bool, error) { return len(b.Status().Refused) == 0, nil })
	})

	t.Run("reports every mirrored PodGroup and no failure", func(t *testing.T) {
		// ray-train-pg, ray-serve-pg, ray-scale-pg, ray-status-pg, ray-again-pg, ray-shared-pg,
		// ray-taken-pg.
		eventually(t, "seven mirrored PodGroups", func(context.Context) (bool, error) {
			s := b.Status()
			return s.Mirrored == 7 && s.Failing == 0, nil
		})
		s := b.Status()
		if s.Tenant != tenant || !s.Synced || s.LastError != "" {
			t.Errorf("status = %+v", s)
		}
	})
}

func TestNew(t *testing.T) {
	t.Run("refuses options without a queue", func(t *testing.T) {
		opts := bridge.DefaultOptions()
		opts.Tenant, opts.HostNamespace = "team-a", "tenant-team-a"
		_, err := bridge.New(&rest.Config{Host: "https://127.0.0.1:1"}, &rest.Config{Host: "https://127.0.0.1:2"}, opts)
		if err == nil || !strings.Contains(err.Error(), "queue") {
			t.Errorf("err = %v, want one naming the queue", err)
		}
	})
}

func hasRefusal(s bridge.Status, want bridge.Refusal) bool {
	for _, r := range s.Refused {
		if r.Namespace == want.Namespace && r.Name == want.Name && r.Reason == want.Reason {
			return true
		}
	}
	return false
}

func countNamed(list []schedulingv1beta1.PodGroup, name string) int {
	n := 0
	for _, pg := range list {
		if pg.Name == name {
			n++
		}
	}
	return n
}
