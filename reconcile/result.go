package reconcile

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/raas-dev/raas/render"
)

// Action is what a pass did, or what a diff says a pass would do, to one object.
type Action string

const (
	// Created objects did not exist.
	Created Action = "created"
	// Configured objects existed and were changed because what raas renders changed.
	Configured Action = "configured"
	// Drifted objects were changed back: raas renders them as it did on the last pass,
	// but the live object had been edited or deleted by hand.
	Drifted Action = "drifted"
	// Unchanged objects already matched, and nothing was written.
	Unchanged Action = "unchanged"
	// Deleted objects were pruned: applied before, no longer rendered.
	Deleted Action = "deleted"
	// Retained objects were kept on purpose although their tenant was removed: the
	// namespace that holds the vcluster's data volumes.
	Retained Action = "retained"
	// Skipped objects were left alone; the entry's Reason says why.
	Skipped Action = "skipped"
	// Failed objects could not be applied or deleted; the entry's Reason says why.
	Failed Action = "failed"
)

// Writes reports whether the action changes the cluster.
func (a Action) Writes() bool {
	switch a {
	case Created, Configured, Drifted, Deleted, Retained:
		return true
	}
	return false
}

// Ref identifies an object by group, kind, namespace and name. The version is not part of
// an object's identity: the same object can be read at any served version.
type Ref struct {
	Group     string `json:"group,omitempty"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

func refOf(u *unstructured.Unstructured) Ref {
	gvk := u.GroupVersionKind()
	return Ref{Group: gvk.Group, Kind: gvk.Kind, Namespace: u.GetNamespace(), Name: u.GetName()}
}

// GroupKind returns the object's group and kind.
func (r Ref) GroupKind() schema.GroupKind { return schema.GroupKind{Group: r.Group, Kind: r.Kind} }

// String names the object as Kind namespace/name, with the group for non-core kinds:
// "StatefulSet.apps tenant-a/a", "Namespace tenant-a".
func (r Ref) String() string {
	kind := r.Kind
	if r.Group != "" {
		kind += "." + r.Group
	}
	if r.Namespace == "" {
		return kind + " " + r.Name
	}
	return kind + " " + r.Namespace + "/" + r.Name
}

// Entry is one object's line in a Result.
type Entry struct {
	// Cluster is the host cluster of a fleet the entry is for (raas.yaml's
	// spec.clusters); empty when the platform declares none.
	Cluster string
	// Tenant owns the object; empty for the platform-wide objects.
	Tenant string
	// Target is the cluster the object lives in: the host or the tenant's vcluster.
	Target render.Target
	Ref
	// APIVersion is the version the object was applied at.
	APIVersion string
	Action     Action
	// Reason explains a skipped, failed, drifted or retained object.
	Reason string
	// Diff is a unified diff of the live object against what raas renders, YAML with
	// managed fields, status and server-set metadata stripped and Secret values masked.
	// Diff sets it for configured and drifted host objects; Apply for drifted ones.
	Diff string
}

func (e Entry) String() string {
	scope := e.Tenant
	if scope == "" {
		scope = "platform"
	}
	s := fmt.Sprintf("%s %s %s %s", scope, e.Target, e.Ref, e.Action)
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// Health sums up a tenant's state after a pass.
type Health string

const (
	// HealthReady: the host objects are applied, the vcluster's StatefulSet is ready and the
	// KubeRay operator inside it is available.
	HealthReady Health = "Ready"
	// HealthProgressing: on its way, for example waiting for the vcluster to come up.
	// The next pass may well make it Ready.
	HealthProgressing Health = "Progressing"
	// HealthFailed: something needs a person, for example an object the API server
	// rejects or a tenant file that does not validate.
	HealthFailed Health = "Failed"
	// HealthRemoved: the tenant's file is gone and its objects were pruned.
	HealthRemoved Health = "Removed"
	// HealthAsleep: an expired sandbox, its vcluster scaled to zero and its data kept.
	HealthAsleep Health = "Asleep"
)

// Settled reports whether the tenant is where the repository wants it, so that another
// pass would not change that: Ready, Removed or Asleep.
func (h Health) Settled() bool {
	return h == HealthReady || h == HealthRemoved || h == HealthAsleep
}

// Change says what a pass did, or would do, to a tenant as a whole.
type Change string

const (
	TenantAdded     Change = "added"
	TenantChanged   Change = "changed"
	TenantRemoved   Change = "removed"
	TenantUnchanged Change = "unchanged"
)

// TenantResult is one tenant's outcome of a pass.
type TenantResult struct {
	Name string
	// Cluster is the host cluster the tenant is placed on, when the platform declares
	// clusters; MovingFrom the cluster it still runs on until it is Ready on Cluster.
	Cluster, MovingFrom string
	// File is the tenant's file in the repository, or the file it was last applied from.
	File string
	// Namespace is the tenant's namespace on the host, and Queue its Volcano queue.
	Namespace, Queue string
	Change           Change
	Health           Health
	// Reason explains any health but Ready.
	Reason string
	// Stalled is set when the tenant's file does not validate or render: its objects stay
	// as last applied, and only a new revision of the file can change that, not a retry.
	// Its health is Failed.
	Stalled bool
	// Gang is set when the tenant's Ray clusters are gang-scheduled: the PodGroups made
	// inside its vcluster are bridged to Volcano on the host.
	Gang bool
	// Before is the quota the tenant had when last applied (from its inventory), After
	// the quota it has now. Either is nil when the tenant did not exist then.
	Before, After *Quota
}

// Result is the outcome of one pass, or of a diff: one entry per object, platform first,
// then each tenant in name order, host objects before virtual ones. The same value feeds
// the logs, the CLI, the PR comment and the tests.
type Result struct {
	// Revision is the revision of the tenants repository the pass applied.
	Revision string
	// DryRun is set on the result of Diff: nothing was written.
	DryRun  bool
	Entries []Entry
	Tenants []TenantResult
	// PruneBlocked says why nothing was pruned, when nothing could be.
	PruneBlocked string
	// Errors are problems with the pass as a whole, such as a refused mass delete. Object
	// failures are entries; they are not repeated here.
	Errors []error
	// Deprecated maps each deprecated profile the checkout still pins to its tenants.
	Deprecated map[string][]string
	// Rebuilt are the inventories that were deleted or damaged by hand and that the pass
	// rebuilt from the live objects' labels.
	Rebuilt []Rebuilt
	// Clusters are the host clusters of a fleet the result covers, in the order the
	// platform declares them; empty for one host.
	Clusters []string
	// HeldBack is why the newest revision is not the one applied (Input.FetchErr): it
	// could not be fetched, or its head commit is not signed by a trusted key. Nil when
	// Revision is the newest.
	HeldBack error
}

// Changed reports whether the pass wrote, or the diff would write, anything.
func (r *Result) Changed() bool {
	for _, e := range r.Entries {
		if e.Action.Writes() {
			return true
		}
	}
	return false
}

// Failed reports whether any object failed or the pass had errors.
func (r *Result) Failed() bool {
	if len(r.Errors) > 0 {
		return true
	}
	for _, e := range r.Entries {
		if e.Action == Failed {
			return true
		}
	}
	return false
}

// Over returns the view of every tenant after a pass limited by Input.Only: r's tenants
// and platform entries, and prev's other tenants as prev reported them, except those
// prev reported removed. The tenants stay sorted by name. prev may be nil.
func (r *Result) Over(prev *Result) *Result {
	if prev == nil {
		return r
	}
	view := *r
	view.Tenants = slices.Clone(r.Tenants)
	view.Entries = slices.Clone(r.Entries)
	reported := map[string]bool{"": true}
	for _, t := range r.Tenants {
		reported[t.Name] = true
	}
	carried := map[string]bool{}
	for _, t := range prev.Tenants {
		if !reported[t.Name] && t.Health != HealthRemoved {
			view.Tenants = append(view.Tenants, t)
			carried[t.Name] = true
		}
	}
	for _, e := range prev.Entries {
		if carried[e.Tenant] {
			view.Entries = append(view.Entries, e)
		}
	}
	slices.SortStableFunc(view.Tenants, func(a, b TenantResult) int { return strings.Compare(a.Name, b.Name) })
	slices.SortStableFunc(view.Entries, func(a, b Entry) int { return strings.Compare(a.Tenant, b.Tenant) })
	return &view
}

// Tenant returns the status of the tenant called name, or nil.
func (r *Result) Tenant(name string) *TenantResult {
	for i := range r.Tenants {
		if r.Tenants[i].Name == name {
			return &r.Tenants[i]
		}
	}
	return nil
}

// Select returns the entries of tenant ("" for the platform) at target ("" for both).
func (r *Result) Select(tenant string, target render.Target) []Entry {
	var out []Entry
	for _, e := range r.Entries {
		if e.Tenant == tenant && (target == "" || e.Target == target) {
			out = append(out, e)
		}
	}
	return out
}

// Count returns how many entries have each action.
func (r *Result) Count() map[Action]int {
	n := map[Action]int{}
	for _, e := range r.Entries {
		n[e.Action]++
	}
	return n
}

// Summary is one line for logs: "12 created, 3 unchanged, 1 deleted".
func (r *Result) Summary() string {
	n := r.Count()
	var parts []string
	for _, a := range []Action{Created, Configured, Drifted, Deleted, Retained, Unchanged, Skipped, Failed} {
		if n[a] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n[a], a))
		}
	}
	if len(parts) == 0 {
		return "no objects"
	}
	return strings.Join(parts, ", ")
}

// MassDeleteError is the loud refusal to remove more tenants in one pass than
// Options.MaxDeleteShare allows, or every tenant because the checkout has none.
type MassDeleteError struct {
	// Tenants are the tenants that would have been removed.
	Tenants []string
	// Known is how many tenants the inventories list; Allowed how many may go at once.
	Known, Allowed int
	// Empty is set when the checkout has no tenant files at all.
	Empty bool
}

func (e *MassDeleteError) Error() string {
	if e.Empty {
		return fmt.Sprintf("refusing to remove all %d tenants: the checkout has no tenant files; "+
			"if that is intended, allow mass deletion (--allow-mass-delete)", len(e.Tenants))
	}
	return fmt.Sprintf("refusing to remove %d of %d tenants in one pass (%s), more than the %d allowed; "+
		"if that is intended, allow mass deletion (--allow-mass-delete)",
		len(e.Tenants), e.Known, strings.Join(e.Tenants, ", "), e.Allowed)
}

// OnCluster returns the part of a fleet's result that is about one cluster: its entries
// and the tenants placed on it.
func (r *Result) OnCluster(cluster string) *Result {
	part := *r
	part.Clusters = nil
	part.Entries = slices.DeleteFunc(slices.Clone(r.Entries), func(e Entry) bool { return e.Cluster != cluster })
	part.Tenants = slices.DeleteFunc(slices.Clone(r.Tenants), func(t TenantResult) bool { return t.Cluster != cluster })
	return &part
}
