package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/api/v1alpha1"
	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/internal/vclusterconfig"
	"github.com/raas-dev/raas/schema"
)

// sampleTenant is the CPU-only example tenant, where the sample RayCluster goes.
const sampleTenant = "data-sandbox"

// nodeSummary counts the twin's Nodes by pool.
func nodeSummary(twin *testenv.Twin) string {
	pools := map[string]int{}
	for _, n := range twin.Controllers.Nodes {
		pools[n.Labels[testenv.NodePoolLabel]]++
	}
	names := make([]string, 0, len(pools))
	for name := range pools {
		names = append(names, name)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, name := range names {
		parts[i] = fmt.Sprintf("%d %s", pools[name], name)
	}
	return strings.Join(parts, ", ")
}

// sampleRayCluster creates a one-head RayCluster inside tenant's vcluster, reached as
// raas reaches it from outside the cluster (port-forward), and waits until KubeRay says
// it is ready.
func sampleRayCluster(ctx context.Context, twin *testenv.Twin, namespace, tenant string) error {
	step("A sample RayCluster in %s's vcluster", tenant)
	hostKube, err := kubernetes.NewForConfig(twin.Host.Config)
	if err != nil {
		return err
	}
	var virtual client.Client
	err = wait.PollUntilContextTimeout(ctx, 2*time.Second, 10*time.Minute, true, func(ctx context.Context) (bool, error) {
		kc, err := vclusterconfig.Read(ctx, hostKube.CoreV1(), namespace, schema.Release(tenant))
		if err != nil {
			return false, nil
		}
		cfg, err := kc.RESTConfigVia(twin.Host.Config)
		if err != nil {
			return false, err
		}
		c, err := client.New(cfg, client.Options{})
		if err != nil {
			return false, nil // the RayCluster CRD is not there yet
		}
		rc := sampleCluster()
		if err := c.Create(ctx, rc); err != nil && !strings.Contains(err.Error(), "already exists") {
			return false, nil
		}
		virtual = c
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	fmt.Println("   created RayCluster default/sample; waiting for KubeRay to report it ready")
	var state string
	err = wait.PollUntilContextTimeout(ctx, 2*time.Second, 10*time.Minute, true, func(ctx context.Context) (bool, error) {
		got := sampleCluster()
		if err := virtual.Get(ctx, client.ObjectKeyFromObject(got), got); err != nil {
			return false, nil
		}
		state, _, _ = unstructured.NestedString(got.Object, "status", "state")
		return state == "ready", nil
	})
	if err != nil {
		return fmt.Errorf("RayCluster default/sample is %q: %w", state, err)
	}
	fmt.Println("   RayCluster default/sample is ready (its head pod is Ready on a kwok node; Ray itself does not run)")
	return nil
}

func sampleCluster() *unstructured.Unstructured { return testenv.SampleRayCluster("default", "sample") }

// waitTenantsReady waits until every Tenant object says Ready, as raas status would.
func waitTenantsReady(ctx context.Context, twin *testenv.Twin, timeout time.Duration) error {
	step("Waiting for every tenant to be Ready (each vcluster comes up through its own syncer)")
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	c, err := client.New(twin.Host.Config, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	var waiting []string
	err = wait.PollUntilContextTimeout(ctx, 3*time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		var tenants v1alpha1.TenantList
		if err := c.List(ctx, &tenants); err != nil {
			return false, nil
		}
		waiting = waiting[:0]
		for _, t := range tenants.Items {
			if t.Status.Phase != v1alpha1.Ready {
				waiting = append(waiting, t.Name+" ("+string(t.Status.Phase)+")")
			}
		}
		return len(tenants.Items) > 0 && len(waiting) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("tenants not Ready after %s: %s", timeout, strings.Join(waiting, ", "))
	}
	return nil
}
