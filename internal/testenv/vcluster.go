package testenv

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/raas-dev/raas/internal/vclusterconfig"
)

// The kubeconfig Secret as vcluster v0.25.0 writes it (pkg/util/kubeconfig/kubeconfig.go,
// WriteKubeConfig, called from pkg/setup/controllers.go WriteKubeConfigToSecret):
// name "vc-<release>" in the vcluster's host namespace, type Opaque, labels
// app=vcluster and vcluster-name=<release>, and data keys config (the kubeconfig),
// certificate-authority, client-certificate, client-key and token (empty for
// certificate auth). The kubeconfig comes from the distro's admin.conf
// (pkg/certs: cluster "kubernetes", user "kubernetes-admin", context
// "kubernetes-admin@kubernetes"); exportKubeConfig.context renames all three, and
// exportKubeConfig.server replaces the default https://localhost:8443.
const (
	SecretPrefix        = "vc-"
	SecretKeyKubeConfig = vclusterconfig.Key

	secretKeyCA          = "certificate-authority"
	secretKeyCertificate = "client-certificate"
	secretKeyKey         = "client-key"
	secretKeyToken       = "token"
	labelApp             = "app"
	labelAppValue        = "vcluster"
	labelName            = "vcluster-name"

	kubeConfigCluster = "kubernetes"
	kubeConfigUser    = "kubernetes-admin"
)

// SecretName is the name of the kubeconfig Secret vcluster exports for release.
func SecretName(release string) string { return SecretPrefix + release }

// VClusterOptions configures a stand-in vcluster control plane.
type VClusterOptions struct {
	// ControlPlane configures the stand-in's own kube-apiserver and etcd; its CRDs are
	// installed into the virtual cluster (for example the Volcano PodGroup CRD, or
	// KubeRay's).
	ControlPlane ControlPlaneOptions
	// Context renames the kubeconfig's cluster, user and context, as
	// exportKubeConfig.context does. Empty keeps "kubernetes-admin@kubernetes".
	Context string
	// Server replaces the API server URL in the exported kubeconfig, as
	// exportKubeConfig.server does. Empty means the stand-in's real address.
	Server string
}

// DefaultVClusterOptions returns a stand-in with no CRDs.
func DefaultVClusterOptions() VClusterOptions {
	opts := DefaultControlPlaneOptions()
	opts.CRDDirs = nil
	return VClusterOptions{ControlPlane: opts}
}

// VCluster is a stand-in for a tenant's vcluster: a second kube-apiserver with its own
// etcd, whose kubeconfig is exported into the host like vcluster's. No syncer runs:
// nothing moves between the two API servers unless the code under test moves it.
type VCluster struct {
	*ControlPlane
	// HostNamespace and Release locate the vcluster on the host.
	HostNamespace, Release string
}

// StartVCluster starts a stand-in vcluster for release in host namespace namespace and
// writes its Secret vc-<release> there, creating the namespace if it is missing (as
// `helm install --create-namespace` would). Call Stop to end it; the Secret stays.
func StartVCluster(ctx context.Context, host *ControlPlane, namespace, release string, opts VClusterOptions) (*VCluster, error) {
	cp, err := StartControlPlane(ctx, opts.ControlPlane)
	if err != nil {
		return nil, fmt.Errorf("vcluster %s/%s: %w", namespace, release, err)
	}
	vc := &VCluster{ControlPlane: cp, HostNamespace: namespace, Release: release}
	if err := vc.exportKubeConfig(ctx, host, opts); err != nil {
		_ = cp.Stop()
		return nil, fmt.Errorf("vcluster %s/%s: %w", namespace, release, err)
	}
	return vc, nil
}

// exportKubeConfig creates or patches the vc-<release> Secret in the host namespace.
func (vc *VCluster) exportKubeConfig(ctx context.Context, host *ControlPlane, opts VClusterOptions) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: vc.HostNamespace}}
	if err := host.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("host namespace: %w", err)
	}

	cfg := vc.Config
	server := opts.Server
	if server == "" {
		server = cfg.Host
	}
	kc := kubeConfig(server, cfg.CAData, cfg.CertData, cfg.KeyData, opts.Context)
	data, err := clientcmd.Write(*kc)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}

	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
		Name:      SecretName(vc.Release),
		Namespace: vc.HostNamespace,
		Labels:    map[string]string{labelApp: labelAppValue, labelName: vc.Release},
	}}
	_, err = controllerutil.CreateOrPatch(ctx, host.Client, secret, func() error {
		secret.Type = corev1.SecretTypeOpaque
		if secret.Data == nil {
			secret.Data = map[string][]byte{}
		}
		secret.Data[SecretKeyKubeConfig] = data
		secret.Data[secretKeyCA] = cfg.CAData
		secret.Data[secretKeyCertificate] = cfg.CertData
		secret.Data[secretKeyKey] = cfg.KeyData
		secret.Data[secretKeyToken] = []byte(cfg.BearerToken)
		return nil
	})
	if err != nil {
		return fmt.Errorf("secret %s: %w", secret.Name, err)
	}
	return nil
}

// kubeConfig builds the kubeconfig vcluster exports for certificate auth.
func kubeConfig(server string, ca, cert, key []byte, context string) *clientcmdapi.Config {
	cluster, user := kubeConfigCluster, kubeConfigUser
	ctxName := user + "@" + cluster
	if context != "" {
		cluster, user, ctxName = context, context, context
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters[cluster] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	kc.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: cert, ClientKeyData: key}
	kc.Contexts[ctxName] = &clientcmdapi.Context{Cluster: cluster, AuthInfo: user}
	kc.CurrentContext = ctxName
	return kc
}
