package bridge_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/workqueue"
	schedulingv1beta1 "volcano.sh/apis/pkg/apis/scheduling/v1beta1"

	"github.com/raas-dev/raas/bridge"
	"github.com/raas-dev/raas/internal/testenv"
)

// arrivals watches the host namespace of e and reports when each host copy is first seen.
type arrivals struct {
	mu      sync.Mutex
	seen    map[string]time.Time
	changed chan struct{}
}

func watchArrivals(b *testing.B, e *env) *arrivals {
	b.Helper()
	w, err := e.hostPGs.SchedulingV1beta1().PodGroups(e.hostNS).Watch(b.Context(), metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(w.Stop)
	a := &arrivals{seen: map[string]time.Time{}, changed: make(chan struct{}, 1)}
	go func() {
		for ev := range w.ResultChan() {
			pg, ok := ev.Object.(*schedulingv1beta1.PodGroup)
			if !ok || ev.Type != watch.Added {
				continue
			}
			a.mu.Lock()
			a.seen[pg.Name] = time.Now()
			a.mu.Unlock()
			select {
			case a.changed <- struct{}{}:
			default:
			}
		}
	}()
	return a
}

// wait returns when name was first seen on the host.
func (a *arrivals) wait(b *testing.B, name string) time.Time {
	b.Helper()
	timeout := time.After(waitTimeout)
	for {
		a.mu.Lock()
		at, ok := a.seen[name]
		a.mu.Unlock()
		if ok {
			return at
		}
		select {
		case <-a.changed:
		case <-timeout:
			b.Fatalf("host copy %s did not appear within %s", name, waitTimeout)
		}
	}
}

// BenchmarkMirrorLatency measures, one PodGroup at a time, the time from a virtual
// PodGroup's creation (the create call returning) to its host copy appearing in a watch
// of the host namespace. Run it with -benchtime=50x for 50 samples.
func BenchmarkMirrorLatency(b *testing.B) {
	e := newEnv(b, testenv.Shared(b), "", "bench")
	e.namespace(b, "bench")
	e.start(b, e.options("bench", "tenant-bench"))
	seen := watchArrivals(b, e)
	// The API servers hold the first creates for 2 s after a CRD is established.
	e.createVirtual(b, podGroup("bench", "ray-warmup-pg", ""))
	seen.wait(b, "ray-warmup-pg")

	var latencies []time.Duration
	i := 0
	for b.Loop() {
		name := fmt.Sprintf("ray-latency-%d-pg", i)
		i++
		e.createVirtual(b, podGroup("bench", name, ""))
		created := time.Now()
		latencies = append(latencies, seen.wait(b, name).Sub(created))
	}
	reportPercentiles(b, latencies)
}

// BenchmarkMirrorBurst measures a burst: 50 PodGroups created at once from 10 clients,
// the latency of each to its host copy, and the time until all 50 are on the host.
func BenchmarkMirrorBurst(b *testing.B) {
	const burst, clients = 50, 10
	e := newEnv(b, testenv.Shared(b), "", "burst")
	e.namespace(b, "burst")
	e.start(b, e.options("burst", "tenant-burst"))
	seen := watchArrivals(b, e)
	e.createVirtual(b, podGroup("burst", "ray-warmup-pg", ""))
	seen.wait(b, "ray-warmup-pg")

	var latencies []time.Duration
	var total time.Duration
	round := 0
	for b.Loop() {
		created := make([]time.Time, burst)
		begin := time.Now()
		workqueue.ParallelizeUntil(b.Context(), clients, burst, func(i int) {
			e.createVirtual(b, podGroup("burst", fmt.Sprintf("ray-burst-%d-%d-pg", round, i), ""))
			created[i] = time.Now()
		})
		var last time.Time
		for i := range burst {
			at := seen.wait(b, fmt.Sprintf("ray-burst-%d-%d-pg", round, i))
			latencies = append(latencies, at.Sub(created[i]))
			if at.After(last) {
				last = at
			}
		}
		total += last.Sub(begin)
		round++
	}
	reportPercentiles(b, latencies)
	b.ReportMetric(float64(total.Milliseconds())/float64(round), "ms/burst")
}

func reportPercentiles(b *testing.B, latencies []time.Duration) {
	b.Helper()
	if len(latencies) == 0 {
		return
	}
	slices.Sort(latencies)
	at := func(p float64) float64 {
		i := int(p * float64(len(latencies)-1))
		return float64(latencies[i].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.5), "ms-p50")
	b.ReportMetric(at(0.95), "ms-p95")
	b.ReportMetric(at(1), "ms-max")
	b.Logf("%d samples: p50 %.1f ms, p95 %.1f ms, max %.1f ms", len(latencies), at(0.5), at(0.95), at(1))
}

// BenchmarkMemory runs 10 bridges, one per tenant, each against its own stand-in vcluster
// holding 100 PodGroups in 5 namespaces: 1,000 PodGroups in all. Each iteration starts the
// 10 bridges, waits until every PodGroup is mirrored, and measures the heap the bridges
// hold (after a GC, against the heap before they started) and the process's RSS. The
// first iteration creates the 1,000 host copies; later ones find them in place, as after
// a restart.
func BenchmarkMemory(b *testing.B) {
	const tenants, namespaces, perNamespace = 10, 5, 20
	host := testenv.Shared(b)
	envs := make([]*env, tenants)
	for i := range envs {
		envs[i] = newEnv(b, host, "", fmt.Sprintf("mem-%d", i))
	}
	b.Logf("%d stand-in vclusters (a kube-apiserver and etcd each) and the host are running", tenants)
	workqueue.ParallelizeUntil(b.Context(), tenants, tenants, func(i int) {
		e := envs[i]
		for n := range namespaces {
			ns := fmt.Sprintf("ns-%d", n)
			e.namespace(b, ns)
			for p := range perNamespace {
				e.createVirtual(b, podGroup(ns, fmt.Sprintf("ray-%s-%d-pg", ns, p), ""))
			}
		}
	})
	var heap, rss, rssDelta, converge float64
	runs := 0
	for b.Loop() {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		rss0 := readRSS(b)
		begin := time.Now()

		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		bridges := make([]*bridge.Bridge, tenants)
		for i, e := range envs {
			br, err := bridge.New(e.host.Config, e.virtual, e.options(e.release, "tenant-"+e.release))
			if err != nil {
				b.Fatal(err)
			}
			bridges[i] = br
			wg.Go(func() {
				if err := br.Run(ctx); err != nil {
					b.Error(err)
				}
			})
		}
		eventually(b, "every PodGroup to be mirrored", func(context.Context) (bool, error) {
			for _, br := range bridges {
				if br.Status().Mirrored != namespaces*perNamespace {
					return false, nil
				}
			}
			return true, nil
		})
		took := time.Since(begin).Seconds()
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		held := (float64(after.HeapInuse) - float64(before.HeapInuse)) / (1 << 20)
		rss1 := readRSS(b)
		b.Logf("run %d: %d PodGroups mirrored by %d bridges in %.2f s; heap in use +%.1f MiB; RSS %.1f MiB (+%.1f)",
			runs+1, tenants*namespaces*perNamespace, tenants, took, held, rss1, rss1-rss0)
		converge += took
		heap += held
		rss += rss1
		rssDelta += rss1 - rss0
		runs++
		cancel()
		wg.Wait()
	}
	b.ReportMetric(heap/float64(runs), "heap-MiB")
	b.ReportMetric(rss/float64(runs), "rss-MiB")
	b.ReportMetric(rssDelta/float64(runs), "rss-delta-MiB")
	b.ReportMetric(converge/float64(runs), "s-converge")
}

// readRSS returns the resident set of this process in MiB.
func readRSS(b *testing.B) float64 {
	b.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb / 1024
		}
	}
	b.Fatal("no VmRSS in /proc/self/status")
	return 0
}
