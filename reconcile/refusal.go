package reconcile

import (
	"errors"
	"fmt"

	ssaerrors "github.com/fluxcd/pkg/ssa/errors"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// This file says why an object was not applied as rendered: the API server refused it,
// its namespace is missing, or a diff's credentials may not dry-run it.

// readOnlyReason marks entries a diff judged without a dry run.
const readOnlyReason = "compared with the inventory: these credentials may not dry-run"

// readOnlyDiff judges an object a diff may not dry-run, as with read-only credentials in
// CI: by the digest the inventory recorded when raas last applied it. It says whether the
// object would change, not how, and cannot see drift.
func readOnlyDiff(e Entry, had bool, old objectEntry, digest string, exists bool) Entry {
	switch {
	case !exists && !had:
		e.Action = Created
	case had && old.Digest == digest:
		e.Action = Unchanged
	default:
		e.Action = Configured
	}
	e.Reason = readOnlyReason
	return e
}

// applyFailed reports an object the API server refused. A platform object whose namespace
// does not exist is skipped: the Volcano scheduler's ConfigMap goes into volcano-system,
// which Volcano's own install creates and owns. raas does not create it, since Volcano's
// Helm release would then refuse to adopt the namespace's ConfigMap.
func applyFailed(e Entry, err error, failed func(string) outcome) outcome {
	if ns, ok := missingNamespace(err); ok && e.Tenant == "" {
		return skipMissingNamespace(e, ns, failed)
	}
	return failed(errorReason(err))
}

// skipMissingNamespace skips a platform object whose namespace does not exist. Its
// inventory record stays as for a failure (recorded, not known applied), so that a pass
// in which nothing changed writes no inventory.
func skipMissingNamespace(e Entry, ns string, failed func(string) outcome) outcome {
	out := failed("")
	out.entry = e
	out.entry.Action = Skipped
	out.entry.Reason = fmt.Sprintf("namespace %s does not exist: install Volcano first; raas does not create namespaces it does not own", ns)
	return out
}

// missingNamespace reports whether err says that the object's namespace does not exist.
func missingNamespace(err error) (string, bool) {
	var status apierrors.APIStatus
	if !errors.As(err, &status) || !apierrors.IsNotFound(err) {
		return "", false
	}
	d := status.Status().Details
	if d == nil || d.Kind != "namespaces" {
		return "", false
	}
	return d.Name, true
}

// errorReason is err without the object name ssa prefixes: the entry names it already.
func errorReason(err error) string {
	var dry *ssaerrors.DryRunErr
	if errors.As(err, &dry) {
		if ssaerrors.IsImmutableError(err) {
			return "an immutable field changed; raas does not recreate objects: delete it by hand to let the next pass create it: " + errors.Unwrap(dry).Error()
		}
		if inner := errors.Unwrap(dry); inner != nil {
			return "dry run: " + inner.Error()
		}
	}
	return err.Error()
}
