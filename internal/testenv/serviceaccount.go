package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// serviceAccountIdentity is a ServiceAccount's token in a file and a kubeconfig that
// reads it, as a pod gets them from its projected token volume. envtest's kube-apiserver
// signs and checks such tokens: it is started with --service-account-issuer,
// --service-account-key-file and --service-account-signing-key-file
// (controller-runtime pkg/internal/testing/controlplane/apiserver.go:347-349, v0.25.2).
type serviceAccountIdentity struct {
	namespace, name string
	ttl             time.Duration
	tokenFile       string
	// kubeConfig is the path of a kubeconfig naming tokenFile.
	kubeConfig string
	config     *rest.Config
	clients    kubernetes.Interface
}

// newServiceAccountIdentity asks the API server at admin for a token of ServiceAccount
// namespace/name and writes it, and a kubeconfig that names it, into dir.
func newServiceAccountIdentity(ctx context.Context, admin *rest.Config, namespace, name string, ttl time.Duration, dir string) (*serviceAccountIdentity, error) {
	clients, err := kubernetes.NewForConfig(admin)
	if err != nil {
		return nil, fmt.Errorf("serviceaccount %s/%s: %w", namespace, name, err)
	}
	id := &serviceAccountIdentity{
		namespace: namespace, name: name, ttl: ttl,
		tokenFile:  filepath.Join(dir, "token"),
		kubeConfig: filepath.Join(dir, "kubeconfig"),
		clients:    clients,
	}
	if _, err := id.refresh(ctx); err != nil {
		return nil, err
	}
	// The token is a file, not inline, so that client-go rereads it when renew
	// replaces it (rest.Config.BearerTokenFile; transport/token_source.go rereads it
	// every minute), as it rereads a pod's projected token.
	kc := clientcmdapi.NewConfig()
	kc.Clusters["vcluster"] = &clientcmdapi.Cluster{Server: admin.Host, CertificateAuthorityData: admin.CAData}
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{TokenFile: id.tokenFile}
	kc.Contexts[name] = &clientcmdapi.Context{Cluster: "vcluster", AuthInfo: name, Namespace: namespace}
	kc.CurrentContext = name
	if err := clientcmd.WriteToFile(*kc, id.kubeConfig); err != nil {
		return nil, fmt.Errorf("serviceaccount %s/%s: kubeconfig: %w", namespace, name, err)
	}
	id.config = &rest.Config{
		Host:            admin.Host,
		TLSClientConfig: rest.TLSClientConfig{CAData: admin.CAData},
		BearerTokenFile: id.tokenFile,
	}
	return id, nil
}

// refresh asks for a new token and replaces the token file with it atomically. It
// returns when the token expires.
func (id *serviceAccountIdentity) refresh(ctx context.Context) (time.Time, error) {
	seconds := int64(id.ttl / time.Second)
	tr, err := id.clients.CoreV1().ServiceAccounts(id.namespace).CreateToken(ctx, id.name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &seconds}},
		metav1.CreateOptions{})
	if err != nil {
		return time.Time{}, fmt.Errorf("serviceaccount %s/%s: token request: %w", id.namespace, id.name, err)
	}
	tmp := id.tokenFile + ".new"
	if err := os.WriteFile(tmp, []byte(tr.Status.Token), 0o600); err != nil {
		return time.Time{}, fmt.Errorf("serviceaccount %s/%s: token: %w", id.namespace, id.name, err)
	}
	if err := os.Rename(tmp, id.tokenFile); err != nil {
		return time.Time{}, fmt.Errorf("serviceaccount %s/%s: token: %w", id.namespace, id.name, err)
	}
	return tr.Status.ExpirationTimestamp.Time, nil
}

// renew replaces the token when 80% of its life has passed, as the kubelet does for
// projected tokens, until ctx ends. A failed request is retried after ten seconds.
func (id *serviceAccountIdentity) renew(ctx context.Context) {
	next := time.Duration(float64(id.ttl) * 0.8)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(next):
		}
		expiry, err := id.refresh(ctx)
		if err != nil {
			next = 10 * time.Second
			continue
		}
		next = time.Duration(float64(time.Until(expiry)) * 0.8)
	}
}
