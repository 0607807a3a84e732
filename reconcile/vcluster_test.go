package reconcile_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/render"
	"github.com/raas-dev/raas/schema"
)

// startVClusters starts one stand-in vcluster per tenant, together, each exporting its
// kubeconfig Secret into the tenant's host namespace as vcluster does. They carry no CRDs:
// raas applies those.
func startVClusters(t *testing.T, host *testenv.ControlPlane, prefix string, tenants []string) map[string]*testenv.VCluster {
	t.Helper()
	var mu sync.Mutex
	vcs := map[string]*testenv.VCluster{}
	var errs []error
	var wg sync.WaitGroup
	for _, name := range tenants {
		wg.Go(func() {
			vc, err := testenv.StartVCluster(context.Background(), host, prefix+name, schema.Release(name), testenv.DefaultVClusterOptions())
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			vcs[name] = vc
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, vc := range vcs {
			if err := vc.Stop(); err != nil {
				t.Errorf("stop %s: %v", vc.Release, err)
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return vcs
}

func tenantNames(res *render.Result) []string {
	var names []string
	for _, out := range res.Tenants {
		names = append(names, out.Tenant)
	}
	return names
}
