package daemon_test

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/raas-dev/raas/daemon"
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

// benchFixture is a loop over a repository of n copies of data-sandbox (no GPUs, so no
// over-commit), with no vclusters: each pass covers the host level of every tenant.
func benchFixture(b *testing.B, n int) (*daemon.Loop, *gitRepo, *atomic.Int64) {
	b.Helper()
	host := testenv.StartHost(b, hostOptions(b))
	repo := newGitRepo(b)
	base := repo.read("tenants/data-sandbox.yaml")
	files := map[string]string{
		"tenants/ml-team-alpha.yaml": "", "tenants/vision-team.yaml": "", "tenants/vision-team-next.yaml": "",
		"tenants/data-sandbox.yaml": "",
	}
	for i := range n {
		name := fmt.Sprintf("team-%04d", i)
		files["tenants/"+name+".yaml"] = newTenantFile(base, name)
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
	if _, err := l.Pass(b.Context(), "warm up"); err != nil {
		b.Fatal(err)
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

// BenchmarkCommitToApplied measures, in a 100-tenant repository, the time from a commit
// that changes one tenant to the end of the pass that applied it (fetch, render of that
// tenant alone, apply, status).
func BenchmarkCommitToApplied(b *testing.B) {
	l, repo, _ := benchFixture(b, 100)
	base := repo.read("tenants/team-0042.yaml")
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		rev := repo.commit("grow team-0042", map[string]string{
			"tenants/team-0042.yaml": strings.Replace(base, `cpu: "8"`, fmt.Sprintf(`cpu: "%d"`, 9+i%2), 1),
		})
		res, err := l.Pass(b.Context(), "commit")
		if err != nil || res.Revision != rev {
			b.Fatalf("pass: %v (revision %s, want %s)", err, res.Revision, rev)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/commit")
}

// BenchmarkNoopPass measures a pass over tenants when nothing changed: API requests, CPU
// time and wall time per pass, and the process's RSS after it.
func BenchmarkNoopPass(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("tenants=%d", n), func(b *testing.B) {
			l, _, requests := benchFixture(b, n)
			requests.Store(0)
			cpu := cpuTime()
			b.ResetTimer()
			for b.Loop() {
				res, err := l.Pass(b.Context(), "noop")
				if err != nil {
					b.Fatal(err)
				}
				if res.Changed() {
					b.Fatalf("a no-op pass wrote: %s", res.Summary())
				}
			}
			b.ReportMetric(float64(requests.Load())/float64(b.N), "requests/pass")
			b.ReportMetric(float64((cpuTime()-cpu).Milliseconds())/float64(b.N), "cpu-ms/pass")
			b.ReportMetric(rssMiB(), "RSS-MiB")
		})
	}
}
