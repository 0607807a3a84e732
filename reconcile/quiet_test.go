package reconcile_test

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/reconcile"
	"github.com/raas-dev/raas/schema"
)

// TestQuietPasses applies two example tenants, then runs three more passes with nothing
// changed: they must not write anything to the host or into a vcluster, not even an
// inventory, while things stay pending: without Volcano's namespace (the scheduler
// ConfigMap is skipped on every pass) and with vclusters down (their objects wait), as
// well as with both up. A fresh host, so that volcano-system is missing at first.
func TestQuietPasses(t *testing.T) {
	host := testenv.StartHost(t, testenv.DefaultControlPlaneOptions())
	for _, volcano := range []bool{false, true} {
		if volcano {
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "volcano-system"}}
			if err := host.Client.Create(t.Context(), ns); err != nil {
				t.Fatal(err)
			}
		}
		for _, vclusters := range []bool{false, true} {
			name := fmt.Sprintf("with Volcano %t and vclusters up %t", volcano, vclusters)
			t.Run(name, func(t *testing.T) {
				prefix := fmt.Sprintf("q%d%d-", btoi(volcano), btoi(vclusters))
				repo := exampleRepo(t, prefix)
				repo.remove("tenants/vision-team.yaml")
				repo.remove("tenants/vision-team-next.yaml")
				res := repo.renderOK()
				names := tenantNames(res)
				if len(names) != 2 {
					t.Fatalf("tenants %v, want 2", names)
				}
				timeout := 100 * time.Millisecond
				if vclusters {
					timeout = 30 * time.Second
					for _, n := range names {
						host.StartVCluster(t, prefix+n, schema.Release(n), testenv.DefaultVClusterOptions())
					}
				}
				r, count, _ := newReconcilerIn(t, host, prefix+"raas-system", timeout)
				first := apply(t, r, res)
				for _, n := range names {
					virtual := 0
					for _, e := range first.Select(n, "virtual") {
						if e.Action == reconcile.Created {
							virtual++
						}
					}
					if vclusters != (virtual > 0) {
						t.Fatalf("%s: %d virtual objects created; vclusters up: %t", n, virtual, vclusters)
					}
				}
				if found, skipped := schedulerConfig(first); !found || skipped == volcano {
					t.Fatalf("the scheduler ConfigMap: in the result %t, skipped %t; with Volcano's namespace %t", found, skipped, volcano)
				}
				for pass := 2; pass <= 4; pass++ {
					count.reset()
					out := apply(t, r, res)
					if w := count.writesList(); len(w) > 0 {
						t.Errorf("pass %d wrote %d times: %v", pass, len(w), w)
					}
					if out.Changed() {
						t.Errorf("pass %d reports changes: %s", pass, out.Summary())
					}
					if count.reads.Load() == 0 {
						t.Errorf("pass %d read nothing", pass)
					}
				}
			})
		}
	}
}

// schedulerConfig finds the Volcano scheduler ConfigMap in a result, and whether the pass
// skipped it.
func schedulerConfig(out *reconcile.Result) (found, skipped bool) {
	for _, e := range out.Select("", "") {
		if e.Kind == "ConfigMap" && e.Namespace == "volcano-system" {
			return true, e.Action == reconcile.Skipped
		}
	}
	return false, false
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
