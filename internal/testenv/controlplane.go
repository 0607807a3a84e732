package testenv

import (
	"sync"

	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// VolcanoCRDs is where `make crds` writes the Volcano CRDs, relative to the bin dir.
const VolcanoCRDs = "crds/volcano"

// ControlPlaneOptions configures one kube-apiserver and its etcd.
type ControlPlaneOptions struct {
	// BinDir holds kube-apiserver, etcd and crds/. Empty means BinDir().
	BinDir string
	// CRDDirs lists directories or files of CRD manifests to install before Start
	// returns. Relative paths are taken from BinDir.
	CRDDirs []string
	// CRDs are installed alongside CRDDirs.
	CRDs []*apiextensionsv1.CustomResourceDefinition
	// StartTimeout bounds the start of etcd and of kube-apiserver, each.
	StartTimeout time.Duration
	// Output receives the logs of both processes; nil discards them unless
	// KUBEBUILDER_ATTACH_CONTROL_PLANE_OUTPUT=true sends them to stdout and stderr.
	Output io.Writer
	// Scheme is the client's scheme; nil means Scheme.
	Scheme *runtime.Scheme
	// BindAddress is where kube-apiserver listens; empty means 127.0.0.1. The twin's host
	// listens on 0.0.0.0 so that its pods reach it at HostGatewayIP; clients still use
	// 127.0.0.1, and its certificate names localhost and 127.0.0.1 only.
	BindAddress string
	// ServiceCIDR is kube-apiserver's --service-cluster-ip-range; empty keeps envtest's
	// 10.0.0.0/24. The twin's host takes the platform config's hostServiceCIDR.
	ServiceCIDR string
	// APIServerFlags are further kube-apiserver flags, by name without dashes.
	APIServerFlags map[string]string
}

// DefaultControlPlaneOptions returns the options of a host cluster: the binaries in
// bin/ and the Volcano CRDs installed.
func DefaultControlPlaneOptions() ControlPlaneOptions {
	return ControlPlaneOptions{
		CRDDirs:      []string{VolcanoCRDs},
		StartTimeout: time.Minute,
	}
}

// ControlPlane is a running kube-apiserver backed by its own etcd.
type ControlPlane struct {
	// Config reaches the API server as a member of system:masters.
	Config *rest.Config
	// Client is a controller-runtime client for Config.
	Client client.Client
	// KubeConfig is Config as a kubeconfig file.
	KubeConfig []byte
	// StartupTime is how long Start took, CRDs included.
	StartupTime time.Duration

	env *envtest.Environment
	// dir holds etcd's data and kube-apiserver's certificates. It is raas's, not
	// envtest's, so that a restart keeps both (see restart.go); Stop removes it.
	dir string
	// mu keeps a restart and Stop apart.
	mu sync.Mutex
}

// StartControlPlane starts etcd and kube-apiserver from opts.BinDir and installs the
// CRDs, waiting until they are served. It never downloads anything. Call Stop to end
// both processes. ctx bounds the start only.
//
// kube-apiserver holds every create of a custom resource for 2 s while its CRD is
// less than 2 s established (apiextensions-apiserver's customresource_handler.go), so
// the first custom resources a test creates right after the start are slow.
func StartControlPlane(ctx context.Context, opts ControlPlaneOptions) (*ControlPlane, error) {
	begin := time.Now()
	binDir := opts.BinDir
	if binDir == "" {
		var err error
		if binDir, err = BinDir(); err != nil {
			return nil, fmt.Errorf("control plane: %w", err)
		}
	}
	apiServerPath := filepath.Join(binDir, "kube-apiserver")
	etcdPath := filepath.Join(binDir, "etcd")
	crdDirs := make([]string, len(opts.CRDDirs))
	for i, d := range opts.CRDDirs {
		if !filepath.IsAbs(d) {
			d = filepath.Join(binDir, d)
		}
		crdDirs[i] = d
	}
	if err := checkBinaries(append([]string{apiServerPath, etcdPath}, crdDirs...)...); err != nil {
		return nil, fmt.Errorf("control plane: %w", err)
	}
	scheme := opts.Scheme
	if scheme == nil {
		scheme = Scheme
	}

	// The reaper runs before etcd and kube-apiserver start, so that it sees them even
	// if this process dies while envtest waits for them (see reaper.go).
	if err := startReaper(); err != nil {
		return nil, fmt.Errorf("control plane: %w", err)
	}
	dir, err := ownDirs()
	if err != nil {
		return nil, fmt.Errorf("control plane: %w", err)
	}
	if err := removeOnExit(dir); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("control plane: %w", err)
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: binDir,
		// Explicit paths win over KUBEBUILDER_ASSETS and TEST_ASSET_*, so a stray
		// setup-envtest install is never picked up instead of bin/.
		ControlPlane: envtest.ControlPlane{
			APIServer: &envtest.APIServer{Path: apiServerPath, Out: opts.Output, Err: opts.Output,
				CertDir: filepath.Join(dir, certDir)},
			Etcd: &envtest.Etcd{Path: etcdPath, Out: opts.Output, Err: opts.Output,
				DataDir: filepath.Join(dir, dataDir)},
		},
		Scheme:                   scheme,
		CRDDirectoryPaths:        crdDirs,
		CRDs:                     opts.CRDs,
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: opts.StartTimeout,
		ControlPlaneStopTimeout:  opts.StartTimeout,
	}
	env.ControlPlane.KubectlPath = filepath.Join(binDir, "kubectl")
	if opts.BindAddress != "" {
		env.ControlPlane.APIServer.Configure().Set("bind-address", opts.BindAddress)
	}
	if opts.ServiceCIDR != "" {
		env.ControlPlane.APIServer.Configure().Set("service-cluster-ip-range", opts.ServiceCIDR)
	}
	for name, value := range opts.APIServerFlags {
		env.ControlPlane.APIServer.Configure().Set(name, value)
	}

	// envtest logs through controller-runtime's logger; without one set, it complains
	// after 30 seconds with a stack trace. Its messages are not worth keeping here.
	quietLogs.Do(func() { ctrllog.SetLogger(logr.Discard()) })

	type started struct {
		cfg *rest.Config
		err error
	}
	done := make(chan started, 1)
	go func() {
		cfg, err := env.Start()
		done <- started{cfg, err}
	}()
	var cfg *rest.Config
	select {
	case s := <-done:
		if s.err != nil {
			_ = env.Stop()
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("control plane: start: %w", s.err)
		}
		cfg = s.cfg
		if err := watchChildren(); err != nil {
			_ = env.Stop()
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("control plane: %w", err)
		}
	case <-ctx.Done():
		// Start cannot be interrupted; stop whatever it brought up once it returns.
		go func() { <-done; _ = env.Stop(); _ = os.RemoveAll(dir) }()
		return nil, fmt.Errorf("control plane: start: %w", ctx.Err())
	}

	cl, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("control plane: client: %w", err)
	}
	return &ControlPlane{
		Config:      cfg,
		Client:      cl,
		KubeConfig:  env.KubeConfig,
		StartupTime: time.Since(begin),
		env:         env,
		dir:         dir,
	}, nil
}

// Stop ends kube-apiserver and etcd and removes their temporary directories.
func (cp *ControlPlane) Stop() error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if err := cp.env.Stop(); err != nil {
		return fmt.Errorf("control plane: stop: %w", err)
	}
	if err := os.RemoveAll(cp.dir); err != nil {
		return fmt.Errorf("control plane: stop: %w", err)
	}
	keepDir(cp.dir)
	return nil
}

// WriteKubeConfig writes KubeConfig to path, readable by the owner only.
func (cp *ControlPlane) WriteKubeConfig(path string) error {
	if err := os.WriteFile(path, cp.KubeConfig, 0o600); err != nil {
		return fmt.Errorf("control plane: kubeconfig: %w", err)
	}
	return nil
}

var quietLogs sync.Once

// InstallCRDs installs the CRD manifests in dir and waits until they are served.
func (cp *ControlPlane) InstallCRDs(ctx context.Context, dir string) error {
	if err := checkBinaries(dir); err != nil {
		return fmt.Errorf("control plane: CRDs: %w", err)
	}
	_, err := envtest.InstallCRDs(cp.Config, envtest.CRDInstallOptions{
		Paths: []string{dir}, ErrorIfPathMissing: true, Scheme: cp.Client.Scheme(),
	})
	if err != nil {
		return fmt.Errorf("control plane: CRDs from %s: %w", dir, err)
	}
	return ctx.Err()
}
