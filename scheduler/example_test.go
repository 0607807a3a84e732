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
	fmt.Println("node groups:", s.NodeGroups)
	fmt.Println("enforceTolerations:", s.EnforceTolerations)
	// Output:
	// queue: tenant-ml-team-alpha
	// gang: true
	// GPUs per job: 8 [nvidia.com/gpu]
	// node groups: [h100 cpu]
	// enforceTolerations: [raas.dev/gpu-pool=h100:NoSchedule]
}
