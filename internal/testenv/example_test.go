package testenv_test

import (
	"context"
	"fmt"
	"log"

	"github.com/raas-dev/raas/internal/testenv"
)

// A long-running program such as `make run` starts a host and a stand-in vcluster
// without a *testing.T.
func ExampleStartControlPlane() {
	ctx := context.Background()
	host, err := testenv.StartControlPlane(ctx, testenv.DefaultControlPlaneOptions())
	if err != nil {
		log.Fatal(err)
	}
	defer host.Stop()
	if err := host.WriteKubeConfig(".run/host.kubeconfig"); err != nil {
		log.Fatal(err)
	}

	vc, err := testenv.StartVCluster(ctx, host, "team-a", "team-a", testenv.DefaultVClusterOptions())
	if err != nil {
		log.Fatal(err)
	}
	defer vc.Stop()
	fmt.Printf("stand-in vcluster (a second kube-apiserver, not a real vcluster): secret %s/%s\n",
		vc.HostNamespace, testenv.SecretName(vc.Release))
}
