package testenv

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/raas-dev/raas/internal/volcano"
	"github.com/raas-dev/raas/schema"
)

// The keys by which kwok and the cluster know a simulated Node.
const (
	// KwokNodeAnnotation marks the Nodes kwok manages: StartHostControllers runs it with
	// --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake, so Nodes without
	// it are left alone.
	KwokNodeAnnotation = "kwok.x-k8s.io/node"
	kwokNodeValue      = "fake"
	// GPUProductLabel is where NVIDIA's GPU feature discovery puts a node's GPU model,
	// the label a pool's product names (schema.GPUPool.Product).
	GPUProductLabel = "nvidia.com/gpu.product"
	// NodePoolLabel names the pool or CPU group a simulated Node was made for, so that
	// tests can find a pool's Nodes even where the platform sets no node group label.
	NodePoolLabel = "twin.raas.dev/pool"
)

// NodeOptions shapes the simulated Nodes made from a platform config.
type NodeOptions struct {
	// GPUsPerNode is the GPU capacity of one GPU Node. A pool of schema.GPUPool.GPUs
	// GPUs gets ceil(GPUs/GPUsPerNode) Nodes, the last one holding the rest.
	GPUsPerNode int64
	// NodesPerUncountedPool is the number of Nodes of a pool that gives no GPU count.
	NodesPerUncountedPool int
	// NodesPerCPUGroup is the number of Nodes of each shared CPU node group
	// (scheduler.sharedNodeGroups), or of the one unlabelled CPU group made when the
	// platform declares none. The schema gives CPU groups no size.
	NodesPerCPUGroup int
	// GPUNode and CPUNode are the cpu, memory and pods capacity of each kind of Node.
	GPUNode, CPUNode corev1.ResourceList
	// NodeCIDR is where the Nodes' InternalIPs are taken from, in order. It must not
	// overlap the host's service CIDR (10.0.0.0/24) or the pod CIDR.
	NodeCIDR netip.Prefix
	// SystemNodes is the number of CPU Nodes for the platform's own workloads, labelled
	// SystemNodeLabel=true. The platform config does not name them: a tenants repo's
	// overlay does (examples/tenants/overlays/host/control-plane-nodes.yaml puts every
	// vcluster control plane there), so the default is none.
	SystemNodes int
}

// SystemNodeLabel marks the Nodes of NodeOptions.SystemNodes.
const SystemNodeLabel = "node-role.kubernetes.io/system"

// DefaultNodeOptions returns Nodes shaped like common cloud machines: GPU Nodes with 8
// GPUs, 96 CPUs and 768Gi (an 8-GPU server), two CPU Nodes of 32 CPUs and 128Gi per
// group, 110 pods each (the kubelet's default).
func DefaultNodeOptions() NodeOptions {
	return NodeOptions{
		GPUsPerNode:           8,
		NodesPerUncountedPool: 1,
		NodesPerCPUGroup:      2,
		GPUNode:               resources("96", "768Gi", "110"),
		CPUNode:               resources("32", "128Gi", "110"),
		NodeCIDR:              netip.MustParsePrefix("10.100.0.0/16"),
	}
}

func resources(cpu, memory, pods string) corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse(cpu),
		corev1.ResourceMemory:           resource.MustParse(memory),
		corev1.ResourcePods:             resource.MustParse(pods),
		corev1.ResourceEphemeralStorage: resource.MustParse("1Ti"),
	}
}

// Nodes returns the Nodes that stand for the platform's machines: for each GPU pool,
// Nodes with its node group label (volcano.sh/nodegroup-name), its product label, its
// taint and its GPUs as capacity of the platform's GPU resource; and for each shared CPU
// node group, Nodes with that group's label. A platform with no shared group gets one
// group of CPU Nodes without a node group label, where pods that ask for no GPU go (see
// schema.GPUPlatform.CPUPodsOnPools). platform must have been defaulted (schema.Load
// does it). Status carries capacity, allocatable and addresses, which the API server
// keeps on create; kwok fills in the rest.
func Nodes(platform *schema.Platform, opts NodeOptions) ([]*corev1.Node, error) {
	gpu := platform.Spec.GPU
	if gpu.Resource == "" {
		return nil, fmt.Errorf("platform %s: no GPU resource name: default the platform first", platform.Metadata.Name)
	}
	if opts.GPUsPerNode <= 0 {
		return nil, fmt.Errorf("nodes: GPUsPerNode %d must be positive", opts.GPUsPerNode)
	}
	var nodes []*corev1.Node
	addr := opts.NodeCIDR.Addr()
	add := func(n *corev1.Node) error {
		addr = addr.Next()
		if !opts.NodeCIDR.Contains(addr) {
			return fmt.Errorf("nodes: node CIDR %s is too small for %d nodes", opts.NodeCIDR, len(nodes)+1)
		}
		n.Status.Addresses = []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: addr.String()},
			{Type: corev1.NodeHostName, Address: n.Name},
		}
		nodes = append(nodes, n)
		return nil
	}

	for _, pool := range gpu.Pools {
		counts := gpuCounts(pool.GPUs, opts)
		for i, gpus := range counts {
			n := node(fmt.Sprintf("gpu-%s-%d", pool.Name, i), pool.Name, opts.GPUNode)
			n.Labels[volcano.LabelNodeGroupName] = pool.NodeGroup
			if pool.Product != "" {
				n.Labels[GPUProductLabel] = pool.Product
			}
			if t := pool.Taint; t != nil {
				n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: t.Key, Value: t.Value, Effect: corev1.TaintEffect(t.Effect)})
			}
			q := *resource.NewQuantity(gpus, resource.DecimalSI)
			n.Status.Capacity[corev1.ResourceName(gpu.Resource)] = q
			n.Status.Allocatable[corev1.ResourceName(gpu.Resource)] = q
			if err := add(n); err != nil {
				return nil, err
			}
		}
	}

	groups := platform.Spec.Scheduler.SharedNodeGroups
	unlabelled := len(groups) == 0
	if unlabelled {
		groups = []string{"cpu"}
	}
	for _, group := range groups {
		for i := range opts.NodesPerCPUGroup {
			n := node(fmt.Sprintf("cpu-%s-%d", group, i), group, opts.CPUNode)
			if !unlabelled {
				n.Labels[volcano.LabelNodeGroupName] = group
			}
			if err := add(n); err != nil {
				return nil, err
			}
		}
	}
	for i := range opts.SystemNodes {
		n := node(fmt.Sprintf("system-%d", i), "system", opts.CPUNode)
		n.Labels[SystemNodeLabel] = "true"
		if err := add(n); err != nil {
			return nil, err
		}
	}
	return nodes, nil
}

// gpuCounts splits a pool's GPUs into Nodes of at most GPUsPerNode.
func gpuCounts(total *int64, opts NodeOptions) []int64 {
	if total == nil {
		counts := make([]int64, opts.NodesPerUncountedPool)
		for i := range counts {
			counts[i] = opts.GPUsPerNode
		}
		return counts
	}
	var counts []int64
	for left := *total; left > 0; left -= opts.GPUsPerNode {
		counts = append(counts, min(left, opts.GPUsPerNode))
	}
	return counts
}

// node is a simulated Node with the labels a kubelet would give it.
func node(name, pool string, capacity corev1.ResourceList) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Labels: map[string]string{
				corev1.LabelHostname:   name,
				corev1.LabelOSStable:   "linux",
				corev1.LabelArchStable: "amd64",
				NodePoolLabel:          pool,
				"type":                 "kwok",
			},
			Annotations: map[string]string{KwokNodeAnnotation: kwokNodeValue},
		},
		Status: corev1.NodeStatus{
			Capacity:    capacity.DeepCopy(),
			Allocatable: capacity.DeepCopy(),
		},
	}
}
