package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/raas-dev/raas/internal/benchrepo"
	"github.com/raas-dev/raas/internal/exampletest"
)

// recordedRenderCommand is what `raas render` to stdout cost before issue 15, as the
// issue's table records it: wall and CPU seconds, and peak RSS in MiB (0: not recorded).
var recordedRenderCommand = map[int]struct{ wall, cpu, rss float64 }{
	100:  {28.5, 22.9, 0},
	1000: {92.9, 140.8, 652},
}

// countWriter counts what raas writes to stdout, so that the benchmark reads all of it
// as a pipe reader would, without keeping it.
type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// BenchmarkRenderCommand runs `raas render` over the generated repositories of issue 15
// (goal for 1,000 tenants: 30 s wall on 2 cores, 300 MiB), as a process of its own so
// that its peak RSS is its own, and prints each figure beside the recorded one.
func BenchmarkRenderCommand(b *testing.B) {
	cat := exampletest.Catalog(b)
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("tenants=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			if err := benchrepo.Write(dir, n); err != nil {
				b.Fatal(err)
			}
			var cpu time.Duration
			var rss int64
			out := &countWriter{}
			for b.Loop() {
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), asRaas+"=1",
					asRaas+"_ARGS=render "+dir+" --catalog "+cat+" --cache-dir "+b.TempDir())
				var stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = out, &stderr
				if err := cmd.Run(); err != nil {
					b.Fatalf("raas render: %v\n%s", err, stderr.String())
				}
				cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
				if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
					rss = max(rss, ru.Maxrss) // KiB on Linux
				}
			}
			wall := b.Elapsed().Seconds() / float64(b.N)
			cpuS := cpu.Seconds() / float64(b.N)
			rssMiB := float64(rss) / 1024
			was := recordedRenderCommand[n]
			b.ReportMetric(wall, "wall-s")
			b.ReportMetric(wall/was.wall, "wall-ratio-vs-recorded")
			b.ReportMetric(cpuS, "cpu-s")
			b.ReportMetric(cpuS/was.cpu, "cpu-ratio-vs-recorded")
			b.ReportMetric(rssMiB, "peak-RSS-MiB")
			if was.rss > 0 {
				b.ReportMetric(rssMiB/was.rss, "RSS-ratio-vs-recorded")
			}
			b.ReportMetric(float64(out.n)/float64(b.N)/(1<<20), "stdout-MiB")
		})
	}
}
