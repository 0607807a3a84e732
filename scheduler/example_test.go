package scheduler_test

import (
	"fmt"
	"os"

	"github.com/raas-dev/raas/scheduler"
	"github.com/raas-dev/raas/schema"
)

// The numbers a tenant's ResourceQuota, Queue, vcluster values and KubeRay flags share.
func ExampleForTenant() {
	repo, err := schema.Load(os.DirFS("../examples"))
	if err != nil {
		panic(err)
	}
	s := scheduler.ForTenant(repo.Platform, repo.Tenant("ml-team-alpha"))
	fmt.Println("queue:", s.QueueName)
	fmt.Println("gang:", s.Gang)
	fmt.Println("GPUs per job:", s.MaxGPUsPerJob, s.GPUResources)
	tol := s.Tolerations[0]
	fmt.Printf("pools: %s, tolerating %s=%s:%s\n", s.Pools[0].Name, tol.Key, tol.Value, tol.Effect)
	fmt.Println("placed by MutatingAdmissionPolicy:", s.MutatingAdmission)
	// Output:
	// queue: tenant-ml-team-alpha
	// gang: true
	// GPUs per job: 8 [nvidia.com/gpu]
	// pools: h100, tolerating raas.dev/gpu-pool=h100:NoSchedule
	// placed by MutatingAdmissionPolicy: true
}
