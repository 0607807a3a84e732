package vclusterconfig

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/raas-dev/raas/schema"
)

// Key is the key of the kubeconfig in the Secret vcluster exports.
const Key = "config"

// SecretName is the Secret in which vcluster exports the kubeconfig of release.
func SecretName(release string) string { return schema.KubeconfigSecret(release) }

// Kubeconfig is the kubeconfig a vcluster exported.
type Kubeconfig []byte

// Digest is the kubeconfig's sha256: it changes when the vcluster is recreated or its
// certificates rotate.
func (k Kubeconfig) Digest() string {
	sum := sha256.Sum256(k)
	return hex.EncodeToString(sum[:])
}

// RESTConfig parses the kubeconfig into a client config.
func (k Kubeconfig) RESTConfig() (*rest.Config, error) {
	cfg, err := clientcmd.RESTConfigFromKubeConfig(k)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return cfg, nil
}

// Read reads the kubeconfig that the vcluster of release exported into namespace. An error
// from the API server is wrapped: apierrors.IsNotFound says the vcluster has not exported
// it yet.
func Read(ctx context.Context, host corev1client.SecretsGetter, namespace, release string) (Kubeconfig, error) {
	name := SecretName(release)
	secret, err := host.Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("secret %s/%s: %w", namespace, name, err)
	}
	return FromSecret(secret)
}

// FromSecret returns the kubeconfig in a Secret vcluster exported.
func FromSecret(secret *corev1.Secret) (Kubeconfig, error) {
	data := secret.Data[Key]
	if len(data) == 0 {
		return nil, fmt.Errorf("secret %s/%s has no %q key yet", secret.Namespace, secret.Name, Key)
	}
	return Kubeconfig(data), nil
}
