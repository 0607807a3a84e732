package schema

import (
	"fmt"
	"net/mail"
	"net/netip"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	utilversion "k8s.io/apimachinery/pkg/util/version"

	"github.com/raas-dev/raas/internal/volcano"
)

// checker collects problems for one document, pinned to its fields' positions.
type checker struct {
	file     string
	pos      positions
	problems Problems
}

func (c *checker) errorf(field, format string, args ...any) {
	c.add(SeverityError, field, format, args...)
}

func (c *checker) add(sev Severity, field, format string, args ...any) {
	p := &Problem{File: c.file, Field: field, Message: fmt.Sprintf(format, args...), Severity: sev}
	if n := c.pos.at(field); n != nil {
		p.Line, p.Col = n.Line, n.Column
	}
	c.problems = append(c.problems, p)
}

func (c *checker) header(apiVersion, kind, wantKind string) {
	if apiVersion != APIVersion {
		c.errorf("apiVersion", "must be %s, got %q", APIVersion, apiVersion)
	}
	if kind != wantKind {
		c.errorf("kind", "must be %s, got %q", wantKind, kind)
	}
}

func (c *checker) dnsLabel(field, value string, maxLen int) {
	if value == "" {
		c.errorf(field, "is required")
		return
	}
	for _, msg := range validation.IsDNS1123Label(value) {
		c.errorf(field, "%q is not a valid name: %s", value, msg)
	}
	if len(value) > maxLen {
		c.errorf(field, "%q is %d characters long; at most %d are allowed", value, len(value), maxLen)
	}
}

func (c *checker) metadata(m ObjectMeta) {
	for k, v := range sortedMap(m.Labels) {
		for _, msg := range validation.IsQualifiedName(k) {
			c.errorf("metadata.labels["+k+"]", "invalid label key: %s", msg)
		}
		for _, msg := range validation.IsValidLabelValue(v) {
			c.errorf("metadata.labels["+k+"]", "invalid label value: %s", msg)
		}
	}
	for k := range sortedMap(m.Annotations) {
		for _, msg := range validation.IsQualifiedName(k) {
			c.errorf("metadata.annotations["+k+"]", "invalid annotation key: %s", msg)
		}
	}
}

func (c *checker) oneOf(field, value string, allowed []string) {
	if !slices.Contains(allowed, value) {
		c.errorf(field, "%q is not allowed; allowed: %s", value, strings.Join(allowed, ", "))
	}
}

func (c *checker) nonNegative(field string, q *resource.Quantity) {
	if q != nil && q.Sign() < 0 {
		c.errorf(field, "must not be negative, got %s", q)
	}
}

func (c *checker) wholeNumber(field string, q *resource.Quantity) {
	if q != nil && q.MilliValue()%1000 != 0 {
		c.errorf(field, "must be a whole number of GPUs, got %s", q)
	}
}

func (c *checker) atMost(field string, q, limit *resource.Quantity, limitField string) {
	if q != nil && limit != nil && q.Cmp(*limit) > 0 {
		c.errorf(field, "%s is more than %s (%s)", q, limitField, limit)
	}
}

var (
	podSecurityLevels = []string{"privileged", "baseline", "restricted"}
	taintEffects      = []string{"NoSchedule", "PreferNoSchedule", "NoExecute"}
	schedulerPlugins  = []string{"capacity", "proportion"}
)

// Validate checks the platform config on its own. It must have been defaulted.
func (p *Platform) Validate() Problems {
	c := &checker{file: p.Source.File, pos: p.Source.pos}
	c.header(p.APIVersion, p.Kind, KindPlatform)
	s := &p.Spec
	if s.NamespacePrefix != "" {
		prefix := strings.TrimSuffix(s.NamespacePrefix, "-")
		if errs := validation.IsDNS1123Label(prefix); len(errs) > 0 || len(s.NamespacePrefix) > 20 {
			c.errorf("spec.namespacePrefix", "%q must be a lowercase DNS label of at most 20 characters", s.NamespacePrefix)
		}
	}
	if _, err := utilversion.ParseSemantic(s.HostKubernetes); err != nil {
		c.errorf("spec.hostKubernetes", "%q is not a Kubernetes version such as v1.33.0", s.HostKubernetes)
	}
	if cidr, err := netip.ParsePrefix(s.HostServiceCIDR); err != nil || cidr.Masked() != cidr {
		c.errorf("spec.hostServiceCIDR", "%q is not a network in CIDR notation such as 10.96.0.0/12", s.HostServiceCIDR)
	}
	versionList(c, "spec.versions.vcluster", s.Versions.VCluster)
	versionList(c, "spec.versions.kubernetes", s.Versions.Kubernetes)
	versionList(c, "spec.versions.kuberay", s.Versions.KubeRay)
	c.oneOf("spec.defaults.podSecurity", s.Defaults.PodSecurity, podSecurityLevels)
	for _, q := range []struct {
		field string
		q     *resource.Quantity
	}{
		{"spec.capacity.cpu", s.Capacity.CPU},
		{"spec.capacity.memory", s.Capacity.Memory},
		{"spec.capacity.gpu", s.Capacity.GPU},
	} {
		c.nonNegative(q.field, q.q)
	}
	c.wholeNumber("spec.capacity.gpu", s.Capacity.GPU)
	seen := map[string]bool{}
	for i, pool := range s.GPU.Pools {
		f := fmt.Sprintf("spec.gpu.pools[%d]", i)
		c.dnsLabel(f+".name", pool.Name, 63)
		if seen[pool.Name] {
			c.errorf(f+".name", "pool %q is declared twice", pool.Name)
		}
		seen[pool.Name] = true
		for _, msg := range validation.IsValidLabelValue(pool.NodeGroup) {
			c.errorf(f+".nodeGroup", "invalid node group: %s", msg)
		}
		if pool.Taint != nil {
			for _, msg := range validation.IsQualifiedName(pool.Taint.Key) {
				c.errorf(f+".taint.key", "invalid taint key: %s", msg)
			}
			for _, msg := range validation.IsValidLabelValue(pool.Taint.Value) {
				c.errorf(f+".taint.value", "invalid taint value: %s", msg)
			}
			c.oneOf(f+".taint.effect", pool.Taint.Effect, taintEffects)
		}
		if pool.GPUs != nil && *pool.GPUs < 0 {
			c.errorf(f+".gpus", "must not be negative")
		}
	}
	for i, sh := range s.GPU.Sharing {
		f := fmt.Sprintf("spec.gpu.sharing[%d]", i)
		c.dnsLabel(f+".name", sh.Name, 63)
		if len(sh.Resources) == 0 {
			c.errorf(f+".resources", "name at least one extended resource")
		}
		for j, r := range sh.Resources {
			for _, msg := range validation.IsQualifiedName(r) {
				c.errorf(fmt.Sprintf("%s.resources[%d]", f, j), "invalid resource name: %s", msg)
			}
		}
	}
	c.oneOf("spec.scheduler.plugin", s.Scheduler.Plugin, schedulerPlugins)
	if s.Scheduler.Hierarchy && s.Scheduler.Plugin != "capacity" {
		c.errorf("spec.scheduler.hierarchy", "hierarchical queues need the capacity plugin, not %s", s.Scheduler.Plugin)
	}
	if w := *s.Scheduler.BinpackGPUWeight; w < 1 || w > 100 {
		c.errorf("spec.scheduler.binpackGPUWeight", "must be between 1 and 100, got %d", w)
	}
	validateClusters(c, p)
	validateNodeGroups(c, p)
	validateExtraPlugins(c, p)
	validateParentQueues(c, p)
	validateProfiles(c, p)
	checkRayPolicy(c, "spec.defaults.ray", s.Defaults.Ray)
	checkArgs(c, "spec.defaults.kuberay.args", s.Defaults.KubeRay.Args)
	// The defaults must themselves be allowed, or every tenant that relies on them fails.
	c.oneOf("spec.defaults.vcluster.version", s.Defaults.VCluster.Version, s.Versions.VCluster)
	c.oneOf("spec.defaults.vcluster.kubernetes", s.Defaults.VCluster.Kubernetes, s.Versions.Kubernetes)
	c.oneOf("spec.defaults.kuberay.version", s.Defaults.KubeRay.Version, s.Versions.KubeRay)
	return c.problems
}

func versionList(c *checker, field string, versions []string) {
	if len(versions) == 0 {
		c.errorf(field, "list at least one version")
	}
	for i, v := range versions {
		if _, err := utilversion.ParseSemantic(v); err != nil {
			c.errorf(fmt.Sprintf("%s[%d]", field, i), "%q is not a semantic version", v)
		}
	}
}

// Validate checks one tenant against the platform. Both must have been defaulted.
func (t *Tenant) Validate(p *Platform) Problems {
	c := &checker{file: t.Source.File, pos: t.Source.pos}
	c.header(t.APIVersion, t.Kind, KindTenant)
	c.dnsLabel("metadata.name", t.Metadata.Name, p.MaxNameLength())
	c.metadata(t.Metadata)
	s := &t.Spec
	if len(s.Owners) == 0 {
		c.errorf("spec.owners", "name at least one owner")
	}
	for i, o := range s.Owners {
		if a, err := mail.ParseAddress(o); err != nil || a.Address != o {
			c.errorf(fmt.Sprintf("spec.owners[%d]", i), "%q is not an e-mail address", o)
		}
	}
	v := &p.Spec.Versions
	c.oneOf("spec.vcluster.version", s.VCluster.Version, v.VCluster)
	c.oneOf("spec.vcluster.kubernetes", s.VCluster.Kubernetes, v.Kubernetes)
	c.oneOf("spec.kuberay.version", s.KubeRay.Version, v.KubeRay)
	c.oneOf("spec.podSecurity", s.PodSecurity, podSecurityLevels)
	if s.VCluster.Storage != nil && s.VCluster.Storage.Sign() <= 0 {
		c.errorf("spec.vcluster.storage", "must be positive, got %s", s.VCluster.Storage)
	}

	q := &s.Quota
	if q.CPU == nil {
		c.errorf("spec.quota.cpu", "is required")
	}
	if q.Memory == nil {
		c.errorf("spec.quota.memory", "is required")
	}
	c.nonNegative("spec.quota.cpu", q.CPU)
	c.nonNegative("spec.quota.memory", q.Memory)
	c.nonNegative("spec.quota.gpu", q.GPU)
	c.nonNegative("spec.quota.storage", q.Storage)
	c.wholeNumber("spec.quota.gpu", q.GPU)
	if q.Pods != nil && *q.Pods < 1 {
		c.errorf("spec.quota.pods", "must be at least 1, got %d", *q.Pods)
	}

	sc := &s.Scheduling
	if *sc.Weight < 1 || *sc.Weight > 65535 {
		c.errorf("spec.scheduling.weight", "must be between 1 and 65535, got %d", *sc.Weight)
	}
	g := &sc.Guarantee
	c.nonNegative("spec.scheduling.guarantee.cpu", g.CPU)
	c.nonNegative("spec.scheduling.guarantee.memory", g.Memory)
	c.nonNegative("spec.scheduling.guarantee.gpu", g.GPU)
	c.wholeNumber("spec.scheduling.guarantee.gpu", g.GPU)
	c.atMost("spec.scheduling.guarantee.cpu", g.CPU, q.CPU, "spec.quota.cpu")
	c.atMost("spec.scheduling.guarantee.memory", g.Memory, q.Memory, "spec.quota.memory")
	c.atMost("spec.scheduling.guarantee.gpu", g.GPU, q.GPU, "spec.quota.gpu")
	if sc.Parent != "" {
		if !p.Spec.Scheduler.Hierarchy {
			c.errorf("spec.scheduling.parent", "hierarchical queues are off; set spec.scheduler.hierarchy in raas.yaml")
		} else {
			c.oneOf("spec.scheduling.parent", sc.Parent, p.parentQueueNames())
		}
	}

	gpu := &sc.GPU
	pools := p.PoolNames()
	for i, name := range gpu.Pools {
		c.oneOf(fmt.Sprintf("spec.scheduling.gpu.pools[%d]", i), name, pools)
	}
	if gpu.MaxPerJob != nil {
		switch {
		case *gpu.MaxPerJob < 0:
			c.errorf("spec.scheduling.gpu.maxPerJob", "must not be negative, got %d", *gpu.MaxPerJob)
		case q.GPU != nil && *gpu.MaxPerJob > q.GPU.Value():
			c.errorf("spec.scheduling.gpu.maxPerJob", "%d is more than spec.quota.gpu (%s)", *gpu.MaxPerJob, q.GPU)
		}
	}
	if gpu.Sharing != "" {
		var modes []string
		for _, sh := range p.Spec.GPU.Sharing {
			modes = append(modes, sh.Name)
		}
		if len(modes) == 0 {
			c.errorf("spec.scheduling.gpu.sharing", "the platform declares no GPU sharing modes")
		} else {
			c.oneOf("spec.scheduling.gpu.sharing", gpu.Sharing, modes)
		}
	}
	for i, product := range gpu.Products {
		c.oneOf(fmt.Sprintf("spec.scheduling.gpu.products[%d]", i), product, p.products())
	}
	if q.GPU != nil && q.GPU.Sign() > 0 && len(gpu.Pools) == 0 && len(gpu.Products) == 0 && len(pools) > 0 {
		c.errorf("spec.scheduling.gpu.pools", "a tenant with GPUs must name the pools or products it may use; pools: %s", strings.Join(pools, ", "))
	}
	checkArgs(c, "spec.kuberay.args", s.KubeRay.Args)
	checkRayPolicy(c, "spec.ray", s.Ray)
	for i, ns := range s.Network.AllowFrom {
		c.dnsLabel(fmt.Sprintf("spec.network.allowFrom[%d]", i), ns, 63)
	}
	checkCluster(c, p, t)
	return c.problems
}

// checkCluster checks the cluster a tenant names: the platform must declare it, and it
// must have at least one of the GPU pools the tenant may use, if the tenant has GPUs.
func checkCluster(c *checker, p *Platform, t *Tenant) {
	name := t.Spec.Cluster
	if name == "" {
		return
	}
	cluster := p.Cluster(name)
	switch {
	case len(p.Spec.Clusters) == 0:
		c.errorf("spec.cluster", "the platform declares no clusters (spec.clusters in raas.yaml); leave spec.cluster out")
		return
	case cluster == nil:
		c.errorf("spec.cluster", "%q is not one of the platform's clusters: %s", name, strings.Join(p.ClusterNames(), ", "))
		return
	}
	pools := p.gpuPools(t)
	if len(pools) == 0 || slices.ContainsFunc(pools, func(pool string) bool { return slices.Contains(cluster.Pools, pool) }) {
		return
	}
	has := "none"
	if len(cluster.Pools) > 0 {
		has = strings.Join(cluster.Pools, ", ")
	}
	c.errorf("spec.cluster", "cluster %q has none of the GPU pools the tenant may use (%s); its pools: %s",
		name, strings.Join(pools, ", "), has)
}

// validateClusters checks the fleet's clusters: unique DNS-label names, kubeconfig
// Secrets with valid names, at most one cluster without one (the cluster raas runs in),
// capacities that can be guaranteed, and pools the platform declares.
func validateClusters(c *checker, p *Platform) {
	pools := p.PoolNames()
	seen := map[string]bool{}
	local := -1 // the cluster without a kubeconfig
	for i, cl := range p.Spec.Clusters {
		f := fmt.Sprintf("spec.clusters[%d]", i)
		c.dnsLabel(f+".name", cl.Name, 63)
		if seen[cl.Name] && cl.Name != "" {
			c.errorf(f+".name", "cluster %q is declared twice", cl.Name)
		}
		seen[cl.Name] = true
		switch kc := cl.Kubeconfig; {
		case kc == nil && local >= 0:
			c.errorf(f, "cluster %q has no kubeconfig, nor has cluster %q; only one cluster, the one raas runs in, may leave it out",
				cl.Name, p.Spec.Clusters[local].Name)
		case kc == nil:
			local = i
		case kc.Name == "":
			c.errorf(f+".kubeconfig.name", "is required")
		default:
			for _, msg := range validation.IsDNS1123Subdomain(kc.Name) {
				c.errorf(f+".kubeconfig.name", "%q is not a valid Secret name: %s", kc.Name, msg)
			}
		}
		if kc := cl.Kubeconfig; kc != nil {
			for _, msg := range validation.IsConfigMapKey(kc.Key) {
				c.errorf(f+".kubeconfig.key", "%q is not a valid Secret key: %s", kc.Key, msg)
			}
		}
		for _, r := range placedResources {
			c.nonNegative(f+".capacity."+r.name, r.get(&cl.Capacity))
		}
		c.wholeNumber(f+".capacity.gpu", cl.Capacity.GPU)
		listed := map[string]bool{}
		for j, pool := range cl.Pools {
			fj := fmt.Sprintf("%s.pools[%d]", f, j)
			switch {
			case len(pools) == 0:
				c.errorf(fj, "%q is not a GPU pool: the platform declares none (spec.gpu.pools)", pool)
			case !slices.Contains(pools, pool):
				c.errorf(fj, "%q is not one of the platform's GPU pools (spec.gpu.pools): %s", pool, strings.Join(pools, ", "))
			case listed[pool]:
				c.errorf(fj, "pool %q is listed twice", pool)
			}
			listed[pool] = true
		}
	}
}

// PoolNames lists the platform's GPU pools by name, in declaration order.
func (p *Platform) PoolNames() []string {
	names := make([]string, len(p.Spec.GPU.Pools))
	for i, pool := range p.Spec.GPU.Pools {
		names[i] = pool.Name
	}
	return names
}

// Pool returns the pool named name, or nil.
func (p *Platform) Pool(name string) *GPUPool {
	for i := range p.Spec.GPU.Pools {
		if p.Spec.GPU.Pools[i].Name == name {
			return &p.Spec.GPU.Pools[i]
		}
	}
	return nil
}

// validateNodeGroups checks the shared node groups, that no two GPU pools share a taint,
// and that the host can place pods on them.
func validateNodeGroups(c *checker, p *Platform) {
	s := &p.Spec
	seen := map[string]bool{}
	for i, g := range s.Scheduler.SharedNodeGroups {
		f := fmt.Sprintf("spec.scheduler.sharedNodeGroups[%d]", i)
		for _, msg := range validation.IsValidLabelValue(g) {
			c.errorf(f, "invalid node group: %s", msg)
		}
		switch {
		case g == "":
			c.errorf(f, "is empty")
		case seen[g]:
			c.errorf(f, "node group %q is listed twice", g)
		}
		seen[g] = true
	}
	taints := map[Taint]string{}
	for i, pool := range s.GPU.Pools {
		if pool.Taint == nil {
			continue
		}
		if other, dup := taints[*pool.Taint]; dup {
			c.errorf(fmt.Sprintf("spec.gpu.pools[%d].taint", i),
				"pool %q has the same taint as pool %q; a toleration for one would admit a tenant to both", pool.Name, other)
		}
		taints[*pool.Taint] = pool.Name
	}
	podPlacement(c, p)
}

// validateExtraPlugins checks that each extra scheduler plugin is a Volcano plugin that
// raas does not choose itself, and is listed once.
func validateExtraPlugins(c *checker, p *Platform) {
	seen := map[string]bool{}
	for i, name := range p.Spec.Scheduler.ExtraPlugins {
		f := fmt.Sprintf("spec.scheduler.extraPlugins[%d]", i)
		switch {
		case !slices.Contains(volcano.Plugins, name):
			c.errorf(f, "%q is not a Volcano scheduler plugin; known: %s", name, strings.Join(volcano.Plugins, ", "))
		case slices.Contains(schedulerPlugins, name):
			c.errorf(f, "%q is a queue plugin; choose it with spec.scheduler.plugin (capacity and proportion exclude each other)", name)
		case name == "nodegroup":
			c.errorf(f, "raas places pods by node affinity, not by queue node-group affinity; "+
				"Volcano 1.12's nodegroup plugin would place the pods of every queue without affinity, such as default, on no node")
		case seen[name]:
			c.errorf(f, "%q is listed twice", name)
		}
		seen[name] = true
	}
}

// MinHostKubernetesForPlacement is the first host Kubernetes version that serves
// MutatingAdmissionPolicy (admissionregistration.k8s.io/v1) by default. raas needs it to
// give every tenant pod its queue, node affinity and pool tolerations.
const MinHostKubernetesForPlacement = "v1.36.0"

// NeedsPlacement reports whether the platform confines pods to node groups: it declares
// GPU pools or shared node groups.
func (p *Platform) NeedsPlacement() bool {
	return len(p.Spec.GPU.Pools) > 0 || len(p.Spec.Scheduler.SharedNodeGroups) > 0
}

// podPlacement refuses platform configs under which raas cannot confine each tenant's pods
// to its pools: a node group that belongs to two pools, or to a pool and the shared groups,
// would let a pod through to nodes it may not use; and a host without
// MutatingAdmissionPolicy cannot be given the node affinity at all.
func podPlacement(c *checker, p *Platform) {
	s := &p.Spec
	owner := map[string]string{}
	for i, pool := range s.GPU.Pools {
		if other, dup := owner[pool.NodeGroup]; dup {
			c.errorf(fmt.Sprintf("spec.gpu.pools[%d].nodeGroup", i),
				"pools %q and %q share node group %q; a tenant allowed on one would run on the nodes of both", other, pool.Name, pool.NodeGroup)
		}
		owner[pool.NodeGroup] = pool.Name
	}
	for i, g := range s.Scheduler.SharedNodeGroups {
		if pool, dup := owner[g]; dup {
			c.errorf(fmt.Sprintf("spec.scheduler.sharedNodeGroups[%d]", i),
				"node group %q is GPU pool %q; every tenant's pods that request no GPU would run on that pool", g, pool)
		}
	}
	if !p.NeedsPlacement() {
		return
	}
	host, err := utilversion.ParseSemantic(s.HostKubernetes)
	if err != nil || host.AtLeast(utilversion.MustParseSemantic(MinHostKubernetesForPlacement)) {
		return
	}
	c.errorf("spec.hostKubernetes", "host Kubernetes %s does not serve MutatingAdmissionPolicy (admissionregistration.k8s.io/v1, on by default from %s), "+
		"which raas needs to keep each tenant's pods on its own queue, GPU pools and node groups; "+
		"set spec.hostKubernetes to the host's version if it is %s or later, or declare no gpu.pools and scheduler.sharedNodeGroups",
		s.HostKubernetes, MinHostKubernetesForPlacement, MinHostKubernetesForPlacement)
}

// products lists the GPU products of the platform's pools, each once, in declaration order.
func (p *Platform) products() []string {
	var products []string
	for _, pool := range p.Spec.GPU.Pools {
		if pool.Product != "" && !slices.Contains(products, pool.Product) {
			products = append(products, pool.Product)
		}
	}
	return products
}

func (p *Platform) parentQueueNames() []string {
	names := make([]string, len(p.Spec.Scheduler.Queues))
	for i, q := range p.Spec.Scheduler.Queues {
		names[i] = q.Name
	}
	return names
}

// validateParentQueues checks the platform's parent queues. A queue's parent must be
// declared before it, which also rules out cycles.
func validateParentQueues(c *checker, p *Platform) {
	queues := p.Spec.Scheduler.Queues
	if len(queues) > 0 && !p.Spec.Scheduler.Hierarchy {
		c.errorf("spec.scheduler.queues", "parent queues need hierarchical queues; set spec.scheduler.hierarchy")
	}
	seen := map[string]bool{}
	for i, q := range queues {
		f := fmt.Sprintf("spec.scheduler.queues[%d]", i)
		c.dnsLabel(f+".name", q.Name, 63)
		if seen[q.Name] || q.Name == "root" || q.Name == "default" {
			c.errorf(f+".name", "queue %q is declared twice or is one of Volcano's own (root, default)", q.Name)
		}
		if q.Parent != "" && !seen[q.Parent] {
			c.errorf(f+".parent", "%q is not a parent queue declared above this one", q.Parent)
		}
		seen[q.Name] = true
		if q.Weight != nil && (*q.Weight < 1 || *q.Weight > 65535) {
			c.errorf(f+".weight", "must be between 1 and 65535, got %d", *q.Weight)
		}
		g, capability := q.Guarantee, q.Capability
		c.atMost(f+".guarantee.cpu", g.CPU, capability.CPU, f+".capability.cpu")
		c.atMost(f+".guarantee.memory", g.Memory, capability.Memory, f+".capability.memory")
		c.atMost(f+".guarantee.gpu", g.GPU, capability.GPU, f+".capability.gpu")
		c.wholeNumber(f+".guarantee.gpu", g.GPU)
		c.wholeNumber(f+".capability.gpu", capability.GPU)
	}
}
