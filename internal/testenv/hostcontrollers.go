package testenv

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/raas-dev/raas/schema"
)

// kwokStages are raas's own kwok Stage files (kwok.x-k8s.io/v1alpha1): how simulated
// Nodes turn Ready and keep reporting, and how Pods bound to them run, finish and go.
//
//go:embed kwok/*.yaml
var kwokStages embed.FS

// DefaultPodCIDR is where kwok takes Pod IPs from: away from the host's service CIDR
// (10.0.0.0/24, envtest's default) and from NodeOptions.NodeCIDR.
const DefaultPodCIDR = "10.244.0.0/16"

// TwinStorageClass is the host's default StorageClass, which StartHostControllers
// creates: kwok's pvc-provision stage makes a PersistentVolume for each of its claims, so
// StatefulSets with volume claims (a vcluster's) schedule. No volume is ever mounted.
const TwinStorageClass = "twin-local"

// HostControllersOptions configures the processes that turn a host API server into a
// cluster with Nodes.
type HostControllersOptions struct {
	// BinDir holds kube-controller-manager, kube-scheduler and kwok. Empty means BinDir().
	BinDir string
	// Output receives the logs of all three processes, each line prefixed with the
	// process's name; nil discards them. The last lines of a process that fails are in
	// the error either way.
	Output io.Writer
	// StartTimeout bounds the wait for every Node to turn Ready.
	StartTimeout time.Duration
	// Nodes shapes the Nodes made from the platform config.
	Nodes NodeOptions
	// PodCIDR is kwok's --cidr, where Pod IPs come from.
	PodCIDR string
	// ServePods makes kwok every Node's kubelet API, for port-forwards to pods
	// (kwokserver.go). It needs root, to make the Nodes' addresses local.
	ServePods bool
}

// DefaultHostControllersOptions returns the binaries in bin/, DefaultNodeOptions and
// DefaultPodCIDR.
func DefaultHostControllersOptions() HostControllersOptions {
	return HostControllersOptions{
		StartTimeout: 2 * time.Minute,
		Nodes:        DefaultNodeOptions(),
		PodCIDR:      DefaultPodCIDR,
	}
}

// HostControllers are kube-controller-manager, kube-scheduler and kwok running against
// a host control plane, and the Nodes kwok simulates there. Pods bound to those Nodes
// look Running and Ready, but no container runs: that is the twin's one pretence.
type HostControllers struct {
	// Nodes are the simulated Nodes, as created.
	Nodes []*corev1.Node
	// StartupTime is how long StartHostControllers took, until every Node was Ready.
	StartupTime time.Duration

	procs []*Process
	dir   string
}

// StartHostControllers starts on host:
//   - kube-controller-manager with its default controllers (among them resource quota
//     status, node lifecycle, garbage collection, namespace deletion, Deployments,
//     ReplicaSets, Jobs and StatefulSets; see StartControllerManager);
//   - kube-scheduler, binding default-scheduler Pods;
//   - kwok with raas's stages (internal/testenv/kwok), managing only Nodes annotated
//     kwok.x-k8s.io/node=fake, and provisioning volumes of TwinStorageClass;
//
// then creates the Nodes of Nodes(platform, opts.Nodes) and returns once all are Ready
// and free of the not-ready taint. None serves a port: kube-controller-manager and
// kube-scheduler run with --secure-port=0 and kwok without its server, so several twins
// can run at once. Call Stop to end all three; the Nodes stay. ctx bounds the start only.
func StartHostControllers(ctx context.Context, host *ControlPlane, platform *schema.Platform, opts HostControllersOptions) (*HostControllers, error) {
	begin := time.Now()
	nodes, err := Nodes(platform, opts.Nodes)
	if err != nil {
		return nil, fmt.Errorf("host controllers: %w", err)
	}
	binDir := opts.BinDir
	if binDir == "" {
		if binDir, err = BinDir(); err != nil {
			return nil, fmt.Errorf("host controllers: %w", err)
		}
	}
	bin := func(name string) string { return filepath.Join(binDir, name) }
	if err := checkBinaries(bin("kube-controller-manager"), bin("kube-scheduler"), bin("kwok")); err != nil {
		return nil, fmt.Errorf("host controllers: %w (make twin-host)", err)
	}

	h := &HostControllers{}
	if h.dir, err = os.MkdirTemp("", "raas-hostcontrollers-"); err != nil {
		return nil, fmt.Errorf("host controllers: %w", err)
	}
	if err := removeOnExit(h.dir); err != nil {
		_ = os.RemoveAll(h.dir)
		return nil, fmt.Errorf("host controllers: %w", err)
	}
	fail := func(err error) (*HostControllers, error) {
		_ = h.Stop()
		return nil, fmt.Errorf("host controllers: %w", err)
	}
	files, err := h.writeFiles(host)
	if err != nil {
		return fail(err)
	}

	var kwokServing []string
	if opts.ServePods {
		var port int32
		if kwokServing, port, err = kwokServer(h.dir); err != nil {
			return fail(err)
		}
		if err := localNodeCIDR(ctx, opts.Nodes.NodeCIDR); err != nil {
			return fail(err)
		}
		for _, n := range nodes {
			// The port the API server dials for the Node's kubelet.
			n.Status.DaemonEndpoints.KubeletEndpoint.Port = port
		}
		if err := host.InstallCRDs(ctx, filepath.Join(binDir, KwokCRDs)); err != nil {
			return fail(err)
		}
	}

	kcm, err := StartControllerManager(host, ControllerManagerOptions{BinDir: binDir, Output: opts.Output})
	if err != nil {
		return fail(err)
	}
	h.procs = append(h.procs, kcm)
	env := os.Environ()
	starts := []struct {
		name string
		args []string
		env  []string
	}{
		{"kube-scheduler", []string{
			"--kubeconfig=" + files.kubeconfig,
			"--leader-elect=false",
			"--secure-port=0",
		}, env},
		// kwok serves nothing unless --server-address or --node-port is set
		// (sigs.k8s.io/kwok pkg/kwok/cmd/root.go:320). It always reads ~/.kwok/kwok.yaml
		// too if that exists (pkg/config/flags.go:84), so its HOME is a directory of ours.
		{"kwok", []string{
			"--kubeconfig=" + files.kubeconfig,
			"--config=" + files.stages,
			"--manage-all-nodes=false",
			"--manage-nodes-with-annotation-selector=" + KwokNodeAnnotation + "=" + kwokNodeValue,
			"--cidr=" + opts.PodCIDR,
			// kwok renews no Lease unless told how long one lasts: the flag's default is
			// 0 (pkg/kwok/controllers/controller.go:219 skips the lease controller then),
			// and without Leases the node lifecycle controller marks every Node NotReady
			// after --node-monitor-grace-period (50 s). 40 s is the kubelet's default;
			// kwok renews at a quarter of it.
			"--node-lease-duration-seconds=40",
		}, append(env, "HOME="+files.kwokHome)},
	}
	starts[len(starts)-1].args = append(starts[len(starts)-1].args, kwokServing...)
	for _, s := range starts {
		p, err := startProcess(s.name, bin(s.name), s.args, s.env, opts.Output)
		if err != nil {
			return fail(err)
		}
		h.procs = append(h.procs, p)
	}

	if err := createStorageClass(ctx, host); err != nil {
		return fail(err)
	}
	for _, n := range nodes {
		// Create keeps a Node's status, so capacity and addresses are there at once.
		if err := host.Client.Create(ctx, n.DeepCopy()); err != nil && !apierrors.IsAlreadyExists(err) {
			return fail(fmt.Errorf("node %s: %w", n.Name, err))
		}
	}
	h.Nodes = nodes
	if err := h.waitReady(ctx, host, opts.StartTimeout); err != nil {
		return fail(err)
	}
	h.StartupTime = time.Since(begin)
	return h, nil
}

// createStorageClass creates TwinStorageClass as the default class, with immediate
// binding: kube-scheduler then sees bound claims only.
func createStorageClass(ctx context.Context, host *ControlPlane) error {
	sc := &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{
			Name: TwinStorageClass,
			// The annotation DefaultStorageClass admission reads (k8s.io/kubernetes
			// pkg/volume/util/storageclass.go, IsDefaultAnnotation).
			Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"},
		},
		Provisioner:       "twin.raas.dev/kwok",
		ReclaimPolicy:     new(corev1.PersistentVolumeReclaimDelete),
		VolumeBindingMode: new(storagev1.VolumeBindingImmediate),
	}
	if err := host.Client.Create(ctx, sc); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("storage class %s: %w", sc.Name, err)
	}
	return nil
}

// hostFiles are the files the three processes read.
type hostFiles struct{ kubeconfig, stages, kwokHome string }

func (h *HostControllers) writeFiles(host *ControlPlane) (hostFiles, error) {
	f := hostFiles{
		kubeconfig: filepath.Join(h.dir, "kubeconfig"),
		stages:     filepath.Join(h.dir, "kwok-stages.yaml"),
		kwokHome:   filepath.Join(h.dir, "kwok-home"),
	}
	var stages bytes.Buffer
	err := fs.WalkDir(kwokStages, "kwok", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := kwokStages.ReadFile(path)
		stages.WriteString("---\n")
		stages.Write(data)
		return err
	})
	if err == nil {
		err = errors.Join(
			host.WriteKubeConfig(f.kubeconfig),
			os.WriteFile(f.stages, stages.Bytes(), 0o600),
			os.Mkdir(f.kwokHome, 0o700),
		)
	}
	if err != nil {
		return f, fmt.Errorf("files: %w", err)
	}
	return f, nil
}

// waitReady polls until every Node is Ready and untainted by the node lifecycle
// controller, failing early when a process exits.
func (h *HostControllers) waitReady(ctx context.Context, host *ControlPlane, timeout time.Duration) error {
	var notReady string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		for _, p := range h.procs {
			if err := p.exitErr(); err != nil {
				return false, err
			}
		}
		for _, want := range h.Nodes {
			var n corev1.Node
			if err := host.Client.Get(ctx, types.NamespacedName{Name: want.Name}, &n); err != nil {
				return false, fmt.Errorf("node %s: %w", want.Name, err)
			}
			if !nodeReady(&n) {
				notReady = n.Name
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil && notReady != "" {
		return fmt.Errorf("node %s not Ready: %w", notReady, err)
	}
	return err
}

// nodeReady tells whether n is Ready and has lost the taints the node lifecycle
// controller puts on Nodes that are not.
func nodeReady(n *corev1.Node) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable {
			return false
		}
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Stop ends kwok, kube-scheduler and kube-controller-manager, in that order, and
// removes their files. The Nodes stay, turning NotReady once their Leases expire.
func (h *HostControllers) Stop() error {
	var errs []error
	for i := len(h.procs) - 1; i >= 0; i-- {
		errs = append(errs, h.procs[i].Stop())
	}
	h.procs = nil
	if h.dir != "" {
		errs = append(errs, os.RemoveAll(h.dir))
		keepDir(h.dir)
		h.dir = ""
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("host controllers: stop: %w", err)
	}
	return nil
}
