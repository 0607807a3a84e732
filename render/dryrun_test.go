package render_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/render"
)

// checker applies objects to one API server, for real or as a server-side dry run, and
// fails the test on any error or warning.
type checker struct {
	t        *testing.T
	client   client.Client
	warnings *testenv.Warnings
}

func newChecker(t *testing.T, cfg *rest.Config) *checker {
	t.Helper()
	cfg, w := testenv.RecordWarnings(cfg)
	c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return &checker{t: t, client: c, warnings: w}
}

func (c *checker) apply(o *render.Object, dryRun bool) {
	c.t.Helper()
	obj := o.DeepCopy()
	opts := []client.PatchOption{client.FieldOwner("raas"), client.ForceOwnership}
	if dryRun {
		opts = append(opts, client.DryRunAll)
	}
	if err := c.client.Patch(c.t.Context(), obj, client.Apply, opts...); err != nil {
		c.t.Errorf("%s: %v", o.ID(), err)
	}
	for _, w := range c.warnings.Take() {
		c.t.Errorf("%s: the API server warns: %s", o.ID(), w)
	}
}

// established waits until the CRD o is served.
func (c *checker) established(o *render.Object) {
	c.t.Helper()
	err := wait.PollUntilContextTimeout(c.t.Context(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := c.client.Get(ctx, client.ObjectKey{Name: o.GetName()}, &crd); err != nil {
			return false, err
		}
		for _, cond := range crd.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		c.t.Fatalf("%s is not established: %v", o.ID(), err)
	}
}

// applyAll creates the namespaces and CRDs for real, since the rest cannot be checked
// without them, and dry-runs everything else.
func (c *checker) applyAll(objs []*render.Object) {
	c.t.Helper()
	for _, o := range objs {
		switch o.GetKind() {
		case "Namespace":
			c.apply(o, false)
		case "CustomResourceDefinition":
			c.apply(o, false)
			c.established(o)
		default:
			c.apply(o, true)
		}
	}
}

// TestServerSideDryRun sends every rendered object of every example tenant to a real
// kube-apiserver: host objects to the host (with the Volcano CRDs), virtual objects to a
// stand-in vcluster. Each must be accepted, and the API server must not warn.
func TestServerSideDryRun(t *testing.T) {
	res := renderExamples(t)
	host := testenv.StartHost(t, testenv.DefaultControlPlaneOptions())
	hc := newChecker(t, host.Config)

	t.Run("platform objects are accepted", func(t *testing.T) {
		hc.t = t
		ns := &unstructured.Unstructured{}
		ns.SetAPIVersion("v1")
		ns.SetKind("Namespace")
		ns.SetName("volcano-system")
		if err := hc.client.Create(t.Context(), ns); err != nil {
			t.Fatal(err)
		}
		// The policies are applied for real: the tenants' bindings refer to them.
		for _, o := range res.Platform {
			hc.apply(o, o.GetKind() != "ValidatingAdmissionPolicy")
		}
	})
	for _, out := range res.Tenants {
		t.Run(fmt.Sprintf("host objects of %s are accepted without warnings", out.Tenant), func(t *testing.T) {
			hc.t = t
			hc.applyAll(out.Host)
		})
	}
	// The check above is only worth something if warnings reach it: a privileged pod
	// template in the restricted sandbox namespace must draw one.
	t.Run("the API server's warnings reach the check", func(t *testing.T) {
		dep := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "apps/v1", "kind": "Deployment",
			"metadata": map[string]any{"name": "privileged", "namespace": "tenant-data-sandbox"},
			"spec": map[string]any{
				"selector": map[string]any{"matchLabels": map[string]any{"app": "x"}},
				"template": map[string]any{
					"metadata": map[string]any{"labels": map[string]any{"app": "x"}},
					"spec": map[string]any{"containers": []any{map[string]any{
						"name": "x", "image": "x", "securityContext": map[string]any{"privileged": true},
					}}},
				},
			},
		}}
		if err := hc.client.Patch(t.Context(), dep, client.Apply, client.FieldOwner("raas"), client.DryRunAll); err != nil {
			t.Fatal(err)
		}
		if w := hc.warnings.Take(); len(w) == 0 {
			t.Error("no warning for a privileged pod in a restricted namespace")
		}
	})
	for _, out := range res.Tenants {
		t.Run(fmt.Sprintf("virtual objects of %s are accepted by its vcluster without warnings", out.Tenant), func(t *testing.T) {
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "dryrun-" + out.Tenant}}
			if err := host.Client.Create(t.Context(), ns); err != nil {
				t.Fatal(err)
			}
			vc := host.StartVCluster(t, ns.Name, out.Tenant, testenv.DefaultVClusterOptions())
			newChecker(t, vc.Config).applyAll(out.Virtual)
		})
	}
}
