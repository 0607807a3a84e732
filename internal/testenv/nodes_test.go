package testenv_test

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/internal/volcano"
	"github.com/raas-dev/raas/schema"
)

func platformWith(pools []schema.GPUPool, shared ...string) *schema.Platform {
	p := &schema.Platform{Metadata: schema.ObjectMeta{Name: "test"}}
	p.Spec.GPU.Pools = pools
	p.Spec.Scheduler.SharedNodeGroups = shared
	p.Default()
	return p
}

// byPool sums the Nodes and their GPUs under each pool label.
func byPool(nodes []*corev1.Node, gpu corev1.ResourceName) map[string][2]int64 {
	out := map[string][2]int64{}
	for _, n := range nodes {
		q := n.Status.Capacity[gpu]
		got := out[n.Labels[testenv.NodePoolLabel]]
		out[n.Labels[testenv.NodePoolLabel]] = [2]int64{got[0] + 1, got[1] + q.Value()}
	}
	return out
}

func TestNodes(t *testing.T) {
	opts := testenv.DefaultNodeOptions()

	t.Run("splits each pool's GPUs into nodes of GPUsPerNode, the rest on the last", func(t *testing.T) {
		odd := opts.GPUsPerNode + opts.GPUsPerNode/2
		p := platformWith([]schema.GPUPool{{Name: "big", GPUs: new(odd)}, {Name: "unsized"}}, "cpu")
		nodes, err := testenv.Nodes(p, opts)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string][2]int64{
			"big":     {2, odd},
			"unsized": {int64(opts.NodesPerUncountedPool), int64(opts.NodesPerUncountedPool) * opts.GPUsPerNode},
			"cpu":     {int64(opts.NodesPerCPUGroup), 0},
		}
		if diff := cmp.Diff(want, byPool(nodes, corev1.ResourceName(p.Spec.GPU.Resource))); diff != "" {
			t.Errorf("nodes and GPUs by pool (-want +got):\n%s", diff)
		}
	})

	t.Run("labels, taints and annotates nodes as the scheduler and kwok expect", func(t *testing.T) {
		taint := &schema.Taint{Key: "raas.dev/gpu-pool", Value: "h100", Effect: "NoSchedule"}
		p := platformWith([]schema.GPUPool{{Name: "h100", NodeGroup: "hopper", Product: "H100", Taint: taint, GPUs: new(int64(1))}}, "cpu")
		nodes, err := testenv.Nodes(p, opts)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, n := range nodes {
			if n.Annotations[testenv.KwokNodeAnnotation] != "fake" {
				t.Errorf("node %s: annotations %v lack %s=fake", n.Name, n.Annotations, testenv.KwokNodeAnnotation)
			}
			if seen[n.Status.Addresses[0].Address] {
				t.Errorf("node %s: address %s used twice", n.Name, n.Status.Addresses[0].Address)
			}
			seen[n.Status.Addresses[0].Address] = true
			group := n.Labels[volcano.LabelNodeGroupName]
			switch n.Labels[testenv.NodePoolLabel] {
			case "h100":
				want := []corev1.Taint{{Key: taint.Key, Value: taint.Value, Effect: corev1.TaintEffectNoSchedule}}
				if diff := cmp.Diff(want, n.Spec.Taints); diff != "" {
					t.Errorf("node %s taints (-want +got):\n%s", n.Name, diff)
				}
				if group != "hopper" || n.Labels[testenv.GPUProductLabel] != "H100" {
					t.Errorf("node %s: labels %v, want group hopper and product H100", n.Name, n.Labels)
				}
			case "cpu":
				if group != "cpu" || len(n.Spec.Taints) != 0 {
					t.Errorf("CPU node %s: group %q, taints %v", n.Name, group, n.Spec.Taints)
				}
			}
		}
	})

	t.Run("gives a platform without shared groups unlabelled CPU nodes", func(t *testing.T) {
		nodes, err := testenv.Nodes(platformWith(nil), opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes) != opts.NodesPerCPUGroup {
			t.Fatalf("%d nodes, want %d", len(nodes), opts.NodesPerCPUGroup)
		}
		for _, n := range nodes {
			if g, ok := n.Labels[volcano.LabelNodeGroupName]; ok {
				t.Errorf("node %s has node group %q", n.Name, g)
			}
		}
	})

	t.Run("fails when the node CIDR is too small", func(t *testing.T) {
		small := opts
		small.NodeCIDR = netip.MustParsePrefix("10.100.0.0/31")
		if _, err := testenv.Nodes(platformWith(nil, "cpu", "more"), small); err == nil {
			t.Error("no error for 4 nodes in a /31")
		}
	})
}

func TestStartHostControllersWithoutBinaries(t *testing.T) {
	opts := testenv.DefaultHostControllersOptions()
	opts.BinDir = t.TempDir()
	// No API server is reached: the binaries are checked first.
	_, err := testenv.StartHostControllers(t.Context(), &testenv.ControlPlane{}, examplePlatform(t), opts)
	if !errors.Is(err, testenv.ErrMissingBinaries) {
		t.Fatalf("err = %v, want ErrMissingBinaries", err)
	}
}
