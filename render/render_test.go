package render_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"sigs.k8s.io/yaml"

	"github.com/raas-dev/raas/internal/exampletest"
	"github.com/raas-dev/raas/internal/golden"
	"github.com/raas-dev/raas/render"
	"github.com/raas-dev/raas/render/catalog"
)

const (
	examples  = "../examples"
	goldenDir = "../testdata/render"
)

// testOptions renders from the local catalog that `make catalog` fills.
func testOptions(t testing.TB) render.Options {
	t.Helper()
	dir := exampletest.Catalog(t)
	opts := render.DefaultOptions()
	opts.Catalog = catalog.Options{Dirs: []string{dir}, CacheDir: t.TempDir()}
	return opts
}

// examplesOnce keeps one render of the examples for the tests that only read it.
var examplesOnce = sync.OnceValues(func() (*render.Result, error) {
	dir, err := filepath.Abs("../.catalog")
	if err != nil {
		return nil, err
	}
	opts := render.DefaultOptions()
	opts.Catalog = catalog.Options{Dirs: []string{dir}, CacheDir: os.TempDir()}
	return render.Repo(os.DirFS(examples), examples, opts)
})

// renderExamples returns the shared render of the examples. The objects are shared:
// tests must not change them.
func renderExamples(t testing.TB) *render.Result {
	t.Helper()
	testOptions(t) // fails the test clearly when the catalog is missing
	res, err := examplesOnce()
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		t.Fatalf("examples do not render cleanly: problems %v, failed %v", res.Repo.Problems.Errors(), res.Failed)
	}
	return res
}

// renderExamplesAgain renders the examples afresh.
func renderExamplesAgain(t testing.TB) *render.Result {
	t.Helper()
	res, err := render.Repo(os.DirFS(examples), examples, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		t.Fatalf("examples do not render cleanly: problems %v, failed %v", res.Repo.Problems.Errors(), res.Failed)
	}
	return res
}

// goldenYAML writes objects as a YAML stream. CustomResourceDefinitions, which are
// hundreds of kilobytes of upstream schema, are reduced to their name and a digest of
// their body, so that the golden files stay reviewable.
func goldenYAML(t testing.TB, objs []*render.Object) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, o := range objs {
		data, err := o.YAML()
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("---\n")
		if o.GetKind() == "CustomResourceDefinition" {
			fmt.Fprintf(&b, "# CustomResourceDefinition %s, %d bytes, sha256 %x\n", o.GetName(), len(data), sha256.Sum256(data))
			continue
		}
		b.Write(data)
	}
	return b.Bytes()
}

// TestGolden renders the examples and compares the platform's objects, and each tenant's
// host and virtual objects, with testdata/render: the files of a tenant that no longer
// renders are stale.
func TestGolden(t *testing.T) {
	res := renderExamples(t)
	got := map[string][]byte{"_platform.yaml": goldenYAML(t, res.Platform)}
	for _, out := range res.Tenants {
		got[out.Tenant+"/host.yaml"] = goldenYAML(t, out.Host)
		got[out.Tenant+"/virtual.yaml"] = goldenYAML(t, out.Virtual)
	}
	golden.Dir(t, goldenDir, got)
}

func TestRender(t *testing.T) {
	t.Run("gives the same bytes twice", func(t *testing.T) {
		var streams [2]bytes.Buffer
		for i := range streams {
			res := renderExamplesAgain(t)
			if err := render.WriteStream(&streams[i], res.Platform, res.Tenants); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(streams[0].Bytes(), streams[1].Bytes()) {
			t.Error("two renders of the same repository differ")
		}
	})

	t.Run("labels every host object with its tenant and raas", func(t *testing.T) {
		for _, out := range renderExamples(t).Tenants {
			for _, o := range out.Host {
				l := o.GetLabels()
				if l["raas.dev/tenant"] != out.Tenant || l["app.kubernetes.io/managed-by"] != "raas" {
					t.Errorf("%s of %s has labels %v", o.ID(), out.Tenant, l)
				}
			}
			for _, o := range out.Virtual {
				if o.GetLabels()["app.kubernetes.io/managed-by"] != "raas" {
					t.Errorf("virtual %s of %s is not labelled managed-by raas", o.ID(), out.Tenant)
				}
			}
		}
	})

	t.Run("puts namespaces and CRDs before what depends on them", func(t *testing.T) {
		for _, out := range renderExamples(t).Tenants {
			for _, objs := range [][]*render.Object{out.Host, out.Virtual} {
				seenOther := false
				for _, o := range objs {
					first := o.GetKind() == "Namespace" || o.GetKind() == "CustomResourceDefinition"
					if first && seenOther {
						t.Errorf("%s: %s comes after objects that need it", out.Tenant, o.ID())
					}
					seenOther = seenOther || !first
				}
			}
		}
	})

	t.Run("renders KubeRay once per version and shares it between tenants", func(t *testing.T) {
		alpha, err := os.ReadFile(filepath.Join(examples, "tenants/ml-team-alpha.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		fsys := repoWith(t, map[string]string{
			"tenants/ml-team-beta.yaml": strings.Replace(string(alpha), "name: ml-team-alpha", "name: ml-team-beta", 1),
		})
		res, err := render.Repo(fsys, "", testOptions(t))
		if err != nil || !res.OK() {
			t.Fatalf("render: %v %v", err, res.Failed)
		}
		byName := map[string]*render.Output{}
		for _, out := range res.Tenants {
			byName[out.Tenant] = out
		}
		a, b, v := byName["ml-team-alpha"], byName["ml-team-beta"], byName["vision-team"]
		for i := range a.Virtual {
			if a.Virtual[i].GetName() == render.RayPolicyName {
				continue // the Ray policy is each tenant's own
			}
			if a.Virtual[i] != b.Virtual[i] {
				t.Errorf("%s is rendered twice for two tenants on KubeRay 1.5.0", a.Virtual[i].ID())
			}
		}
		if a.Virtual[2] == v.Virtual[2] {
			t.Error("tenants on KubeRay 1.5.0 and 1.4.0 share objects")
		}
	})
}

// repoWith returns the examples repository in memory, with files replaced or added.
func repoWith(t *testing.T, files map[string]string) fstest.MapFS { return exampletest.FS(t, files) }

func TestRenderFailures(t *testing.T) {
	t.Run("a tenant whose version is missing from the catalog fails alone", func(t *testing.T) {
		platform, err := os.ReadFile(filepath.Join(examples, "raas.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		fsys := repoWith(t, map[string]string{
			"raas.yaml": strings.Replace(string(platform), "kuberay: [1.5.0, 1.4.0]", "kuberay: [1.5.0, 1.4.0, 1.3.0]", 1),
			"tenants/old-team.yaml": `apiVersion: raas.dev/v1alpha1
kind: Tenant
metadata: {name: old-team}
spec:
  owners: [o@example.com]
  kuberay: {version: 1.3.0}
  quota: {cpu: "2", memory: 4Gi}
`,
		})
		res, err := render.Repo(fsys, "", testOptions(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Failed) != 1 || res.Failed[0].Tenant != "old-team" || !strings.Contains(res.Failed[0].Error(), "kuberay 1.3.0") {
			t.Fatalf("failed = %v, want old-team alone, naming kuberay 1.3.0", res.Failed)
		}
		if len(res.Tenants) != 4 {
			t.Errorf("%d tenants rendered, want the other 4", len(res.Tenants))
		}
	})

	for _, c := range []struct {
		name, file, body, want string
	}{
		{"refuses a remote base in an overlay", "overlays/host/kustomization.yaml",
			"kind: Component\napiVersion: kustomize.config.k8s.io/v1alpha1\nresources: [https://github.com/example/base]\n",
			"remote reference"},
		{"refuses an overlay that climbs out of the overlays directory", "overlays/host/kustomization.yaml",
			"kind: Component\napiVersion: kustomize.config.k8s.io/v1alpha1\nresources: [../../tenants/ml-team-alpha.yaml]\n",
			"points outside the overlays directory"},
		{"refuses Helm inflation in an overlay", "overlays/host/kustomization.yaml",
			"kind: Component\napiVersion: kustomize.config.k8s.io/v1alpha1\nhelmCharts: [{name: x, repo: https://example.com}]\n",
			"not allowed in overlays"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := render.Repo(repoWith(t, map[string]string{c.file: c.body}), "", testOptions(t))
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Tenants) != 0 || len(res.Failed) != 4 {
				t.Fatalf("rendered %d, failed %d; want every tenant to fail", len(res.Tenants), len(res.Failed))
			}
			for _, f := range res.Failed {
				if !strings.Contains(f.Error(), c.want) {
					t.Errorf("%v does not say %q", f, c.want)
				}
			}
		})
	}
}

// TestVClusterValues checks what raas sets in the vcluster chart, through the rendered
// StatefulSet: the tag names the pinned versions, not the source chart's 0.0.1.
func TestVClusterValues(t *testing.T) {
	res := renderExamples(t)
	for _, out := range res.Tenants {
		for _, o := range out.Host {
			if o.GetKind() != "StatefulSet" {
				continue
			}
			data, _ := o.YAML()
			var sts struct {
				Metadata struct{ Labels map[string]string }
				Spec     struct {
					Template struct {
						Spec struct {
							Containers     []struct{ Name, Image string }
							InitContainers []struct{ Name, Image string }
						}
					}
				}
			}
			if err := yaml.Unmarshal(data, &sts); err != nil {
				t.Fatal(err)
			}
			images := ""
			for _, c := range append(sts.Spec.Template.Spec.Containers, sts.Spec.Template.Spec.InitContainers...) {
				images += c.Image + " "
			}
			for _, want := range []string{"ghcr.io/loft-sh/vcluster-oss:0.25.0", "ghcr.io/loft-sh/kubernetes:v1.32.1"} {
				if !strings.Contains(images, want) {
					t.Errorf("%s: images %q lack %s", out.Tenant, images, want)
				}
			}
			if got := sts.Metadata.Labels["chart"]; got != "vcluster-0.25.0" {
				t.Errorf("%s: chart label %q, want vcluster-0.25.0", out.Tenant, got)
			}
		}
	}
}
