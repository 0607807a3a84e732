package statuspage

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	schedulingv1beta1 "volcano.sh/apis/pkg/apis/scheduling/v1beta1"

	"github.com/raas-dev/raas/api/v1alpha1"
	"github.com/raas-dev/raas/schema"
)

// quotaName is the ResourceQuota raas renders in every tenant namespace.
const quotaName = "raas-quota"

// Overview is what the front page shows.
type Overview struct {
	Generated time.Time
	Tenants   []Tenant
	GPU       GPUTotals
	// Volcano is set when the host serves Volcano's Queue API.
	Volcano bool
	// Problems are what the page could not read, such as a forbidden list.
	Problems []string
}

// Tenant is one tenant's line on the front page and its own page.
type Tenant struct {
	Name, Namespace, QueueName                   string
	Cluster, MovingFrom                          string // for a fleet
	Phase, Reason, Message                       string
	AppliedRevision, ObservedRevision, LastError string
	LastAppliedTime                              *metav1.Time
	Conditions                                   []metav1.Condition
	Quota                                        []QuotaRow
	// Queue is the tenant's Volcano queue; nil when Volcano is absent or the queue is.
	Queue *Queue
	// Waiting are the tenant's PodGroups not yet running, with Volcano's reason.
	Waiting    []PodGroup
	Mirrored   int
	Collisions []string
}

// QuotaRow is one resource of the tenant's ResourceQuota.
type QuotaRow struct {
	Resource   string
	Used, Hard string
	// Percent of hard in use, 0 to 100; -1 when hard is zero.
	Percent int
}

// Queue is a tenant's Volcano queue.
type Queue struct {
	State string
	// GPUs allocated now, and the queue's hard cap and guarantee ("" when unset).
	AllocatedGPU, CapabilityGPU, GuaranteeGPU string
	Resources                                 []QueueRow
}

// QueueRow is one resource of a queue.
type QueueRow struct {
	Resource                         string
	Allocated, Capability, Guarantee string
}

// PodGroup is a PodGroup waiting to be scheduled.
type PodGroup struct {
	Name, Phase string
	MinMember   int32
	// Reason and Message are Volcano's, from the PodGroup's newest condition that is
	// not Scheduled.
	Reason, Message string
}

// GPUTotals add up GPUs across the platform.
type GPUTotals struct {
	// Capacity is raas.yaml's spec.capacity.gpu, Pools the GPUs its pools declare.
	Capacity, Pools string
	// Quota, Used: the sum of the tenants' ResourceQuotas, hard and used.
	Quota, Used string
	// Guaranteed, Allocated, Capability: the sum over the tenants' Volcano queues.
	Guaranteed, Allocated, Capability string
}

// collector reads one page's worth of the cluster.
type collector struct {
	opts     Options
	problems []string
}

func (c *collector) problem(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

func (c *collector) overview(ctx context.Context) *Overview {
	ov := &Overview{Generated: c.opts.Now().UTC()}
	var tenants v1alpha1.TenantList
	if err := c.opts.Client.List(ctx, &tenants); err != nil {
		c.problem("tenants: %v", err)
	}
	sort.Slice(tenants.Items, func(i, j int) bool { return tenants.Items[i].Name < tenants.Items[j].Name })

	queues := map[string]*schedulingv1beta1.Queue{}
	var ql schedulingv1beta1.QueueList
	switch err := c.opts.Client.List(ctx, &ql); {
	case err == nil:
		ov.Volcano = true
		for i := range ql.Items {
			queues[ql.Items[i].Name] = &ql.Items[i]
		}
	case meta.IsNoMatchError(err):
	default:
		c.problem("Volcano queues: %v", err)
	}

	gpu := corev1.ResourceName(c.opts.GPUResource)
	var quota, used, guaranteed, allocated, capability resource.Quantity
	for i := range tenants.Items {
		t := c.tenant(ctx, &tenants.Items[i], queues, ov.Volcano)
		ov.Tenants = append(ov.Tenants, t.Tenant)
		if q := t.quota; q != nil {
			add(&quota, q.Status.Hard, "requests."+gpu)
			add(&used, q.Status.Used, "requests."+gpu)
		}
		if q := t.queue; q != nil {
			add(&guaranteed, q.Spec.Guarantee.Resource, gpu)
			add(&allocated, q.Status.Allocated, gpu)
			add(&capability, q.Spec.Capability, gpu)
		}
	}
	ov.GPU = GPUTotals{Quota: quota.String(), Used: used.String()}
	if ov.Volcano {
		ov.GPU.Guaranteed, ov.GPU.Allocated, ov.GPU.Capability = guaranteed.String(), allocated.String(), capability.String()
	}
	if c.opts.Platform != nil {
		if p := c.opts.Platform(); p != nil {
			if p.Spec.Capacity.GPU != nil {
				ov.GPU.Capacity = p.Spec.Capacity.GPU.String()
			}
			var n int64
			for _, pool := range p.Spec.GPU.Pools {
				if pool.GPUs != nil {
					n += *pool.GPUs
				}
			}
			if n > 0 {
				ov.GPU.Pools = fmt.Sprint(n)
			}
		}
	}
	ov.Problems = c.problems
	return ov
}

func add(sum *resource.Quantity, list corev1.ResourceList, name corev1.ResourceName) {
	if q, ok := list[name]; ok {
		sum.Add(q)
	}
}

// tenantData is a Tenant with the objects it was read from.
type tenantData struct {
	Tenant
	quota *corev1.ResourceQuota
	queue *schedulingv1beta1.Queue
}

func (c *collector) tenant(ctx context.Context, obj *v1alpha1.Tenant, queues map[string]*schedulingv1beta1.Queue, volcano bool) tenantData {
	st := obj.Status
	t := tenantData{Tenant: Tenant{
		Name: obj.Name, Namespace: obj.Spec.Namespace, QueueName: obj.Spec.Queue,
		Cluster: st.Cluster, MovingFrom: st.MovingFrom,
		Phase: string(st.Phase), Reason: st.Reason, Message: st.Message,
		AppliedRevision: st.AppliedRevision, ObservedRevision: st.ObservedRevision, LastError: st.LastError,
		LastAppliedTime: st.LastAppliedTime, Conditions: st.Conditions,
	}}
	if pg := st.PodGroups; pg != nil {
		t.Mirrored, t.Collisions = pg.Mirrored, pg.Collisions
	}
	if t.Namespace == "" {
		return t
	}
	var q corev1.ResourceQuota
	if err := c.opts.Client.Get(ctx, client.ObjectKey{Namespace: t.Namespace, Name: quotaName}, &q); err != nil {
		if client.IgnoreNotFound(err) != nil {
			c.problem("quota of %s: %v", t.Name, err)
		}
	} else {
		t.quota = &q
		t.Quota = quotaRows(&q)
	}
	gpu := corev1.ResourceName(c.opts.GPUResource)
	if qu := queues[t.QueueName]; qu != nil {
		t.queue = qu
		t.Queue = &Queue{
			State:         string(qu.Status.State),
			AllocatedGPU:  get(qu.Status.Allocated, gpu),
			CapabilityGPU: get(qu.Spec.Capability, gpu),
			GuaranteeGPU:  get(qu.Spec.Guarantee.Resource, gpu),
			Resources:     queueRows(qu),
		}
		if t.Queue.AllocatedGPU == "" {
			t.Queue.AllocatedGPU = "0"
		}
	}
	if volcano {
		var pgs schedulingv1beta1.PodGroupList
		if err := c.opts.Client.List(ctx, &pgs, client.InNamespace(t.Namespace)); err != nil {
			c.problem("PodGroups of %s: %v", t.Name, err)
		}
		for _, pg := range pgs.Items {
			switch pg.Status.Phase {
			case schedulingv1beta1.PodGroupRunning, schedulingv1beta1.PodGroupCompleted:
				continue
			}
			w := PodGroup{Name: pg.Name, Phase: string(pg.Status.Phase), MinMember: pg.Spec.MinMember}
			if w.Phase == "" {
				w.Phase = "Pending"
			}
			conds := slices.Clone(pg.Status.Conditions)
			sort.SliceStable(conds, func(i, j int) bool { return conds[i].LastTransitionTime.After(conds[j].LastTransitionTime.Time) })
			for _, cond := range conds {
				if cond.Type != schedulingv1beta1.PodGroupScheduled && cond.Status == corev1.ConditionTrue {
					w.Reason, w.Message = cond.Reason, cond.Message
					break
				}
			}
			t.Waiting = append(t.Waiting, w)
		}
	}
	return t
}

func get(list corev1.ResourceList, name corev1.ResourceName) string {
	if q, ok := list[name]; ok {
		return q.String()
	}
	return ""
}

func quotaRows(q *corev1.ResourceQuota) []QuotaRow {
	hard := q.Status.Hard
	if len(hard) == 0 {
		hard = q.Spec.Hard // the quota controller has not counted yet
	}
	var rows []QuotaRow
	for _, name := range sortedNames(hard) {
		h := hard[name]
		u := q.Status.Used[name]
		row := QuotaRow{Resource: string(name), Used: u.String(), Hard: h.String(), Percent: -1}
		if _, counted := q.Status.Used[name]; !counted {
			row.Used = "?"
		}
		if hf := h.AsApproximateFloat64(); hf > 0 {
			row.Percent = min(100, int(100*u.AsApproximateFloat64()/hf+0.5))
		}
		rows = append(rows, row)
	}
	return rows
}

func queueRows(q *schedulingv1beta1.Queue) []QueueRow {
	names := map[corev1.ResourceName]bool{}
	for _, l := range []corev1.ResourceList{q.Status.Allocated, q.Spec.Capability, q.Spec.Guarantee.Resource} {
		for n := range l {
			names[n] = true
		}
	}
	var rows []QueueRow
	for _, n := range slices.Sorted(maps.Keys(names)) {
		rows = append(rows, QueueRow{Resource: string(n), Allocated: get(q.Status.Allocated, n),
			Capability: get(q.Spec.Capability, n), Guarantee: get(q.Spec.Guarantee.Resource, n)})
	}
	return rows
}

func sortedNames(l corev1.ResourceList) []corev1.ResourceName {
	names := make([]corev1.ResourceName, 0, len(l))
	for n := range l {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b corev1.ResourceName) int { return strings.Compare(string(a), string(b)) })
	return names
}

// platformGPUResource is the GPU resource the platform declares, or the default.
func platformGPUResource(p *schema.Platform) string {
	if p != nil && p.Spec.GPU.Resource != "" {
		return p.Spec.GPU.Resource
	}
	return schema.DefaultGPUResource
}
