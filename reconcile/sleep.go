package reconcile

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// An expired sandbox sleeps: render scales its vcluster to zero and keeps its data; the
// pass leaves its virtual objects as last applied, and stops the pods the vcluster had
// synced to the host.

// vclusterMarker labels the host pods a vcluster synced.
const vclusterMarker = "vcluster.loft.sh/managed-by"

// sleepWorkloads deletes the pods a vcluster synced into namespace. Their controllers run
// inside the vcluster, which is scaled to zero, so they do not come back until it wakes;
// volumes are untouched.
func (r *Reconciler) sleepWorkloads(ctx context.Context, namespace string) error {
	var pods corev1.PodList
	sel, err := labels.Parse(vclusterMarker)
	if err != nil {
		return err
	}
	if err := r.host.List(ctx, &pods, client.InNamespace(namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return fmt.Errorf("asleep: list synced pods: %w", err)
	}
	for i := range pods.Items {
		if err := r.host.Delete(ctx, &pods.Items[i]); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("asleep: stop pod %s: %w", pods.Items[i].Name, err)
		}
	}
	return nil
}

// asleepHealth is the health of an expired sandbox: Asleep, unless putting it to sleep
// failed.
func asleepHealth(entries []Entry, sleepErr error) (Health, string) {
	for _, e := range entries {
		if e.Action == Failed {
			return HealthFailed, fmt.Sprintf("%s %s: %s", e.Target, e.Ref, e.Reason)
		}
	}
	if sleepErr != nil {
		return HealthFailed, sleepErr.Error()
	}
	return HealthAsleep, "the sandbox has expired: its vcluster is scaled to zero and its data kept; remove its file"
}
