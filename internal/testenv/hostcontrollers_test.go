package testenv_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/internal/volcano"
	"github.com/raas-dev/raas/schema"
)

// settle bounds every wait for the controllers; on the shared 2-core CI machine a
// Deployment takes a few seconds to roll out.
const settle = time.Minute

// examplePlatform loads examples/raas.yaml, defaulted, as raas reads it.
func examplePlatform(t testing.TB) *schema.Platform {
	t.Helper()
	repo, err := schema.Load(os.DirFS(filepath.Join("..", "..", "examples")))
	if err != nil {
		t.Fatal(err)
	}
	if repo.Platform == nil {
		t.Fatalf("examples/raas.yaml: %v", repo.Problems)
	}
	return repo.Platform
}

// hostControllersOptions sends the processes' logs to stderr when RAAS_TWIN_LOGS is set.
func hostControllersOptions() testenv.HostControllersOptions {
	opts := testenv.DefaultHostControllersOptions()
	if os.Getenv("RAAS_TWIN_LOGS") != "" {
		opts.Output = os.Stderr
	}
	return opts
}

// taintedPool is the first GPU pool of the platform with a taint.
func taintedPool(t *testing.T, p *schema.Platform) schema.GPUPool {
	t.Helper()
	for _, pool := range p.Spec.GPU.Pools {
		if pool.Taint != nil {
			return pool
		}
	}
	t.Fatal("examples/raas.yaml has no tainted GPU pool")
	return schema.GPUPool{}
}

func TestHostControllers(t *testing.T) {
	host := testenv.StartHost(t, testenv.DefaultControlPlaneOptions())
	platform := examplePlatform(t)
	opts := hostControllersOptions()
	hc := host.StartHostControllers(t, platform, opts)
	cl := host.Client
	podCIDR := netip.MustParsePrefix(opts.PodCIDR)

	t.Run("makes Ready nodes for every GPU pool with its label, taint and GPUs", func(t *testing.T) {
		for _, pool := range platform.Spec.GPU.Pools {
			var nodes corev1.NodeList
			if err := cl.List(t.Context(), &nodes, client.MatchingLabels{volcano.LabelNodeGroupName: pool.NodeGroup}); err != nil {
				t.Fatal(err)
			}
			if len(nodes.Items) == 0 {
				t.Fatalf("pool %s: no node labelled %s=%s", pool.Name, volcano.LabelNodeGroupName, pool.NodeGroup)
			}
			var gpus int64
			for _, n := range nodes.Items {
				q := n.Status.Allocatable[corev1.ResourceName(platform.Spec.GPU.Resource)]
				gpus += q.Value()
				if pool.Product != "" && n.Labels[testenv.GPUProductLabel] != pool.Product {
					t.Errorf("node %s: %s = %q, want %q", n.Name, testenv.GPUProductLabel, n.Labels[testenv.GPUProductLabel], pool.Product)
				}
				if pool.Taint != nil && !hasTaint(&n, pool.Taint.Key, pool.Taint.Value) {
					t.Errorf("node %s: taints %v lack %s=%s", n.Name, n.Spec.Taints, pool.Taint.Key, pool.Taint.Value)
				}
			}
			if pool.GPUs != nil && gpus != *pool.GPUs {
				t.Errorf("pool %s: nodes hold %d %s, the platform says %d", pool.Name, gpus, platform.Spec.GPU.Resource, *pool.GPUs)
			}
		}
		for _, group := range platform.Spec.Scheduler.SharedNodeGroups {
			var nodes corev1.NodeList
			if err := cl.List(t.Context(), &nodes, client.MatchingLabels{volcano.LabelNodeGroupName: group}); err != nil {
				t.Fatal(err)
			}
			if len(nodes.Items) == 0 {
				t.Errorf("shared node group %s: no node", group)
			}
		}
		if len(hc.Nodes) == 0 {
			t.Error("no nodes made")
		}
	})

	t.Run("binds a pod that tolerates and selects a GPU pool to that pool, Running and Ready", func(t *testing.T) {
		ns := host.Namespace(t)
		pool := taintedPool(t, platform)
		gpu := corev1.ResourceName(platform.Spec.GPU.Resource)
		p := pod(ns, "worker", func(p *corev1.Pod) {
			p.Spec.NodeSelector = map[string]string{volcano.LabelNodeGroupName: pool.NodeGroup}
			p.Spec.Tolerations = []corev1.Toleration{{Key: pool.Taint.Key, Operator: corev1.TolerationOpEqual,
				Value: pool.Taint.Value, Effect: corev1.TaintEffect(pool.Taint.Effect)}}
			p.Spec.Containers[0].Resources.Requests[gpu] = resource.MustParse("1")
			p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{gpu: resource.MustParse("1")}
		})
		if err := cl.Create(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		eventually(t, "pod Running and Ready", func(ctx context.Context) (bool, string, error) {
			err := cl.Get(ctx, client.ObjectKeyFromObject(p), p)
			return p.Status.Phase == corev1.PodRunning && podReady(p), fmt.Sprintf("node %q, phase %s, conditions %v", p.Spec.NodeName, p.Status.Phase, p.Status.Conditions), err
		})
		var n corev1.Node
		if err := cl.Get(t.Context(), client.ObjectKey{Name: p.Spec.NodeName}, &n); err != nil {
			t.Fatal(err)
		}
		if got := n.Labels[volcano.LabelNodeGroupName]; got != pool.NodeGroup {
			t.Errorf("bound to node %s of group %q, want pool %s's group %q", n.Name, got, pool.Name, pool.NodeGroup)
		}
		if ip, err := netip.ParseAddr(p.Status.PodIP); err != nil || !podCIDR.Contains(ip) {
			t.Errorf("pod IP %q is not in kwok's pod CIDR %s", p.Status.PodIP, podCIDR)
		}
	})

	t.Run("never places a pod without the toleration on a tainted GPU node", func(t *testing.T) {
		ns := host.Namespace(t)
		pool := taintedPool(t, platform)
		// Selecting the pool leaves the scheduler only tainted nodes: it must refuse.
		pinned := pod(ns, "pinned", func(p *corev1.Pod) {
			p.Spec.NodeSelector = map[string]string{volcano.LabelNodeGroupName: pool.NodeGroup}
		})
		free := pod(ns, "free", nil)
		for _, p := range []*corev1.Pod{pinned, free} {
			if err := cl.Create(t.Context(), p); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, "scheduler refuses the pinned pod", func(ctx context.Context) (bool, string, error) {
			err := cl.Get(ctx, client.ObjectKeyFromObject(pinned), pinned)
			for _, c := range pinned.Status.Conditions {
				if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
					return true, c.Message, err
				}
			}
			return false, fmt.Sprintf("node %q, conditions %v", pinned.Spec.NodeName, pinned.Status.Conditions), err
		})
		if pinned.Spec.NodeName != "" {
			t.Errorf("pod without toleration bound to %s", pinned.Spec.NodeName)
		}
		eventually(t, "free pod bound", func(ctx context.Context) (bool, string, error) {
			err := cl.Get(ctx, client.ObjectKeyFromObject(free), free)
			return free.Spec.NodeName != "", free.Status.String(), err
		})
		var n corev1.Node
		if err := cl.Get(t.Context(), client.ObjectKey{Name: free.Spec.NodeName}, &n); err != nil {
			t.Fatal(err)
		}
		if hasTaint(&n, pool.Taint.Key, pool.Taint.Value) {
			t.Errorf("pod without toleration bound to tainted node %s", n.Name)
		}
	})

	t.Run("rolls a Deployment out to available pods through a ReplicaSet", func(t *testing.T) {
		ns := host.Namespace(t)
		labels := map[string]string{"app": "web"}
		template := pod(ns, "", nil)
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
			Spec: appsv1.DeploymentSpec{
				Replicas: new(int32(3)),
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: template.Spec},
			},
		}
		if err := cl.Create(t.Context(), d); err != nil {
			t.Fatal(err)
		}
		eventually(t, "deployment available", func(ctx context.Context) (bool, string, error) {
			err := cl.Get(ctx, client.ObjectKeyFromObject(d), d)
			return d.Status.AvailableReplicas == *d.Spec.Replicas, fmt.Sprintf("%+v", d.Status), err
		})
		var rss appsv1.ReplicaSetList
		if err := cl.List(t.Context(), &rss, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		if len(rss.Items) != 1 || metav1.GetControllerOf(&rss.Items[0]) == nil || metav1.GetControllerOf(&rss.Items[0]).UID != d.UID {
			t.Fatalf("replica sets %v: want one controlled by deployment %s", rss.Items, d.Name)
		}
		var pods corev1.PodList
		if err := cl.List(t.Context(), &pods, client.InNamespace(ns), client.MatchingLabels(labels)); err != nil {
			t.Fatal(err)
		}
		running := 0
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && podReady(&p) {
				running++
			}
		}
		if running != int(*d.Spec.Replicas) {
			t.Errorf("%d of %d pods Running and Ready", running, *d.Spec.Replicas)
		}
	})

	t.Run("binds a StatefulSet's volume claim and runs its pod, as a vcluster's", func(t *testing.T) {
		ns := host.Namespace(t)
		labels := map[string]string{"app": "vcluster"}
		template := pod(ns, "", nil)
		template.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
		sts := &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Name: "vc", Namespace: ns},
			Spec: appsv1.StatefulSetSpec{
				Replicas: new(int32(1)),
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: template.Spec},
				// No storageClassName: the default class is what a chart gets.
				VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
					ObjectMeta: metav1.ObjectMeta{Name: "data"},
					Spec: corev1.PersistentVolumeClaimSpec{
						AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
						Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("5Gi")}},
					},
				}},
			},
		}
		if err := cl.Create(t.Context(), sts); err != nil {
			t.Fatal(err)
		}
		eventually(t, "statefulset ready", func(ctx context.Context) (bool, string, error) {
			err := cl.Get(ctx, client.ObjectKeyFromObject(sts), sts)
			return sts.Status.ReadyReplicas == 1, fmt.Sprintf("%+v", sts.Status), err
		})
		pvc := &corev1.PersistentVolumeClaim{}
		if err := cl.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "data-vc-0"}, pvc); err != nil {
			t.Fatal(err)
		}
		if pvc.Status.Phase != corev1.ClaimBound || pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != testenv.TwinStorageClass {
			t.Fatalf("claim %s: phase %s, class %v; want Bound, %s", pvc.Name, pvc.Status.Phase, pvc.Spec.StorageClassName, testenv.TwinStorageClass)
		}
		volume := pvc.Spec.VolumeName
		if err := cl.Delete(t.Context(), sts); err != nil {
			t.Fatal(err)
		}
		if err := cl.Delete(t.Context(), pvc); err != nil {
			t.Fatal(err)
		}
		eventually(t, "volume deleted after its claim", func(ctx context.Context) (bool, string, error) {
			var pv corev1.PersistentVolume
			err := cl.Get(ctx, client.ObjectKey{Name: volume}, &pv)
			if apierrors.IsNotFound(err) {
				return true, "", nil
			}
			return false, fmt.Sprintf("volume %s: %s", volume, pv.Status.Phase), err
		})
	})

	t.Run("completes a Job, whose pod kwok finishes", func(t *testing.T) {
		ns := host.Namespace(t)
		template := pod(ns, "", nil)
		template.Spec.RestartPolicy = corev1.RestartPolicyNever
		job := &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: "submitter", Namespace: ns},
			Spec:       batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: template.Spec}},
		}
		if err := cl.Create(t.Context(), job); err != nil {
			t.Fatal(err)
		}
		eventually(t, "job complete", func(ctx context.Context) (bool, string, error) {
			err := cl.Get(ctx, client.ObjectKeyFromObject(job), job)
			for _, c := range job.Status.Conditions {
				if c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue {
					return job.Status.Succeeded == 1, "", err
				}
			}
			return false, fmt.Sprintf("%+v", job.Status), err
		})
	})

	t.Run("fills a ResourceQuota's status.used", func(t *testing.T) {
		ns := host.Namespace(t)
		quota := &corev1.ResourceQuota{
			ObjectMeta: metav1.ObjectMeta{Name: "tenant", Namespace: ns},
			Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{
				corev1.ResourcePods: resource.MustParse("10"), corev1.ResourceRequestsCPU: resource.MustParse("4"),
			}},
		}
		if err := cl.Create(t.Context(), quota); err != nil {
			t.Fatal(err)
		}
		// Quota admission charges a pod against status.hard (k8s.io/apiserver
		// pkg/admission/plugin/resourcequota/controller.go): before the controller's first
		// sync writes it, a new pod is left to the controller's recount alone, whose pod
		// cache may not hold it yet. Waiting keeps the test on the common path.
		eventually(t, "quota status.hard", func(ctx context.Context) (bool, string, error) {
			err := cl.Get(ctx, client.ObjectKeyFromObject(quota), quota)
			return quota.Status.Hard != nil, "no status.hard", err
		})
		p := pod(ns, "head", nil)
		if err := cl.Create(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		want := p.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]
		used := func(pods int64, cpu resource.Quantity) func(ctx context.Context) (bool, string, error) {
			return func(ctx context.Context) (bool, string, error) {
				err := cl.Get(ctx, client.ObjectKeyFromObject(quota), quota)
				gotPods, gotCPU := quota.Status.Used[corev1.ResourcePods], quota.Status.Used[corev1.ResourceRequestsCPU]
				ok := quota.Status.Hard != nil && gotPods.Value() == pods && gotCPU.Cmp(cpu) == 0
				return ok, fmt.Sprintf("hard %v, used %v", quota.Status.Hard, quota.Status.Used), err
			}
		}
		eventually(t, "quota usage of one pod", used(1, want))
		// Admission only ever adds to status.used; giving back is the controller's work.
		if err := cl.Delete(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		eventually(t, "quota usage after the pod is gone", used(0, resource.MustParse("0")))
	})

	t.Run("renews every node's Lease, which keeps it Ready past the node monitor grace period", func(t *testing.T) {
		first := map[string]time.Time{}
		eventually(t, "leases renewed", func(ctx context.Context) (bool, string, error) {
			renewed := 0
			for _, n := range hc.Nodes {
				var lease coordinationv1.Lease
				if err := cl.Get(ctx, client.ObjectKey{Namespace: corev1.NamespaceNodeLease, Name: n.Name}, &lease); err != nil {
					return false, err.Error(), client.IgnoreNotFound(err)
				}
				if lease.Spec.RenewTime == nil {
					return false, fmt.Sprintf("lease %s: %+v", n.Name, lease.Spec), nil
				}
				at := lease.Spec.RenewTime.Time
				if _, ok := first[n.Name]; !ok {
					first[n.Name] = at
				}
				if at.After(first[n.Name]) {
					renewed++
				}
			}
			return renewed == len(hc.Nodes), fmt.Sprintf("%d of %d leases renewed", renewed, len(hc.Nodes)), nil
		})
	})

	t.Run("deletes a namespace with its pods", func(t *testing.T) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "doomed-"}}
		if err := cl.Create(t.Context(), ns); err != nil {
			t.Fatal(err)
		}
		p := pod(ns.Name, "doomed", nil)
		if err := cl.Create(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		eventually(t, "pod Running", func(ctx context.Context) (bool, string, error) {
			err := cl.Get(ctx, client.ObjectKeyFromObject(p), p)
			return p.Status.Phase == corev1.PodRunning, string(p.Status.Phase), err
		})
		if err := cl.Delete(t.Context(), ns); err != nil {
			t.Fatal(err)
		}
		eventually(t, "namespace gone", func(ctx context.Context) (bool, string, error) {
			err := cl.Get(ctx, client.ObjectKeyFromObject(ns), ns)
			if apierrors.IsNotFound(err) {
				return true, "", nil
			}
			return false, fmt.Sprintf("phase %s, conditions %v", ns.Status.Phase, ns.Status.Conditions), err
		})
	})
}

func hasTaint(n *corev1.Node, key, value string) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == key && t.Value == value {
			return true
		}
	}
	return false
}
