package reconcile

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/schema"
)

// Residents are the tenants a host cluster holds, for placing tenants on a fleet.
type Residents struct {
	// Inventoried tenants have an inventory here: raas applied them here and has not
	// removed them.
	Inventoried map[string]bool
	// Namespaced tenants have a namespace of raas's here, such as the namespace a removed
	// tenant left with its vcluster's data volume.
	Namespaced map[string]bool
}

// Residents lists, as metadata, the tenants whose inventory or namespace is on the host.
func (r *Reconciler) Residents(ctx context.Context) (Residents, error) {
	res := Residents{Inventoried: map[string]bool{}, Namespaced: map[string]bool{}}
	var cms metav1.PartialObjectMetadataList
	cms.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMapList"))
	if err := r.host.List(ctx, &cms, client.InNamespace(r.opts.InventoryNamespace), client.HasLabels{LabelInventory}); err != nil {
		return res, fmt.Errorf("inventories in %s: %w", r.opts.InventoryNamespace, err)
	}
	for _, m := range cms.Items {
		if tenant, ok := strings.CutPrefix(m.Name, tenantInventoryPfx); ok {
			res.Inventoried[tenant] = true
		}
	}
	var nss metav1.PartialObjectMetadataList
	nss.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("NamespaceList"))
	if err := r.host.List(ctx, &nss, client.MatchingLabels{schema.LabelManagedBy: schema.ManagedBy}, client.HasLabels{schema.LabelTenant}); err != nil {
		return res, fmt.Errorf("tenant namespaces: %w", err)
	}
	for _, m := range nss.Items {
		res.Namespaced[m.Labels[schema.LabelTenant]] = true
	}
	return res, nil
}
