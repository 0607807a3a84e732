package bridge

import (
	"context"
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/raas-dev/raas/internal/vclusterconfig"
)

// VirtualConfig reads the kubeconfig that the vcluster of release exports into the host
// namespace (Secret vc-<release>, key config) and returns its client config.
func VirtualConfig(ctx context.Context, host kubernetes.Interface, namespace, release string) (*rest.Config, error) {
	cfg, _, err := virtualConfig(ctx, host, nil, namespace, release)
	return cfg, err
}

// virtualConfig also returns a digest of the kubeconfig, which changes when the vcluster
// is recreated or its certificates rotate. With hostConfig, a vcluster whose in-cluster
// address does not resolve here is reached by port-forward through the host.
func virtualConfig(ctx context.Context, host kubernetes.Interface, hostConfig *rest.Config, namespace, release string) (*rest.Config, string, error) {
	kc, err := vclusterconfig.Read(ctx, host.CoreV1(), namespace, release)
	if err != nil {
		return nil, "", fmt.Errorf("vcluster %s/%s: %w", namespace, release, err)
	}
	cfg, err := kc.RESTConfigVia(hostConfig)
	if err != nil {
		return nil, "", fmt.Errorf("vcluster %s/%s: secret %s: %w", namespace, release, vclusterconfig.SecretName(release), err)
	}
	return cfg, kc.Digest(), nil
}
