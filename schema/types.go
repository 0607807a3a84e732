package schema

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Group and version of every raas document.
const (
	Group      = "raas.dev"
	Version    = "v1alpha1"
	APIVersion = Group + "/" + Version

	KindTenant   = "Tenant"
	KindPlatform = "Platform"
)

// ObjectMeta is the part of Kubernetes object metadata that a raas document may carry.
type ObjectMeta struct {
	// Name of the tenant or platform. Tenant names are DNS-1123 labels.
	Name string `json:"name"`
	// Labels are copied onto the tenant's host namespace.
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations are copied onto the tenant's host namespace.
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Tenant is one team's isolated Ray environment: a vcluster on the host cluster with the
// KubeRay operator inside it, and a Volcano queue on the host. One Tenant per file under
// tenants/.
type Tenant struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   ObjectMeta `json:"metadata"`
	Spec       TenantSpec `json:"spec"`

	// Source is where the tenant was read from. It is not part of the document.
	Source Source `json:"-"`
	// Asleep is set on a sandbox past its expiry date: its vcluster is scaled to zero and
	// its data kept. It is not part of the document.
	Asleep bool `json:"-"`
}

// TenantSpec is what a team asks for.
type TenantSpec struct {
	// Owners are the people to contact about this tenant, as e-mail addresses.
	Owners []string `json:"owners" jsonschema:"minItems=1"`
	// VCluster pins the virtual cluster's chart and Kubernetes version.
	VCluster VClusterSpec `json:"vcluster,omitempty"`
	// KubeRay pins the KubeRay operator installed inside the vcluster.
	KubeRay KubeRaySpec `json:"kuberay,omitempty"`
	// Quota is the hard cap on what the tenant's host namespace may consume.
	Quota Quota `json:"quota"`
	// Scheduling sets the tenant's Volcano queue and GPU policy.
	Scheduling Scheduling `json:"scheduling,omitempty"`
	// PodSecurity is the Pod Security Standard enforced on the host namespace:
	// privileged, baseline or restricted.
	PodSecurity string `json:"podSecurity,omitempty" jsonschema:"enum=privileged,enum=baseline,enum=restricted"`
	// Network controls the host NetworkPolicies.
	Network Network `json:"network,omitempty"`
	// Profile pins one of the platform's offerings as NAME@VERSION, such as standard@2.
	// The profile fills in vcluster, kuberay, scheduling and ray; the tenant may set only
	// the fields the profile lists as overridable.
	Profile string `json:"profile,omitempty"`
	// Ray limits the Ray versions and images allowed inside the vcluster.
	Ray RayPolicy `json:"ray,omitempty"`
	// Sandbox makes this tenant a short-lived copy of another, to try a change before it
	// is rolled out. It inherits the other tenant's spec, except what it sets itself.
	Sandbox *Sandbox `json:"sandbox,omitempty"`
	// Cluster names the host cluster, from the platform's spec.clusters, that the tenant
	// runs on. Without it raas places the tenant by capacity and GPU pool, and it stays
	// where it was placed. Changing it moves the tenant: it is made Ready on the new
	// cluster before it is removed from the old one. A sandbox runs on its parent's
	// cluster and may name no other.
	Cluster string `json:"cluster,omitempty"`
}

// Sandbox declares a tenant a sandbox of another.
type Sandbox struct {
	// Of names the parent tenant. Its spec is inherited, and the sandbox's quota is taken
	// out of the parent's.
	Of string `json:"of"`
	// Expires is the last day (YYYY-MM-DD, UTC) the sandbox runs. After it, the sandbox is
	// put to sleep (its data kept) and validation fails until its file is removed.
	Expires string `json:"expires"`
}

// RayPolicy limits what Ray may run inside a vcluster. Empty lists allow anything.
type RayPolicy struct {
	// Versions are the allowed rayVersion values of RayClusters, RayJobs and RayServices.
	Versions []string `json:"versions,omitempty"`
	// Images are the allowed container images: exact references, or prefixes ending in *.
	Images []string `json:"images,omitempty"`
}

// VClusterSpec pins the tenant's virtual cluster.
type VClusterSpec struct {
	// Version of the vcluster chart, for example 0.25.0.
	Version string `json:"version,omitempty"`
	// Kubernetes is the version of the virtual control plane, for example v1.32.1.
	Kubernetes string `json:"kubernetes,omitempty"`
	// Storage is the size of the virtual control plane's data volume.
	Storage *resource.Quantity `json:"storage,omitempty"`
	// RetainData keeps the data volume when the tenant is removed. Defaults to true.
	RetainData *bool `json:"retainData,omitempty"`
}

// KubeRaySpec pins the KubeRay operator inside the vcluster.
type KubeRaySpec struct {
	// Version of KubeRay, for example 1.5.0.
	Version string `json:"version,omitempty"`
	// Args are extra flags for the operator, such as --watch-namespace=ray.
	Args []string `json:"args,omitempty"`
}

// Quota is the hard cap on the tenant's host namespace. The same figures cap the tenant's
// Volcano queue. The vcluster control plane's own pods count against it.
type Quota struct {
	CPU     *resource.Quantity `json:"cpu,omitempty"`
	Memory  *resource.Quantity `json:"memory,omitempty"`
	GPU     *resource.Quantity `json:"gpu,omitempty"`
	Storage *resource.Quantity `json:"storage,omitempty"`
	Pods    *int64             `json:"pods,omitempty" jsonschema:"minimum=1"`
}

// Resources is a set of the resources raas schedules: cpu, memory and GPUs.
type Resources struct {
	CPU    *resource.Quantity `json:"cpu,omitempty"`
	Memory *resource.Quantity `json:"memory,omitempty"`
	GPU    *resource.Quantity `json:"gpu,omitempty"`
}

// Scheduling sets the tenant's share of the cluster and how its Ray pods are scheduled.
type Scheduling struct {
	// Weight is the tenant's share of idle capacity relative to other tenants.
	Weight *int32 `json:"weight,omitempty" jsonschema:"minimum=1,maximum=65535"`
	// Priority orders queues when resources are reclaimed.
	Priority *int32 `json:"priority,omitempty"`
	// Guarantee is reserved for the tenant whatever others run.
	Guarantee Resources `json:"guarantee,omitempty"`
	// Reclaimable lets other queues reclaim what the tenant uses above its share.
	Reclaimable *bool `json:"reclaimable,omitempty"`
	// Parent names a parent queue, for hierarchical queues.
	Parent string `json:"parent,omitempty"`
	// Gang turns gang scheduling of Ray clusters on or off.
	Gang Gang `json:"gang,omitempty"`
	// GPU restricts which GPUs the tenant may use.
	GPU GPUPolicy `json:"gpu,omitempty"`
}

// Gang configures gang scheduling: all pods of a Ray cluster start together or not at all.
type Gang struct {
	Enabled *bool `json:"enabled,omitempty"`
}

// GPUPolicy restricts the tenant's GPU use.
type GPUPolicy struct {
	// Pools the tenant may schedule on, by name from the platform's gpu.pools.
	Pools []string `json:"pools,omitempty"`
	// Products allows every platform pool whose product (the nodes' nvidia.com/gpu.product
	// label) is listed, in addition to Pools.
	Products []string `json:"products,omitempty"`
	// MaxPerJob caps the GPUs one PodGroup (one Ray cluster) may ask for.
	MaxPerJob *int64 `json:"maxPerJob,omitempty" jsonschema:"minimum=0"`
	// Sharing picks one of the platform's GPU sharing modes, such as mig or time-slicing.
	Sharing string `json:"sharing,omitempty"`
}

// Network controls the host NetworkPolicies.
type Network struct {
	// AllowFrom lists namespaces, by name, allowed to reach the tenant's pods, in addition
	// to the tenant's own namespace. In the platform config it applies to every tenant and
	// defaults to raas-system, where raas itself runs.
	AllowFrom []string `json:"allowFrom,omitempty"`
}

// Platform is the platform team's configuration, raas.yaml at the root of the tenants
// repository: defaults, allowed versions, chart sources, capacity and scheduler globals.
type Platform struct {
	APIVersion string       `json:"apiVersion"`
	Kind       string       `json:"kind"`
	Metadata   ObjectMeta   `json:"metadata"`
	Spec       PlatformSpec `json:"spec"`

	// Source is where the platform config was read from.
	Source Source `json:"-"`
}

// PlatformSpec holds the platform-wide settings.
type PlatformSpec struct {
	// HostKubernetes is the Kubernetes version of the host cluster, which charts are
	// rendered for (Helm's .Capabilities.KubeVersion). Defaults to v1.33.0.
	HostKubernetes string `json:"hostKubernetes,omitempty"`
	// HostServiceCIDR is the host cluster's Service CIDR (kube-apiserver's
	// --service-cluster-ip-range), which every vcluster's API server must share. raas
	// passes it to the chart (serviceCIDR): vcluster v0.25.0 otherwise detects it by
	// provoking an error whose text Kubernetes changed in v1.33, and on such hosts falls
	// back to 10.96.0.0/12 whatever the host uses. Defaults to 10.96.0.0/12, kubeadm's.
	HostServiceCIDR string `json:"hostServiceCIDR,omitempty"`
	// NamespacePrefix is prepended to a tenant's name to form its host namespace and
	// queue. Defaults to "tenant-".
	NamespacePrefix string `json:"namespacePrefix,omitempty"`
	// Versions lists what tenants may pin.
	Versions Versions `json:"versions"`
	// Defaults fill in what a tenant leaves out.
	Defaults Defaults `json:"defaults,omitempty"`
	// Capacity is what the cluster can guarantee in total. Tenant guarantees must fit.
	// With several clusters, it caps the whole fleet, and each cluster's own capacity
	// caps the tenants placed on it.
	Capacity Resources `json:"capacity,omitempty"`
	// Clusters are the host clusters of the fleet, which tenants are placed on. Without
	// them, raas drives the one cluster it runs in.
	Clusters []Cluster `json:"clusters,omitempty"`
	// GPU describes the cluster's GPU pools and sharing modes.
	GPU GPUPlatform `json:"gpu,omitempty"`
	// Catalog says where charts and kustomize bases come from.
	Catalog Catalog `json:"catalog,omitempty"`
	// Scheduler holds the Volcano scheduler globals.
	Scheduler SchedulerConfig `json:"scheduler,omitempty"`
	// Network holds the NetworkPolicy settings every tenant gets.
	Network Network `json:"network,omitempty"`
	// Profiles are the platform's versioned offerings.
	Profiles []Profile `json:"profiles,omitempty"`
}

// Cluster is one host cluster of the fleet.
type Cluster struct {
	// Name of the cluster, a DNS label such as eu-1. Tenants name it in spec.cluster.
	Name string `json:"name"`
	// Kubeconfig is the Secret, in raas's namespace on the cluster raas runs in, holding a
	// kubeconfig for this cluster. Without it, the cluster is the one raas runs in; at
	// most one cluster may leave it out.
	Kubeconfig *SecretKeyRef `json:"kubeconfig,omitempty"`
	// Capacity is what this cluster can guarantee in total; the guarantees of the tenants
	// placed on it must fit.
	Capacity Resources `json:"capacity,omitempty"`
	// Pools are the platform's GPU pools (by name, from spec.gpu.pools) that this
	// cluster's nodes form. A pool may span several clusters.
	Pools []string `json:"pools,omitempty"`
}

// SecretKeyRef names a key of a Secret.
type SecretKeyRef struct {
	// Name of the Secret.
	Name string `json:"name"`
	// Key in the Secret's data. Defaults to kubeconfig.
	Key string `json:"key,omitempty"`
}

// Versions lists the versions tenants may pin.
type Versions struct {
	VCluster   []string `json:"vcluster"`
	Kubernetes []string `json:"kubernetes"`
	KubeRay    []string `json:"kuberay"`
}

// Defaults fill in what a tenant leaves out.
type Defaults struct {
	VCluster    VClusterSpec `json:"vcluster,omitempty"`
	KubeRay     KubeRaySpec  `json:"kuberay,omitempty"`
	PodSecurity string       `json:"podSecurity,omitempty" jsonschema:"enum=privileged,enum=baseline,enum=restricted"`
	Scheduling  Scheduling   `json:"scheduling,omitempty"`
	// Container sets the LimitRange defaults for containers that name no resources.
	Container ContainerDefaults `json:"container,omitempty"`
	// Ray is the Ray policy of tenants that set none.
	Ray RayPolicy `json:"ray,omitempty"`
}

// Profile is a named, versioned offering: a supported combination of vcluster,
// Kubernetes, KubeRay and Ray, with scheduler defaults. Several versions of a profile can
// be live at once; old ones are deprecated, then removed.
type Profile struct {
	Name string `json:"name"`
	// Version is a whole number; tenants pin NAME@VERSION.
	Version int `json:"version"`
	// Description says what the offering is for.
	Description string `json:"description,omitempty"`
	// Deprecated versions still work, but validate, diff and the PR summary warn and list
	// the tenants that use them.
	Deprecated bool `json:"deprecated,omitempty"`
	// Removed versions are kept in the list only so that validation can name the tenants
	// that still pin them.
	Removed    bool         `json:"removed,omitempty"`
	VCluster   VClusterSpec `json:"vcluster,omitempty"`
	KubeRay    KubeRaySpec  `json:"kuberay,omitempty"`
	Scheduling Scheduling   `json:"scheduling,omitempty"`
	Ray        RayPolicy    `json:"ray,omitempty"`
	// Overridable lists the tenant fields, under spec, that tenants of this profile may
	// set themselves, such as scheduling.weight or kuberay.version. A listed field allows
	// everything below it.
	Overridable []string `json:"overridable,omitempty"`
}

// Ref is how tenants pin the profile: NAME@VERSION.
func (p *Profile) Ref() string { return fmt.Sprintf("%s@%d", p.Name, p.Version) }

// ContainerDefaults are the LimitRange defaults of a tenant namespace.
type ContainerDefaults struct {
	Request Resources `json:"request,omitempty"`
	Limit   Resources `json:"limit,omitempty"`
}

// GPUPlatform describes the cluster's GPUs.
type GPUPlatform struct {
	// Resource is the extended resource name of a whole GPU. Defaults to nvidia.com/gpu.
	Resource string `json:"resource,omitempty"`
	// Pools are groups of GPU nodes, labelled volcano.sh/nodegroup-name=<nodeGroup>.
	Pools []GPUPool `json:"pools,omitempty"`
	// Sharing lists the GPU sharing modes tenants may pick.
	Sharing []GPUSharing `json:"sharing,omitempty"`
	// CPUPodsOnPools lets a tenant's pods that request no GPU (Ray heads, CPU workers) run
	// on the tenant's own GPU pools too. By default they run only on the scheduler's
	// sharedNodeGroups or, when none are declared, on nodes of no GPU pool.
	CPUPodsOnPools bool `json:"cpuPodsOnPools,omitempty"`
}

// GPUPool is a group of GPU nodes.
type GPUPool struct {
	Name string `json:"name"`
	// NodeGroup is the value of the nodes' volcano.sh/nodegroup-name label. Defaults to Name.
	NodeGroup string `json:"nodeGroup,omitempty"`
	// Product is the nodes' nvidia.com/gpu.product label, for information and policy.
	Product string `json:"product,omitempty"`
	// Taint marks a dedicated pool: its nodes carry this taint, and only tenants allowed
	// on the pool get the matching toleration.
	Taint *Taint `json:"taint,omitempty"`
	// GPUs is the number of GPUs in the pool.
	GPUs *int64 `json:"gpus,omitempty" jsonschema:"minimum=0"`
}

// Taint is a node taint that marks a dedicated pool.
type Taint struct {
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`
	Effect string `json:"effect" jsonschema:"enum=NoSchedule,enum=PreferNoSchedule,enum=NoExecute"`
}

// GPUSharing is a way of sharing physical GPUs, with the resource names it exposes.
type GPUSharing struct {
	// Name of the mode, such as mig or time-slicing.
	Name string `json:"name"`
	// Resources are the extended resource names the mode exposes, such as
	// nvidia.com/mig-1g.10gb or nvidia.com/gpu.shared.
	Resources []string `json:"resources"`
}

// Catalog says where charts and kustomize bases are found, in order: a directory in the
// tenants repository, the local catalog (`make catalog`), then, for the vcluster chart, a
// chart repository or OCI registry with an on-disk cache.
type Catalog struct {
	// Dir is a catalog directory inside the tenants repository. Defaults to catalog.
	Dir string `json:"dir,omitempty"`
	// VClusterChart is the chart repository (https:// or oci://) of the vcluster chart.
	VClusterChart string `json:"vclusterChart,omitempty"`
}

// SchedulerConfig holds the Volcano scheduler globals.
type SchedulerConfig struct {
	// VolcanoVersion is the Volcano release on the host. Its PodGroup CRD is installed in
	// every vcluster. Defaults to 1.12.1.
	VolcanoVersion string `json:"volcanoVersion,omitempty"`
	// Plugin is the queue-sharing plugin: capacity or proportion. Defaults to capacity.
	Plugin string `json:"plugin,omitempty" jsonschema:"enum=capacity,enum=proportion"`
	// Hierarchy enables hierarchical queues (capacity plugin only).
	Hierarchy bool `json:"hierarchy,omitempty"`
	// Preempt lets higher-priority jobs in a queue preempt lower-priority ones.
	Preempt bool `json:"preempt,omitempty"`
	// Reclaim lets queues reclaim resources lent to others above their share.
	Reclaim *bool `json:"reclaim,omitempty"`
	// BinpackGPUWeight weighs nvidia.com/gpu in the binpack plugin. Defaults to 10.
	BinpackGPUWeight *int32 `json:"binpackGPUWeight,omitempty" jsonschema:"minimum=1,maximum=100"`
	// SharedNodeGroups are node groups (volcano.sh/nodegroup-name values) where every
	// tenant's pods that request no GPU run, such as the CPU nodes for Ray heads. raas
	// confines each pod by node affinity: GPU pods to the tenant's pools, other pods to
	// these groups.
	SharedNodeGroups []string `json:"sharedNodeGroups,omitempty"`
	// Queues are parent queues for hierarchical queues, such as an organisation above
	// several teams. A tenant joins one with spec.scheduling.parent. Needs Hierarchy.
	Queues []ParentQueue `json:"queues,omitempty"`
	// ExtraPlugins are further Volcano scheduler plugins, appended to the second tier.
	ExtraPlugins []string `json:"extraPlugins,omitempty"`
}

// ParentQueue is a Volcano queue above tenant queues.
type ParentQueue struct {
	// Name of the queue, used as is (no namespace prefix).
	Name string `json:"name"`
	// Parent is another of the platform's parent queues; empty means Volcano's root.
	Parent string `json:"parent,omitempty"`
	// Weight is the queue's share relative to its siblings. Defaults to 1.
	Weight *int32 `json:"weight,omitempty" jsonschema:"minimum=1,maximum=65535"`
	// Capability caps everything below the queue.
	Capability Resources `json:"capability,omitempty"`
	// Guarantee is reserved for everything below the queue.
	Guarantee Resources `json:"guarantee,omitempty"`
}

// Source is the place a document came from, for error messages and inventories.
type Source struct {
	// File is the path relative to the tenants repository root, with forward slashes.
	File string

	pos positions
}
