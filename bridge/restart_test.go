package bridge_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	schedulingv1beta1 "volcano.sh/apis/pkg/apis/scheduling/v1beta1"

	"github.com/raas-dev/raas/bridge"
	"github.com/raas-dev/raas/internal/testenv"
)

func TestRestart(t *testing.T) {
	e := newEnv(t, testenv.Shared(t), "", "team-b")
	const tenant, queue = "team-b", "tenant-team-b"
	e.namespace(t, "one")
	e.namespace(t, "two")

	first := e.start(t, e.options(tenant, queue))
	for _, pg := range []*schedulingv1beta1.PodGroup{
		podGroup("one", "ray-changed-pg", ""),
		podGroup("one", "ray-deleted-pg", ""),
		podGroup("two", "ray-status-pg", ""),
		podGroup("two", "ray-recreated-pg", ""),
	} {
		virtual := e.createVirtual(t, pg)
		e.waitHost(t, pg.Name, "to mirror it", func(h *schedulingv1beta1.PodGroup) bool { return mirrors(h, virtual, queue) })
	}
	recreatedBefore := e.waitHost(t, "ray-recreated-pg", "to exist", func(*schedulingv1beta1.PodGroup) bool { return true })
	first.stop(t)

	// While the bridge is down: a PodGroup is created, one deleted, one changed, one
	// deleted and created again (a new gang under the same name), one collides with a
	// mirrored one, and Volcano moves a host copy on.
	created := e.createVirtual(t, podGroup("two", "ray-created-pg", ""))
	e.deleteVirtual(t, "one", "ray-deleted-pg")
	e.updateVirtual(t, "one", "ray-changed-pg", func(pg *schedulingv1beta1.PodGroup) { pg.Spec.MinMember = 5 })
	e.deleteVirtual(t, "two", "ray-recreated-pg")
	recreated := podGroup("two", "ray-recreated-pg", "")
	recreated.Spec.MinMember = 2
	e.createVirtual(t, recreated)
	e.createVirtual(t, podGroup("two", "ray-changed-pg", ""))
	// Two new PodGroups collide: the older one is mirrored, though its namespace sorts
	// last. Creation times have whole seconds.
	older := e.createVirtual(t, podGroup("two", "ray-twin-pg", ""))
	eventually(t, "the next second", func(context.Context) (bool, error) {
		return time.Now().Truncate(time.Second).After(older.CreationTimestamp.Time), nil
	})
	e.createVirtual(t, podGroup("one", "ray-twin-pg", ""))
	status := schedulingv1beta1.PodGroupStatus{Phase: schedulingv1beta1.PodGroupInqueue}
	e.updateHostStatus(t, "ray-status-pg", status)

	second := e.start(t, e.options(tenant, queue))

	t.Run("converges to one host copy per mirrored PodGroup and no orphan", func(t *testing.T) {
		want := []string{"ray-changed-pg", "ray-created-pg", "ray-recreated-pg", "ray-status-pg", "ray-twin-pg"}
		var names []string
		eventually(t, "the host namespace to hold exactly "+strings.Join(want, ", "), func(context.Context) (bool, error) {
			names = names[:0]
			for _, pg := range e.hostPodGroups(t) {
				names = append(names, pg.Name)
			}
			slices.Sort(names)
			return slices.Equal(names, want), nil
		})
		for _, pg := range e.hostPodGroups(t) {
			src := e.getVirtual(t, pg.Labels[bridge.LabelSourceNamespace], pg.Name)
			if !mirrors(&pg, src, queue) {
				t.Errorf("host %s does not mirror %s/%s: source %s uid %s, minMember %d, queue %s",
					pg.Name, src.Namespace, src.Name, pg.Annotations[bridge.AnnotationSource],
					pg.Annotations[bridge.AnnotationSourceUID], pg.Spec.MinMember, pg.Spec.Queue)
			}
		}
	})

	t.Run("mirrors the PodGroup created while it was down", func(t *testing.T) {
		e.waitHost(t, "ray-created-pg", "to mirror it", func(h *schedulingv1beta1.PodGroup) bool { return mirrors(h, created, queue) })
	})

	t.Run("applies the change made while it was down", func(t *testing.T) {
		e.waitHost(t, "ray-changed-pg", "to have minMember 5", func(h *schedulingv1beta1.PodGroup) bool {
			return h.Spec.MinMember == 5 && h.Labels[bridge.LabelSourceNamespace] == "one"
		})
	})

	t.Run("replaces the copy of a PodGroup deleted and created again", func(t *testing.T) {
		now := e.getVirtual(t, "two", "ray-recreated-pg")
		got := e.waitHost(t, "ray-recreated-pg", "to mirror the new PodGroup", func(h *schedulingv1beta1.PodGroup) bool { return mirrors(h, now, queue) })
		if got.UID == recreatedBefore.UID {
			t.Errorf("the copy of the old PodGroup %s was updated in place, want a new copy", recreatedBefore.UID)
		}
	})

	t.Run("copies the status set while it was down", func(t *testing.T) {
		eventually(t, "the status to reach the vcluster", func(context.Context) (bool, error) {
			return apiequality.Semantic.DeepEqual(e.getVirtual(t, "two", "ray-status-pg").Status, status), nil
		})
	})

	t.Run("keeps the mirrored PodGroup of a collision made while it was down and refuses the other", func(t *testing.T) {
		eventually(t, "two collisions in Status", func(context.Context) (bool, error) {
			return len(second.Status().Refused) == 2, nil
		})
		got := second.Status().Refused
		want := []bridge.Refusal{
			{Namespace: "one", Name: "ray-twin-pg", Reason: bridge.ReasonNameCollision},
			{Namespace: "two", Name: "ray-changed-pg", Reason: bridge.ReasonNameCollision},
		}
		if diff := cmp.Diff(want, got, cmpRefusal); diff != "" {
			t.Errorf("refusals (-want +got):\n%s", diff)
		}
		events(t, e.virtKube, "two", "ray-changed-pg", bridge.ReasonNameCollision)
	})

	t.Run("mirrors the older of two new colliding PodGroups", func(t *testing.T) {
		e.waitHost(t, "ray-twin-pg", "to mirror two/ray-twin-pg", func(h *schedulingv1beta1.PodGroup) bool { return mirrors(h, older, queue) })
		events(t, e.virtKube, "one", "ray-twin-pg", bridge.ReasonNameCollision)
	})

	t.Run("reports five mirrored PodGroups", func(t *testing.T) {
		eventually(t, "five mirrored PodGroups", func(context.Context) (bool, error) { return second.Status().Mirrored == 5, nil })
	})

	t.Run("a restart with nothing changed writes nothing", func(t *testing.T) {
		second.stop(t)
		before := versions(e.hostPodGroups(t))
		virtualBefore := e.virtualVersions(t)
		writes := &writeCounter{}
		opts := e.options(tenant, queue)
		opts.WrapTransport = writes.wrap
		third := e.start(t, opts)
		eventually(t, "five mirrored PodGroups", func(context.Context) (bool, error) { return third.Status().Mirrored == 5, nil })
		// Every name has been synced once the five are mirrored; a write would follow
		// within moments.
		consistently(t, time.Second, func() {
			if diff := cmp.Diff(before, versions(e.hostPodGroups(t))); diff != "" {
				t.Fatalf("host resourceVersions (-before +after):\n%s", diff)
			}
			if diff := cmp.Diff(virtualBefore, e.virtualVersions(t)); diff != "" {
				t.Fatalf("vcluster resourceVersions (-before +after):\n%s", diff)
			}
			if w := writes.list(); len(w) > 0 {
				t.Fatalf("the bridge wrote PodGroups: %v", w)
			}
		})
	})
}

var cmpRefusal = cmp.Comparer(func(x, y bridge.Refusal) bool {
	return x.Namespace == y.Namespace && x.Name == y.Name && x.Reason == y.Reason
})

func versions(list []schedulingv1beta1.PodGroup) map[string]string {
	m := map[string]string{}
	for _, pg := range list {
		m[pg.Namespace+"/"+pg.Name] = pg.ResourceVersion
	}
	return m
}

func (e *env) virtualVersions(t testing.TB) map[string]string {
	t.Helper()
	list, err := e.virtualPGs.SchedulingV1beta1().PodGroups("").List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return versions(list.Items)
}

// writeCounter records the requests that write PodGroups.
type writeCounter struct {
	mu     sync.Mutex
	writes []string
}

func (w *writeCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return testenv.RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
		if req.Method != http.MethodGet && strings.Contains(req.URL.Path, "/podgroups") {
			w.mu.Lock()
			w.writes = append(w.writes, req.Method+" "+req.URL.Path)
			w.mu.Unlock()
		}
		return rt.RoundTrip(req)
	})
}

func (w *writeCounter) list() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.writes)
}
