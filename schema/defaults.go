package schema

import (
	"reflect"
	"slices"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Built-in defaults, used where neither the tenant nor the platform says otherwise.
const (
	DefaultNamespacePrefix  = "tenant-"
	DefaultGPUResource      = "nvidia.com/gpu"
	DefaultCatalogDir       = "catalog"
	DefaultPodSecurity      = "baseline"
	DefaultSchedulerPlugin  = "capacity"
	DefaultWeight           = int32(1)
	DefaultBinpackGPUWeight = int32(10)
	DefaultVolcanoVersion   = "1.12.1"
	DefaultHostKubernetes   = "v1.33.0"
	DefaultHostServiceCIDR  = "10.96.0.0/12"
	DefaultSystemNamespace  = "raas-system"
	DefaultKubeconfigKey    = "kubeconfig"
)

// DefaultVClusterStorage is the size of a virtual control plane's data volume.
var DefaultVClusterStorage = resource.MustParse("5Gi")

// Default fills in what the platform config leaves out.
func (p *Platform) Default() {
	s := &p.Spec
	s.NamespacePrefix = or(s.NamespacePrefix, DefaultNamespacePrefix)
	s.HostKubernetes = or(s.HostKubernetes, DefaultHostKubernetes)
	s.HostServiceCIDR = or(s.HostServiceCIDR, DefaultHostServiceCIDR)
	s.GPU.Resource = or(s.GPU.Resource, DefaultGPUResource)
	s.Catalog.Dir = or(s.Catalog.Dir, DefaultCatalogDir)
	s.Scheduler.Plugin = or(s.Scheduler.Plugin, DefaultSchedulerPlugin)
	s.Scheduler.VolcanoVersion = or(s.Scheduler.VolcanoVersion, DefaultVolcanoVersion)
	if s.Network.AllowFrom == nil {
		s.Network.AllowFrom = []string{DefaultSystemNamespace}
	}
	s.Scheduler.Reclaim = orPtr(s.Scheduler.Reclaim, true)
	s.Scheduler.BinpackGPUWeight = orPtr(s.Scheduler.BinpackGPUWeight, DefaultBinpackGPUWeight)
	for i := range s.GPU.Pools {
		pool := &s.GPU.Pools[i]
		pool.NodeGroup = or(pool.NodeGroup, pool.Name)
	}
	for i := range s.Clusters {
		if kc := s.Clusters[i].Kubeconfig; kc != nil {
			kc.Key = or(kc.Key, DefaultKubeconfigKey)
		}
	}
	d := &s.Defaults
	d.PodSecurity = or(d.PodSecurity, DefaultPodSecurity)
	d.VCluster.Version = or(d.VCluster.Version, first(s.Versions.VCluster))
	d.VCluster.Kubernetes = or(d.VCluster.Kubernetes, first(s.Versions.Kubernetes))
	d.VCluster.Storage = orPtr(d.VCluster.Storage, DefaultVClusterStorage)
	d.VCluster.RetainData = orPtr(d.VCluster.RetainData, true)
	d.KubeRay.Version = or(d.KubeRay.Version, first(s.Versions.KubeRay))
	d.Scheduling.Weight = orPtr(d.Scheduling.Weight, DefaultWeight)
	d.Scheduling.Priority = orPtr(d.Scheduling.Priority, 0)
	d.Scheduling.Reclaimable = orPtr(d.Scheduling.Reclaimable, true)
	d.Scheduling.Gang.Enabled = orPtr(d.Scheduling.Gang.Enabled, true)
}

// Default fills in what the tenant leaves out from the platform's defaults. The platform
// must have been defaulted first.
func (t *Tenant) Default(p *Platform) {
	d := &p.Spec.Defaults
	s := &t.Spec
	s.PodSecurity = or(s.PodSecurity, d.PodSecurity)
	s.VCluster.Version = or(s.VCluster.Version, d.VCluster.Version)
	s.VCluster.Kubernetes = or(s.VCluster.Kubernetes, d.VCluster.Kubernetes)
	s.VCluster.Storage = orPtr(s.VCluster.Storage, *d.VCluster.Storage)
	s.VCluster.RetainData = orPtr(s.VCluster.RetainData, *d.VCluster.RetainData)
	s.KubeRay.Version = or(s.KubeRay.Version, d.KubeRay.Version)
	if s.KubeRay.Args == nil {
		s.KubeRay.Args = slices.Clone(d.KubeRay.Args)
	}
	fillFrom(reflect.ValueOf(&s.Ray).Elem(), reflect.ValueOf(d.Ray))
	sc := &s.Scheduling
	sc.Weight = orPtr(sc.Weight, *d.Scheduling.Weight)
	sc.Priority = orPtr(sc.Priority, *d.Scheduling.Priority)
	sc.Reclaimable = orPtr(sc.Reclaimable, *d.Scheduling.Reclaimable)
	sc.Gang.Enabled = orPtr(sc.Gang.Enabled, *d.Scheduling.Gang.Enabled)
	if sc.Parent == "" {
		sc.Parent = d.Scheduling.Parent
	}
	if len(sc.GPU.Pools) == 0 && len(sc.GPU.Products) == 0 {
		sc.GPU.Pools = d.Scheduling.GPU.Pools
		sc.GPU.Products = d.Scheduling.GPU.Products
	}
	if sc.GPU.MaxPerJob == nil && d.Scheduling.GPU.MaxPerJob != nil {
		sc.GPU.MaxPerJob = ptr(*d.Scheduling.GPU.MaxPerJob)
	}
	if s.Quota.GPU == nil {
		s.Quota.GPU = ptr(resource.MustParse("0"))
	}
	if sc.GPU.MaxPerJob == nil {
		sc.GPU.MaxPerJob = ptr(s.Quota.GPU.Value())
	}
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func first(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

func orPtr[T any](v *T, def T) *T {
	if v == nil {
		return &def
	}
	return v
}

func ptr[T any](v T) *T { return &v }
