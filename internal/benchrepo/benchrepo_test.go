package benchrepo_test

import (
	"maps"
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

// TestFleetSplitsTenants checks what the fleet benchmark relies on: the repository on two
// clusters validates, its H100 tenants are placed on the home cluster and the others on
// the remote one (half on each), and the placement is the same when some tenants already
// run where it put them, as when replicas that share the tenants place their shares one
// after the other.
func TestFleetSplitsTenants(t *testing.T) {
	for _, n := range []int{1, 4, 1000} {
		fsys := fstest.MapFS{}
		for name, body := range benchrepo.FleetFiles(n) {
			fsys[name] = &fstest.MapFile{Data: []byte(body)}
		}
		repo, err := schema.Load(fsys)
		if err != nil {
			t.Fatalf("%d tenants: %v", n, err)
		}
		if !repo.OK() || len(repo.Tenants) != n {
			t.Fatalf("%d tenants: loaded %d, problems %v", n, len(repo.Tenants), repo.Problems.Errors())
		}
		placed := schema.Place(repo, nil)
		for i := range n {
			want := benchrepo.RemoteCluster
			if s := benchrepo.ShapeOf(i); s == benchrepo.GangH100 || s == benchrepo.GPUNoProfile {
				want = benchrepo.HomeCluster
			}
			if got := placed[benchrepo.Name(i)]; got != want {
				t.Fatalf("%d tenants: %s (%s) placed on %q, want %q", n, benchrepo.Name(i), benchrepo.ShapeOf(i), got, want)
			}
		}
		for _, every := range []int{2, 3} {
			where := map[string]string{}
			for i := n - 1; i >= 0; i -= every {
				where[benchrepo.Name(i)] = placed[benchrepo.Name(i)]
			}
			if again := schema.Place(repo, where); !maps.Equal(again, placed) {
				t.Errorf("%d tenants: placed otherwise when every %d-th tenant already runs", n, every)
			}
		}
	}
}
