package daemon_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/raas-dev/raas/daemon"
	"github.com/raas-dev/raas/daemon/shard"
	"github.com/raas-dev/raas/internal/benchrepo"
	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/internal/trigger"
	"github.com/raas-dev/raas/reconcile"
	"github.com/raas-dev/raas/source"
)

// The shard test's timings: a Lease of a few seconds, with room for a loaded machine
// (shard's Options need LeaseDuration ≥ 3×RenewPeriod + Timeout + 2×Margin).
const (
	shardLease   = 7 * time.Second
	shardRenew   = time.Second
	shardTimeout = 500 * time.Millisecond
	shardMargin  = 1500 * time.Millisecond
	shardTenants = 60
	// shardSlack is what signals, renew periods and a loaded machine may add to a bound.
	shardSlack = 5 * time.Second
)

// write is one write request (POST, PUT, PATCH, DELETE; not a dry run) a replica sent to
// the host.
type write struct {
	replica      string
	method, path string
	name         string // metadata.name of a POST's body
	start, end   time.Time
	err          error
	// unsent is set when the write's context had ended before it was sent: it never left.
	unsent bool
	key    string // the tenant, or shard.PlatformKey; set by attribute
}

func (w write) String() string {
	return fmt.Sprintf("%s %s %s%s [%s, %s]", w.replica, w.method, w.path, map[bool]string{true: " " + w.name}[w.name != ""],
		w.start.Format("15:04:05.000"), w.end.Format("15:04:05.000"))
}

// landed reports whether the write may have reached the API server: all but those whose
// context had ended before they were sent.
func (w write) landed() bool { return !w.unsent }

// writeLog records the writes of every replica.
type writeLog struct {
	mu     sync.Mutex
	writes []write
}

// wrap records the writes of replica, each delayed by *delay first (to make a pass last).
func (l *writeLog) wrap(replica string, delay *atomic.Int64) func(http.RoundTripper) http.RoundTripper {
	return func(rt http.RoundTripper) http.RoundTripper {
		return testenv.RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
			if req.Method == http.MethodGet || req.Method == http.MethodHead || req.URL.Query().Has("dryRun") {
				return rt.RoundTrip(req)
			}
			if d := time.Duration(delay.Load()); d > 0 {
				select {
				case <-time.After(d):
				case <-req.Context().Done():
					return nil, req.Context().Err()
				}
			}
			w := write{replica: replica, method: req.Method, path: req.URL.Path}
			if req.Method == http.MethodPost && req.Body != nil {
				body, err := io.ReadAll(req.Body)
				if err != nil {
					return nil, err
				}
				req.Body = io.NopCloser(bytes.NewReader(body))
				w.name = nameOf(body)
			}
			w.start = time.Now()
			w.unsent = req.Context().Err() != nil
			resp, err := rt.RoundTrip(req)
			w.end, w.err = time.Now(), err
			l.mu.Lock()
			l.writes = append(l.writes, w)
			l.mu.Unlock()
			return resp, err
		})
	}
}

// nameOf is the name of the object body holds: JSON, or protobuf for built-in kinds.
func nameOf(body []byte) string {
	var meta struct {
		Metadata struct{ Name string } `json:"metadata"`
	}
	if json.Unmarshal(body, &meta) == nil {
		return meta.Metadata.Name
	}
	obj, _, err := serializer.NewCodecFactory(clientgoscheme.Scheme).UniversalDeserializer().Decode(body, nil, nil)
	if o, ok := obj.(metav1.Object); ok && err == nil {
		return o.GetName()
	}
	return ""
}

func (l *writeLog) all() []write {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.writes)
}

// quiet waits until no replica has written for two seconds, so that the writes after it
// are of the passes that follow.
func (l *writeLog) quiet(t *testing.T) {
	t.Helper()
	waitFor(t, "the replicas to stop writing", 2*time.Minute, func(context.Context) (bool, error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.writes) == 0 || time.Since(l.writes[len(l.writes)-1].end) > 2*time.Second, nil
	})
}

// since counts replica's writes that started after t.
func (l *writeLog) since(replica string, t time.Time) int {
	n := 0
	for _, w := range l.all() {
		if w.replica == replica && w.start.After(t) {
			n++
		}
	}
	return n
}

// attribute names the key each write is for: the tenant whose namespace (tenant-<name>)
// it is in or is, whose inventory (raas-system/tenant.<name>) or Tenant object it is, or
// whose cluster-scoped object it is (named in the tenant's inventory); or the platform:
// its inventory, the Volcano configuration and the objects its inventory names.
func attribute(path, name string, cluster map[string]string) (string, bool) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		if parts[1] == "raas.dev" && len(parts) >= 4 && parts[3] == "tenants" {
			if len(parts) >= 5 {
				return parts[4], true
			}
			return name, name != ""
		}
		parts = parts[3:]
	default:
		return "", false
	}
	if len(parts) >= 2 && parts[0] == "namespaces" {
		ns := parts[1]
		switch {
		case strings.HasPrefix(ns, "tenant-"):
			return strings.TrimPrefix(ns, "tenant-"), true
		case ns == "volcano-system":
			return shard.PlatformKey, true
		case ns == reconcile.SystemNamespace && len(parts) >= 3 && parts[2] == "configmaps":
			if len(parts) >= 4 {
				name = parts[3]
			}
			if name == "platform" {
				return shard.PlatformKey, true
			}
			tenant, ok := strings.CutPrefix(name, "tenant.")
			return tenant, ok
		}
		return "", false
	}
	if len(parts) >= 2 {
		key, ok := cluster[parts[1]]
		return key, ok
	}
	return "", false
}

// inventories reads every inventory: each tenant's revision, and the key of each
// cluster-scoped object they name.
func inventories(t *testing.T, c client.Client) (revisions, cluster map[string]string) {
	t.Helper()
	var cms corev1.ConfigMapList
	if err := c.List(t.Context(), &cms, client.InNamespace(reconcile.SystemNamespace), client.HasLabels{reconcile.LabelInventory}); err != nil {
		t.Fatal(err)
	}
	revisions, cluster = map[string]string{}, map[string]string{}
	for _, cm := range cms.Items {
		var inv struct {
			Tenant   string
			Revision string
			Objects  []struct{ Target, Kind, Namespace, Name string }
		}
		if err := yaml.Unmarshal([]byte(cm.Data["inventory.yaml"]), &inv); err != nil {
			t.Fatalf("inventory %s: %v", cm.Name, err)
		}
		key := inv.Tenant
		if key == "" {
			key = shard.PlatformKey
		}
		revisions[key] = inv.Revision
		for _, o := range inv.Objects {
			if o.Target == "host" && o.Namespace == "" {
				cluster[o.Name] = key
			}
		}
	}
	return revisions, cluster
}

// quotas returns each tenant's ResourceQuota's requests.cpu.
func quotas(t *testing.T, c client.Client) map[string]string {
	t.Helper()
	var list corev1.ResourceQuotaList
	if err := c.List(t.Context(), &list); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, q := range list.Items {
		if tenant, ok := strings.CutPrefix(q.Namespace, "tenant-"); ok && q.Name == "raas-quota" {
			got[tenant] = q.Spec.Hard.Name("requests.cpu", "").String()
		}
	}
	return got
}

// fenceCounter is a shard member whose refused Fences are counted.
type fenceCounter struct {
	*shard.Member
	refused atomic.Int64
}

func (f *fenceCounter) Fence(key string) error {
	err := f.Member.Fence(key)
	if err != nil {
		f.refused.Add(1)
	}
	return err
}

// replica is one sharded daemon of the test: a shard member and a loop, in this process.
type replica struct {
	id     string
	member *fenceCounter
	loop   *daemon.Loop
	logs   *syncBuffer
	// delay slows each of the loop's writes; cut fails the member's API calls.
	delay atomic.Int64
	cut   atomic.Bool
	// renewed is when the member's last answered write of its Lease was sent.
	renewed atomic.Int64

	stopMember, stopLoop context.CancelFunc
	memberDone, loopDone chan struct{}
}

// memberTransport records the member's Lease renewals, and fails every call once cut.
func (r *replica) memberTransport(rt http.RoundTripper) http.RoundTripper {
	return testenv.RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
		if r.cut.Load() {
			return nil, fmt.Errorf("%s %s: cut off by the test", req.Method, req.URL.Path)
		}
		sent := time.Now()
		resp, err := rt.RoundTrip(req)
		own := (req.Method == http.MethodPut && strings.HasSuffix(req.URL.Path, "/leases/raas-shard-"+r.id)) ||
			(req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/leases"))
		if err == nil && resp.StatusCode < 300 && own {
			r.renewed.Store(sent.UnixNano())
		}
		return resp, err
	})
}

// kill stops the member and the loop without Leave, as a crash would, and waits for both.
func (r *replica) kill() {
	r.stopMember()
	r.stopLoop()
	<-r.memberDone
	<-r.loopDone
}

// TestShardedDaemons is issue 16's test: three sharded daemons share 60 tenants on a real
// host. A commit touches every tenant (and the platform), and the replica that owns the
// platform is killed mid-pass, as a crash (no Leave); then another commit, and a second
// replica loses touch with its Lease mid-pass while its loop goes on writing, so that
// only its fence stops it. Every write is recorded with its replica and the tenant it
// is for. Every tenant must converge within the Lease duration plus a pass after each
// failure, and no two replicas may ever write for one tenant, or the platform, at once.
func TestShardedDaemons(t *testing.T) {
	begin := time.Now()
	host := testenv.StartHost(t, testenv.WithServiceRange(t, hostOptions(t), "10.0.0.0/16"))
	ctx := t.Context()
	c := host.Client
	for _, ns := range []string{reconcile.SystemNamespace, "volcano-system"} {
		obj := &corev1.Namespace{}
		obj.Name = ns
		if err := c.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}

	repo := newGitRepo(t)
	files := map[string]string{
		"tenants/ml-team-alpha.yaml": "", "tenants/vision-team.yaml": "", "tenants/vision-team-next.yaml": "",
		"tenants/data-sandbox.yaml": "",
	}
	for name, body := range benchrepo.Files(shardTenants) {
		files[name] = body
	}
	rev0 := repo.commit(fmt.Sprintf("%d tenants", shardTenants), files)

	ids := []string{"replica-a", "replica-b", "replica-c"}
	three := shard.NewRing(ids...)
	// The first to die owns the platform, so that the platform objects change hands; the
	// second is another.
	victim := three.Owner(shard.PlatformKey)
	zombie := ids[0]
	if zombie == victim {
		zombie = ids[1]
	}
	writes := &writeLog{}
	replicas := map[string]*replica{}
	for _, id := range ids {
		r := &replica{id: id, logs: &syncBuffer{}}
		so := shard.DefaultOptions()
		so.Namespace, so.Identity = reconcile.SystemNamespace, id
		so.LeaseDuration, so.RenewPeriod, so.Timeout, so.Margin = shardLease, shardRenew, shardTimeout, shardMargin
		so.Logger = slog.New(slog.NewJSONHandler(r.logs, nil))
		cfg := rest.CopyConfig(host.Config)
		cfg.Wrap(r.memberTransport)
		m, err := shard.Join(ctx, cfg, so)
		if err != nil {
			t.Fatal(err)
		}
		r.member = &fenceCounter{Member: m}
		gopts := source.DefaultGitOptions()
		gopts.URL, gopts.CacheDir = repo.dir, t.TempDir()
		src, err := source.NewGit(gopts)
		if err != nil {
			t.Fatal(err)
		}
		opts := loopOptions(t, src, r.logs)
		opts.Bridge = false
		opts.Reconcile.VClusterTimeout = 10 * time.Millisecond
		// A tenant a fence or a timeout stopped is retried soon.
		opts.RetryBase, opts.RetryMax = 3*time.Second, 10*time.Second
		opts.Reconcile.WrapTransport = writes.wrap(id, &r.delay)
		opts.Owner = r.member
		if id == victim || id == zombie {
			// Fewer workers, so that slowed writes make a pass last beyond its kill.
			opts.Reconcile.Workers = 2
		}
		if r.loop, err = daemon.New(host.Config, opts); err != nil {
			t.Fatal(err)
		}
		replicas[id] = r
	}
	// The members run before the loops, so that every member's first view holds them all.
	for _, r := range replicas {
		mctx, stop := context.WithCancel(context.Background())
		r.stopMember, r.memberDone = stop, make(chan struct{})
		go func() {
			defer close(r.memberDone)
			if err := r.member.Run(mctx); err != nil {
				t.Errorf("%s: member: %v", r.id, err)
			}
		}()
	}
	for _, r := range replicas {
		lctx, stop := context.WithCancel(context.Background())
		r.stopLoop, r.loopDone = stop, make(chan struct{})
		go func() {
			defer close(r.loopDone)
			if err := r.loop.Run(lctx); err != nil {
				t.Errorf("%s: loop: %v", r.id, err)
			}
		}()
	}
	var once sync.Once
	stopAll := func() {
		once.Do(func() {
			for _, r := range replicas {
				r.kill()
			}
		})
	}
	t.Cleanup(stopAll)
	defer func() {
		if t.Failed() {
			for _, id := range ids {
				t.Logf("%s logs:\n%s", id, tail(replicas[id].logs.String(), 80))
			}
		}
	}()

	names := make([]string, shardTenants)
	for i := range names {
		names[i] = benchrepo.Name(i)
	}
	// converged waits until every tenant's inventory records revision and its quota is
	// no longer before's (and the platform's records platform, if set), and returns the
	// quotas.
	converged := func(what, revision, platform string, before map[string]string, timeout time.Duration) (map[string]string, time.Duration) {
		t.Helper()
		start := time.Now()
		var got map[string]string
		var behind []string
		for {
			revs, _ := inventories(t, c)
			got = quotas(t, c)
			behind = behind[:0]
			for _, n := range names {
				if revs[n] != revision || got[n] == "" || (before != nil && got[n] == before[n]) {
					behind = append(behind, n)
				}
			}
			if platform != "" && revs[shard.PlatformKey] != platform {
				behind = append(behind, shard.PlatformKey)
			}
			if len(behind) == 0 {
				return got, time.Since(start)
			}
			if time.Since(start) > timeout {
				t.Fatalf("%s: not after %s; %d behind: %v", what, timeout, len(behind), behind[:min(len(behind), 10)])
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	q0, took0 := converged("every tenant at the first revision", rev0, rev0, nil, 5*time.Minute)
	t.Logf("the three replicas converged %d tenants in %s", shardTenants, took0.Round(time.Millisecond))

	t.Run("each replica owns some tenants", func(t *testing.T) {
		for _, id := range ids {
			owned := 0
			for _, n := range names {
				if replicas[id].member.Owns(n) {
					owned++
				}
			}
			if owned == 0 {
				t.Errorf("%s owns no tenant", id)
			}
			t.Logf("%s owns %d tenants", id, owned)
		}
	})

	// The first failure: a commit that touches every tenant, and the platform's owner
	// dies while it applies it.
	gen := func(g int, platform string) map[string]string {
		files := map[string]string{"raas.yaml": platform}
		for i := range shardTenants {
			files[benchrepo.File(i)] = benchrepo.Tenant(i, g)
		}
		return files
	}
	platform1 := strings.Replace(benchrepo.Platform(shardTenants), "binpackGPUWeight: 10", "binpackGPUWeight: 11", 1)
	if platform1 == benchrepo.Platform(shardTenants) {
		t.Fatal("the platform's binpackGPUWeight is not 10: the commit would not change the platform")
	}
	dead := replicas[victim]
	dead.delay.Store(int64(100 * time.Millisecond))
	writes.quiet(t)
	committed := time.Now()
	rev1 := repo.commit("every tenant one core more, the platform a heavier binpack", gen(1, platform1))
	for _, r := range replicas {
		r.loop.Trigger().Trigger("test")
	}
	waitFor(t, victim+" applying the commit", time.Minute, func(context.Context) (bool, error) {
		return writes.since(victim, committed) >= 5, nil
	})
	var lease coordinationv1.Lease
	leaseKey := client.ObjectKey{Namespace: reconcile.SystemNamespace, Name: "raas-shard-" + victim}
	killed := time.Now()
	dead.kill()
	t.Run("a killed member stops renewing and keeps its Lease", func(t *testing.T) {
		if err := c.Get(ctx, leaseKey, &lease); err != nil {
			t.Fatalf("the killed member's Lease: %v", err)
		}
		time.Sleep(3 * shardRenew)
		var later coordinationv1.Lease
		if err := c.Get(ctx, leaseKey, &later); err != nil {
			t.Fatalf("the killed member's Lease is gone before it expired: %v", err)
		}
		if later.ResourceVersion != lease.ResourceVersion {
			t.Errorf("the killed member's Lease changed after the kill: renewed %s, then %s", lease.Spec.RenewTime, later.Spec.RenewTime)
		}
	})
	q1, took1 := converged("every tenant and the platform at the second revision after the kill", rev1, rev1, q0, shardLease+2*time.Minute)
	t.Logf("every tenant converged %s after %s was killed", took1.Round(time.Millisecond), victim)

	// The second failure: another commit, and a member that cannot reach its Lease any
	// more while its loop goes on: its fence must stop its writes before the last
	// survivor takes its tenants.
	half := replicas[zombie]
	half.delay.Store(int64(150 * time.Millisecond))
	writes.quiet(t)
	committed = time.Now()
	platform2 := strings.Replace(platform1, "binpackGPUWeight: 11", "binpackGPUWeight: 12", 1)
	rev2 := repo.commit("every tenant one core more again, the platform a heavier binpack again", gen(2, platform2))
	for _, id := range ids {
		if id != victim {
			replicas[id].loop.Trigger().Trigger("test")
		}
	}
	waitFor(t, zombie+" applying the commit", time.Minute, func(context.Context) (bool, error) {
		return writes.since(zombie, committed) >= 3, nil
	})
	refusedBefore := half.member.refused.Load()
	half.cut.Store(true)
	cut := time.Now()
	_, took2 := converged("every tenant and the platform at the third revision after the partition", rev2, rev2, q1, shardLease+2*time.Minute)
	t.Logf("every tenant converged %s after %s lost its Lease", took2.Round(time.Millisecond), zombie)
	renewed := time.Unix(0, half.renewed.Load())
	stopAll()

	// Who wrote what.
	_, cluster := inventories(t, c)
	all := writes.all()
	byKey := map[string][]write{}
	perReplica := map[string]int{}
	for i := range all {
		w := &all[i]
		key, ok := attribute(w.path, w.name, cluster)
		if !ok {
			t.Errorf("a write for no tenant and not the platform: %s", w)
			continue
		}
		w.key = key
		byKey[key] = append(byKey[key], *w)
		perReplica[w.replica]++
	}

	t.Run("converges within the Lease duration and a pass after each failure", func(t *testing.T) {
		for _, f := range []struct {
			what string
			at   time.Time
			took time.Duration
		}{{"the kill", killed, took1}, {"the partition", cut, took2}} {
			// A pass: the longest a survivor ran since the failure.
			var pass time.Duration
			for _, id := range ids {
				if id != victim && id != zombie || id == zombie && f.what == "the kill" {
					pass = max(pass, longestPass(t, replicas[id].logs, f.at))
				}
			}
			if limit := shardLease + pass + shardSlack; f.took > limit {
				t.Errorf("converged %s after %s, more than the Lease duration %s, a pass (%s) and %s of slack",
					f.took.Round(time.Millisecond), f.what, shardLease, pass.Round(time.Millisecond), shardSlack)
			}
			t.Logf("converged %s after %s; its longest pass since took %s", f.took.Round(time.Millisecond), f.what, pass.Round(time.Millisecond))
		}
	})

	t.Run("never two replicas write for one tenant, or the platform, at once", func(t *testing.T) {
		overlaps := 0
		for key, ws := range byKey {
			sort.Slice(ws, func(i, j int) bool { return ws[i].start.Before(ws[j].start) })
			// Each write against the latest-ending write of every other replica before it.
			lastEnd := map[string]write{}
			for _, w := range ws {
				if !w.landed() {
					continue
				}
				for other, prev := range lastEnd {
					if other != w.replica && prev.end.After(w.start) {
						overlaps++
						if overlaps <= 10 {
							t.Errorf("%s: %s overlaps %s", key, w, prev)
						}
					}
				}
				if prev, ok := lastEnd[w.replica]; !ok || w.end.After(prev.end) {
					lastEnd[w.replica] = w
				}
			}
		}
		if overlaps > 10 {
			t.Errorf("and %d more overlaps", overlaps-10)
		}
		// No replica joins in this test, so a tenant never comes back to a replica: once
		// another has written for it, its old writer writes no more.
		for key, ws := range byKey {
			var writers []string
			for _, w := range ws {
				if w.landed() && (len(writers) == 0 || writers[len(writers)-1] != w.replica) {
					if slices.Contains(writers, w.replica) {
						t.Errorf("%s: %s writes again after %v: %s", key, w.replica, writers, w)
						break
					}
					writers = append(writers, w.replica)
				}
			}
		}
	})

	t.Run("the platform objects are written by one replica at a time, and change hands", func(t *testing.T) {
		var writers []string
		for _, w := range byKey[shard.PlatformKey] {
			if w.landed() && (len(writers) == 0 || writers[len(writers)-1] != w.replica) {
				writers = append(writers, w.replica)
			}
		}
		t.Logf("the platform's writers in turn: %v", writers)
		if len(writers) < 2 || writers[0] != victim {
			t.Errorf("the platform was written by %v in turn, want %s, its first owner, then a survivor", writers, victim)
		}
	})

	t.Run("a killed replica writes nothing after the kill", func(t *testing.T) {
		took := 0
		for _, w := range all {
			if w.replica == victim && w.start.After(killed) && w.landed() {
				t.Errorf("after the kill: %s", w)
			}
			if w.replica != victim && w.start.After(killed) && three.Owner(w.key) == victim && w.key != shard.PlatformKey {
				took++
			}
		}
		if took == 0 {
			t.Errorf("no survivor wrote any of %s's tenants after the kill: it was not killed mid-pass", victim)
		}
		for _, n := range append(slices.Clone(names), shard.PlatformKey) {
			if dead.member.Owns(n) {
				t.Errorf("%s still owns %s a Lease duration after its death", victim, n)
				break
			}
		}
	})

	t.Run("a replica that lost its Lease is stopped by its fence before the others take over", func(t *testing.T) {
		if renewed.After(cut) || renewed.IsZero() {
			t.Fatalf("%s's last renewal %s is not before the cut %s", zombie, renewed, cut)
		}
		deadline := renewed.Add(shardLease)
		late, after := 0, 0
		for _, w := range all {
			if w.replica != zombie || !w.start.After(cut) || !w.landed() {
				continue
			}
			after++
			if w.end.After(deadline) {
				late++
				t.Errorf("%s wrote after its Lease ran out at %s: %s", zombie, deadline.Format("15:04:05.000"), w)
			}
		}
		refused := half.member.refused.Load() - refusedBefore
		t.Logf("%s: %d writes after the cut, %d of them after its Lease ran out; %d writes refused by its fence", zombie, after, late, refused)
		if refused == 0 {
			t.Errorf("%s's fence refused nothing: its loop was not writing when its Lease ran out", zombie)
		}
	})

	t.Run("removes no Tenant object and no other object", func(t *testing.T) {
		for _, w := range all {
			if w.method == http.MethodDelete && w.landed() {
				t.Errorf("deleted: %s", w)
			}
		}
	})

	ws := make([]string, 0, len(perReplica))
	for _, id := range ids {
		ws = append(ws, fmt.Sprintf("%s %d", id, perReplica[id]))
	}
	t.Logf("writes per replica: %s; converged %s after the kill of %s, %s after the partition of %s; test took %s",
		strings.Join(ws, ", "), took1.Round(time.Millisecond), victim, took2.Round(time.Millisecond), zombie, time.Since(begin).Round(time.Second))
}

// longestPass is the longest pass the loop that logged logs finished after since.
func longestPass(t *testing.T, logs *syncBuffer, since time.Time) time.Duration {
	t.Helper()
	var longest time.Duration
	for _, line := range strings.Split(logs.String(), "\n") {
		var rec struct {
			Time     time.Time
			Msg      string
			Duration string
		}
		if json.Unmarshal([]byte(line), &rec) != nil || rec.Msg != "pass done" || rec.Time.Before(since) {
			continue
		}
		d, err := time.ParseDuration(rec.Duration)
		if err != nil {
			t.Fatalf("a pass lasted %q: %v", rec.Duration, err)
		}
		longest = max(longest, d)
	}
	return longest
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// githubPush is a push event as GitHub delivers it (trimmed of most repository fields).
const githubPush = `{
  "ref": "refs/heads/main",
  "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
  "after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
  "repository": {
    "id": 186853002,
    "name": "tenants",
    "full_name": "acme/tenants",
    "private": true,
    "owner": {"name": "acme", "login": "acme", "id": 21031067, "type": "Organization"},
    "html_url": "https://github.com/acme/tenants",
    "clone_url": "https://github.com/acme/tenants.git",
    "default_branch": "main"
  },
  "pusher": {"name": "alice", "email": "alice@example.com"},
  "sender": {"login": "alice", "id": 21031067, "type": "User"},
  "created": false,
  "deleted": false,
  "forced": false,
  "compare": "https://github.com/acme/tenants/compare/6113728f27ae...0d1a26e67d8f",
  "commits": [{
    "id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
    "tree_id": "f9d2a07e9488b91af2641b26b9407fe22a451433",
    "distinct": true,
    "message": "tenants: give team-0001 one core more",
    "timestamp": "2026-12-01T12:00:00+01:00",
    "author": {"name": "Alice", "email": "alice@example.com", "username": "alice"},
    "added": [], "removed": [], "modified": ["tenants/team-0001.yaml"]
  }],
  "head_commit": {"id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", "message": "tenants: give team-0001 one core more"}
}`

// deliver sends body to url as GitHub would, signed with secret, and extra headers.
func deliver(t *testing.T, url, secret, body string, extra map[string]string) *http.Response {
	t.Helper()
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "GitHub-Hookshot/044aadd")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
	req.Header.Set("X-GitHub-Hook-ID", "292430182")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	for k, v := range extra {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// TestForwardToMembers sends a signed GitHub push to one of three members of a shard
// ring, which must serve it and relay it to the two others at the addresses in their
// Leases, each of which verifies it again.
func TestForwardToMembers(t *testing.T) {
	host := testenv.StartHost(t, testenv.DefaultControlPlaneOptions())
	ns := &corev1.Namespace{}
	ns.Name = reconcile.SystemNamespace
	if err := host.Client.Create(t.Context(), ns); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	type member struct {
		trigger *trigger.Trigger
		srv     *httptest.Server
		handler atomic.Pointer[http.Handler]
		member  *shard.Member
	}
	ids := []string{"member-a", "member-b", "member-c"}
	members := map[string]*member{}
	for _, id := range ids {
		m := &member{trigger: trigger.New()}
		m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			(*m.handler.Load()).ServeHTTP(w, r)
		}))
		t.Cleanup(m.srv.Close)
		so := shard.DefaultOptions()
		so.Namespace, so.Identity, so.Address = reconcile.SystemNamespace, id, strings.TrimPrefix(m.srv.URL, "http://")
		so.LeaseDuration, so.RenewPeriod, so.Timeout, so.Margin = 3*time.Second, 300*time.Millisecond, 250*time.Millisecond, 300*time.Millisecond
		var err error
		if m.member, err = shard.Join(t.Context(), host.Config, so); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); m.member.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		hook, err := trigger.NewWebhook(m.trigger, trigger.WebhookOptions{GitHubSecret: webhookSecret, Branch: "main", MaxBodyBytes: 1 << 20, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		h := daemon.Handler(nil, daemon.ForwardToMembers(hook, m.member, log.With("member", id)), nil)
		m.handler.Store(&h)
		members[id] = m
	}
	waitFor(t, "every member to see the others", 30*time.Second, func(context.Context) (bool, error) {
		for _, m := range members {
			if len(m.member.Ring().Members()) != len(ids) {
				return false, nil
			}
		}
		return true, nil
	})
	pending := func() map[string]bool {
		got := map[string]bool{}
		for id, m := range members {
			got[id] = m.trigger.Pending()
		}
		return got
	}
	drain := func() {
		for _, m := range members {
			if m.trigger.Pending() {
				m.trigger.Wait(t.Context())
			}
		}
	}
	a := members["member-a"]

	t.Run("serves a signed push and relays it to every other member, who verify it", func(t *testing.T) {
		if resp := deliver(t, a.srv.URL+"/webhook", webhookSecret, githubPush, nil); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("member-a answered %s, want 202", resp.Status)
		}
		// The answer waits for the relays: every trigger has fired by now.
		for id, fired := range pending() {
			if !fired {
				t.Errorf("%s was not triggered", id)
			}
		}
		for _, id := range []string{"member-b", "member-c"} {
			reasons, _ := members[id].trigger.Wait(t.Context())
			if want := "webhook github push refs/heads/main 0d1a26e67d8f"; !slices.Contains(reasons, want) {
				t.Errorf("%s was triggered for %v, want %q", id, reasons, want)
			}
		}
		drain()
	})

	t.Run("relays nothing it refuses", func(t *testing.T) {
		if resp := deliver(t, a.srv.URL+"/webhook", "not-the-secret", githubPush, nil); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("member-a answered %s, want 403", resp.Status)
		}
		tampered := strings.Replace(githubPush, "team-0001", "team-0002", 1)
		mac := hmac.New(sha256.New, []byte(webhookSecret))
		mac.Write([]byte(githubPush))
		if resp := deliver(t, a.srv.URL+"/webhook", webhookSecret, tampered, map[string]string{
			"X-Hub-Signature-256": "sha256=" + hex.EncodeToString(mac.Sum(nil)),
		}); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("member-a answered %s to a tampered body, want 403", resp.Status)
		}
		if got := pending(); slices.Contains(slices.Collect(maps.Values(got)), true) {
			t.Errorf("triggered: %v", got)
		}
	})

	t.Run("serves a relayed push without relaying it again", func(t *testing.T) {
		resp := deliver(t, members["member-b"].srv.URL+"/webhook", webhookSecret, githubPush, map[string]string{daemon.HeaderRelayedBy: "member-a"})
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("member-b answered %s, want 202", resp.Status)
		}
		if got := pending(); !got["member-b"] || got["member-a"] || got["member-c"] {
			t.Errorf("triggered %v, want member-b only", got)
		}
		drain()
	})

	t.Run("still relays to the others when a member does not answer", func(t *testing.T) {
		members["member-c"].srv.Close()
		begin := time.Now()
		if resp := deliver(t, a.srv.URL+"/webhook", webhookSecret, githubPush, nil); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("member-a answered %s, want 202", resp.Status)
		}
		if took := time.Since(begin); took > 5*time.Second {
			t.Errorf("the answer took %s", took)
		}
		if got := pending(); !got["member-a"] || !got["member-b"] {
			t.Errorf("triggered %v, want member-a and member-b", got)
		}
		if !strings.Contains(logs.String(), "webhook not relayed") || !strings.Contains(logs.String(), "member=member-c") {
			t.Errorf("the failed relay to member-c is not logged:\n%s", logs)
		}
	})
}

// TestRunSharded runs the daemon as `raas reconcile --shard` assembles it, alone in its
// ring: it joins under $POD_NAME at $POD_IP, reconciles every tenant once its membership
// counts, and leaves the ring (deletes its Lease) on a clean shutdown.
func TestRunSharded(t *testing.T) {
	f := newFixture(t)
	gopts := source.DefaultGitOptions()
	gopts.URL, gopts.CacheDir = f.repo.dir, t.TempDir()
	src, err := source.NewGit(gopts)
	if err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{}
	ns.Name = reconcile.SystemNamespace
	if err := f.client.Create(t.Context(), ns); err != nil {
		t.Fatal(err)
	}
	c := daemon.DefaultConfig()
	c.Loop = loopOptions(t, src, f.logs)
	c.Listen = freeAddress(t)
	c.PollInterval = 0
	c.Shard = true
	c.ShardOptions.LeaseDuration, c.ShardOptions.RenewPeriod = 3*time.Second, 300*time.Millisecond
	c.ShardOptions.Timeout, c.ShardOptions.Margin = 250*time.Millisecond, 300*time.Millisecond
	t.Setenv("POD_NAME", "Raas-7d9f-x2")
	t.Setenv("POD_IP", "127.0.0.1")

	t.Run("refuses sharding with leader election", func(t *testing.T) {
		both := c
		both.LeaderElect = true
		if err := daemon.Run(t.Context(), f.host.Config, both); err == nil || !strings.Contains(err.Error(), "exclude each other") {
			t.Errorf("Run: %v, want sharding and leader election refused together", err)
		}
	})

	first := f.repo.commit("nothing new", nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- daemon.Run(ctx, f.host.Config, c) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Error("Run did not return within a minute of its context ending")
		}
	})
	key := client.ObjectKey{Namespace: reconcile.SystemNamespace, Name: "raas-shard-raas-7d9f-x2"}
	t.Run("joins the ring as its pod, at its pod's address", func(t *testing.T) {
		var lease coordinationv1.Lease
		waitFor(t, "the member Lease", 30*time.Second, func(ctx context.Context) (bool, error) {
			return f.client.Get(ctx, key, &lease) == nil, nil
		})
		if h := lease.Spec.HolderIdentity; h == nil || *h != "raas-7d9f-x2" {
			t.Errorf("holder %v, want raas-7d9f-x2", h)
		}
		if !slices.Contains(slices.Collect(maps.Values(lease.Annotations)), c.Listen) {
			t.Errorf("annotations %v do not hold the address %s", lease.Annotations, c.Listen)
		}
	})
	t.Run("reconciles every tenant once it owns them", func(t *testing.T) {
		for _, name := range []string{"data-sandbox", "ml-team-alpha", "vision-team", "vision-team-next"} {
			f.waitForTenantRevision(t, name, first)
		}
		if code, _ := get(t, "http://"+c.Listen+"/readyz"); code != http.StatusOK {
			t.Errorf("/readyz: %d", code)
		}
	})
	t.Run("leaves the ring on a clean shutdown", func(t *testing.T) {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
			done <- nil
		case <-time.After(time.Minute):
			t.Fatal("Run did not return within a minute of its context ending")
		}
		var lease coordinationv1.Lease
		if err := f.client.Get(t.Context(), key, &lease); err == nil {
			t.Errorf("the member Lease is still there after a clean shutdown: %+v", lease.ObjectMeta)
		}
	})
}
