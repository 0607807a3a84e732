// Command local is `make run`: the main job of raas on a local default. With no KUBECONFIG
// set, it starts the twin of a GPU host cluster (testenv.StartTwin: the host's control
// plane and controllers, kwok Nodes from the platform config, and a kubelet that runs the
// real vcluster syncer and KubeRay operator for their pods), turns examples/ into a Git
// repository, runs `raas reconcile` against it, creates a sample RayCluster in the CPU
// tenant and waits for every tenant to be Ready. With KUBECONFIG set, it reconciles that
// cluster instead. It keeps running until Ctrl-C and then stops everything it started.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/schema"
)

func main() {
	once := flag.Bool("once", false, "apply once and exit instead of running until Ctrl-C")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, stop, *once); err != nil {
		fmt.Fprintln(os.Stderr, "make run:", err)
		os.Exit(1)
	}
}

const (
	runDir   = ".run"
	examples = "examples"
)

func run(ctx context.Context, stop func(), once bool) error {
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	raas := filepath.Join(root, "bin", "raas")
	kubectl := filepath.Join(root, "bin", "kubectl")
	repoDir := filepath.Join(root, runDir, "tenants")
	commit, err := makeGitRepo(filepath.Join(root, examples), repoDir)
	if err != nil {
		return fmt.Errorf("tenants repository: %w", err)
	}
	step("Tenants repository: %s (a Git repository made from %s/, commit %s)", repoDir, examples, commit[:12])

	kubeconfig := os.Getenv("KUBECONFIG")
	var twin *testenv.Twin
	var sampleNamespace string
	if kubeconfig == "" {
		kubeconfig = filepath.Join(root, runDir, "kubeconfig")
		repo, err := schema.Load(os.DirFS(repoDir))
		if err != nil {
			return err
		}
		if !repo.Usable() {
			return fmt.Errorf("the example platform config is invalid:\n%v", repo.Problems)
		}
		sampleNamespace = repo.Platform.Namespace(sampleTenant)
		if err := testenv.CheckTwin(); err != nil {
			return fmt.Errorf("%w (or set KUBECONFIG to reconcile a cluster of yours)", err)
		}
		logPath := filepath.Join(root, runDir, "twin.log")
		logFile, err := os.Create(logPath)
		if err != nil {
			return err
		}
		defer logFile.Close()
		opts := testenv.DefaultTwinOptions()
		opts.Output = logFile
		step("Starting the twin of a GPU host cluster (logs: %s)", rel(root, logPath))
		if twin, err = testenv.StartTwin(ctx, repo.Platform, opts); err != nil {
			return fmt.Errorf("twin: %w", err)
		}
		defer stopAll("twin", twin.Stop)
		if err := twin.Host.WriteKubeConfig(kubeconfig); err != nil {
			return err
		}
		fmt.Printf("   host: kube-apiserver %s at %s, with kube-controller-manager and kube-scheduler\n", "v1.37.2", twin.Host.Config.Host)
		fmt.Printf("   nodes: %s, simulated by kwok\n", nodeSummary(twin))
		fmt.Printf("   up in %s\n", twin.StartupTime.Round(time.Millisecond))
		fmt.Println(`   What is real: every vcluster is the vcluster 0.25.0 syncer (with its own kube-apiserver,
   kube-controller-manager and kine), started for its StatefulSet's pod; the KubeRay operator
   runs inside each vcluster as the Deployment raas applies there. What is simulated: the nodes.
   No container runs; kwok marks pods Running and Ready, and the twin runs the syncer and the
   operator as processes for their pods. Ray pods run nothing, and gang-scheduled pods stay
   Pending: they wait for the Volcano scheduler, which the twin does not run.`)
	} else {
		step("Using the cluster of KUBECONFIG=%s; no twin", kubeconfig)
	}

	// The status CRD, so that `kubectl get tenants` and `raas status` work.
	crd := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "apply", "--server-side", "-f", filepath.Join(root, "deploy", "crds"))
	if out, err := crd.CombinedOutput(); err != nil {
		return fmt.Errorf("install the Tenant CRD: %v\n%s", err, out)
	}

	step("raas reconcile --repo-url %s (polling every 5s; logs below)", rel(root, repoDir))
	const listen = "127.0.0.1:18080"
	args := []string{"reconcile", "--repo-url", repoDir, "--branch", "main", "--poll-interval", "5s",
		"--kubeconfig", kubeconfig, "--listen", listen, "--log-format", "text", "--vcluster-timeout", "20s",
		"--cache-dir", filepath.Join(root, runDir, "cache")}
	cmd := exec.CommandContext(ctx, raas, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 15 * time.Second
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if err := waitReady(ctx, "http://"+listen+"/readyz", exited); err != nil {
		return err
	}
	if twin != nil {
		if err := sampleRayCluster(ctx, twin, sampleNamespace, sampleTenant); err != nil {
			fmt.Fprintf(os.Stderr, "sample RayCluster: %v\n", err)
		}
		if err := waitTenantsReady(ctx, twin, 10*time.Minute); err != nil {
			fmt.Fprintf(os.Stderr, "%v\n", err)
		}
	}
	status := exec.CommandContext(ctx, raas, "status", "--kubeconfig", kubeconfig)
	status.Stdout, status.Stderr = os.Stdout, os.Stderr
	fmt.Println()
	step("raas status")
	_ = status.Run()

	fmt.Printf(`
What to look at next (in another terminal):
  export KUBECONFIG=%s
  %s get tenants                      # phase of each tenant
  %s get namespaces -l app.kubernetes.io/managed-by=raas
  %s get queues.scheduling.volcano.sh
  %s get statefulsets,resourcequotas,networkpolicies -n tenant-ml-team-alpha
  %s diff %s         # nothing to change
  curl -s http://%s/metrics | grep ^raas_
Change a tenant: edit %s/tenants/*.yaml and commit (git -C %s commit -am "..."); raas picks it up within 5s.
`, kubeconfig, rel(root, kubectl), rel(root, kubectl), rel(root, kubectl), rel(root, kubectl), rel(root, raas), rel(root, repoDir),
		listen, rel(root, repoDir), rel(root, repoDir))
	if once {
		stop()
		<-exited
		return nil
	}
	fmt.Println("\nPress Ctrl-C to stop; everything started here stops with it.")
	select {
	case <-ctx.Done():
		fmt.Println("\nstopping...")
		<-exited
	case err := <-exited:
		return fmt.Errorf("raas reconcile exited: %v", err)
	}
	return nil
}

// waitReady polls url until it answers 200, the process exits, or five minutes pass (a first pass on a busy 2-core machine has taken almost three).
func waitReady(ctx context.Context, url string, exited <-chan error) error {
	deadline := time.After(5 * time.Minute)
	for {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-exited:
			return fmt.Errorf("raas reconcile exited: %v", err)
		case <-deadline:
			return errors.New("raas reconcile did not finish its first pass within five minutes")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// makeGitRepo replaces dst with a Git repository holding a copy of src in one commit.
func makeGitRepo(src, dst string) (string, error) {
	if err := os.RemoveAll(dst); err != nil {
		return "", err
	}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		return "", err
	}
	repo, err := git.PlainInitWithOptions(dst, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: "refs/heads/main"},
	})
	if err != nil {
		return "", err
	}
	wt, err := repo.Worktree()
	if err != nil {
		return "", err
	}
	if err := wt.AddGlob("."); err != nil {
		return "", err
	}
	sig := &object.Signature{Name: "raas make run", Email: "raas@localhost", When: time.Now()}
	hash, err := wt.Commit("Example tenants", &git.CommitOptions{Author: sig})
	if err != nil {
		return "", err
	}
	return hash.String(), nil
}

func step(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }

func stopAll(what string, stop func() error) {
	if err := stop(); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "stop %s: %v\n", what, err)
	}
}

func rel(root, p string) string {
	if r, err := filepath.Rel(root, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}
