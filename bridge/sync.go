package bridge

import (
	"context"
	"fmt"
	"slices"
	"strings"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	schedulingv1beta1 "volcano.sh/apis/pkg/apis/scheduling/v1beta1"
)

// sync converges the host name name: the PodGroups of that name in every virtual
// namespace, and the host PodGroup of that name in the host namespace.
//
//   - Of the virtual PodGroups, one is mirrored: the one the host copy already mirrors
//     (same UID), otherwise the oldest, then the first by namespace. The others are
//     refused and reported.
//   - A host PodGroup of that name that the bridge did not make is left alone, and the
//     virtual PodGroups are refused.
//   - A host copy that mirrors no live virtual PodGroup is deleted, and the name is
//     synced again once the deletion is seen.
//   - The host copy's status is copied into the mirrored virtual PodGroup.
func (b *Bridge) sync(ctx context.Context, name string) error {
	candidates, err := b.candidates(name)
	if err != nil {
		return err
	}
	host, err := b.hostLister.Get(name)
	switch {
	case apierrors.IsNotFound(err):
		host = nil
	case err != nil:
		return fmt.Errorf("podgroup %s/%s: %w", b.opts.HostNamespace, name, err)
	}
	if host != nil && !b.owns(host) {
		// The host informer sees every PodGroup of the namespace, so that a name taken
		// by a PodGroup raas does not manage is known without asking the API server.
		b.setMirrored(name, "")
		b.refuseAll(name, candidates, ReasonNameTaken, fmt.Sprintf(
			"PodGroup %s is not mirrored to the host: host namespace %s already holds a PodGroup of that name "+
				"that raas does not manage, and the tenant's pods would join it", name, b.opts.HostNamespace), host)
		return nil
	}
	if host != nil && host.DeletionTimestamp != nil {
		return errWait
	}

	var winner *schedulingv1beta1.PodGroup
	if host != nil {
		uid := host.Annotations[AnnotationSourceUID]
		for _, c := range candidates {
			if string(c.UID) == uid {
				winner = c
			}
		}
		if winner == nil {
			// An orphan, or the copy of a PodGroup that was deleted and created again:
			// its status belongs to another gang. The deletion event syncs the name again.
			b.setMirrored(name, "")
			if err := b.deleteHost(ctx, host); err != nil {
				return err
			}
			if len(candidates) == 0 {
				b.setRefused(name, nil, nil)
			}
			return nil
		}
	}
	if len(candidates) == 0 {
		b.setMirrored(name, "")
		b.setRefused(name, nil, nil)
		return nil
	}
	if winner == nil {
		winner = candidates[0] // sorted oldest first
	}

	var refusals []Refusal
	for _, c := range candidates {
		if c != winner {
			refusals = append(refusals, Refusal{
				Namespace: c.Namespace, Name: c.Name, Reason: ReasonNameCollision,
				Message: fmt.Sprintf("PodGroup %s/%s is not mirrored to the host: host namespace %s already holds "+
					"%s for %s/%s, and host pods match PodGroups by name; rename the RayCluster or RayJob",
					c.Namespace, c.Name, b.opts.HostNamespace, name, winner.Namespace, winner.Name),
			})
		}
	}

	want := b.hostCopy(winner)
	if host == nil || !upToDate(host, want) {
		applied, err := b.applyHost(ctx, want, host)
		if err != nil {
			if denied(err) {
				refusals = append(refusals, Refusal{
					Namespace: winner.Namespace, Name: winner.Name, Reason: ReasonHostDenied,
					Message: fmt.Sprintf("PodGroup %s/%s is not mirrored to the host: %v", winner.Namespace, winner.Name, err),
				})
				b.setRefused(name, refusals, host)
				if host == nil {
					b.setMirrored(name, "")
				}
				return nil // retried on the next resync or change
			}
			return err
		}
		host = applied
	}
	b.setRefused(name, refusals, host)
	b.setMirrored(name, winner.Namespace+"/"+winner.Name)

	if !apiequality.Semantic.DeepEqual(winner.Status, host.Status) {
		if err := b.applyStatus(ctx, winner, host.Status); err != nil {
			return err
		}
	}
	return nil
}

// candidates returns the live virtual PodGroups named name, oldest first, then by
// namespace.
func (b *Bridge) candidates(name string) ([]*schedulingv1beta1.PodGroup, error) {
	objs, err := b.virtualInformer.GetIndexer().ByIndex(byName, name)
	if err != nil {
		return nil, fmt.Errorf("podgroup %s: %w", name, err)
	}
	var list []*schedulingv1beta1.PodGroup
	for _, obj := range objs {
		if pg, ok := obj.(*schedulingv1beta1.PodGroup); ok && pg.DeletionTimestamp == nil {
			list = append(list, pg)
		}
	}
	slices.SortFunc(list, func(x, y *schedulingv1beta1.PodGroup) int {
		if c := x.CreationTimestamp.Compare(y.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(x.Namespace, y.Namespace)
	})
	return list, nil
}

// owns reports whether pg is a copy this bridge made.
func (b *Bridge) owns(pg *schedulingv1beta1.PodGroup) bool {
	return b.selector.Matches(labels.Set(pg.Labels))
}

// denied reports whether the host refused a write for a reason that a retry does not fix:
// an admission policy or validation. A change of the PodGroup or the next resync retries.
func denied(err error) bool {
	return apierrors.IsForbidden(err) || apierrors.IsInvalid(err) || apierrors.IsBadRequest(err)
}
