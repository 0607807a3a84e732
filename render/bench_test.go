package render_test

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/raas-dev/raas/internal/benchrepo"
	"github.com/raas-dev/raas/render"
)

// recordedRender is what `raas render` of the benchmark repositories cost before issue 15,
// in wall seconds, as the table records it (2 shared cores).
var recordedRender = map[int]float64{100: 28.5, 1000: 92.9}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRenderRepo renders a generated repository of 100 and of 1,000 tenants in the
// four shapes of issue 15 from scratch: loading and validating it, loading the chart and
// the KubeRay bases, and rendering every tenant. It reports wall and CPU seconds per
// render and the wall time's ratio to the figure recorded before issue 15.
func BenchmarkRenderRepo(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("tenants=%d", n), func(b *testing.B) {
			fsys := benchrepo.FS(n)
			opts := testOptions(b)
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				res, err := render.Repo(fsys, "", opts)
				if err != nil {
					b.Fatal(err)
				}
				if !res.OK() || len(res.Tenants) != n {
					b.Fatalf("rendered %d of %d: %v %v", len(res.Tenants), n, res.Repo.Problems.Errors(), res.Failed)
				}
			}
			wall := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(wall, "wall-s/render")
			b.ReportMetric((cpuTime()-cpu).Seconds()/float64(b.N), "cpu-s/render")
			b.ReportMetric(wall*1000/float64(n), "ms/tenant")
			b.ReportMetric(wall/recordedRender[n], "ratio-vs-recorded")
		})
	}
}
