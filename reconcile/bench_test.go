package reconcile_test

import (
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/reconcile"
)

var benchVerify = flag.Bool("bench-verify", false, "also benchmark passes that dry-run every object")

// BenchmarkNoopPass100Tenants measures a pass with nothing to do over 100 tenants, on both
// levels: its wall time (ns/op) and its requests to the API servers. The tenants are
// copies of one small tenant; a single stand-in vcluster answers for all of them (each
// tenant has its own kubeconfig Secret, connection and inventory), since 100 API servers
// do not fit on a test machine. The host is the benchmark's own.
//
// "inventory" is the default pass: objects whose rendered digest and live resourceVersion
// match the inventory are unchanged without a request of their own. "verify", run only with
// -bench-verify since it takes minutes per pass, compares every object with a server-side
// dry run (Options.Verify), as Flux does on every pass.
func BenchmarkNoopPass100Tenants(b *testing.B) {
	const tenants = 100
	host := testenv.StartHost(b, testenv.DefaultControlPlaneOptions())
	ensureNamespace(b, host.Client, "volcano-system")
	const prefix = "bench-"
	repo := exampleRepo(b, prefix)
	repo.removeAll("tenants")
	var names []string
	for i := range tenants {
		name := fmt.Sprintf("team-%03d", i)
		names = append(names, name)
		repo.write("tenants/"+name+".yaml", minimalTenant(name, ""))
	}
	begin := time.Now()
	res := repo.render()
	if !res.OK() || len(res.Tenants) != tenants {
		b.Fatalf("render: %d tenants, %v %v", len(res.Tenants), res.Repo.Problems, res.Failed)
	}
	b.Logf("rendered %d tenants in %s", tenants, time.Since(begin).Round(time.Millisecond))

	vc := host.StartVCluster(b, host.Namespace(b), "shared", testenv.DefaultVClusterOptions())
	shareVCluster(b, host, vc, prefix, names)
	r, count, opts := newReconciler(b, host, time.Minute)
	for pass := 1; pass <= 2; pass++ {
		begin := time.Now()
		out := apply(b, r, res)
		b.Logf("pass %d: %s in %s; %d reads, %d dry runs, %d writes", pass, out.Summary(),
			time.Since(begin).Round(time.Millisecond), count.reads.Load(), count.dryRuns.Load(), count.writes.Load())
		count.reset()
	}

	modes := []bool{false}
	if *benchVerify {
		modes = append(modes, true)
	}
	for _, verify := range modes {
		name := "inventory"
		if verify {
			name = "verify"
		}
		b.Run(name, func(b *testing.B) {
			opts.Verify = verify
			r, err := reconcile.New(host.Config, opts)
			if err != nil {
				b.Fatal(err)
			}
			apply(b, r, res) // connect to the vclusters once, as a long-running raas has
			count.reset()
			b.ResetTimer()
			for b.Loop() {
				out := apply(b, r, res)
				if out.Changed() {
					b.Fatalf("a no-op pass changed something: %s", out.Summary())
				}
			}
			b.StopTimer()
			n := float64(b.N)
			b.ReportMetric(float64(count.reads.Load()+count.dryRuns.Load()+count.writes.Load())/n, "requests/op")
			b.ReportMetric(float64(count.dryRuns.Load())/n, "dryruns/op")
			b.ReportMetric(float64(count.writes.Load())/n, "writes/op")
		})
	}
}
