package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/rest"

	"github.com/raas-dev/raas/render"
)

// KubeRayBinaryPrefix names the operator binaries `make twin-kuberay` builds into bin/:
// kuberay-operator-v1.5.0 and so on, one per version in versions.kuberay.
const KubeRayBinaryPrefix = "kuberay-operator-"

// minTokenTTL is the shortest expirationSeconds the TokenRequest API accepts
// (k8s.io/kubernetes pkg/apis/authentication/validation/validation.go:28, MinTokenAgeSec).
const minTokenTTL = 10 * time.Minute

// ErrMissingKubeRay is returned when bin/ lacks the operator at the rendered version.
var ErrMissingKubeRay = errors.New("not built: run `make twin-kuberay`")

// KubeRayOptions configures one run of the KubeRay operator.
type KubeRayOptions struct {
	// BinDir holds the kuberay-operator-vX.Y.Z binaries. Empty means BinDir().
	BinDir string
	// Output receives the operator's stdout and stderr (JSON logs); nil discards them.
	Output io.Writer
	// StartTimeout bounds the wait for the operator's readiness probe.
	StartTimeout time.Duration
	// TokenTTL is the lifetime asked of each ServiceAccount token, at least the ten
	// minutes the TokenRequest API accepts. The token file is renewed at 80% of it, as
	// the kubelet renews a projected token.
	TokenTTL time.Duration
}

// DefaultKubeRayOptions returns a start bound of one minute and one-hour tokens.
func DefaultKubeRayOptions() KubeRayOptions {
	return KubeRayOptions{StartTimeout: time.Minute, TokenTTL: time.Hour}
}

// KubeRay is a KubeRay operator process running against one virtual API server, as the
// operator Deployment that raas rendered would run it inside the vcluster: the rendered
// args and env, authenticated as the rendered ServiceAccount. Nothing runs it in a pod:
// the Deployment, if applied, never gets a running pod of its own.
type KubeRay struct {
	// Version is the image tag of the rendered Deployment, such as v1.5.0; it picked
	// the binary.
	Version string
	// Namespace and ServiceAccount are the identity the operator runs as.
	Namespace, ServiceAccount string
	// Args are the operator's arguments: the rendered ones, then the few added to run
	// outside a pod (see kubeRayArgs).
	Args []string
	// Config reaches the virtual API server as the operator's ServiceAccount, through
	// the same token file the operator reads.
	Config *rest.Config
	// MetricsAddr and ProbeAddr are where the operator serves /metrics and /readyz.
	MetricsAddr, ProbeAddr string
	// StartupTime is how long StartKubeRay took, until the readiness probe answered.
	StartupTime time.Duration

	cmd     *exec.Cmd
	dir     string
	exited  chan struct{}
	waitErr error
	stop    context.CancelFunc // ends the token renewal
	grace   time.Duration
	mu      sync.Mutex
	stopped bool
}

// StartKubeRay starts the operator of the Deployment among virtual, the objects raas
// rendered for a tenant's vcluster, against vc. Those objects must already be applied
// there: the ServiceAccount it runs as, its RBAC and the CRDs. It asks vc for a token of
// the Deployment's ServiceAccount with the TokenRequest API, so every request the
// operator makes is authorized by raas's rendered RBAC rules and nothing else. It returns
// once the operator's readiness probe answers; call Stop to end it. ctx bounds the start
// only.
func StartKubeRay(ctx context.Context, vc *ControlPlane, virtual []*render.Object, opts KubeRayOptions) (*KubeRay, error) {
	begin := time.Now()
	dep, err := kubeRayDeployment(virtual)
	if err != nil {
		return nil, fmt.Errorf("kuberay: %w", err)
	}
	binDir := opts.BinDir
	if binDir == "" {
		if binDir, err = BinDir(); err != nil {
			return nil, fmt.Errorf("kuberay: %w", err)
		}
	}
	bin := filepath.Join(binDir, KubeRayBinaryPrefix+dep.version)
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("kuberay %s: %s: %w", dep.version, bin, ErrMissingKubeRay)
	}

	dir, err := os.MkdirTemp("", "raas-kuberay-")
	if err != nil {
		return nil, fmt.Errorf("kuberay %s: %w", dep.version, err)
	}
	fail := func(err error) (*KubeRay, error) {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("kuberay %s: %w", dep.version, err)
	}
	ttl := opts.TokenTTL
	if ttl <= 0 {
		ttl = DefaultKubeRayOptions().TokenTTL
	}
	if ttl < minTokenTTL {
		return fail(fmt.Errorf("token TTL %s is below the %s the TokenRequest API accepts", ttl, minTokenTTL))
	}
	id, err := newServiceAccountIdentity(ctx, vc.Config, dep.namespace, dep.serviceAccount, ttl, dir)
	if err != nil {
		return fail(err)
	}
	ports, err := kubeRayPorts(2)
	if err != nil {
		return fail(err)
	}
	k := &KubeRay{
		Version:        dep.version,
		Namespace:      dep.namespace,
		ServiceAccount: dep.serviceAccount,
		Config:         id.config,
		MetricsAddr:    net.JoinHostPort("127.0.0.1", ports[0]),
		ProbeAddr:      net.JoinHostPort("127.0.0.1", ports[1]),
		dir:            dir,
		exited:         make(chan struct{}),
		grace:          dep.grace,
	}
	k.Args, err = kubeRayArgs(dep, id.kubeConfig, k.MetricsAddr, k.ProbeAddr)
	if err != nil {
		return fail(err)
	}

	cmd := exec.Command(bin, k.Args...)
	cmd.Args[0] = dep.argv0
	// The container's env, and nothing of the test process's: a KUBECONFIG or an
	// ENABLE_WEBHOOKS there must not change what the operator does.
	cmd.Env = dep.env
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = opts.Output, opts.Output
	cmd.SysProcAttr = kubeRayProcAttr()
	if err := cmd.Start(); err != nil {
		return fail(err)
	}
	k.cmd = cmd
	go func() {
		k.waitErr = cmd.Wait()
		close(k.exited)
	}()
	renewCtx, stop := context.WithCancel(context.Background())
	k.stop = stop
	go id.renew(renewCtx)

	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = DefaultKubeRayOptions().StartTimeout
	}
	if err := k.waitReady(ctx, timeout); err != nil {
		_ = k.Stop()
		return nil, fmt.Errorf("kuberay %s: %w", dep.version, err)
	}
	k.StartupTime = time.Since(begin)
	return k, nil
}

// waitReady polls the readiness probe until it answers 200, the process exits, or the
// time is up.
func (k *KubeRay) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	url := "http://" + k.ProbeAddr + "/readyz"
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-k.exited:
			return fmt.Errorf("operator exited before it was ready: %v", k.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("readiness %s: %w", url, ctx.Err())
		case <-tick.C:
		}
	}
}

// PID is the operator's process id, for measuring what it uses.
func (k *KubeRay) PID() int { return k.cmd.Process.Pid }

// Exited is closed when the operator process has ended, whether by Stop or on its own.
func (k *KubeRay) Exited() <-chan struct{} { return k.exited }

// Err returns how the process ended, once Exited is closed.
func (k *KubeRay) Err() error {
	select {
	case <-k.exited:
		return k.waitErr
	default:
		return nil
	}
}

// Stop ends the operator: SIGTERM, then SIGKILL after the Deployment's
// terminationGracePeriodSeconds, as the kubelet would. It removes the token and
// kubeconfig. An operator that had already exited on its own is reported as an error.
func (k *KubeRay) Stop() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped {
		return nil
	}
	k.stopped = true
	k.stop()
	var err error
	select {
	case <-k.exited:
		err = fmt.Errorf("kuberay %s: exited before Stop: %v", k.Version, k.waitErr)
	default:
		_ = k.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-k.exited:
		case <-time.After(k.grace):
			_ = k.cmd.Process.Kill()
			<-k.exited
		}
	}
	if rmErr := os.RemoveAll(k.dir); rmErr != nil && err == nil {
		err = fmt.Errorf("kuberay %s: stop: %w", k.Version, rmErr)
	}
	return err
}

// kubeRayPorts returns n distinct free TCP ports on 127.0.0.1. They are free when asked;
// another process could take one before the operator binds it, which the start then
// reports as an early exit.
func kubeRayPorts(n int) ([]string, error) {
	var ports []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		defer l.Close()
		_, port, _ := net.SplitHostPort(l.Addr().String())
		ports = append(ports, port)
	}
	return ports, nil
}

// argSet reports whether args set the flag name, as -name or --name, with or without
// =value.
func argSet(args []string, name string) bool {
	for _, a := range args {
		a = strings.TrimLeft(a, "-")
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}
