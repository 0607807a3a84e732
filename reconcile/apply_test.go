package reconcile_test

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/reconcile"
	"github.com/raas-dev/raas/render"
	"github.com/raas-dev/raas/schema"
)

// removable finds a tenant of res, not one of keep, whose file can go without making the repository invalid (a
// sandbox's parent cannot) or changing what the others render (a sandbox's quota returns
// to its parent), removes it, and returns its name, its file and the render without it.
func removable(t *testing.T, repo *repo, res *render.Result, keep ...string) (string, string, *render.Result) {
	t.Helper()
	names := tenantNames(res)
	for _, name := range names {
		if slices.Contains(keep, name) {
			continue
		}
		file := "tenants/" + name + ".yaml"
		content := repo.read(file)
		repo.remove(file)
		without := repo.render()
		if without.OK() && sameRender(t, res, without, name) {
			return name, content, without
		}
		repo.write(file, content)
	}
	t.Fatalf("no tenant of %v can be removed alone without changing the others", names)
	return "", "", nil
}

// sameRender reports whether every tenant of b but except renders as in a.
func sameRender(t *testing.T, a, b *render.Result, except string) bool {
	t.Helper()
	yamls := func(res *render.Result) map[string]string {
		m := map[string]string{}
		for _, out := range res.Tenants {
			if out.Tenant == except {
				continue
			}
			for _, o := range append(append([]*render.Object(nil), out.Host...), out.Virtual...) {
				data, err := o.YAML()
				if err != nil {
					t.Fatal(err)
				}
				m[out.Tenant+" "+o.ID()] = string(data)
			}
		}
		return m
	}
	return maps.Equal(yamls(a), yamls(b))
}

func tenantNames(res *render.Result) []string {
	var names []string
	for _, out := range res.Tenants {
		names = append(names, out.Tenant)
	}
	return names
}

// TestApply walks the example tenants through the life of a tenants repository on one
// host with a stand-in vcluster per tenant. The subtests build on each other, in order.
func TestApply(t *testing.T) {
	host := testenv.Shared(t)
	ctx := t.Context()
	ensureNamespace(t, host.Client, "volcano-system")
	const prefix = "apply-"
	repo := exampleRepo(t, prefix)
	res := repo.render()
	if !res.OK() {
		t.Fatalf("examples do not render: %v %v", res.Repo.Problems, res.Failed)
	}
	names := tenantNames(res)
	if len(names) < 3 {
		t.Fatalf("examples have %d tenants; this test needs three", len(names))
	}
	first, last := names[0], names[len(names)-1]
	vcs := host.StartVClusters(t, names, func(n string) (string, string) { return prefix + n, schema.Release(n) }, testenv.DefaultVClusterOptions())
	r, count, opts := newReconciler(t, host, time.Minute)

	t.Run("applies the example tenants on the host and inside each vcluster", func(t *testing.T) {
		begin := time.Now()
		out := apply(t, r, res)
		t.Logf("first pass: %s in %s; %d reads, %d dry runs, %d writes",
			out.Summary(), time.Since(begin).Round(time.Millisecond), count.reads.Load(), count.dryRuns.Load(), count.writes.Load())
		for _, o := range res.Platform {
			if get(t, host.Client, o) == nil {
				t.Errorf("platform object %s is missing", o.ID())
			}
		}
		for _, to := range res.Tenants {
			for _, o := range to.Host {
				live := get(t, host.Client, o)
				if live == nil {
					t.Errorf("tenant %s: host object %s is missing", to.Tenant, o.ID())
					continue
				}
				if live.GetLabels()[schema.LabelTenant] != to.Tenant {
					t.Errorf("tenant %s: host object %s lacks its tenant label", to.Tenant, o.ID())
				}
			}
			for _, o := range to.Virtual {
				if get(t, vcs[to.Tenant].Client, o) == nil {
					t.Errorf("tenant %s: virtual object %s is missing in its vcluster", to.Tenant, o.ID())
				}
			}
			entries := out.Select(to.Tenant, "")
			if want := len(to.Host) + len(to.Virtual); len(entries) != want {
				t.Errorf("tenant %s: %d entries, want one per object (%d)", to.Tenant, len(entries), want)
			}
			for _, e := range entries {
				want := reconcile.Created
				if e.Kind == "Namespace" && e.Target == render.Host {
					want = reconcile.Configured // the stand-in vcluster created it for its Secret
				}
				if e.Action != want {
					t.Errorf("%s, want %s", e, want)
				}
			}
			st := out.Tenant(to.Tenant)
			if st == nil || st.Health != reconcile.HealthProgressing || !strings.Contains(st.Reason, "StatefulSet") || st.Change != reconcile.TenantAdded {
				t.Errorf("tenant %s: status %+v, want added and Progressing on the vcluster StatefulSet (no controller runs)", to.Tenant, st)
			}
		}
		var cms corev1.ConfigMapList
		if err := host.Client.List(ctx, &cms, client.InNamespace(opts.InventoryNamespace), client.HasLabels{reconcile.LabelInventory}); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, cm := range cms.Items {
			got = append(got, cm.Name)
		}
		want := []string{"platform"}
		for _, name := range names {
			want = append(want, "tenant."+name)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("inventories %v, want %v", got, want)
		}
	})

	t.Run("writes nothing on a second pass", func(t *testing.T) {
		count.reset()
		begin := time.Now()
		out := apply(t, r, res)
		t.Logf("no-op pass: %s in %s; %d reads, %d dry runs, %d writes",
			out.Summary(), time.Since(begin).Round(time.Millisecond), count.reads.Load(), count.dryRuns.Load(), count.writes.Load())
		if w := count.writesList(); len(w) > 0 {
			t.Errorf("second pass wrote %d times: %v", len(w), w)
		}
		for _, e := range out.Entries {
			if e.Action != reconcile.Unchanged {
				t.Errorf("%s, want unchanged", e)
			}
		}
		if out.Changed() {
			t.Error("Changed() = true")
		}
	})

	t.Run("puts back hand-edited drift and reports it", func(t *testing.T) {
		ns := prefix + first
		var quota corev1.ResourceQuota
		if err := host.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "raas-quota"}, &quota); err != nil {
			t.Fatal(err)
		}
		want := quota.Spec.Hard[corev1.ResourceRequestsCPU]
		quota.Spec.Hard[corev1.ResourceRequestsCPU] = resource.MustParse("1000")
		if err := host.Client.Update(ctx, &quota, client.FieldOwner("kubectl-edit")); err != nil {
			t.Fatal(err)
		}
		vc := vcs[first]
		role := &metav1.PartialObjectMetadata{}
		role.SetGroupVersionKind(schemaGVK("rbac.authorization.k8s.io", "v1", "ClusterRole"))
		role.SetName("kuberay-operator")
		if err := vc.Client.Delete(ctx, role); err != nil {
			t.Fatal(err)
		}

		count.reset()
		out := apply(t, r, res)
		got := actions(out.Select(first, ""))
		if a := got["host ResourceQuota "+ns+"/raas-quota"]; a != reconcile.Drifted {
			t.Errorf("edited quota: %s, want drifted", a)
		}
		if a := got["virtual ClusterRole.rbac.authorization.k8s.io kuberay-operator"]; a != reconcile.Drifted {
			t.Errorf("deleted cluster role: %s, want drifted", a)
		}
		for _, e := range out.Entries {
			if e.Action == reconcile.Drifted && e.Kind == "ResourceQuota" &&
				(!strings.Contains(e.Diff, "-    requests.cpu: 1k") || !strings.Contains(e.Reason, "by hand")) {
				t.Errorf("drift entry does not show the edit:\n%s\n%s", e.Reason, e.Diff)
			}
			if e.Action != reconcile.Drifted && e.Action != reconcile.Unchanged {
				t.Errorf("%s, want unchanged", e)
			}
		}
		// The two objects, and the tenant's inventory with their new resourceVersions.
		if n := count.writes.Load(); n != 3 {
			t.Errorf("%d writes, want 3: %v", n, count.writesList())
		}
		if err := host.Client.Get(ctx, client.ObjectKeyFromObject(&quota), &quota); err != nil {
			t.Fatal(err)
		}
		if got := quota.Spec.Hard[corev1.ResourceRequestsCPU]; got.Cmp(want) != 0 {
			t.Errorf("quota requests.cpu = %s, want %s put back", &got, &want)
		}
		if err := vc.Client.Get(ctx, client.ObjectKey{Name: "kuberay-operator"}, role); err != nil {
			t.Errorf("cluster role not created again: %v", err)
		}

		count.reset()
		apply(t, r, res)
		if w := count.writesList(); len(w) > 0 {
			t.Errorf("the pass after the repair wrote %v", w)
		}
	})

	t.Run("reports a tenant Ready once its vcluster and operator are ready", func(t *testing.T) {
		// No controller runs here, so the statuses are written by hand, as the
		// StatefulSet and Deployment controllers would.
		var sts appsv1.StatefulSet
		if err := host.Client.Get(ctx, client.ObjectKey{Namespace: prefix + last, Name: schema.Release(last)}, &sts); err != nil {
			t.Fatal(err)
		}
		sts.Status = appsv1.StatefulSetStatus{ObservedGeneration: sts.Generation, Replicas: 1, ReadyReplicas: 1,
			CurrentReplicas: 1, UpdatedReplicas: 1, AvailableReplicas: 1, CurrentRevision: "r1", UpdateRevision: "r1"}
		if err := host.Client.Status().Update(ctx, &sts); err != nil {
			t.Fatal(err)
		}
		out := apply(t, r, res)
		if st := out.Tenant(last); st.Health != reconcile.HealthProgressing || !strings.Contains(st.Reason, "KubeRay operator Deployment") {
			t.Errorf("with the vcluster ready: %s %s, want Progressing on the KubeRay operator", st.Health, st.Reason)
		}

		var dep appsv1.Deployment
		vc := vcs[last]
		if err := vc.Client.Get(ctx, client.ObjectKey{Namespace: render.KubeRayNamespace, Name: "kuberay-operator"}, &dep); err != nil {
			t.Fatal(err)
		}
		now := metav1.Now()
		dep.Status = appsv1.DeploymentStatus{ObservedGeneration: dep.Generation, Replicas: 1, UpdatedReplicas: 1,
			ReadyReplicas: 1, AvailableReplicas: 1, Conditions: []appsv1.DeploymentCondition{
				{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable", LastUpdateTime: now, LastTransitionTime: now},
				{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable", LastUpdateTime: now, LastTransitionTime: now},
			}}
		if err := vc.Client.Status().Update(ctx, &dep); err != nil {
			t.Fatal(err)
		}
		count.reset()
		out = apply(t, r, res)
		if st := out.Tenant(last); st.Health != reconcile.HealthReady {
			t.Errorf("%s: %s %s, want Ready", last, st.Health, st.Reason)
		}
		if st := out.Tenant(first); st.Health != reconcile.HealthProgressing {
			t.Errorf("%s: %s %s, want still Progressing", first, st.Health, st.Reason)
		}
		if w := count.writesList(); len(w) > 0 {
			t.Errorf("status changes made the pass write %v", w)
		}
	})

	t.Run("changes nothing for the others and deletes nothing when one tenant fails to render", func(t *testing.T) {
		// The repository's own catalog gets an empty KubeRay base for one tenant's version,
		// which fails its render (and that of any tenant on the same version); another
		// tenant's file is deleted in the same commit.
		var version string
		var affected, others []string
		for _, victim := range names {
			version = res.Repo.Tenant(victim).Spec.KubeRay.Version
			affected, others = nil, nil
			for _, name := range names {
				if res.Repo.Tenant(name).Spec.KubeRay.Version == version {
					affected = append(affected, name)
				} else {
					others = append(others, name)
				}
			}
			if len(others) >= 2 {
				break
			}
		}
		if len(others) < 2 {
			t.Fatalf("examples: no KubeRay version leaves two tenants on another")
		}
		removed := others[0]
		file := "tenants/" + removed + ".yaml"
		content := repo.read(file)
		repo.write("catalog/kuberay/"+version+"/README", "an empty base: kustomize fails on it\n")
		repo.remove(file)
		t.Cleanup(func() {
			repo.write(file, content)
			repo.removeAll("catalog")
		})
		broken := repo.render()
		var failed []string
		for _, f := range broken.Failed {
			failed = append(failed, f.Tenant)
		}
		if !slices.Equal(failed, affected) {
			t.Fatalf("render failures %v, want %v", failed, affected)
		}

		count.reset()
		out := apply(t, r, broken)
		if w := count.writesList(); len(w) > 0 {
			t.Errorf("wrote %v", w)
		}
		for _, e := range out.Entries {
			switch {
			case slices.Contains(others[1:], e.Tenant) && e.Action != reconcile.Unchanged:
				t.Errorf("%s, want unchanged", e)
			case e.Action != reconcile.Unchanged && e.Action != reconcile.Skipped:
				t.Errorf("%s, want unchanged or skipped", e)
			}
		}
		if out.PruneBlocked == "" {
			t.Error("PruneBlocked is empty")
		}
		for _, name := range affected {
			if st := out.Tenant(name); st.Health != reconcile.HealthFailed || !strings.Contains(st.Reason, "failed to render") {
				t.Errorf("%s: %s %s, want Failed to render", name, st.Health, st.Reason)
			}
		}
		if st := out.Tenant(removed); st.Change != reconcile.TenantRemoved || !strings.Contains(st.Reason, "not pruned") {
			t.Errorf("%s: %+v, want removed but not pruned", removed, st)
		}
		for _, to := range res.Tenants {
			for _, o := range to.Host {
				if get(t, host.Client, o) == nil {
					t.Errorf("%s: %s was deleted", to.Tenant, o.ID())
				}
			}
		}
	})

	t.Run("deletes nothing when the tenants directory is empty", func(t *testing.T) {
		files := map[string]string{}
		for _, name := range tenantNames(res) {
			file := "tenants/" + name + ".yaml"
			files[file] = repo.read(file)
			repo.remove(file)
		}
		t.Cleanup(func() {
			for file, content := range files {
				repo.write(file, content)
			}
		})
		empty := repo.render()
		if len(empty.Repo.Tenants) != 0 || !empty.OK() {
			t.Fatalf("want a valid repository without tenants: %v", empty.Repo.Problems)
		}
		count.reset()
		out, err := r.Apply(ctx, reconcile.Input{Render: empty, Revision: "empty"})
		if err != nil {
			t.Fatal(err)
		}
		var mass *reconcile.MassDeleteError
		if len(out.Errors) != 1 || !errors.As(out.Errors[0], &mass) || !mass.Empty || !slices.Equal(mass.Tenants, names) {
			t.Errorf("errors %v, want a refused mass deletion of %v", out.Errors, names)
		}
		if w := count.writesList(); len(w) > 0 {
			t.Errorf("wrote %v", w)
		}
		for _, name := range tenantNames(res) {
			if st := out.Tenant(name); st == nil || st.Health != reconcile.HealthFailed || !strings.Contains(st.Reason, "allow mass deletion") {
				t.Errorf("%s: %+v, want Failed with the refusal", name, st)
			}
		}
		for _, to := range res.Tenants {
			for _, o := range to.Host {
				if get(t, host.Client, o) == nil {
					t.Errorf("%s: %s was deleted", to.Tenant, o.ID())
				}
			}
		}
	})

	t.Run("prunes exactly a removed tenant and keeps its data volumes", func(t *testing.T) {
		name, vision, pruned := removable(t, repo, res)
		if rd := res.Repo.Tenant(name).Spec.VCluster.RetainData; rd != nil && !*rd {
			t.Fatalf("%s does not retain its data", name)
		}
		ns := prefix + name
		// The StatefulSet controller would create this claim from the vcluster's
		// volumeClaimTemplates; raas never renders it.
		pvc := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: "data-" + name + "-0", Namespace: ns, Labels: map[string]string{"app": "vcluster", "release": name}},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("5Gi")}},
			},
		}
		if err := host.Client.Create(ctx, pvc); err != nil {
			t.Fatal(err)
		}
		others := map[string]string{}
		for _, to := range res.Tenants {
			if to.Tenant != name {
				for _, o := range to.Host {
					others[o.ID()] = get(t, host.Client, o).GetResourceVersion()
				}
			}
		}
		count.reset()
		out := apply(t, r, pruned)
		var visionOut *render.Output
		for _, to := range res.Tenants {
			if to.Tenant == name {
				visionOut = to
			}
		}
		for _, e := range out.Entries {
			switch {
			case e.Tenant != name && e.Action != reconcile.Unchanged:
				t.Errorf("%s, want unchanged", e)
			case e.Tenant == name && e.Target == render.Virtual && e.Action != reconcile.Skipped:
				t.Errorf("%s, want skipped: the vcluster goes as a whole", e)
			case e.Tenant == name && e.Target == render.Host && e.Kind == "Namespace" && e.Action != reconcile.Retained:
				t.Errorf("%s, want retained", e)
			case e.Tenant == name && e.Target == render.Host && e.Kind != "Namespace" && e.Action != reconcile.Deleted:
				t.Errorf("%s, want deleted", e)
			}
		}
		if n := len(out.Select(name, "")); n != len(visionOut.Host)+len(visionOut.Virtual) {
			t.Errorf("%d entries for %s, want %d", n, name, len(visionOut.Host)+len(visionOut.Virtual))
		}
		if st := out.Tenant(name); st.Health != reconcile.HealthRemoved || !strings.Contains(st.Reason, "data volumes") {
			t.Errorf("%s: %s %s, want Removed, keeping the data volumes", name, st.Health, st.Reason)
		}
		for _, o := range visionOut.Host {
			live := get(t, host.Client, o)
			if o.GetKind() == "Namespace" {
				if live == nil || live.GetDeletionTimestamp() != nil || live.GetAnnotations()[reconcile.AnnotationRetained] == "" {
					t.Errorf("namespace %s: %v, want kept and annotated", ns, live)
				}
				continue
			}
			if live != nil {
				t.Errorf("%s still exists", o.ID())
			}
		}
		var got corev1.PersistentVolumeClaim
		if err := host.Client.Get(ctx, client.ObjectKeyFromObject(pvc), &got); err != nil || got.DeletionTimestamp != nil {
			t.Errorf("data volume claim: %v, deletion %v; want it kept", err, got.DeletionTimestamp)
		}
		for _, to := range res.Tenants {
			if to.Tenant == name {
				continue
			}
			for _, o := range to.Host {
				if live := get(t, host.Client, o); live == nil || live.GetResourceVersion() != others[o.ID()] {
					t.Errorf("%s: %s was touched", to.Tenant, o.ID())
				}
			}
		}
		var inv corev1.ConfigMap
		if err := host.Client.Get(ctx, client.ObjectKey{Namespace: opts.InventoryNamespace, Name: "tenant." + name}, &inv); err == nil {
			t.Error("the removed tenant's inventory is still there")
		}

		count.reset()
		apply(t, r, pruned)
		if w := count.writesList(); len(w) > 0 {
			t.Errorf("the pass after the prune wrote %v", w)
		}

		t.Run("and adopts them again when the tenant comes back", func(t *testing.T) {
			repo.write("tenants/"+name+".yaml", vision)
			out := apply(t, r, repo.render())
			if st := out.Tenant(name); st.Change != reconcile.TenantAdded {
				t.Errorf("%s: %+v, want added", name, st)
			}
			var live corev1.Namespace
			if err := host.Client.Get(ctx, client.ObjectKey{Name: ns}, &live); err != nil {
				t.Fatal(err)
			}
			if _, ok := live.Annotations[reconcile.AnnotationRetained]; ok {
				t.Errorf("namespace %s still carries %s", ns, reconcile.AnnotationRetained)
			}
			if live.Labels["pod-security.kubernetes.io/enforce"] == "" {
				t.Errorf("namespace %s labels %v, want the tenant's again", ns, live.Labels)
			}
			if err := host.Client.Get(ctx, client.ObjectKeyFromObject(pvc), &got); err != nil {
				t.Errorf("data volume claim: %v", err)
			}
		})
	})
}
