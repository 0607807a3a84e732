package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/raas-dev/raas/daemon"
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
	shard        bool
	shardRing    string
	shardLease   time.Duration
	logFormat    string
	logLevel     string
	retryBase    time.Duration
	retryMax     time.Duration
	drift        time.Duration
	verify       bool
	trustedKeys  string
}

func newReconcileCommand(now func() time.Time) *cobra.Command {
	f := &reconcileFlags{cluster: clusterFlags{now: now}}
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
Lease applies. With --shard, the replicas share the tenants: each holds a Lease of its own
in a ring, owns a part of the tenants (one of them the platform objects) and writes only
those, checking before each write that it still holds its membership; a replica that stops
hands its tenants over within --shard-lease-duration, and a webhook that reaches one
replica is relayed to the others. It serves /metrics, /healthz and /readyz on --listen.

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
	fl.StringVar(&f.leaderNS, "leader-election-namespace", "raas-system", "namespace of the Lease (and of the shard ring's Leases)")
	fl.BoolVar(&f.shard, "shard", false, "share the tenants with the other replicas run with --shard: each owns a part, "+
		"by a ring of Leases in --leader-election-namespace")
	fl.StringVar(&f.shardRing, "shard-ring", "raas", "name of the shard ring; replicas of one ring share its tenants")
	fl.DurationVar(&f.shardLease, "shard-lease-duration", 15*time.Second, "how long after a replica's last renewal the others take its tenants")
	fl.StringVar(&f.logFormat, "log-format", "json", "json or text")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.DurationVar(&f.retryBase, "retry-base", 10*time.Second, "first backoff before a pass retries tenants that are not Ready")
	fl.DurationVar(&f.retryMax, "retry-max", 5*time.Minute, "longest backoff")
	fl.DurationVar(&f.drift, "drift-interval", 10*time.Minute, "how often a pass covers every tenant, to put back edits by hand that no watch saw (inside vclusters); "+
		"other passes cover the tenants that changed; 0 makes every pass cover every tenant")
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

func (f *reconcileFlags) source(log *slog.Logger) (source.Source, error) {
	switch {
	case f.dir != "" && f.repoURL != "":
		return nil, errors.New("give --dir or --repo-url, not both")
	case f.verify && f.dir != "":
		return nil, errors.New("--verify-signatures needs a Git source (--repo-url): a directory has no commits")
	case f.verify && f.trustedKeys == "":
		return nil, errors.New("--verify-signatures needs --trusted-keys (or RAAS_GIT_TRUSTED_KEYS_FILE)")
	case f.dir != "":
		return source.NewDir(f.dir, source.DefaultDirOptions())
	case f.repoURL == "":
		return nil, errors.New("give the tenants repository with --repo-url, or a local directory with --dir")
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
			return nil, fmt.Errorf("--trusted-keys: %w", err)
		}
		opts.Verifier = source.OpenPGPVerifier{KeyringFile: f.trustedKeys}
	}
	return source.NewGit(opts)
}

func (f *reconcileFlags) run(ctx context.Context) error {
	if f.shard && f.leaderElect {
		return errors.New("give --shard or --leader-elect, not both: a sharded replica never waits for a leader")
	}
	ctrllog.SetLogger(logr.Discard())
	log, err := f.logger()
	if err != nil {
		return err
	}
	src, err := f.source(log)
	if err != nil {
		return err
	}
	cfg, err := f.cluster.restConfig()
	if err != nil {
		return err
	}
	c := daemon.DefaultConfig()
	c.Loop.Source, c.Loop.Catalog, c.Loop.Reconcile = src, f.cluster.catalog.options(), f.cluster.options()
	c.Loop.Logger, c.Loop.Now = log, f.cluster.now
	c.Loop.RetryBase, c.Loop.RetryMax, c.Loop.DriftInterval = f.retryBase, f.retryMax, f.drift
	c.Listen, c.PollInterval = f.listen, f.pollInterval
	c.Webhook = trigger.WebhookOptionsFromEnv()
	if f.repoURL != "" && f.tag == "" && f.commit == "" {
		c.Webhook.Branch = f.branch
	}
	c.LeaderElect, c.Leader.Namespace = f.leaderElect, f.leaderNS
	c.Shard, c.ShardOptions.Namespace, c.ShardOptions.Ring = f.shard, f.leaderNS, f.shardRing
	c.ShardOptions.LeaseDuration = f.shardLease
	return daemon.Run(ctx, cfg, c)
}
