package schema_test

import (
	"os"
	"path"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/raas-dev/raas/schema"
)

// TestProfilesGolden loads the examples with each case's tenants added, on a fixed day,
// and compares the problems and the expanded tenants with the case's want.yaml.
func TestProfilesGolden(t *testing.T) {
	day := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	cases, err := filepath.Glob("../testdata/profiles/*/tenants")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	for _, dir := range cases {
		dir = filepath.Dir(dir)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			fsys := readRepo(t)
			extra, _ := filepath.Glob(filepath.Join(dir, "tenants", "*.yaml"))
			for _, f := range extra {
				data, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				fsys[path.Join(schema.TenantsDir, filepath.Base(f))] = &fstest.MapFile{Data: data}
			}
			repo, err := schema.LoadAt(fsys, day)
			if err != nil {
				t.Fatal(err)
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
			want := filepath.Join(dir, "want.yaml")
			if *update {
				if err := os.WriteFile(want, data, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			wantData, err := os.ReadFile(want)
			if err != nil {
				t.Fatalf("%v; run `make golden`", err)
			}
			if diff := cmp.Diff(string(wantData), string(data)); diff != "" {
				t.Errorf("%s (-want +got):\n%s", want, diff)
			}
		})
	}
}
