package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/api/v1alpha1"
	"github.com/raas-dev/raas/internal/benchrepo"
	"github.com/raas-dev/raas/internal/exampletest"
	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/reconcile"
	"github.com/raas-dev/raas/schema"
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

// fleetRun is what one start of the daemon's replicas on a fleet measured.
type fleetRun struct {
	converge time.Duration
	// Per replica: VmRSS and VmHWM at convergence, peak RSS (Maxrss) once it ended, in
	// MiB, the objects it created, configured, put back or deleted, and those it failed
	// on (which, with --retry-base 1h, stay failed: they still count as converged).
	rss, hwm, peak  []float64
	written, failed []int
	// failure is the first tenant that failed in a replica's log.
	failure string
}

// fleetOneReplica holds, by tenant count, one replica's figures measured earlier in the
// same run, that three replicas are compared to.
var fleetOneReplica = map[int]fleetBaseline{}

// fleetBaseline is one replica's mean convergence time and mean peak RSS in MiB.
type fleetBaseline struct {
	converge time.Duration
	peak     float64
}

// BenchmarkFleet runs raas reconcile on a fleet of two host clusters, with one replica
// and with three sharing the tenants (--shard), over the generated repositories of issue
// 15 declaring both clusters (benchrepo.FleetFiles: half the tenants on each). Each
// iteration starts two fresh API servers (the Tenant CRD installed, no vclusters: each
// tenant stops at the host level, Progressing), starts the replicas as processes of their
// own, and measures the time from their start to convergence: every tenant's inventory
// on the cluster schema.Place puts it on, and on no other. It reports that time, its
// ratio to one replica's in the same run, each replica's memory (peak RSS once stopped
// with SIGTERM, and RSS at convergence), and, from the replicas' metrics, the objects
// each wrote and those that failed. It fails when a tenant's inventory is on both
// clusters or on the wrong one, or when one of three replicas wrote nothing.
func BenchmarkFleet(b *testing.B) {
	cat := exampletest.Catalog(b)
	for _, n := range []int{100, 1000} {
		for _, replicas := range []int{1, 3} {
			b.Run(fmt.Sprintf("tenants=%d/replicas=%d", n, replicas), func(b *testing.B) {
				var converge time.Duration
				var runs []fleetRun
				for b.Loop() {
					run := runFleet(b, cat, n, replicas)
					converge += run.converge
					runs = append(runs, run)
				}
				reportFleet(b, n, replicas, converge/time.Duration(len(runs)), runs)
			})
		}
	}
}

// reportFleet reports the runs' figures, converge being their mean convergence time.
func reportFleet(b *testing.B, n, replicas int, converge time.Duration, runs []fleetRun) {
	var peak, rss []float64
	written, failed := 0, 0
	for _, r := range runs {
		peak, rss = append(peak, r.peak...), append(rss, r.rss...)
		for i := range r.written {
			written, failed = written+r.written[i], failed+r.failed[i]
		}
	}
	mean := func(xs []float64) float64 {
		sum := 0.0
		for _, x := range xs {
			sum += x
		}
		return sum / float64(len(xs))
	}
	b.ReportMetric(converge.Seconds(), "converge-s")
	b.ReportMetric(slices.Max(peak), "max-peak-RSS-MiB")
	b.ReportMetric(mean(peak), "mean-peak-RSS-MiB")
	b.ReportMetric(slices.Max(rss), "max-converged-RSS-MiB")
	b.ReportMetric(float64(written)/float64(len(runs)*replicas), "objects-written/replica")
	b.ReportMetric(float64(failed)/float64(len(runs)), "objects-failed")
	for _, r := range runs {
		if r.failure != "" {
			b.Logf("objects failed; the first: %s", r.failure)
			break
		}
	}
	if replicas == 1 {
		fleetOneReplica[n] = fleetBaseline{converge, mean(peak)}
		return
	}
	one, ok := fleetOneReplica[n]
	if !ok {
		b.Logf("no run of one replica over %d tenants before this one: no ratios (run tenants=%d/replicas=1 too)", n, n)
		return
	}
	ratio, peakRatio := converge.Seconds()/one.converge.Seconds(), mean(peak)/one.peak
	b.Logf("%d replicas converged in %s, %.2f of one replica's %s; their mean peak RSS is %.2f of its",
		replicas, converge.Round(time.Millisecond), ratio, one.converge.Round(time.Millisecond), peakRatio)
	b.ReportMetric(ratio, "converge-ratio-vs-1-replica")
	b.ReportMetric(peakRatio, "mean-peak-RSS-ratio-vs-1-replica")
}

// fleetHosts starts the two host clusters of benchrepo's fleet, with the namespaces raas
// needs on each and the remote cluster's kubeconfig Secret on the home one. Stop them
// with the function returned.
func fleetHosts(b *testing.B) (home, remote *testenv.ControlPlane, stop func()) {
	b.Helper()
	opts := testenv.DefaultControlPlaneOptions()
	opts.CRDDirs = append(opts.CRDDirs, exampletest.Path(b, "deploy", "crds"))
	// A vcluster Service per tenant: envtest's 10.0.0.0/24 holds 254.
	opts.ServiceCIDR = "10.0.0.0/16"
	var hosts []*testenv.ControlPlane
	stop = func() {
		for _, cp := range hosts {
			if err := cp.Stop(); err != nil {
				b.Errorf("stop host: %v", err)
			}
		}
	}
	for range 2 {
		cp, err := testenv.StartControlPlane(b.Context(), opts)
		if err != nil {
			stop()
			b.Fatalf("start host: %v", err)
		}
		hosts = append(hosts, cp)
		for _, ns := range []string{"volcano-system", reconcile.SystemNamespace} {
			if err := cp.Client.Create(b.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
				stop()
				b.Fatal(err)
			}
		}
	}
	home, remote = hosts[0], hosts[1]
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: benchrepo.RemoteSecret, Namespace: reconcile.SystemNamespace},
		Data: map[string][]byte{"kubeconfig": remote.KubeConfig}}
	if err := home.Client.Create(b.Context(), secret); err != nil {
		stop()
		b.Fatal(err)
	}
	return home, remote, stop
}

// replica is one raas reconcile process.
type replica struct {
	name, addr, log string
	cmd             *exec.Cmd
	exited          chan struct{} // closed once cmd.Wait returned
	err             error
}

// startReplica starts raas reconcile with args and a --listen address of its own, as the
// replica called name (POD_NAME; POD_IP is 127.0.0.1), logging into dir.
func startReplica(b *testing.B, name, dir string, args []string) *replica {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r := &replica{name: name, addr: addr, log: filepath.Join(dir, name+".log"), exited: make(chan struct{})}
	out, err := os.Create(r.log)
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	args = append(args, "--listen", addr)
	r.cmd = exec.Command(os.Args[0], "-test.run=^$")
	r.cmd.Env = append(os.Environ(), asRaas+"=1", asRaas+"_ARGS="+strings.Join(args, " "),
		"POD_NAME="+name, "POD_IP=127.0.0.1")
	r.cmd.Stdout, r.cmd.Stderr = out, out
	if err := r.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { r.err = r.cmd.Wait(); close(r.exited) }()
	return r
}

// stop ends the replica with SIGTERM (SIGKILL after a minute) and returns its peak RSS
// in MiB.
func (r *replica) stop(b *testing.B) float64 {
	b.Helper()
	select {
	case <-r.exited:
		b.Errorf("%s had ended before it was stopped: %v\n%s", r.name, r.err, r.tail())
	default:
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(time.Minute):
			b.Errorf("%s did not stop within a minute of SIGTERM", r.name)
			_ = r.cmd.Process.Kill()
			<-r.exited
		}
	}
	if ru, ok := r.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return float64(ru.Maxrss) / 1024 // KiB on Linux
	}
	return 0
}

// tail is the end of the replica's log.
func (r *replica) tail() string {
	data, _ := os.ReadFile(r.log)
	const keep = 4000
	if len(data) > keep {
		data = data[len(data)-keep:]
	}
	return string(data)
}

// firstFailure is the first line of the replica's log that says a tenant failed.
func (r *replica) firstFailure() string {
	data, _ := os.ReadFile(r.log)
	for line := range strings.SplitSeq(string(data), "\n") {
		if strings.Contains(line, " health=Failed ") {
			return line
		}
	}
	return "(not in its log)"
}

// memory returns the replica's VmRSS and VmHWM in MiB, from /proc.
func (r *replica) memory() (rss, hwm float64) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", r.cmd.Process.Pid))
	if err != nil {
		return 0, 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		field, value, _ := strings.Cut(line, ":")
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 64)
		switch {
		case err != nil:
		case field == "VmRSS":
			rss = kb / 1024
		case field == "VmHWM":
			hwm = kb / 1024
		}
	}
	return rss, hwm
}

// actions are the replica's raas_apply_actions_total: how many objects its passes
// created, configured, left unchanged, failed on..., by action.
func (r *replica) actions(b *testing.B) map[reconcile.Action]int {
	b.Helper()
	resp, err := http.Get("http://" + r.addr + "/metrics")
	if err != nil {
		b.Fatalf("%s: metrics: %v", r.name, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatalf("%s: metrics: %v", r.name, err)
	}
	n := map[reconcile.Action]int{}
	for line := range strings.SplitSeq(string(data), "\n") {
		rest, ok := strings.CutPrefix(line, `raas_apply_actions_total{action="`)
		if !ok {
			continue
		}
		action, value, _ := strings.Cut(rest, `"} `)
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			b.Fatalf("%s: metrics: %q: %v", r.name, line, err)
		}
		n[reconcile.Action(action)] = int(v)
	}
	return n
}

// fleetTimeout bounds each wait of runFleet: for convergence, and for every Tenant object.
const fleetTimeout = 45 * time.Minute

// runFleet runs one iteration of BenchmarkFleet.
func runFleet(b *testing.B, cat string, n, replicas int) fleetRun {
	// The timer runs from the replicas' start to convergence; b.Loop wants it running
	// again once the hosts are stopped, the last of the deferred calls.
	b.StopTimer()
	defer b.StartTimer()
	home, remote, stopHosts := fleetHosts(b)
	defer stopHosts()
	dir := b.TempDir()
	repoDir := filepath.Join(dir, "tenants")
	if err := benchrepo.WriteFleet(repoDir, n); err != nil {
		b.Fatal(err)
	}
	repo, err := schema.Load(os.DirFS(repoDir))
	if err != nil || !repo.OK() {
		b.Fatalf("fleet repository: %v %v", err, repo.Problems.Errors())
	}
	placed := schema.Place(repo, nil)
	per := map[string]int{}
	for _, cluster := range placed {
		per[cluster]++
	}
	if per[benchrepo.HomeCluster] == 0 || per[benchrepo.RemoteCluster] == 0 {
		b.Fatalf("tenants per cluster: %v, want some on each", per)
	}
	kubeconfig := filepath.Join(dir, "home.kubeconfig")
	if err := home.WriteKubeConfig(kubeconfig); err != nil {
		b.Fatal(err)
	}
	clusters := map[string]*testenv.ControlPlane{benchrepo.HomeCluster: home, benchrepo.RemoteCluster: remote}

	b.StartTimer()
	begin := time.Now()
	var rs []*replica
	defer func() {
		for _, r := range rs {
			select {
			case <-r.exited:
			default:
				_ = r.cmd.Process.Kill()
				<-r.exited
			}
		}
	}()
	for i := range replicas {
		args := []string{"reconcile", "--dir", repoDir, "--kubeconfig", kubeconfig,
			"--catalog", cat, "--cache-dir", filepath.Join(dir, fmt.Sprintf("cache-%d", i)),
			"--poll-interval", "0", "--vcluster-timeout", "1s", "--retry-base", "1h", "--retry-max", "1h",
			"--log-format", "text"}
		if replicas > 1 {
			args = append(args, "--shard")
		}
		rs = append(rs, startReplica(b, fmt.Sprintf("replica-%d", i), dir, args))
	}
	failf := func(format string, args ...any) {
		b.Helper()
		var logs strings.Builder
		for _, r := range rs {
			fmt.Fprintf(&logs, "\n--- %s (%s) ---\n%s", r.name, r.log, r.tail())
		}
		b.Fatalf(format+"%s", append(args, logs.String())...)
	}
	poll := func(what string, done func() (bool, error)) {
		b.Helper()
		deadline := time.Now().Add(fleetTimeout)
		for {
			ok, err := done()
			switch {
			case err != nil:
				failf("%s: %v", what, err)
			case ok:
				return
			case time.Now().After(deadline):
				failf("%s: not within %s", what, fleetTimeout)
			}
			for _, r := range rs {
				select {
				case <-r.exited:
					failf("%s: %s ended: %v", what, r.name, r.err)
				default:
				}
			}
			time.Sleep(500 * time.Millisecond)
		}
	}

	// Converged: every tenant's inventory on its cluster, and none anywhere else.
	poll("convergence", func() (bool, error) {
		on := map[string][]string{}
		for name, cp := range clusters {
			var list metav1.PartialObjectMetadataList
			list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMapList"))
			if err := cp.Client.List(b.Context(), &list, client.InNamespace(reconcile.SystemNamespace),
				client.HasLabels{reconcile.LabelInventory}); err != nil {
				return false, fmt.Errorf("cluster %s: %w", name, err)
			}
			for _, cm := range list.Items {
				if tenant, ok := strings.CutPrefix(cm.Name, "tenant."); ok {
					on[tenant] = append(on[tenant], name)
				}
			}
		}
		done := 0
		for tenant, where := range on {
			switch {
			case len(where) > 1:
				return false, fmt.Errorf("tenant %s's inventory is on clusters %v", tenant, where)
			case placed[tenant] == "":
				return false, fmt.Errorf("an inventory of tenant %s, which the repository does not have, on cluster %s", tenant, where[0])
			case where[0] != placed[tenant]:
				return false, fmt.Errorf("tenant %s's inventory is on cluster %s; it is placed on %s", tenant, where[0], placed[tenant])
			}
			done++
		}
		return done == n, nil
	})
	run := fleetRun{converge: time.Since(begin)}
	b.StopTimer()
	for _, r := range rs {
		rss, hwm := r.memory()
		run.rss, run.hwm = append(run.rss, rss), append(run.hwm, hwm)
	}

	// Each tenant's status is written after the pass that covered it counted its writes
	// in the metrics, so once every Tenant object exists the counts are whole.
	poll("every Tenant object", func() (bool, error) {
		var list metav1.PartialObjectMetadataList
		list.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("TenantList"))
		if err := home.Client.List(b.Context(), &list); err != nil {
			return false, err
		}
		return len(list.Items) == n, nil
	})
	for _, r := range rs {
		n := r.actions(b)
		run.written = append(run.written, n[reconcile.Created]+n[reconcile.Configured]+n[reconcile.Drifted]+n[reconcile.Deleted])
		run.failed = append(run.failed, n[reconcile.Failed])
		if run.failure == "" && n[reconcile.Failed] > 0 {
			run.failure = r.name + ": " + r.firstFailure()
		}
	}
	for i, r := range rs {
		run.peak = append(run.peak, r.stop(b))
		b.Logf("%s: RSS %.0f MiB (high-water mark %.0f) at convergence, peak %.0f MiB; wrote %d objects, failed on %d",
			r.name, run.rss[i], run.hwm[i], run.peak[i], run.written[i], run.failed[i])
	}
	b.Logf("%d tenants (%d on %s, %d on %s), %d replica(s): converged in %s",
		n, per[benchrepo.HomeCluster], benchrepo.HomeCluster, per[benchrepo.RemoteCluster], benchrepo.RemoteCluster,
		replicas, run.converge.Round(time.Millisecond))
	if replicas > 1 {
		for i, r := range rs {
			if run.written[i] == 0 {
				b.Errorf("%s wrote nothing: the replicas do not share the tenants\n%s", r.name, r.tail())
			}
		}
	}
	return run
}
