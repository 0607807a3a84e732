package schema

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
)

// sandboxDate is the layout of Sandbox.Expires.
const sandboxDate = "2006-01-02"

// inheritFrom gives a sandbox every top-level spec field it does not set itself from its
// parent's spec as written (before profile expansion and defaults). The guarantee is not
// inherited, nor is the GPU cap per job: a sandbox reserves nothing and may use its whole
// quota in one job unless it says otherwise. It returns the paths of the
// values inherited, which count as the sandbox's own when its profile is checked.
func (t *Tenant) inheritFrom(parent *Tenant) []string {
	own := reflect.ValueOf(&t.Spec).Elem()
	theirs := reflect.ValueOf(parent.Spec)
	var took []string
	for name, idx := range jsonFields(own.Type()) {
		if _, set := t.Source.pos.values["spec."+name]; set || name == "sandbox" || name == "quota" {
			continue
		}
		own.Field(idx).Set(deepCopy(theirs.Field(idx)))
		took = append(took, "spec."+name)
	}
	// Guarantees and per-job caps are sized for the parent's quota, not the sandbox's.
	if _, set := t.Source.pos.values["spec.scheduling.guarantee"]; !set {
		t.Spec.Scheduling.Guarantee = Resources{}
	}
	if _, set := t.Source.pos.values["spec.scheduling.gpu.maxPerJob"]; !set {
		t.Spec.Scheduling.GPU.MaxPerJob = nil
	}
	var inherited []string
	for _, path := range parent.Source.pos.leaves() {
		for _, top := range took {
			if path == top || strings.HasPrefix(path, top+".") || strings.HasPrefix(path, top+"[") {
				inherited = append(inherited, path)
			}
		}
	}
	return inherited
}

// checkSandbox checks a sandbox against its parent and the time now: the parent must be
// a valid tenant that is not itself a sandbox, the sandbox may name no other cluster than
// the parent's, and the date must parse. It marks a sandbox past its expiry asleep and
// returns the expiry problem separately.
func (t *Tenant) checkSandbox(parent *Tenant, parentOK bool, now time.Time) (problems Problems, expired *Problem) {
	c := &checker{file: t.Source.File, pos: t.Source.pos}
	sb := t.Spec.Sandbox
	switch {
	case parent == nil:
		c.errorf("spec.sandbox.of", "tenant %q does not exist", sb.Of)
	case parent.Spec.Sandbox != nil:
		c.errorf("spec.sandbox.of", "%q is itself a sandbox; a sandbox's parent must be a regular tenant", sb.Of)
	case !parentOK:
		c.errorf("spec.sandbox.of", "tenant %q does not validate, so its sandbox cannot inherit from it", sb.Of)
	}
	// Its quota comes out of its parent's, so a sandbox runs on its parent's cluster: it
	// inherits the parent's spec.cluster, and may repeat it but name no other.
	if _, set := t.Source.pos.values["spec.cluster"]; set && parent != nil && t.Spec.Cluster != parent.Spec.Cluster {
		if parent.Spec.Cluster == "" {
			c.errorf("spec.cluster", "a sandbox runs on its parent's cluster, and %s names none (raas places it); leave spec.cluster out", sb.Of)
		} else {
			c.errorf("spec.cluster", "a sandbox runs on its parent's cluster; %s runs on %q, not %q", sb.Of, parent.Spec.Cluster, t.Spec.Cluster)
		}
	}
	if _, set := t.Source.pos.values["spec.quota.cpu"]; !set {
		c.errorf("spec.quota", "a sandbox must state its own, small, quota; it is taken out of %s's", sb.Of)
	}
	day, err := time.Parse(sandboxDate, sb.Expires)
	if err != nil {
		c.errorf("spec.sandbox.expires", "%q is not a date such as 2026-12-31", sb.Expires)
		return c.problems, nil
	}
	if !now.UTC().Before(day.Add(24 * time.Hour)) { // the whole of the last day runs
		t.Asleep = true
		c.errorf("spec.sandbox.expires", "sandbox %s expired on %s: its vcluster is asleep and its data kept; remove %s",
			t.Metadata.Name, sb.Expires, t.Source.File)
		expired = c.problems[len(c.problems)-1]
		c.problems = c.problems[:len(c.problems)-1]
	}
	return c.problems, expired
}

// takeQuota takes the sandboxes' quota out of their parent's, so that the parent's
// ResourceQuota and queue shrink by what its sandboxes use. When they ask for more than
// the parent has, it changes nothing and says what is short.
func takeQuota(parent *Tenant, sandboxes []*Tenant) string {
	q := parent.Spec.Quota
	left := Quota{}
	for _, r := range []struct {
		name string
		have *resource.Quantity
		out  **resource.Quantity
		get  func(*Tenant) *resource.Quantity
	}{
		{"cpu", q.CPU, &left.CPU, func(t *Tenant) *resource.Quantity { return t.Spec.Quota.CPU }},
		{"memory", q.Memory, &left.Memory, func(t *Tenant) *resource.Quantity { return t.Spec.Quota.Memory }},
		{"gpu", q.GPU, &left.GPU, func(t *Tenant) *resource.Quantity { return t.Spec.Quota.GPU }},
		{"storage", q.Storage, &left.Storage, func(t *Tenant) *resource.Quantity { return t.Spec.Quota.Storage }},
	} {
		if r.have == nil {
			continue
		}
		rest := r.have.DeepCopy()
		for _, sb := range sandboxes {
			if want := r.get(sb); want != nil {
				rest.Sub(*want)
			}
		}
		if rest.Sign() < 0 {
			return fmt.Sprintf("the sandboxes of %s ask for more %s than its %s", parent.Metadata.Name, r.name, r.have)
		}
		*r.out = &rest
	}
	if q.Pods != nil {
		rest := *q.Pods
		for _, sb := range sandboxes {
			if sb.Spec.Quota.Pods != nil {
				rest -= *sb.Spec.Quota.Pods
			}
		}
		if rest < 1 {
			return fmt.Sprintf("the sandboxes of %s ask for more pods than its %d", parent.Metadata.Name, *q.Pods)
		}
		left.Pods = &rest
	}
	g := parent.Spec.Scheduling.Guarantee
	for _, r := range []struct {
		name        string
		want, limit *resource.Quantity
	}{{"cpu", g.CPU, left.CPU}, {"memory", g.Memory, left.Memory}, {"gpu", g.GPU, left.GPU}} {
		if r.want != nil && r.limit != nil && r.want.Cmp(*r.limit) > 0 {
			return fmt.Sprintf("the sandboxes of %s leave it %s %s, less than its guarantee of %s",
				parent.Metadata.Name, r.limit, r.name, r.want)
		}
	}
	parent.Spec.Quota = left
	// A job cannot use GPUs the parent no longer has.
	if max := parent.Spec.Scheduling.GPU.MaxPerJob; max != nil && left.GPU != nil && *max > left.GPU.Value() {
		parent.Spec.Scheduling.GPU.MaxPerJob = ptr(left.GPU.Value())
	}
	return ""
}

func (s *Sandbox) String() string { return fmt.Sprintf("sandbox of %s until %s", s.Of, s.Expires) }
