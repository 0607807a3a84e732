package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sschema "k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/raas-dev/raas/internal/exampletest"
	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/schema"
)

// asRaas makes the test binary run as the raas command when re-executed by a test, so
// that fault tests can kill a real raas process.
const asRaas = "RAAS_TEST_RUN_AS_RAAS"

func TestMain(m *testing.M) {
	if os.Getenv(asRaas) == "1" {
		os.Args = append([]string{"raas"}, strings.Fields(os.Getenv(asRaas+"_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// raasProcess starts raas with args as a process of its own.
func raasProcess(t *testing.T, args ...string) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), asRaas+"=1", asRaas+"_ARGS="+strings.Join(args, " "))
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, out
}

// managedKinds are the kinds raas applies on the host.
var managedKinds = []k8sschema.GroupVersionKind{
	{Version: "v1", Kind: "Namespace"}, {Version: "v1", Kind: "ResourceQuota"}, {Version: "v1", Kind: "LimitRange"},
	{Version: "v1", Kind: "ServiceAccount"}, {Version: "v1", Kind: "Secret"}, {Version: "v1", Kind: "ConfigMap"},
	{Version: "v1", Kind: "Service"}, {Group: "apps", Version: "v1", Kind: "StatefulSet"},
	{Group: "networking.k8s.io", Version: "v1", Kind: "NetworkPolicy"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "Role"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "RoleBinding"},
	{Group: "scheduling.volcano.sh", Version: "v1beta1", Kind: "Queue"},
	{Group: "admissionregistration.k8s.io", Version: "v1", Kind: "ValidatingAdmissionPolicy"},
	{Group: "admissionregistration.k8s.io", Version: "v1", Kind: "ValidatingAdmissionPolicyBinding"},
}

// orphans returns the host objects labelled as raas's that no inventory lists.
func orphans(t *testing.T, c client.Client, inventoryNS string) []string {
	t.Helper()
	ctx := context.Background()
	var cms corev1.ConfigMapList
	if err := c.List(ctx, &cms, client.InNamespace(inventoryNS)); err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, cm := range cms.Items {
		var inv struct {
			Objects []struct {
				Target    string `json:"target"`
				Group     string `json:"group"`
				Kind      string `json:"kind"`
				Namespace string `json:"namespace"`
				Name      string `json:"name"`
			} `json:"objects"`
		}
		if err := yaml.Unmarshal([]byte(cm.Data["inventory.yaml"]), &inv); err != nil {
			t.Fatalf("inventory %s: %v", cm.Name, err)
		}
		for _, o := range inv.Objects {
			if o.Target == "host" {
				listed[o.Group+"/"+o.Kind+" "+o.Namespace+"/"+o.Name] = true
			}
		}
	}
	var found []string
	for _, key := range managed(t, c) {
		if !listed[key] && !strings.Contains(key, " "+inventoryNS+"/") && key != "/Namespace /"+inventoryNS {
			found = append(found, key)
		}
	}
	return found
}

// managed lists the host objects labelled as raas's, as "group/Kind namespace/name".
func managed(t *testing.T, c client.Client) []string {
	t.Helper()
	var keys []string
	for _, gvk := range managedKinds {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := c.List(context.Background(), list, client.MatchingLabels{schema.LabelManagedBy: schema.ManagedBy}); err != nil {
			t.Fatalf("list %s: %v", gvk.Kind, err)
		}
		for _, o := range list.Items {
			keys = append(keys, gvk.Group+"/"+gvk.Kind+" "+o.GetNamespace()+"/"+o.GetName())
		}
	}
	return keys
}

// TestKilledMidPass kills a real raas apply process with SIGKILL in the middle of its
// pass, then runs it again: it converges, and every object raas labelled is in an
// inventory, so that a later prune finds it. Then the tenants' files are removed, and
// their objects go.
func TestKilledMidPass(t *testing.T) {
	host := testenv.StartHost(t, testenv.DefaultControlPlaneOptions())
	ctx := t.Context()
	if err := host.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "volcano-system"}}); err != nil {
		t.Fatal(err)
	}
	dir := exampletest.Dir(t)
	args := []string{"apply", dir, "--kubeconfig", host.WriteKubeConfigFile(t), "--catalog", exampletest.Catalog(t),
		"--vcluster-timeout", "1s"}
	repo, err := schema.Load(os.DirFS(dir))
	if err != nil || !repo.OK() {
		t.Fatalf("examples: %v %v", err, repo.Problems)
	}
	first := repo.Tenants[0].Metadata.Name

	cmd, out := raasProcess(t, args...)
	// Kill it once the first tenant's namespace exists: its objects are being applied,
	// the last tenant's not yet.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		err := host.Client.Get(ctx, client.ObjectKey{Name: repo.Platform.Namespace(first)}, &corev1.Namespace{})
		if err == nil {
			break
		}
		if !apierrors.IsNotFound(err) || time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("waiting for the first namespace: %v\n%s", err, out)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if status, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !status.Signaled() {
		t.Fatalf("raas was not killed mid-pass (%v): it ended first\n%s", err, out)
	}
	atKill := len(managed(t, host.Client))
	if o := orphans(t, host.Client, "raas-system"); len(o) > 0 {
		t.Errorf("after the kill, objects no inventory lists: %v", o)
	}

	t.Run("a restarted raas converges with nothing orphaned", func(t *testing.T) {
		cmd, out := raasProcess(t, args...)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("raas apply after the kill: %v\n%s", err, out)
		}
		if o := orphans(t, host.Client, "raas-system"); len(o) > 0 {
			t.Errorf("objects no inventory lists: %v", o)
		}
		converged := len(managed(t, host.Client))
		t.Logf("%d objects when raas was killed, %d once converged", atKill, converged)
		if atKill >= converged {
			t.Errorf("the kill came after the pass had applied everything (%d of %d objects)", atKill, converged)
		}
		cmd, out = raasProcess(t, args...)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("raas apply again: %v\n%s", err, out)
		}
		if strings.Contains(out.String(), " created") || strings.Contains(out.String(), " configured") {
			t.Errorf("a pass after convergence still changes things:\n%s", out)
		}
	})

	t.Run("removing the tenants then deletes their objects", func(t *testing.T) {
		for _, tn := range repo.Tenants {
			if err := os.Remove(filepath.Join(dir, "tenants", tn.Metadata.Name+".yaml")); err != nil {
				t.Fatal(err)
			}
		}
		cmd, out := raasProcess(t, append(args, "--allow-mass-delete")...)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("raas apply without tenants: %v\n%s", err, out)
		}
		left := 0
		for _, tn := range repo.Tenants {
			var quotas corev1.ResourceQuotaList
			if err := host.Client.List(ctx, &quotas, client.InNamespace(repo.Platform.Namespace(tn.Metadata.Name))); err != nil {
				t.Fatal(err)
			}
			left += len(quotas.Items)
		}
		if left > 0 {
			t.Errorf("%d ResourceQuotas of removed tenants are left", left)
		}
	})
}
