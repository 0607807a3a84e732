package testenv_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/raas-dev/raas/internal/exampletest"
	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/render"
	"github.com/raas-dev/raas/render/catalog"
)

// The operator's field manager: ray-operator main.go:45 (v1.5.0; :43 in v1.4.0) sets
// the user agent "kuberay-operator/<version>", and kube-apiserver names the manager of an
// update that gives none after the user agent's first segment.
const kubeRayManager = "kuberay-operator"

// kubeRayCase is an example tenant and a RayCluster its Ray policy admits.
type kubeRayCase struct {
	tenant, version string
	gang            bool
	rayVersion      string
}

var kubeRayCases = []kubeRayCase{
	// data-sandbox pins no profile: KubeRay 1.5.0, no gang scheduling, no Ray policy.
	{tenant: "data-sandbox", version: "v1.5.0", rayVersion: "2.46.0"},
	// vision-team is on standard@2: KubeRay 1.4.0, gang scheduling, Ray 2.41.0 only.
	{tenant: "vision-team", version: "v1.4.0", gang: true, rayVersion: "2.41.0"},
}

// TestKubeRay runs the KubeRay operator at each version in versions.kuberay against a
// stand-in vcluster holding what raas rendered for an example tenant, and checks that it
// reconciles a RayCluster. No syncer, kubelet or kwok runs here, so the head pod is
// never scheduled and never Running: the cluster stays provisioning, which is what its
// status must say.
func TestKubeRay(t *testing.T) {
	host := testenv.Shared(t)
	for _, c := range kubeRayCases {
		t.Run(c.tenant+" on KubeRay "+c.version, func(t *testing.T) {
			out := renderExample(t, c.tenant)
			vc := host.StartVCluster(t, host.Namespace(t), c.tenant, testenv.VClusterOptions{ControlPlane: standInOptions()})
			applyVirtual(t, vc, out.Virtual, nil)
			op := startKubeRay(t, vc, out.Virtual)

			t.Run("runs the binary of the rendered version with the rendered args first", func(t *testing.T) {
				if op.Version != c.version {
					t.Errorf("Version = %q, want %q", op.Version, c.version)
				}
				rendered := renderedArgs(t, out.Virtual)
				if !slices.Equal(op.Args[:len(rendered)], rendered) {
					t.Errorf("args = %q, want them to start with the rendered %q", op.Args, rendered)
				}
				if got := slices.Contains(rendered, "--batch-scheduler=volcano"); got != c.gang {
					t.Errorf("rendered --batch-scheduler=volcano: %v, want %v for gang %v", got, c.gang, c.gang)
				}
			})

			t.Run("authenticates as the rendered ServiceAccount", func(t *testing.T) {
				want := "system:serviceaccount:" + render.KubeRayNamespace + ":" + op.ServiceAccount
				if got := whoAmI(t, op); got != want {
					t.Errorf("user = %q, want %q", got, want)
				}
			})

			ns := createNamespace(t, vc.Client, "ray")
			rc := rayCluster(ns, "small", c.rayVersion)
			if err := vc.Client.Create(t.Context(), rc); err != nil {
				t.Fatalf("create RayCluster: %v", err)
			}

			t.Run("creates the head pod and head Service as the operator", func(t *testing.T) {
				pod := waitOwned(t, vc.Client, &corev1.PodList{}, ns, rc, "head pod").(*corev1.Pod)
				if err := managedBy(pod, kubeRayManager); err != nil {
					t.Error(err)
				}
				if pod.Labels["ray.io/node-type"] != "head" {
					t.Errorf("pod %s labels = %v, want ray.io/node-type=head", pod.Name, pod.Labels)
				}
				svc := waitOwned(t, vc.Client, &corev1.ServiceList{}, ns, rc, "head Service").(*corev1.Service)
				if err := managedBy(svc, kubeRayManager); err != nil {
					t.Error(err)
				}
				if gang := pod.Spec.SchedulerName == "volcano"; gang != c.gang {
					t.Errorf("head pod schedulerName = %q, want volcano only for a gang tenant (gang %v)", pod.Spec.SchedulerName, c.gang)
				}
			})

			if c.gang {
				t.Run("creates the PodGroup that the rendered RBAC rule allows", func(t *testing.T) {
					pg := &unstructured.UnstructuredList{}
					pg.SetAPIVersion("scheduling.volcano.sh/v1beta1")
					pg.SetKind("PodGroupList")
					waitOwned(t, vc.Client, pg, ns, rc, "PodGroup")
				})
			}

			t.Run("writes the RayCluster status: provisioning, as no pod runs", func(t *testing.T) {
				eventuallyNil(t, time.Minute, "RayCluster status", func() error {
					got := &unstructured.Unstructured{}
					got.SetGroupVersionKind(rc.GroupVersionKind())
					if err := vc.Client.Get(t.Context(), client.ObjectKeyFromObject(rc), got); err != nil {
						return err
					}
					observed, _, _ := unstructured.NestedInt64(got.Object, "status", "observedGeneration")
					if observed != got.GetGeneration() {
						return fmt.Errorf("status.observedGeneration %d, generation %d", observed, got.GetGeneration())
					}
					if reason := condition(got, "RayClusterProvisioned", "False"); reason != "RayClusterPodsProvisioning" {
						return fmt.Errorf("condition RayClusterProvisioned=False reason %q, want RayClusterPodsProvisioning; status %v", reason, got.Object["status"])
					}
					return nil
				})
				logRSS(t, op)
			})
		})
	}
}

// TestKubeRayNeedsRenderedRBAC shows that the operator's requests are authorized by
// raas's rendered RBAC and nothing else: without the rendered ClusterRoleBinding it is
// denied, by name, and once raas's binding is applied it reconciles.
func TestKubeRayNeedsRenderedRBAC(t *testing.T) {
	host := testenv.Shared(t)
	c := kubeRayCases[0]
	out := renderExample(t, c.tenant)
	vc := host.StartVCluster(t, host.Namespace(t), c.tenant, testenv.VClusterOptions{ControlPlane: standInOptions()})
	isBinding := func(o *render.Object) bool { return o.GetKind() == "ClusterRoleBinding" }
	applyVirtual(t, vc, out.Virtual, isBinding)
	logs := &syncBuffer{}
	op := startKubeRayLogs(t, vc, out.Virtual, logs)

	user := "system:serviceaccount:" + render.KubeRayNamespace + ":" + op.ServiceAccount
	// The first list the operator's cache makes fails so; which kind comes first is the
	// operator's business.
	denied := fmt.Sprintf("User %q cannot list resource", user)
	t.Run("is denied as its ServiceAccount without the ClusterRoleBinding", func(t *testing.T) {
		eventuallyNil(t, time.Minute, "a denial in the operator's log", func() error {
			if strings.Contains(strings.ReplaceAll(logs.String(), `\"`, `"`), denied) {
				return nil
			}
			return fmt.Errorf("no %q in the log yet", denied)
		})
	})

	t.Run("reconciles once raas's ClusterRoleBinding is applied", func(t *testing.T) {
		for _, o := range out.Virtual {
			if isBinding(o) {
				testenv.Apply(t, vc.Client, "raas", o.Unstructured)
			}
		}
		ns := createNamespace(t, vc.Client, "ray")
		rc := rayCluster(ns, "late", c.rayVersion)
		if err := vc.Client.Create(t.Context(), rc); err != nil {
			t.Fatalf("create RayCluster: %v", err)
		}
		// The operator's informers retry a denied list after an exponential backoff that
		// reaches 30 s, jittered up to twice that (client-go reflector), so the first
		// answer may take a minute.
		pod := waitOwnedWithin(t, 2*time.Minute, vc.Client, &corev1.PodList{}, ns, rc, "head pod").(*corev1.Pod)
		if err := managedBy(pod, kubeRayManager); err != nil {
			t.Error(err)
		}
	})

	// The manager campaigns for leadership only once its caches have synced, which
	// they could not do while denied: the Lease comes after the binding.
	t.Run("holds its leader Lease through the rendered leader-election Role", func(t *testing.T) {
		eventuallyNil(t, time.Minute, "leader Lease", func() error {
			lease := &unstructured.Unstructured{}
			lease.SetAPIVersion("coordination.k8s.io/v1")
			lease.SetKind("Lease")
			// ray-operator main.go:210 (v1.5.0; :198 in v1.4.0): LeaderElectionID "ray-operator-leader".
			key := types.NamespacedName{Namespace: op.Namespace, Name: "ray-operator-leader"}
			if err := vc.Client.Get(t.Context(), key, lease); err != nil {
				return err
			}
			if holder, _, _ := unstructured.NestedString(lease.Object, "spec", "holderIdentity"); holder == "" {
				return fmt.Errorf("lease %s has no holder: %v", key, lease.Object["spec"])
			}
			return nil
		})
	})
}

// standInOptions returns a stand-in with no CRDs: the rendered objects bring KubeRay's.
func standInOptions() testenv.ControlPlaneOptions {
	return testenv.DefaultVClusterOptions().ControlPlane
}

// renderExample renders the example tenant name with the catalog `make catalog` fills.
func renderExample(t *testing.T, name string) *render.Output {
	t.Helper()
	dir := exampletest.Root(t)
	opts := render.DefaultOptions()
	opts.Catalog = catalog.Options{Dirs: []string{exampletest.Catalog(t)}}
	opts.Tenants = []string{name}
	res, err := render.Repo(os.DirFS(dir), dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || len(res.Tenants) != 1 {
		t.Fatalf("render %s: %v %v", name, res.Repo.Problems, res.Failed)
	}
	return res.Tenants[0]
}

// applyVirtual applies the rendered virtual objects into vc in their order, as raas's
// field manager, leaving out those skip picks, and waits until their CRDs are served.
func applyVirtual(t *testing.T, vc *testenv.VCluster, objs []*render.Object, skip func(*render.Object) bool) {
	t.Helper()
	begin := time.Now()
	var crds []string
	for _, o := range objs {
		if skip != nil && skip(o) {
			continue
		}
		testenv.Apply(t, vc.Client, "raas", o.Unstructured)
		if o.GetKind() == "CustomResourceDefinition" {
			crds = append(crds, o.GetName())
		}
	}
	for _, name := range crds {
		eventuallyNil(t, 2*time.Minute, "CRD "+name, func() error {
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if err := vc.Client.Get(t.Context(), types.NamespacedName{Name: name}, crd); err != nil {
				return err
			}
			for _, c := range crd.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					return nil
				}
			}
			return fmt.Errorf("not established")
		})
	}
	t.Logf("applied %d rendered virtual objects in %s", len(objs), time.Since(begin).Round(time.Millisecond))
}

// renderedArgs returns the args of the KubeRay operator container as rendered.
func renderedArgs(t *testing.T, objs []*render.Object) []string {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() != "Deployment" {
			continue
		}
		containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		for _, c := range containers {
			c := c.(map[string]any)
			if strings.Contains(fmt.Sprint(c["image"]), "kuberay/operator:") {
				args, _, _ := unstructured.NestedStringSlice(c, "args")
				return args
			}
		}
	}
	t.Fatal("no KubeRay operator container among the rendered virtual objects")
	return nil
}

// whoAmI asks the API server, with the operator's own credentials, who they belong to.
func whoAmI(t *testing.T, op *testenv.KubeRay) string {
	t.Helper()
	cs, err := kubernetes.NewForConfig(op.Config)
	if err != nil {
		t.Fatal(err)
	}
	r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(t.Context(), &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("self subject review: %v", err)
	}
	return r.Status.UserInfo.Username
}

func createNamespace(t *testing.T, c client.Client, name string) string {
	t.Helper()
	if err := c.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatalf("namespace %s: %v", name, err)
	}
	return name
}

// TestKubeRayVersionsAreBuilt checks that every version in versions.kuberay of the
// example platform has its tools module, its make target and its binary, so that a new
// version cannot be offered without the twin running it.
func TestKubeRayVersionsAreBuilt(t *testing.T) {
	var platform struct {
		Spec struct {
			Versions struct {
				KubeRay []string `json:"kuberay"`
			} `json:"versions"`
		} `json:"spec"`
	}
	data, err := os.ReadFile(exampletest.Path(t, "examples", "raas.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &platform); err != nil {
		t.Fatal(err)
	}
	mk, err := os.ReadFile(exampletest.Path(t, "hack", "tools.mk"))
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	for line := range strings.Lines(string(mk)) {
		if v, ok := strings.CutPrefix(line, "KUBERAY_VERSIONS :="); ok {
			targets = strings.Fields(v)
		}
	}
	binDir, err := testenv.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	if len(platform.Spec.Versions.KubeRay) == 0 {
		t.Fatal("no versions.kuberay in examples/raas.yaml")
	}
	for _, v := range platform.Spec.Versions.KubeRay {
		tag := "v" + v
		if !slices.Contains(targets, tag) {
			t.Errorf("KUBERAY_VERSIONS in hack/tools.mk = %q, lacks %s", targets, tag)
		}
		gomod, err := os.ReadFile(exampletest.Path(t, "hack", "tools", "kuberay-"+tag, "go.mod"))
		if err != nil {
			t.Errorf("tools module of KubeRay %s: %v", v, err)
		} else if !strings.Contains(string(gomod), "github.com/ray-project/kuberay/ray-operator "+tag) {
			t.Errorf("hack/tools/kuberay-%s/go.mod does not require ray-operator %s", tag, tag)
		}
		if _, err := os.Stat(filepath.Join(binDir, testenv.KubeRayBinaryPrefix+tag)); err != nil {
			t.Errorf("KubeRay %s: %v: run `make twin-kuberay`", v, err)
		}
	}
}
