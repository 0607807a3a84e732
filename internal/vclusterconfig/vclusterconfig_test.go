package vclusterconfig_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/raas-dev/raas/internal/vclusterconfig"
)

// secrets holds one Secret; only Get is implemented.
type secrets struct {
	corev1client.SecretInterface
	namespace string
	secret    *corev1.Secret
}

func (s secrets) Secrets(namespace string) corev1client.SecretInterface {
	s.namespace = namespace
	return s
}

func (s secrets) Get(_ context.Context, name string, _ metav1.GetOptions) (*corev1.Secret, error) {
	if s.secret == nil || s.secret.Namespace != s.namespace || s.secret.Name != name {
		return nil, apierrors.NewNotFound(corev1.Resource("secrets"), name)
	}
	return s.secret, nil
}

const kubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: kubernetes
  cluster:
    server: https://vc.tenant-a:443
users:
- name: kubernetes-admin
  user:
    token: t
contexts:
- name: kubernetes-admin@kubernetes
  context: {cluster: kubernetes, user: kubernetes-admin}
current-context: kubernetes-admin@kubernetes
`

func exported(data map[string][]byte) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "tenant-a", Name: vclusterconfig.SecretName("a")}, Data: data}
}

func TestRead(t *testing.T) {
	ctx := context.Background()
	t.Run("reads the kubeconfig under its key", func(t *testing.T) {
		kc, err := vclusterconfig.Read(ctx, secrets{secret: exported(map[string][]byte{vclusterconfig.Key: []byte(kubeconfig)})}, "tenant-a", "a")
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := kc.RESTConfig()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Host != "https://vc.tenant-a:443" {
			t.Errorf("host %q", cfg.Host)
		}
		if len(kc.Digest()) != 64 || kc.Digest() == vclusterconfig.Kubeconfig("other").Digest() {
			t.Errorf("digest %q", kc.Digest())
		}
	})
	t.Run("says not found until the vcluster exports the Secret", func(t *testing.T) {
		_, err := vclusterconfig.Read(ctx, secrets{}, "tenant-a", "a")
		if !apierrors.IsNotFound(err) || !strings.Contains(err.Error(), "secret tenant-a/vc-a") {
			t.Errorf("error %v, want not found naming the Secret", err)
		}
	})
	t.Run("refuses a Secret without the key", func(t *testing.T) {
		_, err := vclusterconfig.Read(ctx, secrets{secret: exported(map[string][]byte{"token": nil})}, "tenant-a", "a")
		if err == nil || apierrors.IsNotFound(err) || !strings.Contains(err.Error(), `no "config" key`) {
			t.Errorf("error %v, want a missing key", err)
		}
	})
	t.Run("refuses a kubeconfig that does not parse", func(t *testing.T) {
		if _, err := vclusterconfig.Kubeconfig("{").RESTConfig(); err == nil {
			t.Error("no error")
		}
	})
}
