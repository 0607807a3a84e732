package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// The twin: the production stack on one machine, from real upstream code.
//
//   - the host: kube-apiserver and etcd (v1.37.2), kube-controller-manager and
//     kube-scheduler, and kwok v0.8.0 Nodes made from the platform config (nodes.go);
//   - a volume provisioner (provisioner.go) and a kubelet (kubelet.go) of the twin's
//     own: the kubelet runs, for each pod kwok has made Running, the program of the
//     image its container names (images.go), in a network namespace that carries the
//     pod's IP (netns.go): the vcluster v0.25.0 syncer for a vcluster's StatefulSet
//     (which itself runs the virtual kube-apiserver, kube-controller-manager and kine,
//     as in its pod), and the KubeRay operator for the operator's pod that the syncer
//     put on the host.
//
// The one pretence: pods that kwok marks Running never execute. A vcluster's pod and a
// KubeRay operator's pod look Ready while the processes above do their work; a Ray pod
// looks Ready and runs nothing. No container runtime, no kube-proxy: a Service's
// ClusterIP routes nowhere, so the kubelet hands a synced pod the address behind its
// vcluster's Service instead.
//
// It needs root and iproute2 (network namespaces), as CI runs it.

// CheckTwin says why the twin cannot run on this machine, or nil.
func CheckTwin() error {
	if os.Geteuid() != 0 {
		return errors.New("the twin needs root: it makes a network namespace per pod it runs")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("the twin needs iproute2's ip: %w", err)
	}
	return nil
}

// enableForwarding lets pods reach each other's IPs through the machine (the KubeRay
// operator's pod reaches its vcluster's pod). It is left on: tests of several packages
// share the machine.
func enableForwarding() error {
	const path = "/proc/sys/net/ipv4/ip_forward"
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(b)) == "1" {
		return nil
	}
	return os.WriteFile(path, []byte("1\n"), 0o644)
}

// podServices runs the twin's kubelet and provisioner until Stop.
type podServices struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startPodServices(host *ControlPlane, binDir, dir string, out io.Writer) (*podServices, error) {
	if err := enableForwarding(); err != nil {
		return nil, fmt.Errorf("twin: ip forwarding: %w", err)
	}
	port := host.env.ControlPlane.APIServer.SecureServing.Port
	ctx, cancel := context.WithCancel(context.Background())
	s := &podServices{cancel: cancel}
	k := newKubelet(host.Client, kubeletOptions{
		BinDir: binDir, Dir: dir, Output: out,
		HostServer: "https://" + HostGatewayIP + ":" + port, HostServerName: "localhost", HostCA: host.Config.CAData,
	})
	p := &provisioner{host: host.Client, dir: filepath.Join(dir, "provisioner"), output: out}
	s.wg.Add(2)
	go func() { defer s.wg.Done(); k.run(ctx) }()
	go func() { defer s.wg.Done(); p.run(ctx) }()
	return s, nil
}

// Stop ends the kubelet's processes and the provisioner.
func (s *podServices) Stop() {
	s.cancel()
	s.wg.Wait()
}
