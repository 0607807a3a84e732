package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/raas-dev/raas/schema"
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

// TwinOptions configures a twin.
type TwinOptions struct {
	// BinDir holds every binary (make twin). Empty means BinDir().
	BinDir string
	// Output receives the logs of every process, each line prefixed with its source;
	// nil discards them.
	Output io.Writer
	// Controllers configures the host's controllers and Nodes. Its PodCIDR is chosen per
	// twin when empty, so that twins of tests that run at once never share a pod IP.
	Controllers HostControllersOptions
}

// DefaultTwinOptions returns the Nodes of DefaultNodeOptions and two system Nodes.
func DefaultTwinOptions() TwinOptions {
	opts := TwinOptions{Controllers: DefaultHostControllersOptions()}
	opts.Controllers.PodCIDR = ""
	opts.Controllers.Nodes.SystemNodes = 2
	opts.Controllers.ServePods = true
	// Away from every hostServiceCIDR a platform is likely to use (10.96.0.0/12 is
	// kubeadm's, and holds the default 10.100.0.0/16).
	opts.Controllers.Nodes.NodeCIDR = netip.MustParsePrefix("10.252.0.0/16")
	return opts
}

// Twin is a running twin of the production host for one platform config.
type Twin struct {
	// Host is the host's control plane. Its API server listens on every address, so
	// that the pods the twin runs reach it at HostGatewayIP.
	Host *ControlPlane
	// Controllers are the host's controllers and Nodes.
	Controllers *HostControllers
	// StartupTime is how long StartTwin took.
	StartupTime time.Duration

	pods *podServices
	dir  string
}

// StartTwin starts a host for platform (its hostServiceCIDR, its GPU pools and CPU
// groups as Nodes), with its controllers and the twin's kubelet. Call Stop to end every
// process; the reaper ends them if the test process dies first. ctx bounds the start.
func StartTwin(ctx context.Context, platform *schema.Platform, opts TwinOptions) (_ *Twin, err error) {
	begin := time.Now()
	if err := CheckTwin(); err != nil {
		return nil, err
	}
	binDir := opts.BinDir
	if binDir == "" {
		if binDir, err = BinDir(); err != nil {
			return nil, fmt.Errorf("twin: %w", err)
		}
	}
	t := &Twin{}
	defer func() {
		if err != nil {
			_ = t.Stop()
		}
	}()
	if t.dir, err = os.MkdirTemp("", "raas-twin-"); err != nil {
		return nil, fmt.Errorf("twin: %w", err)
	}
	if err := removeOnExit(t.dir); err != nil {
		return nil, fmt.Errorf("twin: %w", err)
	}

	hostOpts := DefaultControlPlaneOptions()
	hostOpts.BinDir = binDir
	hostOpts.BindAddress = "0.0.0.0"
	hostOpts.ServiceCIDR = platform.Spec.HostServiceCIDR
	// kube-apiserver dials a Node's kubelet (for port-forward) at the first address of
	// these types; its default starts with Hostname, which nothing resolves here.
	hostOpts.APIServerFlags = map[string]string{"kubelet-preferred-address-types": "InternalIP"}
	if t.Host, err = StartControlPlane(ctx, hostOpts); err != nil {
		return nil, fmt.Errorf("twin: host: %w", err)
	}
	copts := opts.Controllers
	copts.BinDir, copts.Output = binDir, opts.Output
	if copts.PodCIDR == "" {
		copts.PodCIDR = randomPodCIDR()
	}
	if t.Controllers, err = StartHostControllers(ctx, t.Host, platform, copts); err != nil {
		return nil, fmt.Errorf("twin: %w", err)
	}
	if t.pods, err = startPodServices(t.Host, binDir, t.dir, opts.Output, copts.ServePods); err != nil {
		return nil, err
	}
	t.StartupTime = time.Since(begin)
	return t, nil
}

// randomPodCIDR is a /20 of 10.224.0.0/12 for one twin's pods.
func randomPodCIDR() string {
	n := rand.IntN(256)
	return fmt.Sprintf("10.%d.%d.0/20", 224+n/16, (n%16)*16)
}

// Stop ends the kubelet's processes, the host's controllers and the host, in that
// order, and removes the twin's files.
func (t *Twin) Stop() error {
	var errs []error
	if t.pods != nil {
		t.pods.Stop()
	}
	if t.Controllers != nil {
		errs = append(errs, t.Controllers.Stop())
	}
	if t.Host != nil {
		errs = append(errs, t.Host.Stop())
	}
	if t.dir != "" {
		errs = append(errs, os.RemoveAll(t.dir))
	}
	return errors.Join(errs...)
}

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

func startPodServices(host *ControlPlane, binDir, dir string, out io.Writer, portForwards bool) (*podServices, error) {
	if err := enableForwarding(); err != nil {
		return nil, fmt.Errorf("twin: ip forwarding: %w", err)
	}
	sweepPodNetworks(context.Background())
	port := host.env.ControlPlane.APIServer.SecureServing.Port
	ctx, cancel := context.WithCancel(context.Background())
	s := &podServices{cancel: cancel}
	k := newKubelet(host.Client, kubeletOptions{
		BinDir: binDir, Dir: dir, Output: out,
		HostServer: "https://" + HostGatewayIP + ":" + port, HostServerName: "localhost", HostCA: host.Config.CAData,
		PortForwards: portForwards,
	})
	s.wg.Add(1)
	go func() { defer s.wg.Done(); k.run(ctx) }()
	return s, nil
}

// Stop ends the kubelet's processes and the provisioner.
func (s *podServices) Stop() {
	s.cancel()
	s.wg.Wait()
}
