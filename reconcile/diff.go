package reconcile

import (
	"context"
	"fmt"

	"github.com/pmezard/go-difflib/difflib"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/raas-dev/raas/render"
)

// Diff says what Apply would do, without writing anything: a server-side dry run of every
// platform and host object against the live host, and the deletions the inventories call
// for, within the same safety rails. Objects inside vclusters are compared with the digests
// the inventory recorded when they were last applied, so that a CI job that can reach the
// host but no vcluster still sees them change.
//
// The dry runs need the same RBAC as the writes they simulate. Secret values never appear
// in a diff.
func (r *Reconciler) Diff(ctx context.Context, in Input) (*Result, error) {
	p, err := r.begin(ctx, in, true)
	if err != nil {
		return nil, err
	}
	return r.run(ctx, p), nil
}

// diffVirtual compares a tenant's virtual objects with its inventory.
func (r *Reconciler) diffVirtual(p *pass, tenant string, objs []*render.Object, prev map[entryKey]objectEntry) []outcome {
	outs := make([]outcome, len(objs))
	for i, o := range objs {
		ref := refOf(o.Unstructured)
		e := Entry{Tenant: tenant, Target: render.Virtual, Ref: ref, APIVersion: o.GetAPIVersion()}
		digest, err := p.digests.of(o)
		old, had := prev[entryKey{render.Virtual, ref}]
		switch {
		case err != nil:
			e.Action, e.Reason = Failed, err.Error()
		case !had || old.Digest == "":
			e.Action = Created
		case old.Digest != digest:
			e.Action, e.Reason = Configured, "differs from what was last applied (per the inventory)"
		default:
			e.Action = Unchanged
		}
		outs[i] = outcome{entry: e}
	}
	return outs
}

// Secret masks, as fluxcd/pkg/ssa writes them.
const (
	maskSame   = "***"
	maskBefore = "*** (before)"
	maskAfter  = "*** (after)"
)

// unifiedDiff returns the unified diff from live to want as YAML, without the fields the
// server sets (managed fields, resourceVersion, uid, timestamps, generation, status) and
// with Secret values masked.
func unifiedDiff(live, want *unstructured.Unstructured) (string, error) {
	a, b := clean(live), clean(want)
	if a.GetKind() == "Secret" && a.GroupVersionKind().Group == "" {
		maskSecret(a, b)
	}
	ya, err := yaml.Marshal(a.Object)
	if err != nil {
		return "", fmt.Errorf("diff: %w", err)
	}
	yb, err := yaml.Marshal(b.Object)
	if err != nil {
		return "", fmt.Errorf("diff: %w", err)
	}
	return difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A:        difflib.SplitLines(string(ya)),
		B:        difflib.SplitLines(string(yb)),
		FromFile: "live",
		ToFile:   "rendered",
		Context:  3,
	})
}

func clean(u *unstructured.Unstructured) *unstructured.Unstructured {
	c := u.DeepCopy()
	for _, f := range []string{"managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink"} {
		unstructured.RemoveNestedField(c.Object, "metadata", f)
	}
	unstructured.RemoveNestedField(c.Object, "status")
	return c
}

// maskSecret replaces the values of a Secret's data and stringData in both versions, saying
// only whether each value changed.
func maskSecret(a, b *unstructured.Unstructured) {
	for _, field := range []string{"data", "stringData"} {
		da, _, _ := unstructured.NestedMap(a.Object, field)
		db, _, _ := unstructured.NestedMap(b.Object, field)
		for k, va := range da {
			vb, ok := db[k]
			switch {
			case !ok:
				da[k] = maskSame
			case fmt.Sprint(va) == fmt.Sprint(vb):
				da[k], db[k] = maskSame, maskSame
			default:
				da[k], db[k] = maskBefore, maskAfter
			}
		}
		for k := range db {
			if _, ok := da[k]; !ok {
				db[k] = maskSame
			}
		}
		if da != nil {
			_ = unstructured.SetNestedMap(a.Object, da, field)
		}
		if db != nil {
			_ = unstructured.SetNestedMap(b.Object, db, field)
		}
	}
}
