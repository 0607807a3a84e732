package schema_test

import (
	"os"
	"path"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/raas-dev/raas/internal/golden"
	"github.com/raas-dev/raas/schema"
)

// TestGoldenProfiles loads the examples with each case's tenants added, on a fixed day,
// and compares the problems and the expanded tenants with the case's want.yaml.
func TestGoldenProfiles(t *testing.T) {
	day := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	const dir = "../testdata/profiles"
	cases, err := filepath.Glob(filepath.Join(dir, "*", "tenants"))
	if err != nil || len(cases) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	got := map[string][]byte{}
	for _, c := range cases {
		name := filepath.Base(filepath.Dir(c))
		got[name+"/want.yaml"] = expandProfiles(t, c, day)
	}
	golden.Dir(t, dir, got, "README.md", "*/tenants/*")
}

// expandProfiles loads the examples with the tenants of dir added, on day, and returns
// what want.yaml holds: the problems and every valid tenant's spec after expansion.
func expandProfiles(t *testing.T, dir string, day time.Time) []byte {
	t.Helper()
	fsys := readRepo(t)
	extra, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	for _, f := range extra {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		fsys[path.Join(schema.TenantsDir, filepath.Base(f))] = &fstest.MapFile{Data: data}
	}
	repo, err := schema.LoadAt(fsys, day)
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	type tenant struct {
		Spec   schema.TenantSpec `json:"spec"`
		Asleep bool              `json:"asleep,omitempty"`
	}
	got := struct {
		Problems   []string            `json:"problems"`
		Expired    []string            `json:"expired,omitempty"`
		Deprecated map[string][]string `json:"deprecated,omitempty"`
		Rejected   []string            `json:"rejected,omitempty"`
		Tenants    map[string]tenant   `json:"tenants"`
	}{Deprecated: repo.Deprecated, Tenants: map[string]tenant{}}
	for _, p := range repo.Problems {
		got.Problems = append(got.Problems, p.Error())
	}
	for _, p := range repo.Expired {
		got.Expired = append(got.Expired, p.Error())
	}
	for _, r := range repo.Rejected {
		got.Rejected = append(got.Rejected, r.File)
	}
	for _, tn := range repo.Tenants {
		got.Tenants[tn.Metadata.Name] = tenant{Spec: tn.Spec, Asleep: tn.Asleep}
	}
	data, err := yaml.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
