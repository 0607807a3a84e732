package testenv_test

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/render"
)

// startKubeRay starts the operator rendered among objs against vc and stops it on
// cleanup, printing its log if the test failed.
func startKubeRay(t *testing.T, vc *testenv.VCluster, objs []*render.Object) *testenv.KubeRay {
	t.Helper()
	return startKubeRayLogs(t, vc, objs, &syncBuffer{})
}

func startKubeRayLogs(t *testing.T, vc *testenv.VCluster, objs []*render.Object, logs *syncBuffer) *testenv.KubeRay {
	t.Helper()
	opts := testenv.DefaultKubeRayOptions()
	opts.Output = logs
	op, err := testenv.StartKubeRay(t.Context(), vc.ControlPlane, objs, opts)
	if err != nil {
		t.Fatalf("%v\noperator log:\n%s", err, logs)
	}
	t.Cleanup(func() {
		begin := time.Now()
		if err := op.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
		t.Logf("KubeRay operator %s stopped in %s", op.Version, time.Since(begin).Round(time.Millisecond))
		if t.Failed() {
			t.Logf("operator log:\n%s", logs)
		}
	})
	t.Logf("KubeRay operator %s started in %s as %s/%s with args %q", op.Version,
		op.StartupTime.Round(time.Millisecond), op.Namespace, op.ServiceAccount, op.Args)
	return op
}

// logRSS logs the operator's resident memory, read from /proc, for the twin's
// per-tenant figures.
func logRSS(t *testing.T, op *testenv.KubeRay) {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", op.PID()))
	if err != nil {
		t.Logf("operator memory: %v", err)
		return
	}
	for line := range strings.Lines(string(status)) {
		if rss, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			t.Logf("KubeRay operator %s resident memory: %s", op.Version, strings.TrimSpace(rss))
		}
	}
}

// rayCluster is the smallest RayCluster: a head group and no workers, with an image and
// a rayVersion the tenant's Ray policy admits. Its resources fit the tenant's
// LimitRange defaults.
func rayCluster(namespace, name, rayVersion string) *unstructured.Unstructured {
	rc := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "ray.io/v1",
		"kind":       "RayCluster",
		"metadata":   map[string]any{"name": name, "namespace": namespace},
		"spec": map[string]any{
			"rayVersion": rayVersion,
			"headGroupSpec": map[string]any{
				"rayStartParams": map[string]any{},
				"template": map[string]any{"spec": map[string]any{
					"containers": []any{map[string]any{
						"name":  "ray-head",
						"image": "rayproject/ray:" + rayVersion,
						"resources": map[string]any{
							"requests": map[string]any{"cpu": "100m", "memory": "512Mi"},
							"limits":   map[string]any{"cpu": "1", "memory": "1Gi"},
						},
					}},
				}},
			},
		},
	}}
	return rc
}

// waitOwned waits up to a minute until list, listed in namespace, holds an object that
// owner owns, and returns it.
func waitOwned(t *testing.T, c client.Client, list client.ObjectList, namespace string, owner client.Object, what string) client.Object {
	t.Helper()
	return waitOwnedWithin(t, time.Minute, c, list, namespace, owner, what)
}

func waitOwnedWithin(t *testing.T, timeout time.Duration, c client.Client, list client.ObjectList, namespace string, owner client.Object, what string) client.Object {
	t.Helper()
	var found client.Object
	eventuallyNil(t, timeout, what, func() error {
		if err := c.List(t.Context(), list, client.InNamespace(namespace)); err != nil {
			return err
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return err
		}
		for _, item := range items {
			o := item.(client.Object)
			if slices.ContainsFunc(o.GetOwnerReferences(), func(r metav1.OwnerReference) bool { return r.UID == owner.GetUID() }) {
				found = o
				return nil
			}
		}
		return fmt.Errorf("none of %d owned by %s %s", len(items), owner.GetObjectKind().GroupVersionKind().Kind, owner.GetName())
	})
	return found
}

// managedBy fails unless manager is among the field managers of o.
func managedBy(o client.Object, manager string) error {
	var managers []string
	for _, e := range o.GetManagedFields() {
		managers = append(managers, e.Manager)
	}
	if !slices.Contains(managers, manager) {
		return fmt.Errorf("%s %s: field managers %q, want %q among them", o.GetObjectKind().GroupVersionKind().Kind, o.GetName(), managers, manager)
	}
	return nil
}

// condition returns the reason of u's status condition typ when its status is status,
// and "" otherwise.
func condition(u *unstructured.Unstructured, typ, status string) string {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == typ && m["status"] == status {
			reason, _ := m["reason"].(string)
			return reason
		}
	}
	return ""
}

// eventually polls f every 200 ms until it returns nil, and fails the test with f's last
// error after timeout.
func eventuallyNil(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s after %s: %v", what, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// syncBuffer is a log sink that the operator's output goroutine and the test share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
