package benchrepo

import (
	"fmt"
	"strings"
)

// The fleet's clusters: HomeCluster is the one raas runs in (no kubeconfig), and
// RemoteCluster is reached through the kubeconfig in the Secret RemoteSecret (key
// kubeconfig) in raas's namespace on the home cluster.
const (
	HomeCluster   = "a"
	RemoteCluster = "b"
	RemoteSecret  = "cluster-b"
)

// FleetFiles is the repository of n tenants (Files) on a fleet of two host clusters,
// HomeCluster with the H100 pool and RemoteCluster with the A10 pool. The tenants on
// H100 (GangH100, GPUNoProfile) go to the home cluster and the A10 tenants to the other
// by pool, and the CPU-only tenants, which may run anywhere, go by room: the remote
// cluster's GPU capacity leaves it the most room whatever is already placed. Half the
// tenants run on each, and where a tenant goes does not depend on the order tenants are
// placed in, as it would if a pool spanned both clusters: replicas that share the
// tenants place their shares concurrently, and each sees the others' as already placed.
func FleetFiles(n int) map[string]string {
	files := Files(n)
	files["raas.yaml"] = FleetPlatform(n)
	return files
}

// WriteFleet writes the repository of n tenants on two clusters (FleetFiles) under dir.
func WriteFleet(dir string, n int) error { return write(dir, FleetFiles(n)) }

// FleetPlatform is raas.yaml for a repository of n tenants on two clusters: Platform(n)
// with spec.clusters. The home cluster's GPUs fit its H100 tenants' guarantees (at
// most 5 GPUs for every 4 tenants) and no more than 2(n+1); the remote cluster's,
// 8(n+1), are never fewer than the home cluster's room plus its own A10 guarantees.
func FleetPlatform(n int) string {
	clusters := fmt.Sprintf(fleetClusters,
		HomeCluster, 32*(n+1), 128*(n+1), 2*(n+1),
		RemoteCluster, RemoteSecret, 32*(n+1), 128*(n+1), 8*(n+1))
	return strings.Replace(Platform(n), "  capacity:\n", clusters+"  capacity:\n", 1)
}

const fleetClusters = `  clusters:
    - name: %s
      capacity: {cpu: "%d", memory: %dGi, gpu: %d}
      pools: [h100]
    - name: %s
      kubeconfig: {name: %s, key: kubeconfig}
      capacity: {cpu: "%d", memory: %dGi, gpu: %d}
      pools: [a10]
`
