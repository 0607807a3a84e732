package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	schedulingv1beta1 "volcano.sh/apis/pkg/apis/scheduling/v1beta1"

	"github.com/raas-dev/raas/api/v1alpha1"
	"github.com/raas-dev/raas/daemon/shard"
	"github.com/raas-dev/raas/daemon/statuspage"
	"github.com/raas-dev/raas/internal/secret"
	"github.com/raas-dev/raas/internal/trigger"
)

// Config is everything `raas reconcile` runs: the loop, and what triggers it and serves
// its state.
type Config struct {
	// Loop configures the loop; its Source is the tenants repository. A source that can
	// Watch (a directory) is watched for changes.
	Loop Options
	// Listen is the address of /metrics, /healthz, /readyz, /webhook and the status page.
	Listen string
	// PollInterval is how often the source is polled, with jitter; 0 turns polling off.
	PollInterval time.Duration
	// Webhook holds the secrets (or the files they are in) that authenticate webhooks,
	// and the branch they are for. With no secret the webhook is off.
	Webhook trigger.WebhookOptions
	// LeaderElect applies only while holding the Lease that Leader names. A standby is
	// ready, so that rollouts and drains go on, and hands webhooks to the leader. An
	// empty Leader.Identity is made of the host name and $POD_IP with Listen's port.
	LeaderElect bool
	Leader      LeaderOptions
	// Shard shares the tenants with the other replicas run with Shard: each joins the
	// ring ShardOptions names with a member Lease, and owns a part of the tenants (and
	// one of them the platform objects); see package shard. A webhook is relayed to every
	// member. An empty ShardOptions.Identity is $POD_NAME, else the host name; an empty
	// Address is $POD_IP with Listen's port, when POD_IP is set. It excludes LeaderElect.
	Shard        bool
	ShardOptions shard.Options
}

// DefaultConfig listens on :8080 and polls every minute, with the default loop options.
func DefaultConfig() Config {
	return Config{
		Loop:         DefaultOptions(),
		Listen:       ":8080",
		PollInterval: time.Minute,
		Webhook:      trigger.DefaultWebhookOptions(),
		Leader:       DefaultLeaderOptions(),
		ShardOptions: shard.DefaultOptions(),
	}
}

// watcher is a source that notices its own changes, such as a directory.
type watcher interface {
	Watch(ctx context.Context, notify func(reason string)) error
}

// Run runs the daemon on the host cluster cfg reaches until ctx ends: the loop (under
// leader election, or as a member of a shard ring, if asked), its triggers (start, poll,
// webhook, directory watch, retries) and its HTTP endpoints. A clean shutdown returns
// nil. A member leaves the ring when Run returns, so that the others take its tenants at
// once.
func Run(ctx context.Context, cfg *rest.Config, c Config) (err error) {
	log := c.Loop.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if c.Loop.Metrics == nil {
		c.Loop.Metrics = NewMetrics()
	}
	if c.Shard && c.LeaderElect {
		return errors.New("sharding and leader election exclude each other: choose one")
	}
	var member *shard.Member
	if c.Shard {
		so := c.ShardOptions
		if so.Identity == "" {
			so.Identity = shardIdentity()
		}
		if so.Address == "" {
			so.Address = podAddress(c.Listen)
		}
		if so.Logger == nil {
			so.Logger = log
		}
		if member, err = shard.Join(ctx, cfg, so); err != nil {
			return err
		}
		defer func() {
			// Whatever ended Run, this replica writes no more: hand its tenants over now
			// rather than when its Lease expires.
			leave, cancel := context.WithTimeout(context.WithoutCancel(ctx), so.LeaseDuration)
			defer cancel()
			if lerr := member.Leave(leave); lerr != nil {
				log.Warn("shard ring not left: the others take over when the Lease expires", "error", lerr)
			}
		}()
		c.Loop.Owner = member
	}
	l, err := New(cfg, c.Loop)
	if err != nil {
		return err
	}
	webhook, err := newWebhook(l.Trigger(), c.Webhook, log)
	if err != nil {
		return err
	}
	if member != nil && webhook != nil {
		webhook = ForwardToMembers(webhook, member, log)
	}

	var leading atomic.Bool
	ready := l.Ready
	lo := c.Leader
	if c.LeaderElect {
		ready = func() bool { return !leading.Load() || l.Ready() }
		if lo.Identity == "" {
			lo.Identity = leaderIdentity(c.Listen)
		}
		if webhook != nil {
			webhook = ForwardToLeader(webhook, leading.Load, cfg, lo, log)
		}
	}

	page, err := statusPage(cfg, l, log)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/", page)
	endpoints := Handler(c.Loop.Metrics, webhook, ready)
	for _, p := range []string{"/metrics", "/healthz", "/readyz", "/webhook"} {
		mux.Handle(p, endpoints)
	}

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return Serve(ctx, c.Listen, mux) })
	if c.PollInterval > 0 {
		g.Go(func() error {
			po := trigger.DefaultPollOptions()
			po.Interval = c.PollInterval
			return trigger.Poll(ctx, l.Trigger(), po)
		})
	}
	if w, ok := c.Loop.Source.(watcher); ok {
		if err := w.Watch(ctx, l.Trigger().Trigger); err != nil {
			return err
		}
	}
	if member != nil {
		g.Go(func() error { return member.Run(ctx) })
	}
	g.Go(func() error {
		if !c.LeaderElect {
			return l.Run(ctx)
		}
		return RunAsLeader(ctx, cfg, lo, func(ctx context.Context) {
			leading.Store(true)
			defer leading.Store(false)
			log.Info("leading: reconciling", "identity", lo.Identity)
			if err := l.Run(ctx); err != nil {
				log.Error("loop stopped", "error", err)
			}
			log.Info("no longer leading")
		})
	})
	log.Info("raas reconcile started", "source", c.Loop.Source.String(), "listen", c.Listen, "leader_elect", c.LeaderElect, "shard", c.Shard)
	err = g.Wait()
	log.Info("raas reconcile stopped")
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// newWebhook returns the webhook handler, or nil when no secret is configured.
func newWebhook(t *trigger.Trigger, opts trigger.WebhookOptions, log *slog.Logger) (http.Handler, error) {
	github, err := secret.Read("webhook GitHub secret", opts.GitHubSecret, opts.GitHubSecretFile)
	if err != nil {
		return nil, err
	}
	gitlab, err := secret.Read("webhook GitLab token", opts.GitLabToken, opts.GitLabTokenFile)
	if err != nil {
		return nil, err
	}
	if github == "" && gitlab == "" {
		log.Info("webhook off: no secret configured")
		return nil, nil
	}
	opts.Logger = log
	return trigger.NewWebhook(t, opts)
}

// statusPage is the read-only status page, served at / and /status/ next to /metrics.
func statusPage(cfg *rest.Config, l *Loop, log *slog.Logger) (http.Handler, error) {
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
	if addr := podAddress(listen); addr != "" {
		return host + "_" + addr
	}
	return fmt.Sprintf("%s_%d", host, os.Getpid())
}

// podAddress is $POD_IP with the port of listen, or "" without POD_IP.
func podAddress(listen string) string {
	_, port, err := net.SplitHostPort(listen)
	if ip := os.Getenv("POD_IP"); ip != "" && err == nil {
		return net.JoinHostPort(ip, port)
	}
	return ""
}

// shardIdentity names this replica in the shard ring: $POD_NAME (a Deployment's pods
// have unique names that are DNS labels), else the host name, lowercased.
func shardIdentity() string {
	name := os.Getenv("POD_NAME")
	if name == "" {
		name, _ = os.Hostname()
	}
	return strings.ToLower(name)
}
