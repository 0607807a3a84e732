package daemon_test

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/raas-dev/raas/daemon"
	"github.com/raas-dev/raas/internal/benchrepo"
	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/source"
)

type countingTransport struct {
	next http.RoundTripper
	n    *atomic.Int64
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

// benchFixture is a loop over the generated repository of issue 15 with n tenants in
// four shapes, with no vclusters: each pass covers the host level of every tenant.
func benchFixture(b *testing.B, n int) (*daemon.Loop, *gitRepo, *atomic.Int64) {
	b.Helper()
	host := testenv.StartHost(b, testenv.WithServiceRange(b, hostOptions(b), "10.0.0.0/16"))
	repo := newGitRepo(b)
	files := map[string]string{
		"tenants/ml-team-alpha.yaml": "", "tenants/vision-team.yaml": "", "tenants/vision-team-next.yaml": "",
		"tenants/data-sandbox.yaml": "",
	}
	for name, body := range benchrepo.Files(n) {
		files[name] = body
	}
	repo.commit(fmt.Sprintf("%d tenants", n), files)
	gopts := source.DefaultGitOptions()
	gopts.URL, gopts.CacheDir = repo.dir, b.TempDir()
	src, err := source.NewGit(gopts)
	if err != nil {
		b.Fatal(err)
	}
	opts := loopOptions(b, src, &syncBuffer{})
	opts.Reconcile.VClusterTimeout = 10 * time.Millisecond
	opts.Bridge = false
	requests := &atomic.Int64{}
	opts.Reconcile.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return countingTransport{rt, requests} }
	l, err := daemon.New(host.Config, opts)
	if err != nil {
		b.Fatal(err)
	}
	// As Run does: the live state is kept in watches.
	if err := l.Watch(b.Context()); err != nil {
		b.Fatal(err)
	}
	if _, err := l.Pass(b.Context(), "warm up"); err != nil {
		b.Fatal(err)
	}
	// The watches saw the objects the first pass created: raas's own writes, which ask
	// for no pass, and what the API server wrote since (the admission policies' status),
	// which does. Those passes run before the measures.
	for i := 0; ; i++ {
		time.Sleep(time.Second)
		if !l.Trigger().Pending() {
			break
		}
		if i == 5 {
			b.Fatal("the watches keep asking for passes")
		}
		reasons, _ := l.Trigger().Wait(b.Context())
		res, err := l.Pass(b.Context(), reasons...)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("a pass the watches asked for (%v) covered %d tenants", reasons, len(res.Tenants))
	}
	return l, repo, requests
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func rssMiB() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// recorded holds the daemon's figures before issue 15, as the table records them:
// seconds from a one-tenant commit to its ResourceQuota changed, wall and CPU seconds of
// a pass with nothing to do, and RSS in MiB.
var recorded = map[int]struct{ commit, noop, noopCPU, rss float64 }{
	100:  {1.5, 1.8, 0.9, 230},
	1000: {10.8, 17.4, 10.9, 867},
}

var heapProfile = flag.String("daemon-heapprofile", "", "write a heap profile of BenchmarkDaemon's loop after its pass with nothing to do to this file")

// BenchmarkDaemon measures the loop over the generated repositories of issue 15 (host
// level only). Each iteration commits a change to one tenant's file and runs the pass that
// applies it (fetch, render of that tenant alone, apply, status): the time from the
// commit to the end of that pass. Then a pass with nothing to do: its API requests, its
// CPU and wall time, and the process's RSS and live heap after it. Every figure is also printed as a
// ratio to the one recorded before issue 15.
func BenchmarkDaemon(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("tenants=%d", n), func(b *testing.B) {
			l, repo, requests := benchFixture(b, n)
			const tenant = 42
			cpu := cpuTime()
			b.ResetTimer()
			for gen := 1; b.Loop(); gen++ {
				rev := repo.commit("grow "+benchrepo.Name(tenant), map[string]string{
					benchrepo.File(tenant): benchrepo.Tenant(tenant, gen),
				})
				res, err := l.Pass(b.Context(), "commit")
				if err != nil || res.Revision != rev {
					b.Fatalf("pass: %v (revision %s, want %s)", err, res.Revision, rev)
				}
			}
			b.StopTimer()
			commit := b.Elapsed().Seconds() / float64(b.N)
			commitCPU := (cpuTime() - cpu).Seconds() / float64(b.N)

			requests.Store(0)
			pf, _ := os.Create("/tmp/noop.prof")
			pprof.StartCPUProfile(pf)
			cpu, begin := cpuTime(), time.Now()
			res, err := l.Pass(b.Context(), "noop")
			pprof.StopCPUProfile()
			if err != nil {
				b.Fatal(err)
			}
			if res.Changed() {
				b.Fatalf("a no-op pass wrote: %s", res.Summary())
			}
			noop, noopCPU := time.Since(begin).Seconds(), (cpuTime() - cpu).Seconds()
			rss := rssMiB()
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if *heapProfile != "" {
				f, err := os.Create(*heapProfile)
				if err != nil {
					b.Fatal(err)
				}
				pprof.WriteHeapProfile(f)
				f.Close()
			}
			was := recorded[n]
			b.ReportMetric(commit, "commit-s")
			b.ReportMetric(commit/was.commit, "commit-ratio-vs-recorded")
			b.ReportMetric(commitCPU, "commit-cpu-s")
			b.ReportMetric(float64(requests.Load()), "noop-requests")
			b.ReportMetric(noop, "noop-s")
			b.ReportMetric(noop/was.noop, "noop-ratio-vs-recorded")
			b.ReportMetric(noopCPU, "noop-cpu-s")
			b.ReportMetric(noopCPU/was.noopCPU, "noop-cpu-ratio-vs-recorded")
			b.ReportMetric(rss, "RSS-MiB")
			b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-inuse-MiB")
			b.ReportMetric(rss/was.rss, "RSS-ratio-vs-recorded")
		})
	}
}
