package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	schedulingv1beta1 "volcano.sh/apis/pkg/apis/scheduling/v1beta1"

	"github.com/raas-dev/raas/api/v1alpha1"
	"github.com/raas-dev/raas/daemon"
	"github.com/raas-dev/raas/daemon/statuspage"
	"github.com/raas-dev/raas/internal/secret"
	"github.com/raas-dev/raas/internal/trigger"
	"github.com/raas-dev/raas/source"
)

type reconcileFlags struct {
	cluster      clusterFlags
	repoURL      string
	branch, tag  string
	commit       string
	dir          string
	depth        int
	pollInterval time.Duration
	listen       string
	leaderElect  bool
	leaderNS     string
	logFormat    string
	logLevel     string
	retryBase    time.Duration
	retryMax     time.Duration
	verify       bool
	trustedKeys  string
}

func newReconcileCommand() *cobra.Command {
	f := &reconcileFlags{}
	cmd := &cobra.Command{
		Use:   "reconcile",
		Short: "Keep the host cluster converged with a tenants repository (the daemon)",
		Long: `Reconcile runs until stopped. It pulls the tenants repository (Git, or a local directory
watched for changes), renders what changed and applies it with the same safety rails as
raas apply, and writes each tenant's status (kubectl get tenants) and Events.

A pass runs at start, on every poll, on every signed webhook (POST /webhook with GitHub's
X-Hub-Signature-256 or GitLab's X-Gitlab-Token), on file changes with --dir, and on retries
of tenants that are not Ready. Triggers that arrive during a pass coalesce into one.

When a fetch fails or a new revision's raas.yaml does not parse, raas keeps applying the
last good revision and prunes nothing. With --verify-signatures, a head commit that is not
signed by one of the OpenPGP keys in --trusted-keys (an armored keyring, such as a mounted
Secret; read on every fetch) is refused the same way, and each Tenant's RevisionCurrent
condition and a Warning Event say why. Commits signed with SSH keys cannot be verified
(go-git verifies OpenPGP only) and are refused. With --leader-elect, only the replica holding the
Lease applies. It serves /metrics, /healthz and /readyz on --listen.

Git credentials and webhook secrets come from the environment, never from flags:
RAAS_GIT_TOKEN[_FILE], RAAS_GIT_USERNAME, RAAS_GIT_PASSWORD[_FILE], RAAS_GIT_SSH_KEY_FILE,
RAAS_GIT_SSH_KEY_PASSPHRASE[_FILE], RAAS_GIT_KNOWN_HOSTS_FILE,
RAAS_WEBHOOK_GITHUB_SECRET[_FILE], RAAS_WEBHOOK_GITLAB_TOKEN[_FILE].`,
		Example: `  raas reconcile --repo-url https://github.com/acme/tenants.git --branch main
  raas reconcile --dir ./tenants --kubeconfig host.kubeconfig --listen :8080`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return f.run(cmd.Context()) },
	}
	f.cluster.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.repoURL, "repo-url", "", "Git URL of the tenants repository (https:// or ssh://)")
	fl.StringVar(&f.branch, "branch", "main", "branch to follow")
	fl.StringVar(&f.tag, "tag", "", "follow this tag instead of a branch")
	fl.StringVar(&f.commit, "commit", "", "pin this exact commit instead of a branch")
	fl.StringVar(&f.dir, "dir", "", "reconcile a local directory instead of Git, and watch it for changes")
	fl.IntVar(&f.depth, "depth", 1, "Git fetch depth (0 for full history)")
	fl.DurationVar(&f.pollInterval, "poll-interval", time.Minute, "how often to poll the source (with 10% jitter); 0 turns polling off")
	fl.StringVar(&f.listen, "listen", ":8080", "address of /metrics, /healthz, /readyz, /webhook and the status page (/status/)")
	fl.BoolVar(&f.leaderElect, "leader-elect", false, "apply only while holding the Lease, so that replicas never apply at once")
	fl.StringVar(&f.leaderNS, "leader-election-namespace", "raas-system", "namespace of the Lease")
	fl.StringVar(&f.logFormat, "log-format", "json", "json or text")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.DurationVar(&f.retryBase, "retry-base", 10*time.Second, "first backoff before a pass retries tenants that are not Ready")
	fl.DurationVar(&f.retryMax, "retry-max", 5*time.Minute, "longest backoff")
	fl.BoolVar(&f.verify, "verify-signatures", false, "refuse a head commit that is not signed by a key in --trusted-keys")
	fl.StringVar(&f.trustedKeys, "trusted-keys", os.Getenv("RAAS_GIT_TRUSTED_KEYS_FILE"),
		"file of armored OpenPGP public keys trusted to sign commits (env RAAS_GIT_TRUSTED_KEYS_FILE)")
	return cmd
}

func (f *reconcileFlags) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch f.logFormat {
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is neither json nor text", f.logFormat)
}

func (f *reconcileFlags) source(log *slog.Logger) (source.Source, *source.DirSource, error) {
	switch {
	case f.dir != "" && f.repoURL != "":
		return nil, nil, errors.New("give --dir or --repo-url, not both")
	case f.verify && f.dir != "":
		return nil, nil, errors.New("--verify-signatures needs a Git source (--repo-url): a directory has no commits")
	case f.verify && f.trustedKeys == "":
		return nil, nil, errors.New("--verify-signatures needs --trusted-keys (or RAAS_GIT_TRUSTED_KEYS_FILE)")
	case f.dir != "":
		d, err := source.NewDir(f.dir, source.DefaultDirOptions())
		return d, d, err
	case f.repoURL == "":
		return nil, nil, errors.New("give the tenants repository with --repo-url, or a local directory with --dir")
	}
	opts := source.DefaultGitOptions()
	opts.URL, opts.Branch, opts.Tag, opts.Commit = f.repoURL, f.branch, f.tag, f.commit
	if f.tag != "" || f.commit != "" {
		opts.Branch = ""
	}
	opts.Depth = f.depth
	opts.Credentials = source.CredentialsFromEnv()
	opts.Logger = log
	opts.CacheDir = filepath.Join(f.cluster.catalog.cacheDir, "git")
	if f.verify {
		if _, err := os.Stat(f.trustedKeys); err != nil {
			return nil, nil, fmt.Errorf("--trusted-keys: %w", err)
		}
		opts.Verifier = source.OpenPGPVerifier{KeyringFile: f.trustedKeys}
	}
	g, err := source.NewGit(opts)
	return g, nil, err
}

func (f *reconcileFlags) run(ctx context.Context) error {
	ctrllog.SetLogger(logr.Discard())
	log, err := f.logger()
	if err != nil {
		return err
	}
	src, dir, err := f.source(log)
	if err != nil {
		return err
	}
	cfg, err := f.cluster.restConfig()
	if err != nil {
		return err
	}
	metrics := daemon.NewMetrics()
	opts := daemon.DefaultOptions()
	opts.Source, opts.Catalog, opts.Reconcile = src, f.cluster.catalog.options(), f.cluster.options()
	opts.Logger, opts.Metrics = log, metrics
	opts.RetryBase, opts.RetryMax = f.retryBase, f.retryMax
	l, err := daemon.New(cfg, opts)
	if err != nil {
		return err
	}

	var webhook http.Handler
	wo := trigger.WebhookOptionsFromEnv()
	github, err := secret.Read("webhook GitHub secret", wo.GitHubSecret, wo.GitHubSecretFile)
	if err != nil {
		return err
	}
	gitlab, err := secret.Read("webhook GitLab token", wo.GitLabToken, wo.GitLabTokenFile)
	if err != nil {
		return err
	}
	if github != "" || gitlab != "" {
		wo.Logger = log
		if f.repoURL != "" && f.tag == "" && f.commit == "" {
			wo.Branch = f.branch
		}
		if webhook, err = trigger.NewWebhook(l.Trigger(), wo); err != nil {
			return err
		}
	} else {
		log.Info("webhook off: no secret configured")
	}

	// With leader election, a standby is ready (so that rollouts and drains go on) and
	// hands webhooks to the leader, whose address is in the Lease.
	var leading atomic.Bool
	ready := l.Ready
	lo := daemon.DefaultLeaderOptions()
	lo.Namespace = f.leaderNS
	if f.leaderElect {
		ready = func() bool { return !leading.Load() || l.Ready() }
		lo.Identity = leaderIdentity(f.listen)
		if webhook != nil {
			webhook = daemon.ForwardToLeader(webhook, leading.Load, cfg, lo, log)
		}
	}

	g, ctx := errgroup.WithContext(ctx)
	page, err := statusPage(cfg, l, log)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/", page)
	endpoints := daemon.Handler(metrics, webhook, ready)
	for _, p := range []string{"/metrics", "/healthz", "/readyz", "/webhook"} {
		mux.Handle(p, endpoints)
	}
	g.Go(func() error { return daemon.Serve(ctx, f.listen, mux) })
	if f.pollInterval > 0 {
		g.Go(func() error {
			po := trigger.DefaultPollOptions()
			po.Interval = f.pollInterval
			return trigger.Poll(ctx, l.Trigger(), po)
		})
	}
	if dir != nil {
		if err := dir.Watch(ctx, l.Trigger().Trigger); err != nil {
			return err
		}
	}
	g.Go(func() error {
		if !f.leaderElect {
			return l.Run(ctx)
		}
		return daemon.RunAsLeader(ctx, cfg, lo, func(ctx context.Context) {
			leading.Store(true)
			defer leading.Store(false)
			log.Info("leading: reconciling", "identity", lo.Identity)
			if err := l.Run(ctx); err != nil {
				log.Error("loop stopped", "error", err)
			}
			log.Info("no longer leading")
		})
	})
	log.Info("raas reconcile started", "source", src.String(), "listen", f.listen, "leader_elect", f.leaderElect)
	err = g.Wait()
	log.Info("raas reconcile stopped")
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// statusPage is the read-only status page, served at / and /status/ next to /metrics.
func statusPage(cfg *rest.Config, l *daemon.Loop, log *slog.Logger) (http.Handler, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme, schedulingv1beta1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, err
		}
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("status page client: %w", err)
	}
	opts := statuspage.DefaultOptions()
	opts.Client, opts.Platform, opts.Logger = c, l.Platform, log
	return statuspage.Handler(opts), nil
}

// leaderIdentity names this replica in the Lease as HOST_ADDRESS, where ADDRESS is
// $POD_IP with the port of listen, so that a standby can hand webhooks to the leader.
// Without POD_IP it is HOST_PID.
func leaderIdentity(listen string) string {
	host, _ := os.Hostname()
	_, port, err := net.SplitHostPort(listen)
	if ip := os.Getenv("POD_IP"); ip != "" && err == nil {
		return host + "_" + net.JoinHostPort(ip, port)
	}
	return fmt.Sprintf("%s_%d", host, os.Getpid())
}
