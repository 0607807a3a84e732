package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/api/v1alpha1"
	"github.com/raas-dev/raas/bridge"
	"github.com/raas-dev/raas/fleet"
	"github.com/raas-dev/raas/internal/trigger"
	"github.com/raas-dev/raas/reconcile"
	"github.com/raas-dev/raas/render"
	"github.com/raas-dev/raas/render/catalog"
	"github.com/raas-dev/raas/schema"
	"github.com/raas-dev/raas/source"
)

// Options configure a Loop.
type Options struct {
	// Source is the tenants repository.
	Source source.Source
	// Catalog says where charts and bases are found besides the repository's catalog.
	Catalog catalog.Options
	// Reconcile configures the apply, prune and health of each pass.
	Reconcile reconcile.Options
	// RenderWorkers is how many tenants render at once.
	RenderWorkers int
	// RetryBase and RetryMax bound the backoff before a pass retries tenants that are
	// not Ready: RetryBase after the first failure, doubling up to RetryMax.
	RetryBase, RetryMax time.Duration
	// DriftInterval is how often a pass covers every tenant, to put back what was changed
	// by hand on the host or inside a vcluster. The passes in between cover only the
	// tenants that need it: those whose render changed, those short of Ready whose
	// backoff is up, and those whose objects on the host changed (seen by Watch). 0 makes
	// every pass cover every tenant.
	DriftInterval time.Duration
	// Status writes a v1alpha1.Tenant per tenant and Events on tenant namespaces.
	Status bool
	// Bridge runs a PodGroup bridge for each tenant with gang scheduling whose vcluster
	// answers, so that gangs created inside reach Volcano on the host.
	Bridge bool
	// Logger receives structured logs. Nil discards them.
	Logger *slog.Logger
	// Metrics, if set, receive each pass's measurements.
	Metrics *Metrics
	// Owner, when set, shares the tenants with other replicas (a *shard.Member): a pass
	// covers only the tenants it owns, the platform objects only if it owns those, and
	// every write (apply, prune, inventory, status, Events) asks its Fence first. Passes
	// follow its Changes: a tenant gained is covered at once, a tenant lost forgotten.
	Owner Owner
	// Now is the one clock of the loop: sandbox expiry, status times, the bridges' error
	// times and, unless Reconcile.Now is set, the engine's deadlines. Nil means time.Now.
	Now func() time.Time
}

// DefaultOptions retries after 10 seconds, backing off to 5 minutes, and writes status.
func DefaultOptions() Options {
	return Options{
		Reconcile:     reconcile.DefaultOptions(),
		Catalog:       catalog.DefaultOptions(),
		RenderWorkers: 2,
		RetryBase:     10 * time.Second,
		RetryMax:      5 * time.Minute,
		DriftInterval: 10 * time.Minute,
		Status:        true,
		Bridge:        true,
	}
}

// Loop keeps a host cluster converged with a tenants repository. Triggers coalesce into
// passes; one pass runs at a time.
type Loop struct {
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	rec     *fleet.Fleet
	cache   *render.Cache
	status  *statusWriter
	bridges *bridge.Manager
	trigger *trigger.Trigger

	mu       sync.Mutex
	lastGood *good                // the newest revision that fetched and parsed
	failures map[string]int       // each tenant's passes in a row short of Ready
	retryAt  map[string]time.Time // when each of those is due for another pass
	logged   map[string]string    // each tenant's health and reason as last logged
	last     *reconcile.Result    // every tenant, as its last pass reported it
	ready    bool
	retry    *time.Timer

	// What decides which tenants a pass covers (scope).
	applied         map[string]*render.Output // each tenant's output when a pass last covered it
	appliedPlatform []*render.Object
	lastFull        time.Time       // when the last pass that covered every tenant began
	dirty           map[string]bool // tenants whose host objects changed since the last pass
	bridgeReported  map[string]bridge.Status
	owned           map[string]bool // with an Owner, the tenants it owned when last asked (reown)
}

// good is a revision that fetched and whose platform config parsed, with its render.
type good struct {
	id     string
	render *render.Result
}

// New returns a loop that applies to the host cluster cfg reaches.
func New(cfg *rest.Config, opts Options) (*Loop, error) {
	if opts.Source == nil {
		return nil, errors.New("loop: no source")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	if opts.Reconcile.Now == nil {
		opts.Reconcile.Now = now
	}
	rec, err := fleet.New(cfg, opts.Reconcile)
	if err != nil {
		return nil, err
	}
	l := &Loop{
		opts: opts, log: log, now: now, rec: rec,
		cache:    render.NewCache(renderOptions(opts, now)),
		trigger:  trigger.New(),
		failures: map[string]int{},
		retryAt:  map[string]time.Time{},
		applied:  map[string]*render.Output{},
		dirty:    map[string]bool{},
	}
	if opts.Bridge {
		bo := bridge.DefaultOptions()
		bo.Now = now
		if l.bridges, err = bridge.NewManager(cfg, bo); err != nil {
			return nil, err
		}
	}
	if opts.Status {
		scheme := runtime.NewScheme()
		if err := clientgoscheme.AddToScheme(scheme); err != nil {
			return nil, err
		}
		if err := v1alpha1.AddToScheme(scheme); err != nil {
			return nil, err
		}
		scfg := rest.CopyConfig(cfg)
		scfg.QPS, scfg.Burst = opts.Reconcile.QPS, opts.Reconcile.Burst
		if opts.Reconcile.WrapTransport != nil {
			scfg.Wrap(opts.Reconcile.WrapTransport)
		}
		c, err := client.New(scfg, client.Options{Scheme: scheme})
		if err != nil {
			return nil, fmt.Errorf("status client: %w", err)
		}
		l.status = &statusWriter{client: c, log: log, now: now}
		if o := opts.Owner; o != nil {
			l.status.fence, l.status.fenceTimeout = o.Fence, o.Margin()
		}
	}
	return l, nil
}

// renderOptions renders with the loop's catalog and clock, and, for a sharded loop, only
// the tenants its replica owns when the render runs: the others' objects are another
// replica's to render and hold.
func renderOptions(opts Options, now func() time.Time) render.Options {
	ro := render.Options{Catalog: opts.Catalog, Workers: max(opts.RenderWorkers, 1), Now: now}
	if opts.Owner != nil {
		ro.Filter = opts.Owner.Owns
	}
	return ro
}

// Trigger returns the trigger that starts passes: give it to pollers, webhooks and
// watches.
func (l *Loop) Trigger() *trigger.Trigger { return l.trigger }

// Ready reports whether the loop has completed a pass.
func (l *Loop) Ready() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ready
}

// Last returns every tenant as the last pass that covered it reported it, with the
// platform as the last pass did, or nil before the first pass.
func (l *Loop) Last() *reconcile.Result {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// Run runs a pass at once, then one per trigger, until ctx ends. A pass that fails does
// not end the loop: it is logged and retried with backoff.
func (l *Loop) Run(ctx context.Context) error {
	if err := l.Watch(ctx); err != nil {
		return err
	}
	l.mu.Lock()
	l.lastFull = time.Time{} // a new leader covers every tenant first
	l.mu.Unlock()
	l.trigger.Trigger("start")
	defer l.stopRetry()
	if l.bridges != nil {
		defer l.bridges.Stop() // the next leader runs them
	}
	if l.opts.Owner != nil {
		go l.followOwner(ctx)
	}
	for {
		reasons, err := l.trigger.Wait(ctx)
		if err != nil {
			return nil // ctx ended: a clean shutdown
		}
		if _, err := l.Pass(ctx, reasons...); err != nil && ctx.Err() == nil {
			l.log.Error("pass failed", "error", err)
			l.scheduleRetry(1)
		}
	}
}

// Watch keeps the host's live state in watches until ctx ends (reconcile.Reconciler.Watch),
// and starts a pass for a tenant whose objects on the host change: drift by hand is put
// back at once, and a tenant's health follows its workloads. Run calls it. With an Owner,
// the changes of tenants owned by other replicas (their writes, too) start nothing.
func (l *Loop) Watch(ctx context.Context) error {
	return l.rec.Watch(ctx, func(tenant string) {
		if o := l.opts.Owner; o != nil && !o.Owns(fenceKey(tenant)) {
			return
		}
		l.mu.Lock()
		l.dirty[tenant] = true
		l.mu.Unlock()
		l.trigger.Trigger("objects changed on the host")
	})
}

// Pass runs one pass: fetch, render what changed, apply, and report. When the fetch
// fails, or the new revision's platform config does not parse, it applies the last good
// revision instead and prunes nothing. It returns an error only when there is nothing to
// apply at all, or the host cannot be reached.
//
// A pass covers the tenants that need it (see Options.DriftInterval) and returns what it
// did to them; Last has every tenant. With an Owner, both hold only the tenants it owns.
func (l *Loop) Pass(ctx context.Context, reasons ...string) (*reconcile.Result, error) {
	start := l.now()
	log := l.log.With("reasons", reasons)
	rendered, revision, held, stats, err := l.checkout(ctx, log)
	if err != nil {
		l.count("failed")
		return nil, err
	}
	if l.opts.Owner != nil {
		l.reown(tenantNames(rendered))
		// Tenants lost during the pass are forgotten once it is done.
		defer l.reown(tenantNames(rendered))
	}
	only, dirty := l.scope(rendered, held, start)
	in := reconcile.Input{Render: rendered, Revision: revision, FetchErr: held, Only: only}
	l.share(&in)
	res, err := l.rec.Apply(ctx, in)
	if err != nil {
		l.restoreDirty(dirty)
		l.count("failed")
		return nil, fmt.Errorf("apply %s: %w", revision, err)
	}
	res = l.mine(res) // without the tenants lost during the pass, whose writes were fenced
	l.covered(rendered, res, only == nil, start)
	l.mu.Lock()
	view := l.mine(res.Over(l.last))
	l.mu.Unlock()
	elapsed := l.now().Sub(start)
	if l.opts.Metrics != nil {
		l.opts.Metrics.observe(res, view, elapsed.Seconds(), stats)
		l.count(map[bool]string{true: "failed", false: "ok"}[res.Failed()])
	}
	bridged := l.syncBridges(ctx, log, view)
	if l.status != nil {
		l.status.write(ctx, l.withBridgeNews(res, view, bridged), only == nil, rendered, bridged)
	}
	l.logResult(log, res, view, only, elapsed, stats, held)
	l.mu.Lock()
	l.last, l.ready = view, true
	l.mu.Unlock()
	l.backoff(res)
	return res, nil
}

// withBridgeNews returns res with the tenants of view whose PodGroup bridge reports
// something new since the last pass, so that their status says it.
func (l *Loop) withBridgeNews(res, view *reconcile.Result, bridged map[string]bridge.Status) *reconcile.Result {
	before := l.bridgeReported
	l.bridgeReported = bridged
	out := *res
	out.Tenants = slices.Clone(res.Tenants)
	for _, t := range view.Tenants {
		b, was := bridged[t.Name], before[t.Name]
		if res.Tenant(t.Name) == nil && (b.Mirrored != was.Mirrored || !slices.Equal(b.Refused, was.Refused)) {
			out.Tenants = append(out.Tenants, t)
		}
	}
	return &out
}

// scope returns the tenants a pass starting at start must cover, or nil for every tenant:
// every tenant on the first pass, after a new leader takes over, when the platform
// objects changed, while the newest revision is held back, and every DriftInterval;
// otherwise the tenants whose render changed, those short of Ready whose backoff is up,
// and those whose host objects changed. It takes the dirty tenants, and returns them to
// be put back if the pass cannot run.
func (l *Loop) scope(rendered *render.Result, held error, start time.Time) (only, dirty map[string]bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	dirty, l.dirty = l.dirty, map[string]bool{}
	if l.opts.DriftInterval <= 0 || l.last == nil || held != nil || l.last.HeldBack != nil ||
		l.lastFull.IsZero() || start.Sub(l.lastFull) >= l.opts.DriftInterval ||
		!slices.Equal(rendered.Platform, l.appliedPlatform) {
		return nil, dirty
	}
	only = map[string]bool{}
	for _, out := range rendered.Tenants {
		if l.applied[out.Tenant] != out || dirty[out.Tenant] {
			only[out.Tenant] = true
		}
	}
	for name, at := range l.retryAt {
		if !at.After(start) {
			only[name] = true
		}
	}
	return only, dirty
}

func (l *Loop) restoreDirty(dirty map[string]bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	maps.Copy(l.dirty, dirty)
}

// covered records what a pass applied, for the next one's scope.
func (l *Loop) covered(rendered *render.Result, res *reconcile.Result, full bool, start time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	outputs := map[string]*render.Output{}
	for _, out := range rendered.Tenants {
		outputs[out.Tenant] = out
	}
	if full {
		l.applied, l.lastFull = map[string]*render.Output{}, start
	}
	for _, t := range res.Tenants {
		if out := outputs[t.Name]; out != nil {
			l.applied[t.Name] = out
		} else {
			delete(l.applied, t.Name)
		}
	}
	l.appliedPlatform = rendered.Platform
}

// checkout fetches and renders the newest revision, or falls back to the last good one.
// held is why the newest revision is not the one applied, if it is not; then nothing is
// pruned.
func (l *Loop) checkout(ctx context.Context, log *slog.Logger) (rendered *render.Result, revision string, held error, stats render.CacheStats, err error) {
	fetchStart := l.now()
	rev, fetchErr := l.opts.Source.Fetch(ctx)
	if m := l.opts.Metrics; m != nil {
		m.fetchDuration.Observe(l.now().Sub(fetchStart).Seconds())
		if fetchErr != nil {
			m.fetchErrors.Inc()
		}
	}
	if fetchErr == nil {
		rendered, stats, err = l.cache.Render(rev.FS, rev.Dir)
		switch {
		case err != nil:
			fetchErr = fmt.Errorf("revision %s cannot be read: %w", rev.Short(), err)
		case !rendered.Repo.Usable():
			fetchErr = fmt.Errorf("revision %s has an invalid platform config: %v", rev.Short(), rendered.Repo.Problems.Errors())
		default:
			l.mu.Lock()
			l.lastGood = &good{id: rev.ID, render: rendered}
			l.mu.Unlock()
			return rendered, rev.ID, nil, stats, nil
		}
	}
	l.mu.Lock()
	last := l.lastGood
	l.mu.Unlock()
	if last == nil {
		return nil, "", nil, stats, fmt.Errorf("no good revision yet: %w", fetchErr)
	}
	log.Warn("keeping the last good revision; nothing is pruned", "revision", last.id, "error", fetchErr)
	return last.render, last.id, fetchErr, stats, nil
}

func (l *Loop) count(outcome string) {
	if l.opts.Metrics != nil {
		l.opts.Metrics.passes.WithLabelValues(outcome).Inc()
	}
}

func (l *Loop) logResult(log *slog.Logger, res, view *reconcile.Result, only map[string]bool, elapsed time.Duration, stats render.CacheStats, held error) {
	covered := "all"
	if only != nil {
		covered = strconv.Itoa(len(res.Tenants))
	}
	attrs := []any{"revision", res.Revision, "duration", elapsed.Round(time.Millisecond).String(),
		"tenants", covered, "objects", res.Summary(), "render_hits", stats.Hits, "render_misses", stats.Misses}
	if res.PruneBlocked != "" {
		attrs = append(attrs, "prune_blocked", res.PruneBlocked)
	}
	if held != nil {
		attrs = append(attrs, "held_back", held.Error())
	}
	for _, e := range res.Errors {
		log.Error("pass error", "error", e)
	}
	for _, rb := range res.Rebuilt {
		log.Warn("inventory rebuilt", "tenant", rb.Tenant, "reason", rb.Reason, "objects", rb.Objects)
	}
	// A tenant's state is logged when it changes, not on every poll.
	l.mu.Lock()
	defer l.mu.Unlock()
	seen := map[string]string{}
	changed := res.Changed() || res.Failed()
	for _, t := range view.Tenants {
		state := string(t.Health) + ": " + t.Reason
		seen[t.Name] = state
		if l.logged[t.Name] == state {
			continue
		}
		changed = true
		if t.Health.Settled() {
			log.Info("tenant "+strings.ToLower(string(t.Health)), "tenant", t.Name, "reason", t.Reason)
		} else {
			log.Warn("tenant not ready", "tenant", t.Name, "health", string(t.Health), "reason", t.Reason)
		}
	}
	l.logged = seen
	level := slog.LevelDebug
	if changed || held != nil {
		level = slog.LevelInfo
	}
	log.Log(context.Background(), level, "pass done", attrs...)
}

// backoff counts each tenant's consecutive passes short of Ready, gives each a time for
// its next pass (RetryBase after the first, doubling up to RetryMax), and schedules a
// retry pass for the soonest.
func (l *Loop) backoff(res *reconcile.Result) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, t := range res.Tenants {
		if t.Health.Settled() || t.Stalled {
			// A stalled tenant waits for a new commit, not a retry.
			delete(l.failures, t.Name)
			delete(l.retryAt, t.Name)
			continue
		}
		l.failures[t.Name]++
		l.retryAt[t.Name] = now.Add(l.delay(l.failures[t.Name]))
	}
	var soonest time.Time
	for _, at := range l.retryAt {
		if soonest.IsZero() || at.Before(soonest) {
			soonest = at
		}
	}
	if !soonest.IsZero() {
		l.retryAfterLocked(soonest.Sub(now))
	}
}

// delay is the backoff after n passes in a row short of Ready.
func (l *Loop) delay(n int) time.Duration {
	d := l.opts.RetryBase
	for i := 1; i < n && d < l.opts.RetryMax; i++ {
		d *= 2
	}
	return min(d, l.opts.RetryMax)
}

func (l *Loop) scheduleRetry(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.retryAfterLocked(l.delay(n))
}

func (l *Loop) retryAfterLocked(d time.Duration) {
	if l.opts.RetryBase <= 0 {
		return
	}
	if l.retry != nil {
		l.retry.Stop()
	}
	l.retry = time.AfterFunc(max(d, 0), func() { l.trigger.Trigger("retry") })
}

func (l *Loop) stopRetry() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.retry != nil {
		l.retry.Stop()
	}
}

// syncBridges runs a PodGroup bridge for every tenant with gang scheduling whose virtual
// objects this pass could reach, and stops the others. It returns each bridge's report.
// A sleeping, broken or removed tenant's vcluster is not reached.
func (l *Loop) syncBridges(ctx context.Context, log *slog.Logger, res *reconcile.Result) map[string]bridge.Status {
	if l.bridges == nil {
		return nil
	}
	var targets []bridge.Target
	for _, t := range res.Tenants {
		if !t.Gang || !virtualReached(res, t.Name) {
			continue
		}
		host := l.rec.Config(t.Cluster)
		if host == nil {
			continue // a cluster no pass has reached
		}
		targets = append(targets, bridge.Target{
			Tenant: t.Name, HostNamespace: t.Namespace, Queue: t.Queue, Release: schema.Release(t.Name), Host: host,
		})
	}
	if err := l.bridges.Sync(ctx, targets); err != nil {
		log.Warn("podgroup bridges", "error", err)
	}
	reports := map[string]bridge.Status{}
	for _, st := range l.bridges.Status() {
		reports[st.Tenant] = st
	}
	return reports
}

// virtualReached reports whether the pass reached the tenant's vcluster: some virtual
// object of the tenant was applied or found unchanged.
func virtualReached(res *reconcile.Result, tenant string) bool {
	for _, e := range res.Select(tenant, render.Virtual) {
		switch e.Action {
		case reconcile.Created, reconcile.Configured, reconcile.Drifted, reconcile.Unchanged:
			return true
		}
	}
	return false
}
