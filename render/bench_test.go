package render_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raas-dev/raas/render"
)

// repoOfCopies is the examples repository with n copies of ml-team-alpha, the GPU
// tenant, and no other tenants. The platform's capacity is raised to fit them.
func repoOfCopies(b *testing.B, n int) map[string]string {
	b.Helper()
	alpha, err := os.ReadFile(filepath.Join(examples, "tenants/ml-team-alpha.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	platform, err := os.ReadFile(filepath.Join(examples, "raas.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	files := map[string]string{
		"tenants/ml-team-alpha.yaml": "",
		"tenants/data-sandbox.yaml":  "",
		"tenants/vision-team.yaml":   "",
		"raas.yaml": strings.NewReplacer(`cpu: "512"`, `cpu: "100000"`, "memory: 2Ti", "memory: 1000Ti",
			"gpu: 32", "gpu: 10000").Replace(string(platform)),
	}
	for i := range n {
		name := fmt.Sprintf("team-%03d", i)
		files["tenants/"+name+".yaml"] = strings.Replace(string(alpha), "name: ml-team-alpha", "name: "+name, 1)
	}
	return files
}

func benchmarkRepo(b *testing.B, tenants int) {
	fsys := repoWith(&testing.T{}, repoOfCopies(b, tenants))
	opts := testOptions(b)
	b.ReportAllocs()
	for b.Loop() {
		res, err := render.Repo(fsys, "", opts)
		if err != nil {
			b.Fatal(err)
		}
		if !res.OK() || len(res.Tenants) != tenants {
			b.Fatalf("rendered %d of %d: %v %v", len(res.Tenants), tenants, res.Repo.Problems.Errors(), res.Failed)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N)/float64(tenants), "ms/tenant")
}

// BenchmarkRenderRepo renders a repository from scratch: loading and validating it,
// loading the chart and the KubeRay base, and rendering every tenant. Compare the
// ms/tenant of the two sizes: the KubeRay base is built once per version, so the larger
// repository costs less per tenant.
func BenchmarkRenderRepo(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("tenants=%d", n), func(b *testing.B) { benchmarkRepo(b, n) })
	}
}
