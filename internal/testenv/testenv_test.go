package testenv_test

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	schedulingv1beta1 "volcano.sh/apis/pkg/apis/scheduling/v1beta1"

	"github.com/raas-dev/raas/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestHost(t *testing.T) {
	host := testenv.Shared(t)
	ctx := t.Context()

	t.Run("reports Kubernetes v1.37.2 through discovery", func(t *testing.T) {
		dc, err := discovery.NewDiscoveryClientForConfig(host.Config)
		if err != nil {
			t.Fatal(err)
		}
		v, err := dc.ServerVersion()
		if err != nil {
			t.Fatal(err)
		}
		if v.GitVersion != "v1.37.2" {
			t.Errorf("GitVersion = %q, want v1.37.2", v.GitVersion)
		}
	})

	t.Run("serves the Volcano queue and podgroup CRDs", func(t *testing.T) {
		var crds apiextensionsv1.CustomResourceDefinitionList
		if err := host.Client.List(ctx, &crds); err != nil {
			t.Fatal(err)
		}
		established := map[string]bool{}
		for _, crd := range crds.Items {
			for _, c := range crd.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					established[crd.Name] = true
				}
			}
		}
		for _, name := range []string{"queues.scheduling.volcano.sh", "podgroups.scheduling.volcano.sh"} {
			if !established[name] {
				t.Errorf("CRD %s is not established; established: %v", name, established)
			}
		}
	})

	t.Run("stores a Queue and a PodGroup and reads them back", func(t *testing.T) {
		ns := host.Namespace(t)
		queue := &schedulingv1beta1.Queue{
			ObjectMeta: metav1.ObjectMeta{Name: ns},
			Spec: schedulingv1beta1.QueueSpec{
				Weight:     2,
				Capability: corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("8")},
			},
		}
		if err := host.Client.Create(ctx, queue); err != nil {
			t.Fatalf("create queue: %v", err)
		}
		t.Cleanup(func() { _ = host.Client.Delete(t.Context(), queue) })
		pg := &schedulingv1beta1.PodGroup{
			ObjectMeta: metav1.ObjectMeta{Name: "ray-demo-pg", Namespace: ns},
			Spec:       schedulingv1beta1.PodGroupSpec{MinMember: 3, Queue: queue.Name},
		}
		if err := host.Client.Create(ctx, pg); err != nil {
			t.Fatalf("create podgroup: %v", err)
		}

		var gotQueue schedulingv1beta1.Queue
		if err := host.Client.Get(ctx, client.ObjectKeyFromObject(queue), &gotQueue); err != nil {
			t.Fatalf("get queue: %v", err)
		}
		if gotQueue.Spec.Weight != 2 || !gotQueue.Spec.Capability.Name("nvidia.com/gpu", resource.DecimalSI).Equal(resource.MustParse("8")) {
			t.Errorf("queue spec = %+v, want weight 2 and 8 GPUs", gotQueue.Spec)
		}
		var gotPG schedulingv1beta1.PodGroup
		if err := host.Client.Get(ctx, client.ObjectKeyFromObject(pg), &gotPG); err != nil {
			t.Fatalf("get podgroup: %v", err)
		}
		if gotPG.Spec.MinMember != 3 || gotPG.Spec.Queue != queue.Name {
			t.Errorf("podgroup spec = %+v, want minMember 3 on queue %s", gotPG.Spec, queue.Name)
		}
	})

	t.Run("writes a kubeconfig that reaches the host", func(t *testing.T) {
		data, err := os.ReadFile(host.WriteKubeConfigFile(t))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := clientcmd.RESTConfigFromKubeConfig(data)
		if err != nil {
			t.Fatal(err)
		}
		cl, err := client.New(cfg, client.Options{Scheme: testenv.Scheme})
		if err != nil {
			t.Fatal(err)
		}
		var ns corev1.Namespace
		if err := cl.Get(ctx, client.ObjectKey{Name: "default"}, &ns); err != nil {
			t.Errorf("get namespace default through the kubeconfig: %v", err)
		}
	})
}

func TestVCluster(t *testing.T) {
	host := testenv.Shared(t)
	ctx := t.Context()
	ns := host.Namespace(t)
	opts := testenv.DefaultVClusterOptions()
	opts.ControlPlane.CRDDirs = []string{testenv.VolcanoCRDs}
	vc := host.StartVCluster(t, ns, "team-a", opts)

	var secret corev1.Secret
	if err := host.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "vc-team-a"}, &secret); err != nil {
		t.Fatalf("get kubeconfig secret from the host: %v", err)
	}

	t.Run("exports the kubeconfig secret the way vcluster does", func(t *testing.T) {
		if secret.Type != corev1.SecretTypeOpaque {
			t.Errorf("type = %q, want Opaque", secret.Type)
		}
		if secret.Labels["app"] != "vcluster" || secret.Labels["vcluster-name"] != "team-a" {
			t.Errorf("labels = %v, want app=vcluster vcluster-name=team-a", secret.Labels)
		}
		for _, key := range []string{"config", "certificate-authority", "client-certificate", "client-key", "token"} {
			if _, ok := secret.Data[key]; !ok {
				t.Errorf("data lacks key %q", key)
			}
		}
		kc, err := clientcmd.Load(secret.Data["config"])
		if err != nil {
			t.Fatal(err)
		}
		if kc.CurrentContext != "kubernetes-admin@kubernetes" {
			t.Errorf("current context = %q, want kubernetes-admin@kubernetes", kc.CurrentContext)
		}
	})

	vcfg, err := clientcmd.RESTConfigFromKubeConfig(secret.Data["config"])
	if err != nil {
		t.Fatalf("kubeconfig from secret: %v", err)
	}
	virtual, err := client.New(vcfg, client.Options{Scheme: testenv.Scheme})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("serves objects through the exported kubeconfig", func(t *testing.T) {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "inside", Namespace: "default"},
			Data:       map[string]string{"where": "virtual"},
		}
		if err := virtual.Create(ctx, cm); err != nil {
			t.Fatalf("create configmap in the vcluster: %v", err)
		}
		var got corev1.ConfigMap
		if err := vc.Client.Get(ctx, client.ObjectKeyFromObject(cm), &got); err != nil {
			t.Fatalf("get configmap from the vcluster: %v", err)
		}
		if got.Data["where"] != "virtual" {
			t.Errorf("data = %v, want where=virtual", got.Data)
		}
	})

	t.Run("installs the requested CRDs into the vcluster", func(t *testing.T) {
		pg := &schedulingv1beta1.PodGroup{
			ObjectMeta: metav1.ObjectMeta{Name: "ray-demo-pg", Namespace: "default"},
			Spec:       schedulingv1beta1.PodGroupSpec{MinMember: 2},
		}
		if err := virtual.Create(ctx, pg); err != nil {
			t.Fatalf("create podgroup in the vcluster: %v", err)
		}
	})

	t.Run("is a different API server from the host", func(t *testing.T) {
		if strings.TrimSuffix(vcfg.Host, "/") == strings.TrimSuffix(host.Config.Host, "/") {
			t.Fatalf("vcluster and host share address %s", vcfg.Host)
		}
		if bytes.Equal(vcfg.CAData, host.Config.CAData) {
			t.Error("vcluster and host share a serving CA")
		}
		var onHost corev1.ConfigMap
		err := host.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: "inside"}, &onHost)
		if err == nil {
			t.Error("configmap created in the vcluster is visible on the host")
		}
		var hostSecrets corev1.SecretList
		if err := virtual.List(ctx, &hostSecrets, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		if len(hostSecrets.Items) != 0 {
			t.Errorf("host namespace %s has %d secrets inside the vcluster, want none", ns, len(hostSecrets.Items))
		}
	})
}

func TestStartHost(t *testing.T) {
	t.Run("fails with a hint to build when bin is empty", func(t *testing.T) {
		opts := testenv.DefaultControlPlaneOptions()
		opts.BinDir = t.TempDir()
		_, err := testenv.StartControlPlane(t.Context(), opts)
		if !errors.Is(err, testenv.ErrMissingBinaries) || !strings.Contains(err.Error(), "make controlplane") {
			t.Fatalf("err = %v, want a hint to run make controlplane", err)
		}
	})

	t.Run("starts a pristine cluster apart from the shared one", func(t *testing.T) {
		host := testenv.StartHost(t, testenv.DefaultControlPlaneOptions())
		shared := testenv.Shared(t)
		if host.Config.Host == shared.Config.Host {
			t.Fatalf("isolated host shares address %s with the shared host", host.Config.Host)
		}
		var nss corev1.NamespaceList
		if err := host.Client.List(t.Context(), &nss); err != nil {
			t.Fatal(err)
		}
		for _, ns := range nss.Items {
			if !strings.HasPrefix(ns.Name, "kube-") && ns.Name != "default" {
				t.Errorf("pristine host has namespace %s", ns.Name)
			}
		}
	})
}
