package fleet_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/reconcile"
	"github.com/raas-dev/raas/report"
	"github.com/raas-dev/raas/schema"
)

// TestPlacement applies the examples to two hosts: each tenant lands on the cluster its
// GPU pools are on, and only there; a second pass writes nothing.
func TestPlacement(t *testing.T) {
	e := newEnv(t)
	out := e.apply(t)
	want := map[string]string{
		"ml-team-alpha":    "a", // the H100 pool is on a
		"vision-team":      "b", // the A10 pool is on b
		"vision-team-next": "b", // a sandbox goes where its parent is
	}
	for _, st := range out.Tenants {
		if w := want[st.Name]; w != "" && st.Cluster != w {
			t.Errorf("%s placed on %q, want %q", st.Name, st.Cluster, w)
		}
		if st.Cluster != "a" && st.Cluster != "b" {
			t.Errorf("%s placed on %q", st.Name, st.Cluster)
			continue
		}
		other := map[string]string{"a": "b", "b": "a"}[st.Cluster]
		ns := "tenant-" + st.Name
		if !exists(t, e.host(st.Cluster), &corev1.Namespace{}, "", ns) {
			t.Errorf("%s: namespace %s missing on cluster %s", st.Name, ns, st.Cluster)
		}
		if !exists(t, e.host(st.Cluster), &appsv1.StatefulSet{}, ns, schema.Release(st.Name)) {
			t.Errorf("%s: vcluster StatefulSet missing on cluster %s", st.Name, st.Cluster)
		}
		if exists(t, e.host(other), &corev1.Namespace{}, "", ns) {
			t.Errorf("%s: namespace %s on cluster %s too", st.Name, ns, other)
		}
		if !exists(t, e.host(st.Cluster), &corev1.ConfigMap{}, reconcile.SystemNamespace, "tenant."+st.Name) {
			t.Errorf("%s: no inventory on cluster %s", st.Name, st.Cluster)
		}
	}
	if len(out.Tenants) != 4 {
		t.Errorf("%d tenants reported, want 4", len(out.Tenants))
	}
	// The platform objects go to every cluster.
	for _, c := range []string{"a", "b"} {
		if !exists(t, e.host(c), &corev1.ConfigMap{}, reconcile.SystemNamespace, "platform") {
			t.Errorf("no platform inventory on cluster %s", c)
		}
	}

	e.log.take()
	again := e.apply(t)
	for _, r := range e.log.take() {
		if r.method != "GET" && r.method != "HEAD" && !strings.Contains(r.query, "dryRun") {
			t.Errorf("the second pass wrote: %s %s to %s", r.method, r.path, r.host)
		}
	}
	for _, st := range again.Tenants {
		if st.Cluster != out.Tenant(st.Name).Cluster {
			t.Errorf("%s moved from %s to %s without its file saying so", st.Name, out.Tenant(st.Name).Cluster, st.Cluster)
		}
	}

	t.Run("sticky", func(t *testing.T) {
		// With all its room taken on a, data-sandbox would now go to b; it stays.
		st := out.Tenant("data-sandbox")
		e.edit(t, "raas.yaml", "capacity: {gpu: 16}\n      pools: [h100]", "capacity: {gpu: 4}\n      pools: [h100]")
		res := e.apply(t)
		if got := res.Tenant("data-sandbox").Cluster; got != st.Cluster {
			t.Errorf("data-sandbox went from %s to %s", st.Cluster, got)
		}
	})

	t.Run("a pass reports a cluster over-committed where the tenants run", func(t *testing.T) {
		// data-sandbox now guarantees 4 CPUs, which its cluster cannot: offline, it
		// would be placed on the other, so validation passes; it stays where it runs.
		st := out.Tenant("data-sandbox")
		e.edit(t, "tenants/data-sandbox.yaml", "gang: {enabled: false}", "gang: {enabled: false}\n    guarantee: {cpu: \"4\"}")
		// Room for what the cluster's other tenants guarantee (ml-team-alpha 16 on a,
		// nothing on b), not for data-sandbox as well.
		pools := map[string]string{"a": "h100", "b": "a10"}[st.Cluster]
		cpu := map[string]string{"a": "18", "b": "2"}[st.Cluster]
		e.edit(t, "raas.yaml", "}\n      pools: ["+pools+"]", ", cpu: \""+cpu+"\"}\n      pools: ["+pools+"]")
		defer func() {
			e.edit(t, "raas.yaml", ", cpu: \""+cpu+"\"}\n      pools: ["+pools+"]", "}\n      pools: ["+pools+"]")
			e.edit(t, "tenants/data-sandbox.yaml", "\n    guarantee: {cpu: \"4\"}", "")
		}()
		res := e.render(t)
		if !res.OK() {
			t.Fatalf("the repository does not validate: %v", res.Repo.Problems)
		}
		got, err := e.fleet.Apply(t.Context(), reconcile.Input{Render: res, Revision: "test"})
		if err != nil {
			t.Fatal(err)
		}
		if c := got.Tenant("data-sandbox").Cluster; c != st.Cluster {
			t.Fatalf("data-sandbox went from %s to %s", st.Cluster, c)
		}
		var found bool
		for _, err := range got.Errors {
			found = found || strings.Contains(err.Error(), `cluster "`+st.Cluster+`" is over-committed`)
		}
		if !found {
			t.Errorf("no error says cluster %s is over-committed: %v", st.Cluster, got.Errors)
		}
	})

	t.Run("over-commit fails validation naming the cluster", func(t *testing.T) {
		e.edit(t, "raas.yaml", "capacity: {gpu: 4}\n      pools: [h100]", "capacity: {gpu: 3}\n      pools: [h100]")
		res := e.render(t)
		errs := res.Repo.Problems.Errors()
		if len(errs) == 0 {
			t.Fatal("ml-team-alpha guarantees 4 GPUs on a cluster with 3, and the repository validates")
		}
		var found bool
		for _, p := range errs {
			msg := p.Error()
			if strings.Contains(msg, `"a"`) && strings.Contains(msg, "raas.yaml") && strings.Contains(msg, "spec.clusters[0].capacity.gpu") {
				found = true
			}
			if strings.Contains(msg, `"b"`) {
				t.Errorf("cluster b is not over-committed: %s", msg)
			}
		}
		if !found {
			t.Errorf("no error names cluster a's capacity: %v", errs)
		}
		e.edit(t, "raas.yaml", "capacity: {gpu: 3}\n      pools: [h100]", "capacity: {gpu: 16}\n      pools: [h100]")
	})
}

// TestMove moves data-sandbox from the cluster it runs on to the other: it is created
// and Ready on the new one before anything of it is deleted on the old one, where its
// namespace stays with the vcluster's data volume.
func TestMove(t *testing.T) {
	e := newEnv(t)
	from := e.apply(t).Tenant("data-sandbox").Cluster
	to := map[string]string{"a": "b", "b": "a"}[from]
	e.edit(t, "tenants/data-sandbox.yaml", "spec:\n", "spec:\n  cluster: "+to+"\n")

	diff, err := e.fleet.Diff(t.Context(), reconcile.Input{Render: e.render(t), Revision: "test"})
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	if err := report.WriteDiff(&text, diff); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "tenant data-sandbox (tenants/data-sandbox.yaml) moves from cluster "+from) {
		t.Errorf("the diff does not say that data-sandbox moves:\n%s", text.String())
	}
	t.Logf("diff:\n%s", text.String())

	ns, release := "tenant-data-sandbox", schema.Release("data-sandbox")
	old, fresh := hostOf(e.host(from)), hostOf(e.host(to))
	e.log.take()
	out := e.apply(t)
	st := out.Tenant("data-sandbox")
	if st.Cluster != to || st.MovingFrom != from || st.Health == reconcile.HealthReady {
		t.Errorf("after the first pass: on %q from %q, %s; want on %s from %s, not yet Ready", st.Cluster, st.MovingFrom, st.Health, to, from)
	}
	deletes := func(reqs []request) []string {
		var d []string
		for _, r := range reqs {
			if r.host == old && r.method == "DELETE" {
				d = append(d, r.path)
			}
		}
		return d
	}
	if d := deletes(e.log.take()); len(d) > 0 {
		t.Errorf("deleted on the old cluster before the tenant was Ready on the new one: %v", d)
	}
	if !exists(t, e.host(to), &appsv1.StatefulSet{}, ns, release) || !exists(t, e.host(from), &appsv1.StatefulSet{}, ns, release) {
		t.Fatal("the vcluster should run on both clusters while the tenant moves")
	}

	// The vcluster comes up on the new cluster (a stand-in, with statuses written by hand).
	vc := e.host(to).StartVCluster(t, ns, release, testenv.DefaultVClusterOptions())
	markReady(t.Context(), t, e.host(to).Client, nil, ns, release)
	out = e.apply(t)
	if st := out.Tenant("data-sandbox"); st.Health == reconcile.HealthReady {
		t.Fatalf("Ready before its KubeRay operator is: %s", st.Reason)
	}
	if d := deletes(e.log.take()); len(d) > 0 {
		t.Errorf("deleted on the old cluster before the tenant was Ready on the new one: %v", d)
	}
	markReady(t.Context(), t, e.host(to).Client, vc.Client, ns, release)

	out = e.apply(t)
	st = out.Tenant("data-sandbox")
	if st.Health != reconcile.HealthReady || st.Cluster != to || st.MovingFrom != "" {
		t.Errorf("after the move: %s on %q from %q: %s; want Ready on %s", st.Health, st.Cluster, st.MovingFrom, st.Reason, to)
	}
	reqs := e.log.take()
	var lastNew, firstDelete int = -1, -1
	for i, r := range reqs {
		if r.host == fresh {
			lastNew = i
		}
		if r.host == old && r.method == "DELETE" && firstDelete < 0 {
			firstDelete = i
		}
	}
	switch {
	case firstDelete < 0:
		t.Error("nothing was deleted on the old cluster once the tenant was Ready on the new one")
	case reqs[firstDelete].start.Before(reqs[lastNew].end) && lastNew > firstDelete:
		t.Errorf("the old cluster deleted %s before the new cluster's pass ended", reqs[firstDelete].path)
	}
	if exists(t, e.host(from), &appsv1.StatefulSet{}, ns, release) {
		t.Error("the vcluster still runs on the old cluster")
	}
	if exists(t, e.host(from), &corev1.ConfigMap{}, reconcile.SystemNamespace, "tenant.data-sandbox") {
		t.Error("the old cluster still holds the tenant's inventory")
	}
	var kept corev1.Namespace
	if !exists(t, e.host(from), &kept, "", ns) || kept.Annotations[reconcile.AnnotationRetained] == "" {
		t.Errorf("the old namespace, with the vcluster's data volume, was not kept: %v", kept.Annotations)
	}
	var moved []reconcile.Entry
	for _, en := range out.Entries {
		if en.Tenant == "data-sandbox" && en.Cluster == from {
			moved = append(moved, en)
		}
	}
	if !slices.ContainsFunc(moved, func(en reconcile.Entry) bool { return en.Action == reconcile.Deleted }) {
		t.Errorf("the result does not say what was deleted on the old cluster: %v", moved)
	}

	// Once moved, the tenant stays: a pass writes nothing.
	e.apply(t)
	for _, r := range e.log.take() {
		if r.method != "GET" && !strings.Contains(r.query, "dryRun") && r.method != "HEAD" {
			t.Errorf("the pass after the move wrote %s %s to %s", r.method, r.path, r.host)
		}
	}
}
