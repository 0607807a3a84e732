package render

import (
	"bytes"
	"fmt"
	"testing"

	"helm.sh/helm/v3/pkg/chart"

	"github.com/raas-dev/raas/internal/benchrepo"
	"github.com/raas-dev/raas/internal/exampletest"
	"github.com/raas-dev/raas/render/catalog"
	"github.com/raas-dev/raas/schema"
)

func TestChartShapes(t *testing.T) {
	t.Run("a shared shape gives the bytes of a full render for every tenant", func(t *testing.T) {
		fsys := benchrepo.FS(16)
		repo, err := schema.Load(fsys)
		if err != nil || !repo.OK() {
			t.Fatalf("load: %v %v", err, repo.Problems.Errors())
		}
		r, err := New(fsys, "", repo.Platform, catalog.Options{Dirs: []string{exampletest.Catalog(t)}, CacheDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		for _, tenant := range repo.Tenants {
			got, err := r.vcluster(tenant, nil)
			if err != nil {
				t.Fatal(err)
			}
			ch, err := r.catalog.VClusterChart(tenant.Spec.VCluster.Version)
			if err != nil {
				t.Fatal(err)
			}
			in := chartInputsOf(tenant)
			values, err := vclusterValues(r.platform, in)
			if err != nil {
				t.Fatal(err)
			}
			want, err := renderChart(ch, &chartSchemas{}, schema.Release(in.Name), r.platform.Namespace(in.Name),
				r.platform.Spec.HostKubernetes, values)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("tenant %s: the shared render differs from a full one", tenant.Metadata.Name)
			}
		}
		if n := sharedShapes(&r.charts); n == 0 {
			t.Error("no shape was shared: every tenant rendered in full")
		}
	})
	t.Run("does not share a shape whose chart changes the name", func(t *testing.T) {
		for _, tmpl := range []string{
			"name: {{ .Release.Name | upper }}\n",
			"name: {{ .Release.Name | trunc 4 }}\n",
			"name: {{ .Release.Name | sha256sum }}\n",
			"{{ if hasSuffix \"1\" .Release.Name }}one: {{ .Release.Name }}{{ end }}\n",
		} {
			ch := &chart.Chart{
				Metadata:  &chart.Metadata{APIVersion: "v2", Name: "probe", Version: "0.1.0"},
				Templates: []*chart.File{{Name: "templates/cm.yaml", Data: []byte("kind: ConfigMap\n" + tmpl)}},
			}
			full := func(in chartInputs) ([]byte, error) {
				return renderChart(ch, &chartSchemas{}, in.Name, "ns-"+in.Name, "v1.37.2", map[string]any{})
			}
			var shapes chartShapes
			for i := range 4 {
				in := chartInputs{Name: fmt.Sprintf("team-%d", i)}
				got, err := shapes.render(in, full)
				if err != nil {
					t.Fatal(err)
				}
				want, _ := full(in)
				if !bytes.Equal(got, want) {
					t.Errorf("%q, %s: got\n%s\nwant\n%s", tmpl, in.Name, got, want)
				}
			}
			if sharedShapes(&shapes) != 0 {
				t.Errorf("%q: the shape was shared", tmpl)
			}
		}
	})
	t.Run("renders names that YAML reads as something else in full", func(t *testing.T) {
		for name, plain := range map[string]bool{"no": false, "true": false, "null": false, "1e3": false,
			"123": false, "team-a": true, "yes-team": true} {
			if plainName(name) != plain {
				t.Errorf("plainName(%q) = %v, want %v", name, !plain, plain)
			}
		}
	})
}

// sharedShapes counts the shapes proved shared.
func sharedShapes(c *chartShapes) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, sh := range c.shapes {
		sh.mu.Lock()
		if sh.shared {
			n++
		}
		sh.mu.Unlock()
	}
	return n
}
