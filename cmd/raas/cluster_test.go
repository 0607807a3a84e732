package main

import (
	"encoding/base64"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/internal/exampletest"
	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/reconcile"
	"github.com/raas-dev/raas/render"
	"github.com/raas-dev/raas/report"
	"github.com/raas-dev/raas/schema"
)

// oneTenantRepo copies the example platform config into a temporary directory, with one
// small tenant of its own.
func oneTenantRepo(t *testing.T, tenant string) string {
	t.Helper()
	dir := t.TempDir()
	data, err := os.ReadFile("../../examples/raas.yaml")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "raas.yaml", string(data))
	err = filepath.WalkDir("../../examples/overlays", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel("../../examples", p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		writeFile(t, dir, rel, string(data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "tenants/"+tenant+".yaml", tenantYAML(tenant, ""))
	return dir
}

func tenantYAML(name, vcluster string) string {
	s := "apiVersion: raas.dev/v1alpha1\nkind: Tenant\nmetadata: {name: " + name + "}\nspec:\n" +
		"  owners: [" + name + "@example.com]\n  quota: {cpu: \"2\", memory: 8Gi, storage: 20Gi, pods: 20}\n"
	if vcluster != "" {
		s += "  vcluster: " + vcluster + "\n"
	}
	return s
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDiffAndApply runs raas diff and raas apply against a host of their own and a
// stand-in vcluster for the one tenant.
func TestDiffAndApply(t *testing.T) {
	host := testenv.StartHost(t, testenv.DefaultControlPlaneOptions())
	ctx := t.Context()
	catalog := exampletest.Catalog(t)
	const tenant = "cli-team"
	dir := oneTenantRepo(t, tenant)
	repo, err := schema.Load(os.DirFS(dir))
	if err != nil || !repo.OK() {
		t.Fatalf("repository: %v %v", err, repo.Problems)
	}
	namespace := repo.Platform.Namespace(tenant)
	host.StartVCluster(t, namespace, schema.Release(tenant), testenv.DefaultVClusterOptions())
	flags := []string{dir, "--kubeconfig", host.WriteKubeConfigFile(t), "--catalog", catalog}

	t.Run("diff shows the changes and exits 1 before apply", func(t *testing.T) {
		out, stderr, code := run(t, append([]string{"diff"}, flags...)...)
		if code != 1 {
			t.Fatalf("exit %d, want 1\n%s\n%s", code, out, stderr)
		}
		for _, want := range []string{
			"tenant " + tenant,
			"+ host Queue.scheduling.volcano.sh " + namespace + " created",
			"+ virtual CustomResourceDefinition.apiextensions.k8s.io rayclusters.ray.io created",
			// Volcano is not installed yet.
			"? host ConfigMap volcano-system/volcano-scheduler-configmap skipped: namespace volcano-system does not exist",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("diff -o json says the same as data and exits 1", func(t *testing.T) {
		out, stderr, code := run(t, append([]string{"diff", "-o", "json"}, flags...)...)
		if code != 1 {
			t.Fatalf("exit %d, want 1\n%s\n%s", code, out, stderr)
		}
		var rep report.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		if !rep.Changed || !rep.DryRun || len(rep.Tenants) != 1 || rep.Tenants[0].Name != tenant || rep.Tenants[0].Change != reconcile.TenantAdded {
			t.Fatalf("report %+v", rep)
		}
		found := false
		for _, o := range rep.Tenants[0].Objects {
			if o.Kind == "Queue" && o.Name == namespace && o.Action == reconcile.Created && o.Target == render.Host {
				found = true
			}
		}
		if !found {
			t.Errorf("no created host Queue %s in %+v", namespace, rep.Tenants[0].Objects)
		}
	})

	volcano := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "volcano-system"}}
	if err := host.Client.Create(ctx, volcano); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}

	t.Run("apply applies them and exits 0", func(t *testing.T) {
		out, stderr, code := run(t, append([]string{"apply", "--vcluster-timeout", "1m"}, flags...)...)
		if code != 0 {
			t.Fatalf("exit %d, want 0\n%s\n%s", code, out, stderr)
		}
		words := strings.Join(strings.Fields(out), " ")
		for _, want := range []string{tenant + " virtual CustomResourceDefinition.apiextensions.k8s.io rayclusters.ray.io created", "tenant " + tenant + ": Progressing"} {
			if !strings.Contains(words, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("diff shows no change and exits 0 after apply", func(t *testing.T) {
		out, stderr, code := run(t, append([]string{"diff"}, flags...)...)
		if code != 0 {
			t.Fatalf("exit %d, want 0\n%s\n%s", code, out, stderr)
		}
		if !strings.Contains(out, "tenant "+tenant+" (tenants/"+tenant+".yaml): no changes") {
			t.Errorf("output:\n%s", out)
		}
	})

	t.Run("diff masks Secret values", func(t *testing.T) {
		var secrets corev1.SecretList
		if err := host.Client.List(ctx, &secrets, client.InNamespace(namespace)); err != nil {
			t.Fatal(err)
		}
		// Not retaining data changes the vcluster's config, which its chart keeps in a
		// Secret.
		writeFile(t, dir, "tenants/"+tenant+".yaml", tenantYAML(tenant, "{retainData: false}"))
		out, stderr, code := run(t, append([]string{"diff"}, flags...)...)
		if code != 1 {
			t.Fatalf("exit %d, want 1\n%s\n%s", code, out, stderr)
		}
		if !strings.Contains(out, "~ host Secret "+namespace+"/vc-config-"+tenant+" configured") ||
			!strings.Contains(out, maskedBefore) || !strings.Contains(out, maskedAfter) {
			t.Errorf("output lacks the masked change of the vcluster config Secret:\n%s", out)
		}
		for _, s := range secrets.Items {
			for key, value := range s.Data {
				if len(value) > 8 && (strings.Contains(out, base64.StdEncoding.EncodeToString(value)) || strings.Contains(out, string(value))) {
					t.Errorf("output shows the value of %s/%s key %s", s.Namespace, s.Name, key)
				}
			}
		}
	})
}

const (
	maskedBefore = "*** (before)"
	maskedAfter  = "*** (after)"
)
