package testenv

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ControllerManagerOptions configures one kube-controller-manager.
type ControllerManagerOptions struct {
	// BinDir holds kube-controller-manager. Empty means BinDir().
	BinDir string
	// Output receives its log, each line prefixed with Name; nil discards it.
	Output io.Writer
	// Name prefixes its log lines; empty means "kube-controller-manager".
	Name string
	// Controllers is its --controllers list; empty means "*", every controller that
	// kube-controller-manager enables by default.
	Controllers []string
}

// StartControllerManager starts kube-controller-manager v1.37.2 against cp, for a host
// or for a virtual control plane (vcluster runs one beside its API server), and returns
// at once: the controllers start within seconds and need no port of their own
// (--secure-port=0, --leader-elect=false). It signs service-account tokens with the key
// cp's kube-apiserver verifies them with, and publishes cp's CA as kube-root-ca.crt.
// Call Stop to end it.
func StartControllerManager(cp *ControlPlane, opts ControllerManagerOptions) (*Process, error) {
	name := opts.Name
	if name == "" {
		name = "kube-controller-manager"
	}
	binDir := opts.BinDir
	if binDir == "" {
		var err error
		if binDir, err = BinDir(); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	path := filepath.Join(binDir, "kube-controller-manager")
	if err := checkBinaries(path); err != nil {
		return nil, fmt.Errorf("%s: %w (make twin-host)", name, err)
	}
	dir, err := os.MkdirTemp("", "raas-kcm-")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := removeOnExit(dir); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	kubeconfig, ca := filepath.Join(dir, "kubeconfig"), filepath.Join(dir, "ca.crt")
	if err := errors.Join(cp.WriteKubeConfig(kubeconfig), os.WriteFile(ca, cp.Config.CAData, 0o600)); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("%s: files: %w", name, err)
	}
	controllers := opts.Controllers
	if len(controllers) == 0 {
		controllers = []string{"*"}
	}
	args := []string{
		"--kubeconfig=" + kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--controllers=" + strings.Join(controllers, ","),
		// The serviceaccount-token controller needs the key kube-apiserver checks tokens
		// with; envtest keeps it in the API server's cert dir (controller-runtime
		// pkg/internal/testing/controlplane/apiserver.go, saKeyFile), which
		// StartControlPlane chose.
		"--service-account-private-key-file=" + filepath.Join(cp.dir, certDir, "sa-signer.key"),
		"--root-ca-file=" + ca,
		// Quota admission adds a new pod to status.used, and the resourcequota controller
		// recounts on deletions and on its full resync. A recount whose pod cache lacks a
		// pod just created (one created before the quota's first sync, which admission
		// does not charge) leaves it out of status.used until the next resync, 5 minutes
		// by default; 15 s bounds that in tests.
		"--resource-quota-sync-period=15s",
	}
	p, err := startProcess(name, path, args, os.Environ(), opts.Output)
	if err != nil {
		_ = os.RemoveAll(dir)
		keepDir(dir)
		return nil, err
	}
	p.dir = dir
	return p, nil
}
