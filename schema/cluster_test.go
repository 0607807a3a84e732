package schema_test

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/raas-dev/raas/schema"
)

// fleetYAML is a raas.yaml with three clusters: eu-1, where raas runs, with the h100
// pool; us-1 with both pools; and cpu-1 with none. Every tenant defaults to the h100
// pool.
const fleetYAML = `apiVersion: raas.dev/v1alpha1
kind: Platform
metadata: {name: fleet}
spec:
  hostKubernetes: v1.37.2
  versions:
    vcluster: [0.25.0]
    kubernetes: [v1.32.1]
    kuberay: [1.5.0]
  defaults:
    scheduling:
      gpu: {pools: [h100]}
  gpu:
    pools:
      - {name: h100, product: NVIDIA-H100-80GB-HBM3}
      - {name: a10, product: NVIDIA-A10G}
  clusters:
    - name: eu-1
      capacity: {cpu: "64", memory: 256Gi, gpu: 8}
      pools: [h100]
    - name: us-1
      kubeconfig: {name: us-1-kubeconfig}
      capacity: {cpu: "128", memory: 512Gi, gpu: 16}
      pools: [h100, a10]
    - name: cpu-1
      kubeconfig: {name: cpu-1-kubeconfig, key: config}
      capacity: {cpu: "256", memory: 1Ti, gpu: 0}
`

// loadFleet loads fleetYAML with tenants, file name to content.
func loadFleet(t *testing.T, tenants map[string]string) *schema.Repo {
	t.Helper()
	fsys := fstest.MapFS{schema.PlatformFile: {Data: []byte(fleetYAML)}}
	for name, data := range tenants {
		fsys[schema.TenantsDir+"/"+name+".yaml"] = &fstest.MapFile{Data: []byte(data)}
	}
	repo, err := schema.Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if !repo.Usable() {
		t.Fatalf("the fleet's raas.yaml does not validate:\n%v", repo.Problems)
	}
	return repo
}

// tenantYAML is a tenant file called name whose spec holds the lines given, indented by
// two spaces, from line 6 on.
func tenantYAML(name string, spec ...string) string {
	return "apiVersion: raas.dev/v1alpha1\nkind: Tenant\nmetadata: {name: " + name + "}\nspec:\n" +
		"  owners: [a@example.com]\n  " + strings.Join(spec, "\n  ") + "\n"
}

// sandboxYAML is a sandbox called name of parent, whose spec holds the lines given from
// line 7 on.
func sandboxYAML(name, parent string, spec ...string) string {
	return "apiVersion: raas.dev/v1alpha1\nkind: Tenant\nmetadata: {name: " + name + "}\nspec:\n" +
		"  sandbox: {of: " + parent + ", expires: \"2099-12-31\"}\n  quota: {cpu: \"1\", memory: 1Gi}\n  " +
		strings.Join(spec, "\n  ") + "\n"
}

func TestDecodeClusters(t *testing.T) {
	p, problems := schema.DecodePlatform(schema.PlatformFile, []byte(fleetYAML))
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	p.Default()
	q := func(s string) *resource.Quantity { v := resource.MustParse(s); return &v }
	want := []schema.Cluster{
		{Name: "eu-1", Capacity: schema.Resources{CPU: q("64"), Memory: q("256Gi"), GPU: q("8")}, Pools: []string{"h100"}},
		{
			Name: "us-1", Kubeconfig: &schema.SecretKeyRef{Name: "us-1-kubeconfig", Key: schema.DefaultKubeconfigKey},
			Capacity: schema.Resources{CPU: q("128"), Memory: q("512Gi"), GPU: q("16")}, Pools: []string{"h100", "a10"},
		},
		{
			Name: "cpu-1", Kubeconfig: &schema.SecretKeyRef{Name: "cpu-1-kubeconfig", Key: "config"},
			Capacity: schema.Resources{CPU: q("256"), Memory: q("1Ti"), GPU: q("0")},
		},
	}
	equalQuantity := cmp.Comparer(func(a, b resource.Quantity) bool { return a.Cmp(b) == 0 })
	if diff := cmp.Diff(want, p.Spec.Clusters, equalQuantity); diff != "" {
		t.Errorf("clusters (-want +got):\n%s", diff)
	}
	if got := p.Validate(); len(got) > 0 {
		t.Errorf("the fleet does not validate:\n%v", got)
	}

	t.Run("refuses an unknown field of a cluster, with its position", func(t *testing.T) {
		data := "spec:\n  clusters:\n    - name: eu-1\n      kubeconfg: {name: eu-1}\n"
		_, problems := schema.DecodePlatform(schema.PlatformFile, []byte(data))
		want := `raas.yaml:4:7: spec.clusters[0].kubeconfg: unknown field "kubeconfg"; did you mean "kubeconfig"?`
		if len(problems) != 1 || problems[0].Error() != want {
			t.Errorf("problems = %v, want %s", problems, want)
		}
	})
}

// TestTenantCluster loads the fleet with each case's tenants, and checks the errors, all
// of which are in the case's tenant file x.yaml.
func TestTenantCluster(t *testing.T) {
	parents := map[string]string{
		"pinned":  tenantYAML("pinned", `quota: {cpu: "8", memory: 32Gi}`, "cluster: us-1"),
		"placed":  tenantYAML("placed", `quota: {cpu: "8", memory: 32Gi}`),
		"h100-eu": tenantYAML("h100-eu", `quota: {cpu: "8", memory: 32Gi, gpu: 2}`, "cluster: eu-1"),
	}
	for _, c := range []struct {
		name string
		x    string
		want []string // errors in tenants/x.yaml, in order
	}{
		{
			name: "accepts a tenant on a declared cluster with its pool",
			x:    tenantYAML("x", `quota: {cpu: "8", memory: 32Gi, gpu: 2}`, "cluster: eu-1"),
		},
		{
			name: "refuses a cluster the platform does not declare",
			x:    tenantYAML("x", `quota: {cpu: "8", memory: 32Gi}`, "cluster: mars-1"),
			want: []string{`tenants/x.yaml:7:12: spec.cluster: "mars-1" is not one of the platform's clusters: eu-1, us-1, cpu-1`},
		},
		{
			name: "refuses a cluster without any of the tenant's pools",
			x: tenantYAML("x", `quota: {cpu: "8", memory: 32Gi, gpu: 2}`, "cluster: eu-1",
				"scheduling: {gpu: {pools: [a10]}}"),
			want: []string{`tenants/x.yaml:7:12: spec.cluster: cluster "eu-1" has none of the GPU pools the tenant may use (a10); its pools: h100`},
		},
		{
			name: "resolves products to pools",
			x: tenantYAML("x", `quota: {cpu: "8", memory: 32Gi, gpu: 2}`, "cluster: cpu-1",
				"scheduling: {gpu: {products: [NVIDIA-A10G]}}"),
			want: []string{`tenants/x.yaml:7:12: spec.cluster: cluster "cpu-1" has none of the GPU pools the tenant may use (a10); its pools: none`},
		},
		{
			name: "accepts a tenant without GPUs on a cluster without its default pool",
			x:    tenantYAML("x", `quota: {cpu: "8", memory: 32Gi}`, "cluster: cpu-1"),
		},
		{
			name: "accepts a sandbox that repeats its parent's cluster",
			x:    sandboxYAML("x", "pinned", "cluster: us-1"),
		},
		{
			name: "refuses a sandbox that names another cluster than its parent's",
			x:    sandboxYAML("x", "pinned", "cluster: eu-1"),
			want: []string{`tenants/x.yaml:7:12: spec.cluster: a sandbox runs on its parent's cluster; pinned runs on "us-1", not "eu-1"`},
		},
		{
			name: "refuses a sandbox that names a cluster when raas places its parent",
			x:    sandboxYAML("x", "placed", "cluster: eu-1"),
			want: []string{`tenants/x.yaml:7:12: spec.cluster: a sandbox runs on its parent's cluster, and placed names none (raas places it); leave spec.cluster out`},
		},
		{
			name: "checks the pools of a sandbox on the cluster it inherits",
			x: "apiVersion: raas.dev/v1alpha1\nkind: Tenant\nmetadata: {name: x}\nspec:\n" +
				"  sandbox: {of: h100-eu, expires: \"2099-12-31\"}\n" +
				"  quota: {cpu: \"1\", memory: 1Gi, gpu: 1}\n" +
				"  scheduling: {gpu: {pools: [a10]}}\n",
			// The sandbox does not set spec.cluster, so the error is at spec.
			want: []string{`tenants/x.yaml:4:1: spec.cluster: cluster "eu-1" has none of the GPU pools the tenant may use (a10); its pools: h100`},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			tenants := map[string]string{"x": c.x}
			for k, v := range parents {
				tenants[k] = v
			}
			repo := loadFleet(t, tenants)
			var got []string
			for _, p := range repo.Problems {
				got = append(got, p.Error())
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestClusterOverCommit(t *testing.T) {
	repo := loadFleet(t, map[string]string{
		"a": tenantYAML("a", `quota: {cpu: "8", memory: 32Gi, gpu: 6}`, "cluster: eu-1", "scheduling: {guarantee: {gpu: 6}}"),
		"b": tenantYAML("b", `quota: {cpu: "8", memory: 32Gi, gpu: 4}`, "cluster: eu-1", "scheduling: {guarantee: {gpu: 4}}"),
		// us-1 holds its 16 GPUs, exactly.
		"c": tenantYAML("c", `quota: {cpu: "8", memory: 32Gi, gpu: 16}`, "cluster: us-1", "scheduling: {guarantee: {gpu: 16}}"),
	})
	want := []string{`raas.yaml:19:49: spec.clusters[0].capacity.gpu: cluster "eu-1" is over-committed: tenants guarantee 10 gpu in total but it has 8 (a 6, b 4)`}
	var got []string
	for _, p := range repo.Problems.Errors() {
		got = append(got, p.Error())
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
	if repo.OK() {
		t.Error("the repository is OK with a cluster over-committed")
	}
	if len(repo.Tenants) != 3 {
		t.Errorf("%d valid tenants, want all 3: an over-commit is the platform's problem", len(repo.Tenants))
	}
}
