package bridge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/raas-dev/raas/schema"
)

// KubeconfigKey is the key of the kubeconfig in the Secret vcluster exports.
const KubeconfigKey = "config"

// VirtualConfig reads the kubeconfig that the vcluster of release exports into the host
// namespace (Secret vc-<release>, key config) and returns its client config.
func VirtualConfig(ctx context.Context, host kubernetes.Interface, namespace, release string) (*rest.Config, error) {
	cfg, _, err := virtualConfig(ctx, host, namespace, release)
	return cfg, err
}

// virtualConfig also returns a digest of the kubeconfig, which changes when the vcluster
// is recreated or its certificates rotate.
func virtualConfig(ctx context.Context, host kubernetes.Interface, namespace, release string) (*rest.Config, string, error) {
	name := schema.KubeconfigSecret(release)
	secret, err := host.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, "", fmt.Errorf("vcluster %s/%s: kubeconfig secret: %w", namespace, release, err)
	}
	data := secret.Data[KubeconfigKey]
	if len(data) == 0 {
		return nil, "", fmt.Errorf("vcluster %s/%s: secret %s has no key %q", namespace, release, name, KubeconfigKey)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(data)
	if err != nil {
		return nil, "", fmt.Errorf("vcluster %s/%s: secret %s: %w", namespace, release, name, err)
	}
	sum := sha256.Sum256(data)
	return cfg, hex.EncodeToString(sum[:]), nil
}
