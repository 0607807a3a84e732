package catalog_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/repo"

	"github.com/raas-dev/raas/render/catalog"
)

const localCatalog = "../../.catalog"

func TestCatalogDirectories(t *testing.T) {
	t.Run("stamps the pinned version on a chart taken from source", func(t *testing.T) {
		c := catalog.New(catalog.Options{Dirs: []string{localCatalog}})
		ch, err := c.VClusterChart("0.25.0")
		if err != nil {
			t.Fatalf("%v (run `make catalog`)", err)
		}
		if ch.Metadata.Version != "0.25.0" || ch.Metadata.AppVersion != "0.25.0" {
			t.Errorf("version %s, app version %s; want 0.25.0", ch.Metadata.Version, ch.Metadata.AppVersion)
		}
	})
	t.Run("prefers the first directory that has the version", func(t *testing.T) {
		first := t.TempDir()
		if err := os.MkdirAll(filepath.Join(first, "kuberay", "1.5.0"), 0o755); err != nil {
			t.Fatal(err)
		}
		c := catalog.New(catalog.Options{Dirs: []string{first, localCatalog}})
		dir, err := c.KubeRayBase("1.5.0")
		if err != nil || !strings.HasPrefix(dir, first) {
			t.Errorf("KubeRayBase = %q, %v; want the first directory", dir, err)
		}
		if dir, err := c.KubeRayBase("1.4.0"); err != nil || !strings.HasPrefix(dir, localCatalog) {
			t.Errorf("KubeRayBase(1.4.0) = %q, %v; want the second directory", dir, err)
		}
	})
	t.Run("lists each kind's versions once, from the first directory that has them", func(t *testing.T) {
		first, second := t.TempDir(), t.TempDir()
		for _, dir := range []string{
			filepath.Join(first, "kuberay", "1.5.0"),
			filepath.Join(second, "kuberay", "1.5.0"),
			filepath.Join(second, "kuberay", "1.4.0"),
			filepath.Join(second, "vcluster", "0.25.0"),
			filepath.Join(first, "volcano", "1.12.1"),
		} {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		got, err := catalog.New(catalog.Options{Dirs: []string{first, filepath.Join(first, "missing"), second}}).Artifacts()
		if err != nil {
			t.Fatal(err)
		}
		want := []catalog.Artifact{
			{Kind: "vcluster", Version: "0.25.0", Dir: second},
			{Kind: "kuberay", Version: "1.5.0", Dir: first},
			{Kind: "kuberay", Version: "1.4.0", Dir: second},
			{Kind: "volcano", Version: "1.12.1", Dir: first},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Artifacts() (-want +got):\n%s", diff)
		}
	})
	t.Run("says where it looked when nothing has the version", func(t *testing.T) {
		c := catalog.New(catalog.Options{Dirs: []string{localCatalog}})
		_, err := c.KubeRayBase("0.1.0")
		if err == nil || !strings.Contains(err.Error(), "kuberay 0.1.0: not found in any catalog") {
			t.Errorf("err = %v", err)
		}
	})
}

// TestChartRepository serves the vcluster chart from a real Helm chart repository on
// loopback: an index.yaml and the packaged chart, as a release pipeline publishes them.
func TestChartRepository(t *testing.T) {
	ch, err := loader.LoadDir(filepath.Join(localCatalog, "vcluster", "0.25.0"))
	if err != nil {
		t.Fatalf("%v (run `make catalog`)", err)
	}
	ch.Metadata.Version, ch.Metadata.AppVersion = "0.25.0", "0.25.0"
	served := t.TempDir()
	if _, err := chartutil.Save(ch, served); err != nil {
		t.Fatal(err)
	}
	index, err := repo.IndexDirectory(served, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := index.WriteFile(filepath.Join(served, "index.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	requests := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests++
		http.FileServer(http.Dir(served)).ServeHTTP(w, r)
	}))
	defer srv.Close()
	cache := t.TempDir()
	opts := catalog.Options{ChartRepository: srv.URL, CacheDir: cache}

	t.Run("downloads a chart that no directory has", func(t *testing.T) {
		got, err := catalog.New(opts).VClusterChart("0.25.0")
		if err != nil {
			t.Fatal(err)
		}
		if got.Metadata.Version != "0.25.0" || len(got.Templates) != len(ch.Templates) {
			t.Errorf("got %s with %d templates, want 0.25.0 with %d", got.Metadata.Version, len(got.Templates), len(ch.Templates))
		}
		if _, err := os.Stat(filepath.Join(cache, "vcluster-0.25.0.tgz")); err != nil {
			t.Errorf("not cached: %v", err)
		}
	})
	t.Run("serves a cached chart without asking the repository", func(t *testing.T) {
		before := requests
		if _, err := catalog.New(opts).VClusterChart("0.25.0"); err != nil {
			t.Fatal(err)
		}
		if requests != before {
			t.Errorf("%d requests to the repository, want none", requests-before)
		}
	})
	t.Run("fails clearly on a version the repository lacks", func(t *testing.T) {
		_, err := catalog.New(opts).VClusterChart("9.9.9")
		if err == nil || !strings.Contains(err.Error(), "has no vcluster 9.9.9") {
			t.Errorf("err = %v", err)
		}
	})
}
