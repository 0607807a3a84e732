package render_test

import (
	"os"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/raas-dev/raas/render"
)

// TestExpiredSandbox renders the examples on a day after vision-team-next's expiry.
func TestExpiredSandbox(t *testing.T) {
	opts := testOptions(t)
	opts.Now = func() time.Time { return time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC) }
	res, err := render.Repo(os.DirFS(examples), examples, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Repo.Expired) != 1 || res.Repo.OK() {
		t.Fatalf("expired = %v; want vision-team-next, and the repository not OK", res.Repo.Expired)
	}
	var sandbox *render.Output
	for _, out := range res.Tenants {
		if out.Tenant == "vision-team-next" {
			sandbox = out
		} else if out.Asleep {
			t.Errorf("%s is asleep", out.Tenant)
		}
	}
	if sandbox == nil || !sandbox.Asleep {
		t.Fatalf("vision-team-next is not rendered asleep: %+v", sandbox)
	}
	t.Run("scales the vcluster to zero and keeps its data volume", func(t *testing.T) {
		for _, o := range sandbox.Host {
			if o.GetKind() != "StatefulSet" {
				continue
			}
			replicas, _, _ := unstructured.NestedInt64(o.Object, "spec", "replicas")
			policy, _, _ := unstructured.NestedString(o.Object, "spec", "persistentVolumeClaimRetentionPolicy", "whenDeleted")
			scaled, _, _ := unstructured.NestedString(o.Object, "spec", "persistentVolumeClaimRetentionPolicy", "whenScaled")
			if replicas != 0 || policy != "Retain" || scaled != "Retain" {
				t.Errorf("replicas %d, PVC retention when deleted %q and scaled %q; want 0, Retain, Retain", replicas, policy, scaled)
			}
			return
		}
		t.Error("no StatefulSet rendered")
	})
}
