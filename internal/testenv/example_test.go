package testenv_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
	dir, err := os.MkdirTemp("", "testenv-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := host.WriteKubeConfig(filepath.Join(dir, "host.kubeconfig")); err != nil {
		log.Fatal(err)
	}

	vc, err := testenv.StartVCluster(ctx, host, "team-a", "team-a", testenv.DefaultVClusterOptions())
	if err != nil {
		log.Fatal(err)
	}
	defer vc.Stop()
	var secret corev1.Secret
	key := client.ObjectKey{Namespace: vc.HostNamespace, Name: testenv.SecretName(vc.Release)}
	if err := host.Client.Get(ctx, key, &secret); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("stand-in vcluster (a second kube-apiserver, not a real vcluster): secret %s/%s with key %s\n",
		secret.Namespace, secret.Name, testenv.SecretKeyKubeConfig)
	fmt.Println("kubeconfig in the Secret:", len(secret.Data[testenv.SecretKeyKubeConfig]) > 0)
	// Output:
	// stand-in vcluster (a second kube-apiserver, not a real vcluster): secret team-a/vc-team-a with key config
	// kubeconfig in the Secret: true
}
