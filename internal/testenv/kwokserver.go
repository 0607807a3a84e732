package testenv

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/cert"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// kwok as every simulated Node's kubelet API, so that `kubectl port-forward` to a pod
// works as on a real cluster: the host API server dials the Node's InternalIP at its
// kubelet port, and kwok forwards the stream to where the PortForward object of the
// pod says (kwok.x-k8s.io/v1alpha1, pkg/kwok/server/debugging_port_forword.go). The
// twin's kubelet writes one for each pod it runs, to the pod's IP, which the machine
// routes (netns.go). raas reaches a vcluster from outside the cluster this way.
//
// The Nodes' InternalIPs are made local: the node CIDR is added to the loopback
// device, so the API server's dial of any Node lands on kwok's listener. The address
// stays after the twin (other twins may share it). The API server checks no kubelet
// certificate (envtest gives it no --kubelet-certificate-authority), as many clusters
// do not; kwok serves a self-signed one.

// KwokCRDs is where `make twin-host` copies kwok's CRDs, relative to the bin dir.
const KwokCRDs = "crds/kwok"

// kwokServer returns kwok's flags for serving the kubelet API on a free port, with a
// certificate written under dir.
func kwokServer(dir string) (args []string, port int32, err error) {
	l, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		return nil, 0, err
	}
	port = int32(l.Addr().(*net.TCPAddr).Port)
	_ = l.Close()
	crt, key, err := cert.GenerateSelfSignedCertKey("kwok", nil, nil)
	if err != nil {
		return nil, 0, err
	}
	crtFile, keyFile := filepath.Join(dir, "kwok.crt"), filepath.Join(dir, "kwok.key")
	if err := os.WriteFile(crtFile, crt, 0o600); err != nil {
		return nil, 0, err
	}
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		return nil, 0, err
	}
	return []string{
		"--server-address=0.0.0.0:" + strconv.Itoa(int(port)),
		"--tls-cert-file=" + crtFile, "--tls-private-key-file=" + keyFile,
		"--enable-crds=PortForward",
	}, port, nil
}

// localNodeCIDR makes every address of cidr local to the machine.
func localNodeCIDR(ctx context.Context, cidr netip.Prefix) error {
	if err := ipCommand(ctx, "addr", "replace", cidr.String(), "dev", "lo"); err != nil {
		return fmt.Errorf("node addresses: %w", err)
	}
	return nil
}

// kwok's PortForward, written as unstructured: raas does not import kwok's API types
// (its module would pull kwok's whole dependency graph in).
const (
	kwokGroupVersion = "kwok.x-k8s.io/v1alpha1"
	portForwardKind  = "PortForward"
)

// forwardPod writes the PortForward that sends each port of pod's containers to the
// same port at the pod's IP. A container need not declare the ports it serves (the
// vcluster chart's syncer declares none), so the ports its probes check count too.
func forwardPod(ctx context.Context, host client.Client, pod *corev1.Pod) error {
	ports := map[int32]bool{}
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			ports[p.ContainerPort] = true
		}
		for _, probe := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
			switch {
			case probe == nil:
			case probe.HTTPGet != nil && probe.HTTPGet.Port.IntVal > 0:
				ports[probe.HTTPGet.Port.IntVal] = true
			case probe.TCPSocket != nil && probe.TCPSocket.Port.IntVal > 0:
				ports[probe.TCPSocket.Port.IntVal] = true
			}
		}
	}
	var forwards []any
	for _, port := range slices.Sorted(maps.Keys(ports)) {
		forwards = append(forwards, map[string]any{
			"ports":  []any{int64(port)},
			"target": map[string]any{"address": pod.Status.PodIP, "port": int64(port)},
		})
	}
	if len(forwards) == 0 {
		return nil
	}
	pf := map[string]any{
		"apiVersion": kwokGroupVersion,
		"kind":       portForwardKind,
		"metadata":   map[string]any{"name": pod.Name, "namespace": pod.Namespace},
		"spec":       map[string]any{"forwards": forwards},
	}
	u := &unstructured.Unstructured{Object: pf}
	u.SetOwnerReferences([]metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID}})
	ac := client.ApplyConfigurationFromUnstructured(u)
	if err := host.Apply(ctx, ac, client.FieldOwner("raas-twin-kubelet"), client.ForceOwnership); err != nil {
		return fmt.Errorf("port-forward of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}
