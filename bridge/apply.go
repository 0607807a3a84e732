package bridge

import (
	"context"
	"encoding/json"
	"fmt"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	schedulingv1beta1 "volcano.sh/apis/pkg/apis/scheduling/v1beta1"
	"volcano.sh/apis/pkg/client/clientset/versioned"

	"github.com/raas-dev/raas/schema"
)

// podGroupApply is the body of a server-side apply of a PodGroup. Only the fields set are
// owned by FieldManager; every field of the spec and status types is omitempty.
type podGroupApply struct {
	APIVersion string                            `json:"apiVersion"`
	Kind       string                            `json:"kind"`
	Metadata   applyMeta                         `json:"metadata"`
	Spec       *schedulingv1beta1.PodGroupSpec   `json:"spec,omitempty"`
	Status     *schedulingv1beta1.PodGroupStatus `json:"status,omitempty"`
}

type applyMeta struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// UID makes the apply fail with a Conflict, instead of creating the object, when
	// the object is gone or was replaced.
	UID         types.UID         `json:"uid,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

func newApply(name, namespace string) *podGroupApply {
	return &podGroupApply{
		APIVersion: schedulingv1beta1.SchemeGroupVersion.String(),
		Kind:       "PodGroup",
		Metadata:   applyMeta{Name: name, Namespace: namespace},
	}
}

// hostCopy is the host copy of the virtual PodGroup pg: its whole spec with the tenant's
// queue. The tenant's labels, annotations and owner references stay inside: annotations
// steer Volcano, and the owners do not exist on the host.
func (b *Bridge) hostCopy(pg *schedulingv1beta1.PodGroup) *podGroupApply {
	a := newApply(pg.Name, b.opts.HostNamespace)
	a.Metadata.Labels = map[string]string{
		schema.LabelTenant:    b.opts.Tenant,
		schema.LabelManagedBy: schema.ManagedBy,
		LabelSourceNamespace:  pg.Namespace,
	}
	a.Metadata.Annotations = map[string]string{
		AnnotationSource:    pg.Namespace + "/" + pg.Name,
		AnnotationSourceUID: string(pg.UID),
	}
	spec := pg.Spec.DeepCopy()
	spec.Queue = b.opts.Queue
	a.Spec = spec
	return a
}

// upToDate reports whether the host copy host carries everything of want.
func upToDate(host *schedulingv1beta1.PodGroup, want *podGroupApply) bool {
	return subset(want.Metadata.Labels, host.Labels) &&
		subset(want.Metadata.Annotations, host.Annotations) &&
		apiequality.Semantic.DeepEqual(*want.Spec, host.Spec)
}

func subset(want, got map[string]string) bool {
	for k, v := range want {
		if w, ok := got[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// applyHost applies want to the host. An update names the UID of the copy it was judged
// against, so that it never lands on an object that replaced it.
func (b *Bridge) applyHost(ctx context.Context, want *podGroupApply, current *schedulingv1beta1.PodGroup) (*schedulingv1beta1.PodGroup, error) {
	body := *want
	if current != nil {
		body.Metadata.UID = current.UID
	}
	pg, err := apply(ctx, b.host, &body)
	if err != nil {
		return nil, fmt.Errorf("podgroup %s/%s: apply on host: %w", body.Metadata.Namespace, body.Metadata.Name, err)
	}
	return pg, nil
}

// applyStatus sets the status of the virtual PodGroup pg to status, and nothing else: the
// apply carries only the status, and the UID so that it never creates a PodGroup. The
// PodGroup CRD has no status subresource, so the status is written through the main
// resource, as Volcano itself does.
func (b *Bridge) applyStatus(ctx context.Context, pg *schedulingv1beta1.PodGroup, status schedulingv1beta1.PodGroupStatus) error {
	body := newApply(pg.Name, pg.Namespace)
	body.Metadata.UID = pg.UID
	body.Status = status.DeepCopy()
	if _, err := apply(ctx, b.virtual, body); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return errWait // deleted or replaced meanwhile: the event syncs the name again
		}
		return fmt.Errorf("podgroup %s/%s: status in vcluster: %w", pg.Namespace, pg.Name, err)
	}
	return nil
}

// apply applies body with FieldManager, taking over conflicting fields: the bridge owns
// what it writes.
func apply(ctx context.Context, cs versioned.Interface, body *podGroupApply) (*schedulingv1beta1.PodGroup, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	force := true
	return cs.SchedulingV1beta1().PodGroups(body.Metadata.Namespace).Patch(ctx, body.Metadata.Name, types.ApplyPatchType, data,
		metav1.PatchOptions{FieldManager: FieldManager, Force: &force})
}

// deleteHost deletes the host copy pg, unless it was replaced meanwhile.
func (b *Bridge) deleteHost(ctx context.Context, pg *schedulingv1beta1.PodGroup) error {
	uid := pg.UID
	err := b.host.SchedulingV1beta1().PodGroups(pg.Namespace).Delete(ctx, pg.Name,
		metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	switch {
	case err == nil, apierrors.IsNotFound(err):
		return nil
	case apierrors.IsConflict(err):
		return errWait
	default:
		return fmt.Errorf("podgroup %s/%s: delete on host: %w", pg.Namespace, pg.Name, err)
	}
}
