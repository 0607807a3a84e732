package vclusterconfig

import (
	"testing"

	"k8s.io/client-go/rest"
)

func TestServiceName(t *testing.T) {
	for _, tc := range []struct {
		host, service, namespace string
		ok                       bool
	}{
		{"vc.tenant-a", "vc", "tenant-a", true},
		{"vc.tenant-a.svc", "vc", "tenant-a", true},
		{"vc.tenant-a.svc.cluster.local", "vc", "tenant-a", true},
		{"10.96.0.10", "", "", false},
		{"localhost", "", "", false},
		{"api.example.com", "", "", false},
	} {
		service, namespace, ok := serviceName(tc.host)
		if service != tc.service || namespace != tc.namespace || ok != tc.ok {
			t.Errorf("serviceName(%q) = %q, %q, %v; want %q, %q, %v", tc.host, service, namespace, ok, tc.service, tc.namespace, tc.ok)
		}
	}
}

// A kubeconfig whose server is an address, or a name that resolves here, is used as it
// is: only an in-cluster Service name that does not resolve goes by port-forward (the
// twin's TestTwinApply in cmd/raas shows the forward itself).
func TestRESTConfigViaKeepsWhatResolves(t *testing.T) {
	host := &rest.Config{Host: "https://127.0.0.1:6443"}
	for _, server := range []string{"https://127.0.0.1:8443", "https://localhost:8443"} {
		cfg, err := Kubeconfig(kubeconfigFor(server)).RESTConfigVia(host)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Dial != nil || cfg.TLSClientConfig.ServerName != "" {
			t.Errorf("%s: goes by port-forward", server)
		}
	}
	cfg, err := Kubeconfig(kubeconfigFor("https://vc.tenant-nowhere-raas-test:443")).RESTConfigVia(host)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Dial == nil || cfg.TLSClientConfig.ServerName != "vc.tenant-nowhere-raas-test" {
		t.Errorf("an unresolvable Service name does not go by port-forward: dial %v, server name %q", cfg.Dial != nil, cfg.TLSClientConfig.ServerName)
	}
}

func kubeconfigFor(server string) string {
	return `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "` + server + `", insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: t}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
`
}
