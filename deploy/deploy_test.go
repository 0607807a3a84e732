// Tests of the deploy/ kustomization: it applies cleanly to a real API server, the
// ServiceAccount it creates can run full reconcile passes of examples/ and nothing else,
// and the Deployment's arguments are flags that raas reconcile accepts.
package deploy_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/raas-dev/raas/daemon"
	"github.com/raas-dev/raas/daemon/shard"
	"github.com/raas-dev/raas/internal/exampletest"
	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/reconcile"
	"github.com/raas-dev/raas/render"
	"github.com/raas-dev/raas/render/catalog"
	raasschema "github.com/raas-dev/raas/schema"
	"github.com/raas-dev/raas/source"
)

const (
	// serviceAccount is the user the API server sees for the raas ServiceAccount.
	serviceAccount = "system:serviceaccount:" + reconcile.SystemNamespace + ":raas"
	// image is the placeholder image of deployment.yaml.
	image = "ghcr.io/raas-dev/raas"
	// removedTenant is the example tenant the prune pass removes. Its file is edited not to
	// retain data, so that removing it deletes its namespace as well.
	removedTenant = "data-sandbox"
)

func TestMain(m *testing.M) {
	// controller-runtime's clients log through a global logger; without one they print a
	// warning with a stack trace.
	ctrllog.SetLogger(logr.Discard())
	os.Exit(m.Run())
}

// build runs kustomize on deploy/ from disk, as `kubectl apply -k` would.
func build(t testing.TB) []*unstructured.Unstructured {
	t.Helper()
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), ".")
	if err != nil {
		t.Fatalf("kustomize build deploy/: %v", err)
	}
	var objs []*unstructured.Unstructured
	for _, r := range resources.Resources() {
		data, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(data); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, u)
	}
	return objs
}

// find returns the built object of kind and name, failing the test if there is none.
func find(t testing.TB, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("deploy/ builds no %s %s", kind, name)
	return nil
}

// warnings collects the warnings the API server sends.
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

func (w *warnings) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.list)
}

// impersonating returns cfg acting as user, with the groups the API server gives a
// ServiceAccount's token (or only system:authenticated for other users).
func impersonating(cfg *rest.Config, user string) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	return cfg
}

func newClient(t testing.TB, cfg *rest.Config) client.Client {
	t.Helper()
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// apply applies objs server-side, definitions first, and waits for the CRDs to be
// established. The first of them to fail stops the test.
func apply(t testing.TB, c client.Client, objs []*unstructured.Unstructured) {
	t.Helper()
	definitions := func(o *unstructured.Unstructured) bool {
		return o.GetKind() == "Namespace" || o.GetKind() == "CustomResourceDefinition"
	}
	for _, first := range []bool{true, false} {
		for _, o := range objs {
			if definitions(o) != first {
				continue
			}
			testenv.Apply(t, c, "deploy-test", o)
			if o.GetKind() == "CustomResourceDefinition" {
				waitEstablished(t, c, o.GetName())
			}
		}
	}
}

func waitEstablished(t testing.TB, c client.Client, name string) {
	t.Helper()
	poll(t, time.Minute, "CRD "+name+" established", func() (bool, error) {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := c.Get(t.Context(), client.ObjectKey{Name: name}, &crd); err != nil {
			return false, err
		}
		for _, cond := range crd.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
}

// poll calls done until it reports true, failing the test at the deadline with the last
// error.
func poll(t testing.TB, timeout time.Duration, what string, done func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := done()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s (last error: %v)", what, timeout, err)
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("%s: %v", what, t.Context().Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// exampleFS reads examples/ into memory, with the removed tenant set not to retain data.
func exampleFS(t testing.TB) fstest.MapFS {
	t.Helper()
	fsys := fstest.MapFS{}
	root := os.DirFS("../examples")
	err := fs.WalkDir(root, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(root, path)
		if err != nil {
			return err
		}
		fsys[path] = &fstest.MapFile{Data: data, Mode: 0o644}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	file := "tenants/" + removedTenant + ".yaml"
	var doc map[string]any
	if err := yaml.Unmarshal(fsys[file].Data, &doc); err != nil {
		t.Fatal(err)
	}
	spec := doc["spec"].(map[string]any)
	spec["vcluster"] = map[string]any{"retainData": false}
	data, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	fsys[file] = &fstest.MapFile{Data: data, Mode: 0o644}
	return fsys
}

// renderFS renders the tenants repository fsys with the catalog `make catalog` fills.
func renderFS(t testing.TB, fsys fs.FS) *render.Result {
	t.Helper()
	cat := exampletest.Catalog(t)
	dir, err := filepath.Abs("../examples")
	if err != nil {
		t.Fatal(err)
	}
	opts := render.DefaultOptions()
	opts.Catalog = catalog.Options{Dirs: []string{cat}, CacheDir: t.TempDir()}
	res, err := render.Repo(fsys, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		t.Fatalf("examples do not render cleanly: problems %v, failed %v", res.Repo.Problems.Errors(), res.Failed)
	}
	return res
}

// requests counts the requests that write: not reads, not dry runs.
type requests struct {
	writes atomic.Int64
	mu     sync.Mutex
	list   []string
}

func (c *requests) wrap(rt http.RoundTripper) http.RoundTripper {
	return testenv.RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead && !req.URL.Query().Has("dryRun") {
			c.writes.Add(1)
			c.mu.Lock()
			c.list = append(c.list, req.Method+" "+req.URL.Path)
			c.mu.Unlock()
		}
		return rt.RoundTrip(req)
	})
}

func (c *requests) reset() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	list := c.list
	c.list = nil
	c.writes.Store(0)
	return list
}

// pass runs one reconcile pass and fails the test on any failed entry or pass error.
func pass(t *testing.T, r *reconcile.Reconciler, res *render.Result, revision string) *reconcile.Result {
	t.Helper()
	begin := time.Now()
	out, err := r.Apply(t.Context(), reconcile.Input{Render: res, Revision: revision})
	if err != nil {
		t.Fatalf("pass %s: %v", revision, err)
	}
	t.Logf("pass %s: %d entries in %s", revision, len(out.Entries), time.Since(begin).Round(time.Millisecond))
	for _, e := range out.Entries {
		if e.Action == reconcile.Failed {
			t.Errorf("pass %s: %s", revision, e)
		}
	}
	for _, err := range out.Errors {
		t.Errorf("pass %s: %v", revision, err)
	}
	for _, ts := range out.Tenants {
		if ts.Health == reconcile.HealthFailed {
			t.Errorf("pass %s: tenant %s failed: %s", revision, ts.Name, ts.Reason)
		}
	}
	return out
}

// TestDeploy applies deploy/ to a real API server and reconciles examples/ as the
// ServiceAccount it creates, with stand-in vclusters for the example tenants.
func TestDeploy(t *testing.T) {
	begin := time.Now()
	host := testenv.StartHost(t, testenv.DefaultControlPlaneOptions())
	ctx := t.Context()
	objs := build(t)

	// controller-runtime's envtest starts kube-apiserver with --authorization-mode=RBAC
	// unless told otherwise (pkg/internal/testing/controlplane/apiserver.go). Check it.
	t.Run("the API server authorizes with RBAC, so the checks below mean something", func(t *testing.T) {
		nobody := newClient(t, impersonating(host.Config, "nobody"))
		var secrets corev1.SecretList
		err := nobody.List(ctx, &secrets, client.InNamespace(metav1.NamespaceSystem))
		if !apierrors.IsForbidden(err) {
			t.Fatalf("an unprivileged user listed Secrets in kube-system: got %v, want Forbidden", err)
		}
	})

	applied := t.Run("the kustomization applies server-side without warnings", func(t *testing.T) {
		w := &warnings{}
		cfg := rest.CopyConfig(host.Config)
		cfg.WarningHandlerWithContext = w
		apply(t, newClient(t, cfg), objs)
		if got := w.all(); len(got) > 0 {
			t.Errorf("the API server warned:\n%s", strings.Join(got, "\n"))
		}
		// And again: nothing changes, nothing warns.
		apply(t, newClient(t, cfg), objs)
		if got := w.all(); len(got) > 0 {
			t.Errorf("the API server warned on the second apply:\n%s", strings.Join(got, "\n"))
		}
	})
	if !applied {
		t.FailNow()
	}

	t.Run("the Deployment runs three sharded replicas of the image with a read-only root", func(t *testing.T) {
		var d appsv1.Deployment
		if err := host.Client.Get(ctx, client.ObjectKey{Namespace: reconcile.SystemNamespace, Name: "raas"}, &d); err != nil {
			t.Fatal(err)
		}
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
			t.Errorf("replicas %v, want 3", d.Spec.Replicas)
		}
		c := d.Spec.Template.Spec.Containers[0]
		if c.Image != image+":latest" {
			t.Errorf("image %s", c.Image)
		}
		if !slices.Contains(c.Args, "--shard") || !slices.Contains(c.Args, "--leader-election-namespace="+reconcile.SystemNamespace) {
			t.Errorf("args %v lack the shard ring in %s", c.Args, reconcile.SystemNamespace)
		}
		if slices.Contains(c.Args, "--leader-elect") {
			t.Errorf("args %v ask for leader election and sharding", c.Args)
		}
		// The ring names each replica after its pod, and relays webhooks to its pod's IP.
		fields := map[string]string{}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
				fields[e.Name] = e.ValueFrom.FieldRef.FieldPath
			}
		}
		if fields["POD_NAME"] != "metadata.name" || fields["POD_IP"] != "status.podIP" {
			t.Errorf("env from the downward API %v, want POD_NAME from metadata.name and POD_IP from status.podIP", fields)
		}
		var pdb policyv1.PodDisruptionBudget
		if err := host.Client.Get(ctx, client.ObjectKey{Namespace: reconcile.SystemNamespace, Name: "raas"}, &pdb); err != nil {
			t.Fatal(err)
		}
		// One replica at a time: a drain moves one replica's tenants, to replicas that are up.
		if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.MinAvailable != nil {
			t.Errorf("PodDisruptionBudget maxUnavailable %v, minAvailable %v; want maxUnavailable 1", pdb.Spec.MaxUnavailable, pdb.Spec.MinAvailable)
		}
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("the root file system is writable")
		}
		if d.Spec.Template.Spec.ServiceAccountName != "raas" {
			t.Errorf("service account %q", d.Spec.Template.Spec.ServiceAccountName)
		}
	})

	// The ServiceAccount as the API server sees it in a pod. Every request it is
	// authorized for is recorded, to show at the end that each grant was used.
	used := &usage{}
	saCfg := impersonating(host.Config, serviceAccount)
	saCfg.Wrap(used.wrap)
	sa := newClient(t, saCfg)

	t.Run("the ServiceAccount is refused what RBAC does not grant it", func(t *testing.T) {
		dryRun := client.DryRunAll
		refused := []struct {
			what string
			do   func() error
		}{
			{"creating a ClusterRole", func() error {
				return sa.Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "raas-more"}}, dryRun)
			}},
			{"binding cluster-admin to itself", func() error {
				return sa.Create(ctx, &rbacv1.ClusterRoleBinding{
					ObjectMeta: metav1.ObjectMeta{Name: "raas-admin"},
					RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
					Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "raas", Namespace: reconcile.SystemNamespace}},
				}, dryRun)
			}},
			{"deleting its own Tenant CRD", func() error {
				return sa.Delete(ctx, &apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: "tenants.raas.dev"}}, dryRun)
			}},
			{"listing nodes", func() error { return sa.List(ctx, &corev1.NodeList{}) }},
			{"creating a Deployment", func() error {
				return sa.Create(ctx, &appsv1.Deployment{
					ObjectMeta: metav1.ObjectMeta{Namespace: reconcile.SystemNamespace, Name: "raas-other"},
					Spec: appsv1.DeploymentSpec{
						Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}},
						Template: corev1.PodTemplateSpec{
							ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"a": "b"}},
							Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
						},
					},
				}, dryRun)
			}},
			{"taking a Lease in kube-system", func() error {
				return sa.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceSystem, Name: "raas"}}, dryRun)
			}},
			{"updating its own Deployment", func() error {
				var d appsv1.Deployment
				if err := host.Client.Get(ctx, client.ObjectKey{Namespace: reconcile.SystemNamespace, Name: "raas"}, &d); err != nil {
					return err
				}
				return sa.Update(ctx, &d, dryRun)
			}},
		}
		for _, c := range refused {
			// RBAC's refusal, not raas-scope's: "User ... cannot create resource ...".
			if err := c.do(); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), serviceAccount+`" cannot `) {
				t.Errorf("%s: got %v, want Forbidden by RBAC", c.what, err)
			}
		}

		// Verbs that are not requests of their own.
		for _, ra := range []authorizationv1.ResourceAttributes{
			{Verb: "escalate", Group: rbacv1.GroupName, Resource: "roles", Namespace: "tenant-ml-team-alpha"},
			{Verb: "bind", Group: rbacv1.GroupName, Resource: "clusterroles", Name: "cluster-admin"},
			{Verb: "impersonate", Resource: "users", Name: "admin"},
			{Verb: "update", Group: "coordination.k8s.io", Resource: "leases", Namespace: metav1.NamespaceSystem, Name: "kube-scheduler"},
			{Verb: "delete", Group: "coordination.k8s.io", Resource: "leases", Namespace: "kube-node-lease", Name: "node-1"},
			{Verb: "patch", Group: "coordination.k8s.io", Resource: "leases", Namespace: reconcile.SystemNamespace, Name: "raas-shard-raas-0"},
			{Verb: "watch", Group: "coordination.k8s.io", Resource: "leases", Namespace: reconcile.SystemNamespace},
			{Verb: "deletecollection", Group: "coordination.k8s.io", Resource: "leases", Namespace: reconcile.SystemNamespace},
			{Verb: "watch", Resource: "nodes"},
			{Verb: "update", Group: "scheduling.volcano.sh", Resource: "queues"},
		} {
			review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &ra}}
			if err := sa.Create(ctx, review); err != nil {
				t.Fatal(err)
			}
			if review.Status.Allowed {
				t.Errorf("the ServiceAccount may %s %s/%s %s in %q", ra.Verb, ra.Group, ra.Resource, ra.Name, ra.Namespace)
			}
		}
	})

	t.Run("the admission policy confines the ServiceAccount's writes to what raas manages", func(t *testing.T) {
		// RBAC allows each of these (rbac.yaml, raas-vcluster); raas-scope refuses them.
		// They are dry runs, so that a policy that fails to refuse breaks nothing.
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceSystem, Name: "raas-shell"},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "shell", Image: "busybox"}}},
		}
		bystander := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bystander"}}
		if err := host.Client.Create(ctx, bystander); err != nil {
			t.Fatal(err)
		}
		kubeSystem := &corev1.Namespace{}
		if err := host.Client.Get(ctx, client.ObjectKey{Name: metav1.NamespaceSystem}, kubeSystem); err != nil {
			t.Fatal(err)
		}
		configMap := func() error {
			return sa.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceDefault, Name: "raas"}}, client.DryRunAll)
		}
		// The API server loads new policies asynchronously.
		poll(t, 30*time.Second, "raas-scope in force", func() (bool, error) {
			err := configMap()
			return refusedByScope(err), err
		})
		for _, c := range []struct {
			what string
			do   func() error
		}{
			{"creating a pod in kube-system", func() error { return sa.Create(ctx, pod, client.DryRunAll) }},
			{"creating a ConfigMap in default", configMap},
			{"labelling kube-system as its own", func() error {
				ns := kubeSystem.DeepCopy()
				ns.Labels[raasschema.LabelManagedBy] = raasschema.ManagedBy
				return sa.Patch(ctx, ns, client.MergeFrom(kubeSystem), client.DryRunAll)
			}},
			{"deleting a namespace it does not manage", func() error {
				return sa.Delete(ctx, bystander, client.DryRunAll)
			}},
			{"creating a namespace it does not label", func() error {
				return sa.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "not-raas"}}, client.DryRunAll)
			}},
		} {
			if err := c.do(); !refusedByScope(err) {
				t.Errorf("%s: got %v, want Forbidden by raas-scope", c.what, err)
			}
		}
	})

	fsys := exampleFS(t)
	res := renderFS(t, fsys)

	t.Run("without raas-vcluster the chart's Role could not be created", func(t *testing.T) {
		// A second ServiceAccount with rbac.yaml's raas roles but not raas-vcluster.
		const name = "raas-without-vcluster"
		bind := []client.Object{
			&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: reconcile.SystemNamespace, Name: name}},
			&rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "raas"},
				Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: reconcile.SystemNamespace}},
			},
		}
		for _, o := range bind {
			if err := host.Client.Create(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
		// The chart's Role in a namespace of its own, labelled as raas labels the
		// namespaces it creates, so that raas-scope lets raas write there.
		role := chartRole(t, res)
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "escalation-check",
			Labels: map[string]string{raasschema.LabelManagedBy: raasschema.ManagedBy}}}
		if err := host.Client.Create(ctx, ns); err != nil {
			t.Fatal(err)
		}
		role = role.DeepCopy()
		role.SetNamespace(ns.Name)
		without := newClient(t, impersonating(host.Config, "system:serviceaccount:"+reconcile.SystemNamespace+":"+name))
		err := without.Apply(ctx, client.ApplyConfigurationFromUnstructured(role.DeepCopy()),
			client.FieldOwner(reconcile.FieldManager), client.ForceOwnership, client.DryRunAll)
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "attempting to grant RBAC permissions not currently held") {
			t.Fatalf("got %v, want Forbidden by the RBAC escalation check", err)
		}
		err = sa.Apply(ctx, client.ApplyConfigurationFromUnstructured(role.DeepCopy()),
			client.FieldOwner(reconcile.FieldManager), client.ForceOwnership, client.DryRunAll)
		if err != nil {
			t.Fatalf("with raas-vcluster: %v", err)
		}
		for _, o := range bind {
			if err := host.Client.Delete(ctx, o); err != nil {
				t.Error(err)
			}
		}
	})

	// Volcano's install creates volcano-system, where the platform's scheduler ConfigMap
	// goes; raas does not create it.
	volcano := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "volcano-system"}}
	if err := host.Client.Create(ctx, volcano); err != nil {
		t.Fatal(err)
	}
	counter := &requests{}
	opts := reconcile.DefaultOptions()
	opts.PollInterval = 100 * time.Millisecond
	// The first pass finds no vcluster up and goes on; later passes find them at once.
	opts.VClusterTimeout = time.Second
	opts.WrapTransport = counter.wrap
	r, err := reconcile.New(saCfg, opts)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("the ServiceAccount creates the tenants' namespaces and host objects", func(t *testing.T) {
		out := pass(t, r, res, "host")
		for _, e := range out.Entries {
			if e.Target == render.Host && e.Action != reconcile.Created {
				t.Errorf("%s, want created", e)
			}
		}
		for _, ts := range out.Tenants {
			if ts.Health != reconcile.HealthProgressing {
				t.Errorf("tenant %s is %s (%s), want Progressing: its vcluster is not up", ts.Name, ts.Health, ts.Reason)
			}
		}
	})

	// The vclusters come up in the namespaces raas created, and export their kubeconfigs.
	// Each tenant gets its own: their KubeRay installs differ.
	var names []string
	for _, out := range res.Tenants {
		names = append(names, out.Tenant)
	}
	vclusters := host.StartVClusters(t, names, func(n string) (string, string) {
		return res.Repo.Platform.Namespace(n), raasschema.Release(n)
	}, testenv.DefaultVClusterOptions())

	t.Run("the ServiceAccount runs a full pass of the examples", func(t *testing.T) {
		out := pass(t, r, res, "full")
		tenants := map[string]bool{}
		for _, e := range out.Entries {
			if e.Target == render.Virtual && e.Action == reconcile.Created {
				tenants[e.Tenant] = true
			}
		}
		for _, o := range res.Tenants {
			if !tenants[o.Tenant] {
				t.Errorf("tenant %s: nothing created inside its vcluster", o.Tenant)
			}
		}
		if t.Failed() {
			return
		}
		var cm corev1.ConfigMap
		if err := host.Client.Get(ctx, client.ObjectKey{Namespace: "volcano-system", Name: "volcano-scheduler-configmap"}, &cm); err != nil {
			t.Errorf("the Volcano scheduler ConfigMap: %v", err)
		}
	})
	counter.reset()

	t.Run("a second pass writes nothing", func(t *testing.T) {
		out := pass(t, r, renderFS(t, fsys), "no-op")
		for _, e := range out.Entries {
			if e.Action != reconcile.Unchanged {
				t.Errorf("%s, want unchanged", e)
			}
		}
		if writes := counter.reset(); len(writes) > 0 {
			t.Errorf("%d writes:\n%s", len(writes), strings.Join(writes, "\n"))
		}
	})

	t.Run("removing a tenant's file prunes its objects", func(t *testing.T) {
		delete(fsys, "tenants/"+removedTenant+".yaml")
		removed := renderFS(t, fsys)
		out := pass(t, r, removed, "prune")
		deleted := 0
		for _, e := range out.Entries {
			switch {
			case e.Tenant != removedTenant:
				if e.Action != reconcile.Unchanged {
					t.Errorf("%s, want unchanged", e)
				}
			case e.Target == render.Host:
				if e.Action != reconcile.Deleted {
					t.Errorf("%s, want deleted", e)
				}
				deleted++
			}
		}
		if deleted == 0 {
			t.Fatalf("nothing of tenant %s was deleted", removedTenant)
		}
		namespace := res.Repo.Platform.Namespace(removedTenant)
		var ns corev1.Namespace
		err := host.Client.Get(ctx, client.ObjectKey{Name: namespace}, &ns)
		// No namespace controller runs: a deleted namespace stays Terminating.
		if err == nil && ns.DeletionTimestamp == nil {
			t.Errorf("namespace %s is still there and not being deleted", namespace)
		}
		var inventories corev1.ConfigMapList
		if err := host.Client.List(ctx, &inventories, client.InNamespace(reconcile.SystemNamespace),
			client.MatchingLabels{raasschema.LabelTenant: removedTenant}); err != nil {
			t.Fatal(err)
		}
		if len(inventories.Items) > 0 {
			t.Errorf("the inventory of %s is still there", removedTenant)
		}
	})
	t.Run("raas reconcile --shard runs as the ServiceAccount: member Lease, status, Events, PodGroup bridges", func(t *testing.T) {
		runLoop(t, host, saCfg, fsys, res, vclusters)
	})

	t.Run("every permission raas holds for its own use was used", func(t *testing.T) {
		// Grants the passes above cannot provoke, and why raas holds them.
		unexercised := map[string]string{
			"events patch": "the bridge's event recorder folds a repeated refusal into a count",
			"validatingadmissionpolicies.admissionregistration.k8s.io delete": "prunes a platform policy that a newer raas no longer renders",
			"mutatingadmissionpolicies.admissionregistration.k8s.io delete":   "prunes a platform policy that a newer raas no longer renders",
			"podgroups.scheduling.volcano.sh list":                            "informers list plainly on API servers without streaming lists (client-go streams them through watch)",
		}
		granted := append(grants(t, objs, "ClusterRole", "raas"), grants(t, objs, "Role", "raas")...)
		for _, g := range granted {
			if !used.has(g) && unexercised[g] == "" {
				t.Errorf("rbac.yaml grants %q, and no pass used it", g)
			}
		}
		for g := range unexercised {
			if used.has(g) {
				t.Errorf("%q was used: drop it from the exceptions", g)
			}
			if !slices.Contains(granted, g) {
				t.Errorf("%q is not granted: drop it from the exceptions", g)
			}
		}
	})
	t.Logf("TestDeploy took %s", time.Since(begin).Round(time.Millisecond))
}

// usage records the resources and verbs a client was authorized for: every response but
// 401 and 403. Keys read "resource.group verb", as in "leases.coordination.k8s.io get".
type usage struct {
	mu   sync.Mutex
	used map[string]bool
}

func (u *usage) wrap(rt http.RoundTripper) http.RoundTripper {
	return testenv.RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		if err != nil || resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			return resp, err
		}
		resource, named, ok := resourceOf(req.URL.Path)
		if !ok {
			return resp, err
		}
		var verbs []string
		switch req.Method {
		case http.MethodGet:
			switch {
			case named:
				verbs = []string{"get"}
			case req.URL.Query().Get("watch") == "true":
				verbs = []string{"watch"}
			default:
				verbs = []string{"list"}
			}
		case http.MethodPost:
			verbs = []string{"create"}
		case http.MethodPut:
			verbs = []string{"update"}
		case http.MethodPatch:
			verbs = []string{"patch"}
			if resp.StatusCode == http.StatusCreated {
				// A server-side apply that creates the object is authorized for create
				// as well.
				verbs = append(verbs, "create")
			}
		case http.MethodDelete:
			verbs = []string{"delete"}
		}
		u.mu.Lock()
		defer u.mu.Unlock()
		if u.used == nil {
			u.used = map[string]bool{}
		}
		for _, v := range verbs {
			u.used[resource+" "+v] = true
		}
		return resp, err
	})
}

func (u *usage) has(key string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.used[key]
}

// resourceOf parses an API path, /api/v1/... or /apis/GROUP/VERSION/..., into
// "resource[/subresource].group" and whether it names one object.
func resourceOf(path string) (resource string, named, ok bool) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	var group string
	switch {
	case len(parts) >= 3 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 4 && parts[0] == "apis":
		group, parts = parts[1], parts[3:]
	default:
		return "", false, false
	}
	if len(parts) >= 3 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	resource = parts[0]
	if len(parts) >= 3 {
		resource += "/" + parts[2]
	}
	if group != "" {
		resource += "." + group
	}
	return resource, len(parts) >= 2, true
}

// grants expands the rules of the built Role or ClusterRole name into keys like usage's.
func grants(t testing.TB, objs []*unstructured.Unstructured, kind, name string) []string {
	t.Helper()
	var role rbacv1.ClusterRole // a Role's rules have the same shape
	if err := k8sruntime.DefaultUnstructuredConverter.FromUnstructured(find(t, objs, kind, name).Object, &role); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, r := range role.Rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					key := res
					if g != "" {
						key += "." + g
					}
					keys = append(keys, key+" "+v)
				}
			}
		}
	}
	return keys
}

// logLines keeps the lines an slog handler writes.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// runLoop runs what `raas reconcile --shard` runs, as the ServiceAccount, on a directory
// holding fsys: it joins the shard ring with a member Lease (alone in it, it owns every
// tenant), passes, writes each tenant's status and Events, bridges PodGroups, and leaves
// the ring (deletes its Lease) when it stops. A PodGroup created inside a tenant's
// vcluster must reach the host, and removing a tenant must delete its status. The loop
// and the member log, rather than fail on, a refused status, Event or Lease write, so no
// log line may say forbidden.
func runLoop(t *testing.T, host *testenv.ControlPlane, saCfg *rest.Config, fsys fstest.MapFS, res *render.Result, vclusters map[string]*testenv.VCluster) {
	ctx := t.Context()
	dir := t.TempDir()
	for name, f := range fsys {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src, err := source.NewDir(dir, source.DefaultDirOptions())
	if err != nil {
		t.Fatal(err)
	}
	logs := &logLines{}
	cat := exampletest.Catalog(t)
	opts := daemon.DefaultOptions()
	opts.Source = src
	opts.Catalog = catalog.Options{Dirs: []string{cat}, CacheDir: t.TempDir()}
	opts.Reconcile.PollInterval = 100 * time.Millisecond
	opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// The bridges log through klog: into the same lines.
	klog.SetSlogLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	defer klog.ClearLogger()
	so := shard.DefaultOptions()
	so.Namespace, so.Identity, so.Logger = reconcile.SystemNamespace, "deploy-test", opts.Logger
	so.LeaseDuration, so.RenewPeriod, so.Timeout, so.Margin = 3*time.Second, 300*time.Millisecond, 250*time.Millisecond, 300*time.Millisecond
	member, err := shard.Join(ctx, saCfg, so)
	if err != nil {
		t.Fatal(err)
	}
	opts.Owner = member
	l, err := daemon.New(saCfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 2)
	go func() { done <- member.Run(runCtx) }()
	go func() { done <- l.Run(runCtx) }()
	var once sync.Once
	var stopErr error
	shutdown := func() error {
		once.Do(func() {
			stop()
			errs := []error{<-done, <-done}
			leave, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			stopErr = errors.Join(append(errs, member.Leave(leave))...)
		})
		return stopErr
	}
	defer shutdown()
	defer func() {
		if t.Failed() {
			t.Logf("loop logs:\n%s", logs)
		}
	}()

	refused := func() bool { return strings.Contains(strings.ToLower(logs.String()), "forbidden") }
	// The first pass runs while the member's Lease is not confirmed yet, and covers
	// nothing; the member then owns every tenant, and the next pass covers them.
	poll(t, 2*time.Minute, "a pass over every tenant as the ring's only member", func() (bool, error) {
		if refused() {
			t.Fatal("the loop was refused something")
		}
		last := l.Last()
		if last == nil {
			return false, nil
		}
		for _, out := range res.Tenants {
			if out.Tenant != removedTenant && last.Tenant(out.Tenant) == nil {
				return false, nil
			}
		}
		return true, nil
	})
	for _, e := range l.Last().Entries {
		if e.Action == reconcile.Failed {
			t.Errorf("loop pass: %s", e)
		}
	}
	var lease coordinationv1.Lease
	leaseKey := client.ObjectKey{Namespace: so.Namespace, Name: so.Ring + "-shard-" + so.Identity}
	if err := host.Client.Get(ctx, leaseKey, &lease); err != nil {
		t.Fatal(err)
	}
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != so.Identity {
		t.Errorf("Lease holder %v, want %s", lease.Spec.HolderIdentity, so.Identity)
	}

	tenantGVK := schema.GroupVersionKind{Group: "raas.dev", Version: "v1alpha1", Kind: "Tenant"}
	tenant := func(name string) (*unstructured.Unstructured, error) {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(tenantGVK)
		return u, host.Client.Get(ctx, client.ObjectKey{Name: name}, u)
	}
	for _, out := range res.Tenants {
		if out.Tenant == removedTenant {
			continue
		}
		u, err := tenant(out.Tenant)
		if err != nil {
			t.Errorf("Tenant %s: %v", out.Tenant, err)
			continue
		}
		phase, _, _ := unstructured.NestedString(u.Object, "status", "phase")
		if phase == "" {
			t.Errorf("Tenant %s has no status phase", out.Tenant)
		}
		var events corev1.EventList
		if err := host.Client.List(ctx, &events, client.InNamespace(res.Repo.Platform.Namespace(out.Tenant))); err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(events.Items, func(e corev1.Event) bool { return e.Source.Component == "raas" }) {
			t.Errorf("no Event from raas on tenant %s's namespace", out.Tenant)
		}
	}

	// A gang that KubeRay would create inside ml-team-alpha's vcluster.
	const gangTenant, gang = "ml-team-alpha", "ray-demo-pg"
	pg := &unstructured.Unstructured{}
	pg.SetGroupVersionKind(schema.GroupVersionKind{Group: "scheduling.volcano.sh", Version: "v1beta1", Kind: "PodGroup"})
	pg.SetNamespace(metav1.NamespaceDefault)
	pg.SetName(gang)
	if err := unstructured.SetNestedField(pg.Object, int64(2), "spec", "minMember"); err != nil {
		t.Fatal(err)
	}
	if err := vclusters[gangTenant].Client.Create(ctx, pg); err != nil {
		t.Fatal(err)
	}
	hostNS := res.Repo.Platform.Namespace(gangTenant)
	mirrored := func() error {
		mirror := &unstructured.Unstructured{}
		mirror.SetGroupVersionKind(pg.GroupVersionKind())
		return host.Client.Get(ctx, client.ObjectKey{Namespace: hostNS, Name: gang}, mirror)
	}
	poll(t, time.Minute, "PodGroup "+gang+" mirrored into "+hostNS, func() (bool, error) {
		err := mirrored()
		return err == nil, err
	})
	// The gang is done: the bridge deletes the host copy.
	if err := vclusters[gangTenant].Client.Delete(ctx, pg); err != nil {
		t.Fatal(err)
	}
	poll(t, time.Minute, "PodGroup "+gang+" deleted from "+hostNS, func() (bool, error) {
		err := mirrored()
		return apierrors.IsNotFound(err), err
	})

	// A commit that changes a tenant's spec and removes the sandbox: the Tenant of one is
	// updated, the other's deleted (its namespace stays with its data).
	const sandbox = "vision-team-next"
	if err := os.Remove(filepath.Join(dir, "tenants", sandbox+".yaml")); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "tenants", gangTenant+".yaml")
	data, err := os.ReadFile(file)
	if err != nil || !strings.Contains(string(data), "weight: 2") {
		t.Fatalf("%s: %v, or no weight: 2 in it", file, err)
	}
	if err := os.WriteFile(file, []byte(strings.Replace(string(data), "weight: 2", "weight: 3", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	l.Trigger().Trigger("test")
	poll(t, 2*time.Minute, "Tenant "+sandbox+" deleted", func() (bool, error) {
		_, err := tenant(sandbox)
		return apierrors.IsNotFound(err), err
	})
	u, err := tenant(gangTenant)
	if err != nil {
		t.Fatal(err)
	}
	if weight, _, _ := unstructured.NestedInt64(u.Object, "spec", "source", "scheduling", "weight"); weight != 3 {
		t.Errorf("Tenant %s records weight %d, want 3", gangTenant, weight)
	}

	if err := shutdown(); err != nil {
		t.Errorf("shard member and loop: %v", err)
	}
	// Deleted on leaving, for the others to take its tenants at once.
	if err := host.Client.Get(ctx, leaseKey, &lease); !apierrors.IsNotFound(err) {
		t.Errorf("the member Lease after leaving: got %v, want NotFound", err)
	}
	if refused() {
		t.Errorf("the loop was refused something")
	}
}

// refusedByScope reports whether err is the refusal of admission.yaml's policy.
func refusedByScope(err error) bool {
	return apierrors.IsForbidden(err) && strings.Contains(err.Error(), "ValidatingAdmissionPolicy 'raas-scope'")
}

// chartRole returns the vcluster chart's Role as rendered for the first example tenant.
func chartRole(t testing.TB, res *render.Result) *unstructured.Unstructured {
	t.Helper()
	for _, out := range res.Tenants {
		for _, o := range out.Host {
			if gvk := o.GroupVersionKind(); gvk.Group == rbacv1.GroupName && gvk.Kind == "Role" {
				return o.Unstructured
			}
		}
	}
	t.Fatal("no tenant renders a Role")
	return nil
}

// TestDeploymentArgsAreReconcileFlags builds raas and checks that raas reconcile accepts
// the Deployment's arguments: a renamed or removed flag would crash the pods.
func TestDeploymentArgsAreReconcileFlags(t *testing.T) {
	d := find(t, build(t), "Deployment", "raas")
	containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	c := containers[0].(map[string]any)
	var args []string
	for _, a := range c["args"].([]any) {
		args = append(args, a.(string))
	}
	if len(args) == 0 || args[0] != "reconcile" {
		t.Fatalf("args %v do not start with reconcile", args)
	}
	bin := filepath.Join(t.TempDir(), "raas")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	build := exec.CommandContext(t.Context(), gobin, "build", "-o", bin, "../cmd/raas")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/raas: %v\n%s", err, out)
	}
	// --help after the flags: cobra parses them all, fails on an unknown one, and does
	// not run the command.
	out, err := exec.CommandContext(t.Context(), bin, append(args, "--help")...).CombinedOutput()
	if err != nil {
		t.Fatalf("raas %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if !strings.Contains(string(out), "raas reconcile") {
		t.Errorf("raas %s did not print the reconcile help:\n%s", strings.Join(args, " "), out)
	}
}
