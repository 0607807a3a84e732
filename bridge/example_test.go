package bridge_test

import (
	"context"
	"fmt"
	"log"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	schedulingv1beta1 "volcano.sh/apis/pkg/apis/scheduling/v1beta1"
	"volcano.sh/apis/pkg/client/clientset/versioned"

	"github.com/raas-dev/raas/bridge"
	"github.com/raas-dev/raas/internal/testenv"
)

// A reconcile loop keeps one bridge per Ready tenant: after each pass it hands the
// Manager the tenants that are Ready, and reports each bridge's Status with the tenant.
// Here a host and a stand-in vcluster run for real; KubeRay's PodGroup inside is
// mirrored to the tenant's host namespace.
func ExampleManager() {
	ctx := context.Background()
	host, err := testenv.StartControlPlane(ctx, testenv.DefaultControlPlaneOptions())
	if err != nil {
		log.Fatal(err)
	}
	defer host.Stop()
	vcOpts := testenv.DefaultVClusterOptions()
	vcOpts.ControlPlane.CRDDirs = []string{testenv.VolcanoCRDs}
	vc, err := testenv.StartVCluster(ctx, host, "tenant-ml-team-alpha", "ml-team-alpha", vcOpts)
	if err != nil {
		log.Fatal(err)
	}
	defer vc.Stop()

	m, err := bridge.NewManager(host.Config, bridge.DefaultOptions())
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
		log.Fatal(err) // the tenants listed in err have no bridge; the others run
	}

	// What KubeRay creates inside the vcluster for a RayCluster "train".
	inside, err := versioned.NewForConfig(vc.Config)
	if err != nil {
		log.Fatal(err)
	}
	pg := &schedulingv1beta1.PodGroup{
		ObjectMeta: metav1.ObjectMeta{Name: "ray-train-pg", Namespace: "default"},
		Spec:       schedulingv1beta1.PodGroupSpec{MinMember: 3, Queue: "somewhere-else"},
	}
	if _, err := inside.SchedulingV1beta1().PodGroups("default").Create(ctx, pg, metav1.CreateOptions{}); err != nil {
		log.Fatal(err)
	}
	onHost, err := versioned.NewForConfig(host.Config)
	if err != nil {
		log.Fatal(err)
	}
	var copied *schedulingv1beta1.PodGroup
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		copied, err = onHost.SchedulingV1beta1().PodGroups("tenant-ml-team-alpha").Get(ctx, "ray-train-pg", metav1.GetOptions{})
		if err == nil {
			break
		}
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("host copy %s/%s: queue %s, minMember %d\n", copied.Namespace, copied.Name, copied.Spec.Queue, copied.Spec.MinMember)
	// The bridge counts a PodGroup as mirrored once it has seen the copy in place.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if st := m.Status(); len(st) == 1 && st[0].Mirrored == 1 {
			break
		}
	}
	for _, s := range m.Status() {
		fmt.Printf("tenant %s: %d PodGroups mirrored, %d refused\n", s.Tenant, s.Mirrored, len(s.Refused))
	}
	// Output:
	// host copy tenant-ml-team-alpha/ray-train-pg: queue tenant-ml-team-alpha, minMember 3
	// tenant ml-team-alpha: 1 PodGroups mirrored, 0 refused
}
