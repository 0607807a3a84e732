package schema

// Names a tenant's objects take on the host. They are derived here, once, so that the
// renderer, the scheduler config and the reconciler agree.

// Labels raas sets on everything it renders.
const (
	LabelTenant    = "raas.dev/tenant"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "raas"
)

// MaxTenantName is the longest tenant name raas accepts, before the namespace prefix is
// counted. The vcluster release is named after the tenant, and a StatefulSet name must
// leave room for the 11-character controller-revision-hash suffix in a 63-character label.
const MaxTenantName = 52

// Namespace is the host namespace of tenant name.
func (p *Platform) Namespace(name string) string { return p.Spec.NamespacePrefix + name }

// Queue is the Volcano queue of tenant name.
func (p *Platform) Queue(name string) string { return p.Spec.NamespacePrefix + name }

// Release is the vcluster release name of tenant name.
func Release(name string) string { return name }

// KubeconfigSecret is the Secret in which vcluster exports the kubeconfig of release.
func KubeconfigSecret(release string) string { return "vc-" + release }

// MaxNameLength is the longest tenant name that still yields valid host names under this
// platform's namespace prefix.
func (p *Platform) MaxNameLength() int {
	return min(MaxTenantName, 63-len(p.Spec.NamespacePrefix))
}
