package bridge_test

import (
	"context"
	"log"

	"k8s.io/client-go/rest"

	"github.com/raas-dev/raas/reconcile/bridge"
)

// A reconcile loop keeps one bridge per Ready tenant: after each pass it hands the
// Manager the tenants that are Ready, and reports each bridge's Status with the tenant.
func ExampleManager() {
	ctx := context.Background()
	host := &rest.Config{Host: "https://host.example:6443"}
	m, err := bridge.NewManager(host, bridge.DefaultOptions())
	if err != nil {
		log.Fatal(err)
	}
	defer m.Stop()

	ready := []bridge.Target{{
		Tenant:        "ml-team-alpha",
		HostNamespace: "tenant-ml-team-alpha",
		Queue:         "tenant-ml-team-alpha",
		Release:       "ml-team-alpha",
	}}
	if err := m.Sync(ctx, ready); err != nil {
		log.Print(err) // the tenants listed in err have no bridge; the others run
	}
	for _, s := range m.Status() {
		log.Printf("tenant %s: %d PodGroups mirrored, %d refused", s.Tenant, s.Mirrored, len(s.Refused))
	}
}
