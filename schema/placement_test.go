package schema_test

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/raas-dev/raas/schema"
)

// fleet is a platform of three clusters: eu-1, where raas runs, with 8 H100s; us-1 with
// 16 GPUs of both pools; and cpu-1 with CPU nodes only.
func fleet() *schema.Platform {
	q := func(s string) *resource.Quantity { v := resource.MustParse(s); return &v }
	return &schema.Platform{Spec: schema.PlatformSpec{
		GPU: schema.GPUPlatform{Pools: []schema.GPUPool{
			{Name: "h100", Product: "NVIDIA-H100-80GB-HBM3"},
			{Name: "a10", Product: "NVIDIA-A10G"},
		}},
		Clusters: []schema.Cluster{
			{Name: "eu-1", Capacity: schema.Resources{CPU: q("64"), Memory: q("256Gi"), GPU: q("8")}, Pools: []string{"h100"}},
			{
				Name: "us-1", Kubeconfig: &schema.SecretKeyRef{Name: "us-1"},
				Capacity: schema.Resources{CPU: q("128"), Memory: q("512Gi"), GPU: q("16")}, Pools: []string{"h100", "a10"},
			},
			{Name: "cpu-1", Kubeconfig: &schema.SecretKeyRef{Name: "cpu-1"}, Capacity: schema.Resources{CPU: q("256"), Memory: q("1Ti"), GPU: q("0")}},
		},
	}}
}

// tenant is a valid tenant called name, changed by each option.
func tenant(name string, opts ...func(*schema.Tenant)) *schema.Tenant {
	t := &schema.Tenant{Metadata: schema.ObjectMeta{Name: name}}
	t.Spec.Quota.GPU = resource.NewQuantity(0, resource.DecimalSI)
	for _, o := range opts {
		o(t)
	}
	return t
}

// gpus gives the tenant n GPUs, all guaranteed, on pools.
func gpus(n int64, pools ...string) func(*schema.Tenant) {
	return func(t *schema.Tenant) {
		t.Spec.Quota.GPU = resource.NewQuantity(n, resource.DecimalSI)
		t.Spec.Scheduling.Guarantee.GPU = resource.NewQuantity(n, resource.DecimalSI)
		t.Spec.Scheduling.GPU.Pools = pools
	}
}

// products lets the tenant use the pools of products.
func products(products ...string) func(*schema.Tenant) {
	return func(t *schema.Tenant) { t.Spec.Scheduling.GPU.Products = products }
}

// cpus guarantees the tenant n CPUs.
func cpus(n int64) func(*schema.Tenant) {
	return func(t *schema.Tenant) {
		t.Spec.Scheduling.Guarantee.CPU = resource.NewQuantity(n, resource.DecimalSI)
	}
}

func on(cluster string) func(*schema.Tenant) {
	return func(t *schema.Tenant) { t.Spec.Cluster = cluster }
}

func sandboxOf(parent string) func(*schema.Tenant) {
	return func(t *schema.Tenant) { t.Spec.Sandbox = &schema.Sandbox{Of: parent, Expires: "2099-12-31"} }
}

func TestPlace(t *testing.T) {
	for _, c := range []struct {
		name     string
		platform *schema.Platform
		tenants  []*schema.Tenant
		where    map[string]string
		want     schema.Placement
	}{
		{
			name:    "puts a tenant on its spec.cluster though another has more room",
			tenants: []*schema.Tenant{tenant("a", gpus(2, "h100"), on("eu-1"))},
			want:    schema.Placement{"a": "eu-1"},
		},
		{
			name:    "puts a new tenant where there is most room for its GPUs",
			tenants: []*schema.Tenant{tenant("a", gpus(2, "h100"))},
			want:    schema.Placement{"a": "us-1"},
		},
		{
			name:    "keeps a tenant where it runs, though another cluster has more room",
			tenants: []*schema.Tenant{tenant("a", gpus(2, "h100"))},
			where:   map[string]string{"a": "eu-1"},
			want:    schema.Placement{"a": "eu-1"},
		},
		{
			name:    "moves a tenant whose spec.cluster names another cluster than the one it runs on",
			tenants: []*schema.Tenant{tenant("a", gpus(2, "h100"), on("eu-1"))},
			where:   map[string]string{"a": "us-1"},
			want:    schema.Placement{"a": "eu-1"},
		},
		{
			name:    "places anew a tenant whose cluster is no longer declared",
			tenants: []*schema.Tenant{tenant("a", gpus(2, "h100"))},
			where:   map[string]string{"a": "ap-1"},
			want:    schema.Placement{"a": "us-1"},
		},
		{
			name: "puts a tenant on a cluster with its GPU pool though another has more room",
			tenants: []*schema.Tenant{
				tenant("big", gpus(14, "h100"), on("us-1")),
				tenant("a", gpus(2, "a10")),
			},
			want: schema.Placement{"big": "us-1", "a": "us-1"},
		},
		{
			name: "resolves GPU products to their pools",
			tenants: []*schema.Tenant{
				tenant("big", gpus(14, "h100"), on("us-1")),
				tenant("a", gpus(2), products("NVIDIA-A10G")),
			},
			want: schema.Placement{"big": "us-1", "a": "us-1"},
		},
		{
			name: "counts what is already placed: the most room left wins",
			tenants: []*schema.Tenant{
				tenant("big", gpus(12, "h100"), on("us-1")),
				tenant("a", gpus(2, "h100")),
			},
			want: schema.Placement{"big": "us-1", "a": "eu-1"},
		},
		{
			name: "prefers a cluster where the guarantee fits over one with more room left in another resource",
			// eu-1 has more GPUs left (8 against 6), but too few CPUs for a.
			tenants: []*schema.Tenant{
				tenant("big", gpus(10, "h100"), on("us-1")),
				tenant("a", gpus(2, "h100"), cpus(70)),
			},
			want: schema.Placement{"big": "us-1", "a": "us-1"},
		},
		{
			name: "places tenants with a cluster first, then the others in name order",
			tenants: []*schema.Tenant{
				tenant("a", gpus(4, "h100")),
				tenant("b", gpus(4, "h100")),
				tenant("z", gpus(10, "h100"), on("us-1")),
			},
			// z takes 10 of us-1's 16 first; a takes eu-1 (8 left against 6), then b
			// takes us-1 (6 left against 4). Placed in name order alone, a and b would
			// both have gone to us-1.
			want: schema.Placement{"z": "us-1", "a": "eu-1", "b": "us-1"},
		},
		{
			name:    "puts a tenant that guarantees CPU alone where most CPU is left",
			tenants: []*schema.Tenant{tenant("etl", cpus(32))},
			want:    schema.Placement{"etl": "cpu-1"},
		},
		{
			name: "keeps a sandbox on its parent's cluster, wherever it says it runs",
			tenants: []*schema.Tenant{
				tenant("p", gpus(2, "h100")),
				tenant("p-next", cpus(4), sandboxOf("p")),
			},
			where: map[string]string{"p": "eu-1", "p-next": "us-1"},
			want:  schema.Placement{"p": "eu-1", "p-next": "eu-1"},
		},
		{
			name: "puts a new sandbox where its new parent goes",
			tenants: []*schema.Tenant{
				tenant("big", gpus(14, "h100"), on("us-1")),
				tenant("p", gpus(2, "h100")),
				// On its own, it would go where most CPU is left: cpu-1.
				tenant("a-next", cpus(4), sandboxOf("p")),
			},
			want: schema.Placement{"big": "us-1", "p": "eu-1", "a-next": "eu-1"},
		},
		{
			// Validation refuses both; Place still places every tenant it is given.
			name: "places a sandbox whose parent is missing or a sandbox too as a tenant of its own",
			tenants: []*schema.Tenant{
				tenant("orphan", cpus(4), sandboxOf("gone")),
				tenant("p", cpus(4), on("eu-1"), sandboxOf("q")),
				tenant("q", cpus(4), sandboxOf("p")),
			},
			want: schema.Placement{"orphan": "cpu-1", "p": "eu-1", "q": "cpu-1"},
		},
		{
			name: "breaks ties by declaration order",
			platform: &schema.Platform{Spec: schema.PlatformSpec{Clusters: []schema.Cluster{
				{Name: "b-cluster"}, {Name: "a-cluster", Kubeconfig: &schema.SecretKeyRef{Name: "a"}},
			}}},
			tenants: []*schema.Tenant{tenant("a"), tenant("b")},
			want:    schema.Placement{"a": "b-cluster", "b": "b-cluster"},
		},
		{
			name:     "places nothing when the platform declares no clusters",
			platform: &schema.Platform{},
			tenants:  []*schema.Tenant{tenant("a")},
			want:     nil,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := c.platform
			if p == nil {
				p = fleet()
			}
			repo := &schema.Repo{Platform: p, Tenants: c.tenants}
			got := schema.Place(repo, c.where)
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("placement (-want +got):\n%s", diff)
			}
			// The same repo and where give the same placement, whatever the order of
			// the tenants.
			again := &schema.Repo{Platform: p, Tenants: slices.Clone(c.tenants)}
			slices.Reverse(again.Tenants)
			if diff := cmp.Diff(got, schema.Place(again, c.where)); diff != "" {
				t.Errorf("placement of the tenants in reverse order (-first +again):\n%s", diff)
			}
		})
	}
}

func TestPlaceIsDeterministic(t *testing.T) {
	var tenants []*schema.Tenant
	for _, name := range []string{"k", "c", "x", "a", "m", "q", "e", "t", "b", "h"} {
		tenants = append(tenants, tenant(name, gpus(2, "h100")))
	}
	repo := &schema.Repo{Platform: fleet(), Tenants: tenants}
	first := schema.Place(repo, nil)
	if len(first) != len(tenants) {
		t.Fatalf("placed %d tenants of %d: %v", len(first), len(tenants), first)
	}
	for range 20 {
		if diff := cmp.Diff(first, schema.Place(repo, nil)); diff != "" {
			t.Fatalf("a second placement differs (-first +second):\n%s", diff)
		}
	}
}

func TestClusterLookup(t *testing.T) {
	p := fleet()
	if got, want := p.ClusterNames(), []string{"eu-1", "us-1", "cpu-1"}; !slices.Equal(got, want) {
		t.Errorf("ClusterNames() = %v, want %v", got, want)
	}
	if c := p.Cluster("us-1"); c == nil || c.Kubeconfig == nil || c.Kubeconfig.Name != "us-1" {
		t.Errorf("Cluster(us-1) = %+v, want the declared us-1", c)
	}
	if c := p.Cluster("ap-1"); c != nil {
		t.Errorf("Cluster(ap-1) = %+v, want nil", c)
	}
}
