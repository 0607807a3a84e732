package reconcile_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/internal/benchrepo"
	"github.com/raas-dev/raas/internal/exampletest"
	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/reconcile"
	"github.com/raas-dev/raas/render"
	"github.com/raas-dev/raas/render/catalog"
)

// recordedFirstPass is the wall seconds of raas's first pass over the benchmark
// repositories before issue 15, as the table records it.
var recordedFirstPass = map[int]float64{100: 31, 1000: 310}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkHostScale reconciles the host level of the generated repositories of issue 15
// (no vcluster answers: each tenant stays Progressing after its host objects) on one API
// server, and measures, in this order:
//   - the baseline: a tight parallel server-side-apply loop, as many workers as raas
//     has, over the same host objects moved to namespaces of their own (base-...), so that
//     both create what they apply;
//   - raas's first pass, and its throughput against the baseline's (goal: at least half);
//   - a pass with nothing to do, after a first one: its wall and CPU time and its writes
//     (goal: 0 writes, at most 2 s CPU for 1,000 tenants);
//   - per loop iteration, one tenant's file changed, re-rendered from the render cache,
//     and a pass over that tenant (Input.Only, as the daemon passes a commit's changes),
//     until its ResourceQuota has changed on the server.
//
// The reconciler keeps the host's live state in watches, as the daemon's does. The pass
// with nothing to do covers every tenant: it is the daemon's periodic drift pass.
func BenchmarkHostScale(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("tenants=%d", n), func(b *testing.B) { benchmarkHostScale(b, n) })
	}
}

func benchmarkHostScale(b *testing.B, n int) {
	// Two Services per tenant: raas's and the baseline's copy.
	host := testenv.StartHost(b, testenv.WithServiceRange(b, testenv.DefaultControlPlaneOptions(), "10.0.0.0/16"))
	fsys := benchrepo.FS(n)
	opts := render.DefaultOptions()
	opts.Catalog = catalog.Options{Dirs: []string{exampletest.Catalog(b)}, CacheDir: b.TempDir()}
	cache := render.NewCache(opts)
	res, _, err := cache.Render(fsys, "")
	if err != nil || !res.OK() || len(res.Tenants) != n {
		b.Fatalf("render: %v, %d tenants, %v %v", err, len(res.Tenants), res.Repo.Problems.Errors(), res.Failed)
	}
	objects := len(res.Platform)
	for _, t := range res.Tenants {
		objects += len(t.Host)
	}
	r, count, ropts := newReconciler(b, host, time.Millisecond)
	// As a long-running raas does: the host's live state is kept in watches.
	if err := r.Watch(b.Context(), nil); err != nil {
		b.Fatal(err)
	}

	baseline := ssaLoop(b, host, res, ropts.Workers)
	b.Logf("baseline: %d objects in %s", objects, baseline.Round(time.Millisecond))

	begin := time.Now()
	first := apply(b, r, res)
	firstPass := time.Since(begin)
	b.Logf("first pass: %s in %s; %d writes", first.Summary(), firstPass.Round(time.Millisecond), count.writes.Load())

	// The first pass after the one that created everything still fills the reconciler's
	// caches (decoded inventories, their sizes); a daemon's passes with nothing to do are
	// the ones after it.
	count.reset()
	begin = time.Now()
	warm := apply(b, r, res)
	b.Logf("first pass with nothing to do: %s in %s; %d writes", warm.Summary(), time.Since(begin).Round(time.Millisecond), count.writes.Load())
	count.reset()
	stopProfile := startProfile(b, *noopProfile)
	cpu, begin := cpuTime(), time.Now()
	noop := apply(b, r, res)
	noopWall, noopCPU := time.Since(begin), cpuTime()-cpu
	stopProfile()
	if noop.Changed() {
		b.Errorf("a pass with nothing to do changed something: %s", noop.Summary())
	}
	noopWrites, noopReads := count.writes.Load(), count.reads.Load()

	const changed = 42 % 100
	quota := &unstructured.Unstructured{}
	quota.SetAPIVersion("v1")
	quota.SetKind("ResourceQuota")
	var quotaKey client.ObjectKey
	for _, o := range res.Tenants[changed].Host {
		if o.GetKind() == "ResourceQuota" {
			quotaKey = client.ObjectKeyFromObject(o.Unstructured)
		}
	}
	cpu = cpuTime()
	b.ResetTimer()
	for gen := 1; b.Loop(); gen++ {
		fsys[benchrepo.File(changed)].Data = []byte(benchrepo.Tenant(changed, gen))
		res, stats, err := cache.Render(fsys, "")
		if err != nil || !res.OK() || stats.Misses != 1 {
			b.Fatalf("render: %v, %+v, %v", err, stats, res.Failed)
		}
		before := quotaVersion(b, host.Client, quota, quotaKey)
		applyOnly(b, r, res, benchrepo.Name(changed))
		if quotaVersion(b, host.Client, quota, quotaKey) == before {
			b.Fatalf("tenant %s: the pass left its ResourceQuota as it was", benchrepo.Name(changed))
		}
	}
	b.StopTimer()
	commitCPU := cpuTime() - cpu

	ratio := func(a, base time.Duration) float64 { return a.Seconds() / base.Seconds() }
	b.ReportMetric(baseline.Seconds(), "baseline-ssa-s")
	b.ReportMetric(firstPass.Seconds(), "first-pass-s")
	b.ReportMetric(ratio(baseline, firstPass), "throughput-vs-baseline")
	b.ReportMetric(firstPass.Seconds()/recordedFirstPass[n], "first-pass-ratio-vs-recorded")
	b.ReportMetric(noopWall.Seconds(), "noop-s")
	b.ReportMetric(noopCPU.Seconds(), "noop-cpu-s")
	b.ReportMetric(float64(noopWrites), "noop-writes")
	b.ReportMetric(float64(noopReads), "noop-reads")
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "commit-s")
	b.ReportMetric(commitCPU.Seconds()/float64(b.N), "commit-cpu-s")
}

var noopProfile = flag.String("noop-cpuprofile", "", "write a CPU profile of BenchmarkHostScale's pass with nothing to do to this file")

// startProfile starts a CPU profile into file, if set, and returns what stops it.
func startProfile(b *testing.B, file string) (stop func()) {
	if file == "" {
		return func() {}
	}
	f, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// applyOnly runs a pass over the tenants named, and fails on any failed object.
func applyOnly(b *testing.B, r *reconcile.Reconciler, res *render.Result, names ...string) {
	b.Helper()
	only := map[string]bool{}
	for _, n := range names {
		only[n] = true
	}
	out, err := r.Apply(b.Context(), reconcile.Input{Render: res, Revision: "test", Only: only})
	if err != nil {
		b.Fatal(err)
	}
	if out.Failed() {
		b.Fatalf("pass over %v: %s", names, out.Summary())
	}
}

func quotaVersion(b *testing.B, c client.Client, u *unstructured.Unstructured, key client.ObjectKey) string {
	b.Helper()
	if err := c.Get(context.Background(), key, u); err != nil {
		b.Fatalf("resourcequota %s: %v", key, err)
	}
	return u.GetResourceVersion()
}

// ssaLoop is the baseline a platform team could write: every tenant's host objects
// applied in order with server-side apply, workers tenants at a time, nothing else (no
// inventory, no diff, no status). The objects are copies moved to base-... names so that
// the baseline creates them, as raas's first pass does. It returns the wall time.
func ssaLoop(b *testing.B, host *testenv.ControlPlane, res *render.Result, workers int) time.Duration {
	b.Helper()
	mapper := host.Client.RESTMapper()
	rename := func(s string) string { return "base-" + s }
	var tenants [][]*unstructured.Unstructured
	for _, t := range res.Tenants {
		var objs []*unstructured.Unstructured
		for _, o := range t.Host {
			u := o.DeepCopy()
			mapping, err := mapper.RESTMapping(u.GroupVersionKind().GroupKind(), u.GroupVersionKind().Version)
			if err != nil {
				b.Fatalf("%s: %v", o.ID(), err)
			}
			if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
				u.SetNamespace(rename(u.GetNamespace()))
			} else {
				u.SetName(rename(u.GetName()))
			}
			objs = append(objs, u)
		}
		tenants = append(tenants, objs)
	}
	next := make(chan []*unstructured.Unstructured)
	var wg sync.WaitGroup
	var failed atomic.Value
	begin := time.Now()
	for range workers {
		wg.Go(func() {
			for objs := range next {
				for _, u := range objs {
					err := host.Client.Patch(context.Background(), u, client.Apply, client.FieldOwner("baseline"), client.ForceOwnership)
					if err != nil {
						failed.Store(fmt.Errorf("%s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err))
					}
				}
			}
		})
	}
	for _, objs := range tenants {
		next <- objs
	}
	close(next)
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		b.Fatalf("baseline: %v", err)
	}
	return time.Since(begin)
}
