package reconcile_test

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/reconcile"
	"github.com/raas-dev/raas/render"
)

// TestExpiredSandboxSleeps applies the examples, then passes vision-team-next's expiry
// date: the sandbox's vcluster is scaled to zero, the pods it synced are stopped, and
// nothing of it is deleted.
func TestExpiredSandboxSleeps(t *testing.T) {
	const prefix = "zz-"
	host := testenv.Shared(t)
	repo, _, r, _, _ := applyExamples(t, prefix)

	ns := prefix + "vision-team-next"
	synced := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "ray-head-x-default-x-vision-team-next", Namespace: ns,
			Labels: map[string]string{"vcluster.loft.sh/managed-by": "vision-team-next"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "ray", Image: "rayproject/ray:2.46.0"}}},
	}
	if err := host.Client.Create(t.Context(), synced); err != nil {
		t.Fatal(err)
	}

	out := apply(t, r, renderDirAt(t, repo.dir, time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC)))

	st := out.Tenant("vision-team-next")
	if st == nil || st.Health != reconcile.HealthAsleep {
		t.Fatalf("vision-team-next: %+v, want Asleep", st)
	}
	t.Run("scales the vcluster to zero", func(t *testing.T) {
		sts := &unstructured.Unstructured{}
		sts.SetGroupVersionKind(schemaGVK("apps", "v1", "StatefulSet"))
		if err := host.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "vision-team-next"}, sts); err != nil {
			t.Fatal(err)
		}
		if n, _, _ := unstructured.NestedInt64(sts.Object, "spec", "replicas"); n != 0 {
			t.Errorf("replicas = %d, want 0", n)
		}
	})
	t.Run("stops the pods the vcluster synced", func(t *testing.T) {
		// Without a kubelet a deleted pod goes at once unless it has finalizers.
		err := host.Client.Get(t.Context(), client.ObjectKeyFromObject(synced), &corev1.Pod{})
		switch {
		case err == nil:
			t.Error("the synced pod still exists")
		case !apierrors.IsNotFound(err):
			t.Errorf("reading the synced pod: %v, want NotFound", err)
		}
	})
	t.Run("deletes nothing and leaves the virtual objects as they were", func(t *testing.T) {
		entries := out.Select("vision-team-next", "")
		virtual := 0
		for _, e := range entries {
			if e.Target == render.Virtual {
				virtual++
			}
		}
		if len(entries) == 0 || virtual == 0 {
			t.Fatalf("the result has %d entries for vision-team-next, %d of them virtual; want both", len(entries), virtual)
		}
		for _, e := range entries {
			if e.Action == reconcile.Deleted {
				t.Errorf("deleted %s", e)
			}
			if e.Target == render.Virtual && e.Action != reconcile.Skipped {
				t.Errorf("%s: %s, want skipped while asleep", e.Ref, e.Action)
			}
		}
	})
}
