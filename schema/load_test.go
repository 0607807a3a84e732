package schema_test

import (
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/raas-dev/raas/internal/exampletest"
	"github.com/raas-dev/raas/schema"
)

const examples = "../examples"

func TestLoadExamples(t *testing.T) {
	repo, err := schema.Load(os.DirFS(examples))
	if err != nil {
		t.Fatal(err)
	}
	if errs := repo.Problems.Errors(); len(errs) > 0 || len(repo.Expired) > 0 {
		t.Fatalf("the examples have errors:\n%v\n%v", errs, repo.Expired)
	}
	if w := repo.Problems.Warnings(); len(w) != 1 || !strings.Contains(w[0].Error(), "profile standard@2 is deprecated") {
		t.Errorf("warnings = %v, want the one about the deprecated profile", w)
	}
	var names []string
	for _, tn := range repo.Tenants {
		names = append(names, tn.Metadata.Name)
	}
	if got, want := strings.Join(names, ","), "data-sandbox,ml-team-alpha,vision-team,vision-team-next"; got != want {
		t.Errorf("tenants = %s, want %s", got, want)
	}
	t.Run("fills in defaults from the platform", func(t *testing.T) {
		sandbox := repo.Tenant("data-sandbox")
		if got := sandbox.Spec.KubeRay.Version; got != "1.5.0" {
			t.Errorf("kuberay version = %q, want the platform default 1.5.0", got)
		}
		if got := sandbox.Spec.Quota.GPU.String(); got != "0" {
			t.Errorf("gpu quota = %s, want 0", got)
		}
		if *sandbox.Spec.Scheduling.Gang.Enabled {
			t.Error("gang is on, but the tenant turned it off")
		}
	})
}

// readRepo returns the examples repository in memory.
func readRepo(t *testing.T) fstest.MapFS { return exampletest.FS(t, nil) }

// wants reads the "# want: ..." lines at the top of a test case file.
func wants(t *testing.T, data []byte) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if w, ok := strings.CutPrefix(line, "# want: "); ok {
			out = append(out, w)
		}
	}
	if len(out) == 0 {
		t.Fatal("the case says no '# want:' error")
	}
	return out
}

// TestInvalidTenants loads each file under testdata/validate/tenants as a tenant of the
// examples repository. Each must fail with the errors its "# want:" lines give, the
// example tenants must still be valid, and nothing else may be reported.
func TestInvalidTenants(t *testing.T) {
	cases, err := filepath.Glob("../testdata/validate/tenants/*.yaml")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	for _, c := range cases {
		name := strings.TrimSuffix(filepath.Base(c), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(c)
			if err != nil {
				t.Fatal(err)
			}
			fsys := readRepo(t)
			file := path.Join(schema.TenantsDir, filepath.Base(c))
			fsys[file] = &fstest.MapFile{Data: data}
			repo, err := schema.Load(fsys)
			if err != nil {
				t.Fatal(err)
			}
			checkProblems(t, repo.Problems, file, wants(t, data))
			if len(repo.Tenants) != 4 {
				t.Errorf("%d valid tenants, want the 4 examples still valid", len(repo.Tenants))
			}
			if len(repo.Rejected) != 1 || repo.Rejected[0].File != file || repo.Rejected[0].Name != name {
				t.Errorf("rejected = %+v, want just %s (%s)", repo.Rejected, file, name)
			}
		})
	}
}

// TestInvalidPlatforms loads each file under testdata/validate/platforms as the raas.yaml
// of the examples repository.
func TestInvalidPlatforms(t *testing.T) {
	cases, err := filepath.Glob("../testdata/validate/platforms/*.yaml")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	for _, c := range cases {
		t.Run(strings.TrimSuffix(filepath.Base(c), ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(c)
			if err != nil {
				t.Fatal(err)
			}
			fsys := readRepo(t)
			fsys[schema.PlatformFile] = &fstest.MapFile{Data: data}
			repo, err := schema.Load(fsys)
			if err != nil {
				t.Fatal(err)
			}
			checkProblems(t, repo.Problems, schema.PlatformFile, wants(t, data))
		})
	}
}

func checkProblems(t *testing.T, problems schema.Problems, file string, want []string) {
	t.Helper()
	// The examples' own warnings are not the case's business.
	got := map[string]bool{}
	for _, p := range problems {
		if p.File == file || p.Severity == schema.SeverityError {
			got[p.Error()] = false
		}
	}
	for _, w := range want {
		found := false
		for g := range got {
			if strings.HasPrefix(g, file+":"+w) {
				got[g], found = true, true
			}
		}
		if !found {
			t.Errorf("missing error %s:%s", file, w)
		}
	}
	for g, matched := range got {
		if !matched {
			t.Errorf("unexpected error %s", g)
		}
	}
}

func TestMissingPlatform(t *testing.T) {
	fsys := readRepo(t)
	delete(fsys, schema.PlatformFile)
	repo, err := schema.Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if repo.Usable() || len(repo.Tenants) != 0 || len(repo.Rejected) != 4 {
		t.Errorf("usable=%v tenants=%d rejected=%d; want nothing usable and all 4 rejected",
			repo.Usable(), len(repo.Tenants), len(repo.Rejected))
	}
}

// TestTenantLayouts arranges tenants/ as each case under testdata/validate/layouts says,
// on disk with real symbolic links: every entry is read as a tenant, ignored by name, or
// refused with an error that names it.
func TestTenantLayouts(t *testing.T) {
	for _, c := range exampletest.LayoutCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			dir := exampletest.Dir(t)
			c.Apply(t, dir)
			repo, err := schema.Load(os.DirFS(dir))
			if err != nil {
				t.Fatal(err)
			}
			c.Check(t, repo)
		})
	}
}

func TestEmptyTenantSubdirectory(t *testing.T) {
	fsys := readRepo(t)
	fsys["tenants/empty"] = &fstest.MapFile{Mode: fs.ModeDir | 0o755}
	repo, err := schema.Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	errs := repo.Problems.Errors()
	if len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), "tenants/empty: a directory") {
		t.Errorf("errors = %v, want one that refuses tenants/empty", errs)
	}
	if len(repo.Tenants) != 4 {
		t.Errorf("%d tenants, want the 4 examples", len(repo.Tenants))
	}
}
