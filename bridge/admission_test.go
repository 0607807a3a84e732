package bridge_test

import (
	"context"
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	schedulingv1beta1 "volcano.sh/apis/pkg/apis/scheduling/v1beta1"

	"github.com/raas-dev/raas/bridge"
	"github.com/raas-dev/raas/internal/exampletest"
	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/scheduler"
	"github.com/raas-dev/raas/schema"
)

// TestAdmission puts the bridge behind the host admission policies the scheduler renders
// for the example tenant ml-team-alpha: every copy the bridge writes must be admitted,
// though the policies deny a PodGroup on any other queue.
func TestAdmission(t *testing.T) {
	repo, err := schema.Load(os.DirFS(exampletest.Root(t)))
	if err != nil {
		t.Fatal(err)
	}
	if errs := repo.Problems.Errors(); len(errs) > 0 || !repo.Usable() {
		t.Fatalf("examples do not validate: %v", errs)
	}
	tenant := repo.Tenant("ml-team-alpha")
	if tenant == nil {
		t.Fatal("examples lack tenant ml-team-alpha")
	}
	s := scheduler.ForTenant(repo.Platform, tenant)
	host := testenv.Shared(t)
	e := newEnv(t, host, s.Namespace, schema.Release(s.Name))

	ok := t.Run("the scheduler's policies and the tenant's bindings apply", func(t *testing.T) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: scheduler.ConfigNamespace}}
		if err := host.Client.Create(t.Context(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		objs, err := scheduler.Platform(repo.Platform)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, s.Queue())
		objs = append(objs, s.Objects()...)
		for _, obj := range objs {
			testenv.Apply(t, host.Client, "raas", obj)
		}
	})
	if !ok {
		t.FailNow()
	}

	t.Run("a PodGroup naming another queue, created directly on the host, is denied", func(t *testing.T) {
		wrong := podGroup(s.Namespace, "ray-direct-pg", "default")
		pgs := e.hostPGs.SchedulingV1beta1().PodGroups(s.Namespace)
		// The API server starts enforcing a new policy and binding shortly after they
		// are created: dry runs show when, without leaving anything behind.
		eventually(t, "the queue policy to be enforced", func(ctx context.Context) (bool, error) {
			_, err := pgs.Create(ctx, wrong, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			return apierrors.IsForbidden(err), nil
		})
		_, err := pgs.Create(t.Context(), wrong, metav1.CreateOptions{})
		if !apierrors.IsForbidden(err) {
			t.Fatalf("create with queue default: err = %v, want a denial", err)
		}
		t.Logf("denied: %v", err)
		gpus := podGroup(s.Namespace, "ray-direct-pg", s.QueueName)
		(*gpus.Spec.MinResources)["nvidia.com/gpu"] = resource.MustParse("9")
		eventually(t, "the GPU policy to be enforced", func(ctx context.Context) (bool, error) {
			_, err := pgs.Create(ctx, gpus, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			return apierrors.IsForbidden(err), nil
		})
	})

	b := e.start(t, e.options(s.Name, s.QueueName))
	e.namespace(t, "research")
	e.namespace(t, "prod")

	t.Run("every PodGroup the bridge writes is admitted", func(t *testing.T) {
		cases := map[string]*schedulingv1beta1.PodGroup{
			"ray-default-pg":   podGroup("research", "ray-default-pg", "default"),
			"ray-foreign-pg":   podGroup("research", "ray-foreign-pg", "tenant-vision-team"),
			"ray-unnamed-pg":   podGroup("prod", "ray-unnamed-pg", ""),
			"ray-own-pg":       podGroup("prod", "ray-own-pg", s.QueueName),
			"ray-eight-gpu-pg": podGroup("prod", "ray-eight-gpu-pg", "tenant-vision-team"),
		}
		(*cases["ray-eight-gpu-pg"].Spec.MinResources)["nvidia.com/gpu"] = resource.MustParse("8")
		for name, pg := range cases {
			virtual := e.createVirtual(t, pg)
			e.waitHost(t, name, "on queue "+s.QueueName, func(h *schedulingv1beta1.PodGroup) bool { return mirrors(h, virtual, s.QueueName) })
		}
		// An update is judged again, as the spec changes.
		e.updateVirtual(t, "research", "ray-default-pg", func(pg *schedulingv1beta1.PodGroup) {
			pg.Spec.MinMember = 7
			pg.Spec.Queue = "tenant-data-sandbox"
		})
		e.waitHost(t, "ray-default-pg", "to have minMember 7", func(h *schedulingv1beta1.PodGroup) bool {
			return h.Spec.MinMember == 7 && h.Spec.Queue == s.QueueName
		})
		st := b.Status()
		if len(st.Refused) != 0 || st.Failing != 0 {
			t.Errorf("refused %+v, failing %d (%s)", st.Refused, st.Failing, st.LastError)
		}
	})

	t.Run("a PodGroup over the tenant's GPU cap is refused with the policy's message", func(t *testing.T) {
		pg := podGroup("prod", "ray-greedy-pg", "")
		(*pg.Spec.MinResources)["nvidia.com/gpu"] = resource.MustParse("9")
		e.createVirtual(t, pg)
		var refusal bridge.Refusal
		eventually(t, "the denial in Status", func(context.Context) (bool, error) {
			for _, r := range b.Status().Refused {
				if r.Name == "ray-greedy-pg" && r.Reason == bridge.ReasonHostDenied {
					refusal = r
					return true, nil
				}
			}
			return false, nil
		})
		if !contains([]string{refusal.Message}, "may ask for at most 8") {
			t.Errorf("refusal message %q does not carry the policy's message", refusal.Message)
		}
		msgs := events(t, e.virtKube, "prod", "ray-greedy-pg", bridge.ReasonHostDenied)
		if !contains(msgs, "asks for 9 GPUs") {
			t.Errorf("vcluster events %q do not carry the policy's message", msgs)
		}
		if n := countNamed(e.hostPodGroups(t), "ray-greedy-pg"); n != 0 {
			t.Errorf("%d host copies of a denied PodGroup", n)
		}

		e.updateVirtual(t, "prod", "ray-greedy-pg", func(pg *schedulingv1beta1.PodGroup) {
			(*pg.Spec.MinResources)["nvidia.com/gpu"] = resource.MustParse("4")
		})
		fixed := e.getVirtual(t, "prod", "ray-greedy-pg")
		e.waitHost(t, "ray-greedy-pg", "once it asks for 4 GPUs", func(h *schedulingv1beta1.PodGroup) bool { return mirrors(h, fixed, s.QueueName) })
		eventually(t, "the denial to leave Status", func(context.Context) (bool, error) { return len(b.Status().Refused) == 0, nil })
	})
}
