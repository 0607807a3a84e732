package reconcile

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/raas-dev/raas/render"
	"github.com/raas-dev/raas/schema"
)

// The inventory records, per tenant and in the host cluster, every object raas applied for
// that tenant on both levels, so that a later pass can prune what is no longer rendered and
// a diff can show changes inside vclusters it cannot reach.
//
// Each tenant's inventory is the ConfigMap "tenant.<name>" in Options.InventoryNamespace
// (raas-system), and the platform's is "platform" (a tenant name is a DNS label, so it
// never contains a dot and never collides). They live in raas's own namespace, not in the
// tenant's: the tenant namespace is itself in the inventory and may be deleted, and an
// inventory must outlive what it lists. The ConfigMap holds one YAML document under the
// key inventory.yaml.
const (
	inventoryKey       = "inventory.yaml"
	inventoryKind      = "Inventory"
	platformInventory  = "platform"
	tenantInventoryPfx = "tenant."
	inventoryTenant    = "tenant"
	inventoryPlatform  = "platform"
)

// inventory is what raas applied for one tenant, or for the platform.
type inventory struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Tenant is empty for the platform.
	Tenant   string `json:"tenant,omitempty"`
	File     string `json:"file,omitempty"`
	Revision string `json:"revision,omitempty"`
	// RetainData is the tenant's vcluster.retainData when it was last applied: whether
	// removing the tenant keeps the namespace with the vcluster's data volumes.
	RetainData bool          `json:"retainData,omitempty"`
	Quota      *Quota        `json:"quota,omitempty"`
	Objects    []objectEntry `json:"objects"`

	// resourceVersion of the ConfigMap, for optimistic concurrency; empty when new.
	resourceVersion string
	// damaged says why the stored ConfigMap could not be read; the inventory is then
	// rebuilt from the live objects.
	damaged string
}

// objectEntry is one object in an inventory.
type objectEntry struct {
	Target     render.Target `json:"target"`
	APIVersion string        `json:"apiVersion"`
	Ref
	// Digest is the sha256 of the rendered object as last applied. Empty when raas tried
	// to apply the object but does not know whether it succeeded.
	Digest string `json:"digest,omitempty"`
	// ResourceVersion is the live object's resourceVersion right after raas wrote or
	// checked it. While the live object keeps it and the rendered object keeps Digest,
	// the object is unchanged.
	ResourceVersion string `json:"resourceVersion,omitempty"`
}

type entryKey struct {
	Target render.Target
	Ref
}

func (e objectEntry) key() entryKey { return entryKey{e.Target, e.Ref} }

func inventoryName(tenant string) string {
	if tenant == "" {
		return platformInventory
	}
	return tenantInventoryPfx + tenant
}

// byKey indexes the objects of inv; nil inventories have none.
func (inv *inventory) byKey() map[entryKey]objectEntry {
	m := map[entryKey]objectEntry{}
	if inv == nil {
		return m
	}
	for _, e := range inv.Objects {
		m[e.key()] = e
	}
	return m
}

func (inv *inventory) encode() ([]byte, error) {
	inv.APIVersion = schema.APIVersion
	inv.Kind = inventoryKind
	return yaml.Marshal(inv)
}

// sameAs reports whether inv and other would be stored as the same bytes. It compares
// their JSON, which the stored YAML is converted from (sigs.k8s.io/yaml.Marshal), without
// the conversion, the larger part of the cost: equal JSON gives equal YAML, and different
// JSON different YAML.
func (inv *inventory) sameAs(other *inventory) bool {
	if inv == nil || other == nil {
		return inv == other
	}
	a, errA := inv.encodeJSON()
	b, errB := other.encodeJSON()
	return errA == nil && errB == nil && bytes.Equal(a, b)
}

// encodeJSON is the JSON that encode converts to YAML.
func (inv *inventory) encodeJSON() ([]byte, error) {
	inv.APIVersion = schema.APIVersion
	inv.Kind = inventoryKind
	return json.Marshal(inv)
}

// needsWrite reports whether inv must be stored over old: when anything in it but the
// recorded resourceVersions differs, or when the pass wrote objects (whose new
// resourceVersions the next pass needs). A pass that wrote nothing writes no inventory
// either, even when objects' resourceVersions moved (a controller updated their status):
// those objects are compared by dry run until the next write records their new version.
func (inv *inventory) needsWrite(old *inventory, wrote bool) bool {
	if old == nil || wrote {
		return old == nil || !inv.sameAs(old)
	}
	a, b := *inv, *old
	a.Objects, b.Objects = withoutVersions(inv.Objects), withoutVersions(old.Objects)
	a.Revision = b.Revision
	return !a.sameAs(&b)
}

func withoutVersions(objs []objectEntry) []objectEntry {
	out := make([]objectEntry, len(objs))
	for i, o := range objs {
		o.ResourceVersion = ""
		out[i] = o
	}
	return out
}

// inventories are every inventory in the host cluster, read at the start of a pass.
type inventories struct {
	platform *inventory
	tenants  map[string]*inventory
}

// names returns the tenants that have an inventory, sorted.
func (invs *inventories) names() []string {
	names := make([]string, 0, len(invs.tenants))
	for name := range invs.tenants {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// loadInventories lists the inventory ConfigMaps in one request. A missing namespace
// simply has none.
func (r *Reconciler) loadInventories(ctx context.Context) (*inventories, error) {
	// The list is of metadata: an inventory is read in full only when its version is not
	// the one decoded last (at 1,000 tenants a full list was megabytes every pass).
	var list metav1.PartialObjectMetadataList
	list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMapList"))
	err := r.host.List(ctx, &list, client.InNamespace(r.opts.InventoryNamespace),
		client.HasLabels{LabelInventory})
	if err != nil {
		return nil, fmt.Errorf("inventories in %s: %w", r.opts.InventoryNamespace, err)
	}
	invs := &inventories{tenants: map[string]*inventory{}}
	for i := range list.Items {
		m := &list.Items[i]
		var tenant string
		switch {
		case m.Name == platformInventory:
		case strings.HasPrefix(m.Name, tenantInventoryPfx):
			tenant = strings.TrimPrefix(m.Name, tenantInventoryPfx)
		default:
			continue
		}
		inv, rv, parseErr, err := r.decoded.get(m.Name, m.ResourceVersion, func() (string, string, error) {
			var cm corev1.ConfigMap
			if err := r.host.Get(ctx, client.ObjectKey{Namespace: m.Namespace, Name: m.Name}, &cm); err != nil {
				return "", "", err
			}
			return cm.ResourceVersion, cm.Data[inventoryKey], nil
		})
		if apierrors.IsNotFound(err) {
			continue // deleted since the list: as if the list had not seen it
		}
		if err != nil {
			return nil, fmt.Errorf("inventory %s/%s: %w", m.Namespace, m.Name, err)
		}
		switch {
		case parseErr != nil:
			*inv = inventory{damaged: fmt.Sprintf("it does not parse (%v)", parseErr)}
		case inv.Kind != inventoryKind || inv.APIVersion != schema.APIVersion:
			*inv = inventory{damaged: fmt.Sprintf("it holds %s %s, not %s %s", inv.APIVersion, inv.Kind, schema.APIVersion, inventoryKind)}
		case inv.Tenant != tenant:
			*inv = inventory{damaged: fmt.Sprintf("it records tenant %q", inv.Tenant)}
		}
		inv.Tenant = tenant
		inv.resourceVersion = rv
		if tenant == "" {
			invs.platform = inv
		} else {
			invs.tenants[tenant] = inv
		}
	}
	return invs, nil
}

// Rebuilt is an inventory that raas rebuilt from the live objects' labels because it was
// deleted or damaged by hand: Tenant is empty for the platform's.
type Rebuilt struct {
	Tenant string
	// Reason says what was wrong with the stored inventory.
	Reason string
	// Objects counts the live objects found and now tracked again.
	Objects int
}

func (rb Rebuilt) String() string {
	who := "the platform"
	if rb.Tenant != "" {
		who = "tenant " + rb.Tenant
	}
	return fmt.Sprintf("the inventory of %s was %s: rebuilt from %d live object(s) labelled %s=%s", who, rb.Reason, rb.Objects, schema.LabelManagedBy, schema.ManagedBy)
}

// rebuildInventories replaces the inventories that were deleted or damaged by hand with
// ones rebuilt from the live host objects, so that what they listed is neither orphaned
// nor deleted by mistake. A tenant's objects are those labelled raas.dev/tenant=<name>
// in its namespace under the current namespacePrefix, or cluster-scoped and named after
// that namespace (its Queue and admission bindings); the platform's are raas's objects
// with no tenant label outside the inventory namespace. Retained namespaces stay
// forgotten. A missing inventory counts as lost only when others exist in the inventory
// namespace: with none at all this is raas's first pass here, and nothing is rebuilt.
// Objects inside vclusters are found once the vcluster answers (rebuildVirtual).
func (r *Reconciler) rebuildInventories(p *pass) {
	invs := p.invs
	anyStored := invs.platform != nil || len(invs.tenants) > 0
	if !anyStored || p.platform == nil {
		return
	}
	tenantObjs := map[string][]objectEntry{}
	var platformObjs []objectEntry
	for ref, o := range p.hostIdx.owners {
		// What is being deleted (a pruned tenant's namespace, and what is left in it) was
		// raas's and is going: no inventory needs it back.
		nsDeleting := p.hostIdx.owners[Ref{Kind: "Namespace", Name: ref.Namespace}].deleting
		if o.retained || o.deleting || nsDeleting || ref.Namespace == r.opts.InventoryNamespace ||
			(ref.Group == "" && ref.Kind == "Namespace" && ref.Name == r.opts.InventoryNamespace) {
			continue
		}
		e := objectEntry{Target: render.Host, APIVersion: o.apiVersion, Ref: ref}
		if o.tenant == "" {
			platformObjs = append(platformObjs, e)
			continue
		}
		ns := p.platform.Namespace(o.tenant)
		if ref.Namespace == ns || (ref.Namespace == "" && (ref.Name == ns || strings.HasSuffix(ref.Name, "."+ns))) {
			tenantObjs[o.tenant] = append(tenantObjs[o.tenant], e)
		}
	}
	rebuild := func(tenant string, old *inventory, objs []objectEntry) *inventory {
		reason := "deleted"
		if old != nil {
			reason = "damaged: " + old.damaged
		}
		slices.SortFunc(objs, func(a, b objectEntry) int { return strings.Compare(a.Ref.String(), b.Ref.String()) })
		inv := &inventory{Tenant: tenant, Objects: objs, RetainData: true, damaged: reason}
		if old != nil {
			inv.resourceVersion = old.resourceVersion
		}
		p.rebuilt = append(p.rebuilt, Rebuilt{Tenant: tenant, Reason: reason, Objects: len(objs)})
		return inv
	}
	if old := invs.platform; old == nil || old.damaged != "" {
		invs.platform = rebuild("", old, platformObjs)
	}
	for _, name := range slices.Sorted(maps.Keys(tenantObjs)) {
		if old := invs.tenants[name]; old == nil || old.damaged != "" {
			invs.tenants[name] = rebuild(name, old, tenantObjs[name])
		}
	}
	for name, old := range invs.tenants {
		if old.damaged != "" && tenantObjs[name] == nil {
			invs.tenants[name] = rebuild(name, old, nil)
		}
	}
	slices.SortFunc(p.rebuilt, func(a, b Rebuilt) int { return strings.Compare(a.Tenant, b.Tenant) })
}

// rebuildVirtual adds to a rebuilt tenant inventory the objects raas manages inside the
// tenant's vcluster, as the vcluster's live index lists them, and returns how many.
func rebuildVirtual(inv *inventory, idx *liveIndex) int {
	if inv == nil || inv.damaged == "" || idx == nil {
		return 0
	}
	have := inv.byKey()
	var objs []objectEntry
	for ref, o := range idx.owners {
		e := objectEntry{Target: render.Virtual, APIVersion: o.apiVersion, Ref: ref}
		if _, ok := have[e.key()]; !ok {
			objs = append(objs, e)
		}
	}
	slices.SortFunc(objs, func(a, b objectEntry) int { return strings.Compare(a.Ref.String(), b.Ref.String()) })
	inv.Objects = append(inv.Objects, objs...)
	return len(objs)
}

// maxInventoryBytes is what an inventory may take: a ConfigMap holds at most 1 MiB, and
// its metadata needs some of it.
var maxInventoryBytes = 1<<20 - 16<<10

// checkSize fails when inv, with a digest and a resourceVersion for each object, would not
// fit in its ConfigMap.
func (r *Reconciler) checkSize(inv *inventory) error {
	full := *inv
	full.Objects = make([]objectEntry, len(inv.Objects))
	for i, o := range inv.Objects {
		o.Digest = strings.Repeat("0", 64)
		o.ResourceVersion = strings.Repeat("0", 20)
		full.Objects[i] = o
	}
	size, err := r.sizes.of(&full)
	if err != nil {
		return err
	}
	if size > maxInventoryBytes {
		return fmt.Errorf("inventory %s: %d objects take %d bytes, more than the %d a ConfigMap holds; nothing applied: split the tenant's objects or lower their number",
			inventoryName(inv.Tenant), len(inv.Objects), size, maxInventoryBytes)
	}
	return nil
}

// storeInventory writes inv, creating the inventory namespace if needed. It refuses to
// overwrite a newer inventory than the one read (another raas wrote it meanwhile).
func (r *Reconciler) storeInventory(ctx context.Context, inv *inventory) error {
	data, err := inv.encode()
	if err != nil {
		return fmt.Errorf("inventory %s: %w", inventoryName(inv.Tenant), err)
	}
	kind := inventoryTenant
	if inv.Tenant == "" {
		kind = inventoryPlatform
	}
	labels := map[string]string{LabelInventory: kind, schema.LabelManagedBy: schema.ManagedBy}
	if inv.Tenant != "" {
		labels[schema.LabelTenant] = inv.Tenant
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name:            inventoryName(inv.Tenant),
			Namespace:       r.opts.InventoryNamespace,
			Labels:          labels,
			ResourceVersion: inv.resourceVersion,
		},
		Data: map[string]string{inventoryKey: string(data)},
	}
	if inv.resourceVersion != "" {
		err = r.host.Update(ctx, cm, client.FieldOwner(r.opts.FieldManager))
	} else {
		err = r.host.Create(ctx, cm, client.FieldOwner(r.opts.FieldManager))
		if apierrors.IsNotFound(err) {
			if err = r.ensureInventoryNamespace(ctx); err == nil {
				err = r.host.Create(ctx, cm, client.FieldOwner(r.opts.FieldManager))
			}
		}
	}
	if err != nil {
		return fmt.Errorf("inventory %s/%s: %w", cm.Namespace, cm.Name, err)
	}
	inv.resourceVersion = cm.ResourceVersion
	r.hostWatching().wrote(Ref{Kind: "ConfigMap", Namespace: cm.Namespace, Name: cm.Name}, cm.ResourceVersion)
	return nil
}

// deleteInventory removes the inventory of a tenant whose objects are all gone.
func (r *Reconciler) deleteInventory(ctx context.Context, inv *inventory) error {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		Name:      inventoryName(inv.Tenant),
		Namespace: r.opts.InventoryNamespace,
	}}
	r.hostWatching().wrote(Ref{Kind: "ConfigMap", Namespace: cm.Namespace, Name: cm.Name}, "")
	err := r.host.Delete(ctx, cm, client.Preconditions{ResourceVersion: &inv.resourceVersion})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("inventory %s/%s: %w", cm.Namespace, cm.Name, err)
	}
	return nil
}

func (r *Reconciler) ensureInventoryNamespace(ctx context.Context) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   r.opts.InventoryNamespace,
		Labels: map[string]string{schema.LabelManagedBy: schema.ManagedBy},
	}}
	if err := r.host.Create(ctx, ns, client.FieldOwner(r.opts.FieldManager)); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("namespace %s: %w", ns.Name, err)
	}
	return nil
}
