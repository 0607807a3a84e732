package benchrepo_test

import (
	"os"
	"testing"
	"testing/fstest"

	"github.com/raas-dev/raas/internal/benchrepo"
	"github.com/raas-dev/raas/schema"
)

// TestRepositoriesValidate loads the generated repositories the way raas does: a
// benchmark over a repository with problems would measure the wrong thing.
func TestRepositoriesValidate(t *testing.T) {
	for _, n := range []int{4, 1000} {
		fsys := fstest.MapFS{}
		for name, body := range benchrepo.Files(n) {
			fsys[name] = &fstest.MapFile{Data: []byte(body)}
		}
		repo, err := schema.Load(fsys)
		if err != nil {
			t.Fatalf("%d tenants: %v", n, err)
		}
		if !repo.OK() {
			t.Fatalf("%d tenants: %v", n, repo.Problems.Errors())
		}
		if len(repo.Tenants) != n {
			t.Fatalf("%d tenants: loaded %d", n, len(repo.Tenants))
		}
		profiles := map[string]int{}
		for _, tenant := range repo.Tenants {
			profiles[tenant.Spec.Profile]++
		}
		if profiles["standard@3"] != n/4 || profiles["standard@2"] != n/4 || profiles[""] != n/2 {
			t.Errorf("%d tenants: profiles %v, want a quarter each on standard@3 and standard@2", n, profiles)
		}
	}
}

func TestWriteWritesEveryFile(t *testing.T) {
	dir := t.TempDir()
	if err := benchrepo.Write(dir, 8); err != nil {
		t.Fatal(err)
	}
	repo, err := schema.Load(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	if !repo.OK() || len(repo.Tenants) != 8 {
		t.Fatalf("%d tenants, problems %v", len(repo.Tenants), repo.Problems.Errors())
	}
}

func TestTenantGenerationsDiffer(t *testing.T) {
	for i := range 4 {
		if benchrepo.Tenant(i, 0) == benchrepo.Tenant(i, 1) {
			t.Errorf("tenant %d (%s): generations 0 and 1 are the same file", i, benchrepo.ShapeOf(i))
		}
	}
}
