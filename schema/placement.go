package schema

import (
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Placement maps tenant name to cluster name.
type Placement map[string]string

// Place says which cluster each valid tenant of repo runs on. where gives, for tenants
// already running, the cluster that holds them (from the clusters' inventories; nil when
// unknown, as in an offline render).
//
// A tenant goes, in order: to its spec.cluster; to where it already runs, when that
// cluster is still declared (placement is sticky); else to the declared cluster with the
// most room left for its guarantee among those that have all its GPU pools. A sandbox
// goes wherever its parent goes, whatever where says of it, since its quota comes out of
// its parent's; validation refuses a sandbox that names another cluster.
//
// The pools that count are those a tenant with GPUs may use (spec.scheduling.gpu.pools
// and the pools of spec.scheduling.gpu.products); a tenant without GPUs, or without
// pools, may go to any cluster. When no cluster has all its pools, those with the most of
// them are the choice, and when none has any, every cluster is. Among the choice, a
// cluster where the whole guarantee still fits beats one where it does not; then the one
// with the most room (capacity minus the guarantees already placed there; an unset
// capacity is unlimited), comparing GPU, then CPU, then memory, the resources the tenant
// guarantees before those it does not; ties go by declaration order.
//
// Tenants are placed in name order, those with a spec.cluster or a current cluster first,
// each followed by its sandboxes, so that the same repo and where give the same placement.
// With no clusters declared, Place returns nil: every tenant is on the one host.
func Place(repo *Repo, where map[string]string) Placement {
	if repo == nil || repo.Platform == nil || len(repo.Platform.Spec.Clusters) == 0 {
		return nil
	}
	p := repo.Platform
	tenants := slices.Clone(repo.Tenants)
	slices.SortFunc(tenants, func(a, b *Tenant) int { return strings.Compare(a.Metadata.Name, b.Metadata.Name) })
	parents := map[string]bool{} // the tenants that are no sandbox, which sandboxes follow
	for _, t := range tenants {
		parents[t.Metadata.Name] = t.Spec.Sandbox == nil
	}
	sandboxes := map[string][]*Tenant{}
	var pinned, free []*Tenant
	for _, t := range tenants {
		switch sb := t.Spec.Sandbox; {
		case sb != nil && parents[sb.Of]:
			sandboxes[sb.Of] = append(sandboxes[sb.Of], t)
		case p.pinnedCluster(t, where) >= 0:
			pinned = append(pinned, t)
		default:
			free = append(free, t)
		}
	}

	placement := Placement{}
	used := make([]usage, len(p.Spec.Clusters))
	put := func(t *Tenant, cluster int) {
		for _, t := range append([]*Tenant{t}, sandboxes[t.Metadata.Name]...) {
			placement[t.Metadata.Name] = p.Spec.Clusters[cluster].Name
			used[cluster].add(&t.Spec.Scheduling.Guarantee)
		}
	}
	for _, t := range pinned {
		put(t, p.pinnedCluster(t, where))
	}
	for _, t := range free {
		put(t, p.roomiest(t, used))
	}
	return placement
}

// pinnedCluster is the index of the cluster a tenant must stay on, its spec.cluster or
// the declared cluster where says it runs on, or -1 when raas may choose.
func (p *Platform) pinnedCluster(t *Tenant, where map[string]string) int {
	for _, name := range []string{t.Spec.Cluster, where[t.Metadata.Name]} {
		if i := p.clusterIndex(name); name != "" && i >= 0 {
			return i
		}
	}
	return -1
}

// roomiest is the index of the cluster Place chooses for a tenant that is not pinned,
// given what is already placed on each.
func (p *Platform) roomiest(t *Tenant, used []usage) int {
	clusters := p.Spec.Clusters
	pools := p.gpuPools(t)
	// The candidates are the clusters with the most of the tenant's pools.
	have := make([]int, len(clusters))
	most := 0
	for i := range clusters {
		for _, pool := range pools {
			if slices.Contains(clusters[i].Pools, pool) {
				have[i]++
			}
		}
		most = max(most, have[i])
	}
	g := &t.Spec.Scheduling.Guarantee
	best := -1
	for i := range clusters {
		if have[i] < most {
			continue
		}
		if best < 0 || better(&clusters[i].Capacity, &used[i], &clusters[best].Capacity, &used[best], g) {
			best = i
		}
	}
	return best
}

// better reports whether a cluster of capacity capA, with usedA placed on it, has more
// room for guarantee g than one of capB with usedB: first whether g fits at all, then the
// room left in the resources g guarantees, GPU before CPU before memory, then in the
// others, so that a tenant that guarantees CPU alone goes where CPU is free, not GPUs.
func better(capA *Resources, usedA *usage, capB *Resources, usedB *usage, g *Resources) bool {
	if fitsA, fitsB := usedA.fits(capA, g), usedB.fits(capB, g); fitsA != fitsB {
		return fitsA
	}
	for _, guaranteed := range []bool{true, false} {
		for i, r := range placedResources {
			if q := r.get(g); (q != nil && q.Sign() > 0) != guaranteed {
				continue
			}
			if c := compareRoom(r.get(capA), &usedA[i], r.get(capB), &usedB[i]); c != 0 {
				return c > 0
			}
		}
	}
	return false
}

// compareRoom compares the room left of two clusters in one resource, capacity minus
// used, where a nil capacity is unlimited.
func compareRoom(capA, usedA, capB, usedB *resource.Quantity) int {
	switch {
	case capA == nil && capB == nil:
		return 0
	case capA == nil:
		return 1
	case capB == nil:
		return -1
	}
	roomA, roomB := capA.DeepCopy(), capB.DeepCopy()
	roomA.Sub(*usedA)
	roomB.Sub(*usedB)
	return roomA.Cmp(roomB)
}

// placedResources are the resources that placement and the capacity checks count, in
// the order placement compares them.
var placedResources = []struct {
	name string
	get  func(*Resources) *resource.Quantity
}{
	{"gpu", func(r *Resources) *resource.Quantity { return r.GPU }},
	{"cpu", func(r *Resources) *resource.Quantity { return r.CPU }},
	{"memory", func(r *Resources) *resource.Quantity { return r.Memory }},
}

// usage is what the guarantees placed on a cluster add up to, in placedResources' order.
type usage [3]resource.Quantity

func (u *usage) add(g *Resources) {
	for i, r := range placedResources {
		if q := r.get(g); q != nil {
			u[i].Add(*q)
		}
	}
}

// fits reports whether guarantee g fits in capacity on top of u.
func (u *usage) fits(capacity, g *Resources) bool {
	for i, r := range placedResources {
		c, q := r.get(capacity), r.get(g)
		if c == nil || q == nil {
			continue
		}
		total := u[i].DeepCopy()
		total.Add(*q)
		if total.Cmp(*c) > 0 {
			return false
		}
	}
	return true
}

// Cluster returns the declared cluster called name, or nil.
func (p *Platform) Cluster(name string) *Cluster {
	if i := p.clusterIndex(name); i >= 0 {
		return &p.Spec.Clusters[i]
	}
	return nil
}

func (p *Platform) clusterIndex(name string) int {
	return slices.IndexFunc(p.Spec.Clusters, func(c Cluster) bool { return c.Name == name })
}

// ClusterNames lists the declared clusters by name, in declaration order.
func (p *Platform) ClusterNames() []string {
	names := make([]string, len(p.Spec.Clusters))
	for i, c := range p.Spec.Clusters {
		names[i] = c.Name
	}
	return names
}

// AllowedPools resolves a GPU policy to the platform's pools it allows: the pools it
// names and those whose product it lists, in the platform's order. The scheduler confines
// a tenant's GPU pods to them, and placement looks for a cluster that has them.
func (p *Platform) AllowedPools(gpu GPUPolicy) []GPUPool {
	var pools []GPUPool
	for _, pool := range p.Spec.GPU.Pools {
		if slices.Contains(gpu.Pools, pool.Name) || (pool.Product != "" && slices.Contains(gpu.Products, pool.Product)) {
			pools = append(pools, pool)
		}
	}
	return pools
}

// gpuPools are the pools a tenant's cluster must have: those it may use if it has GPUs,
// none if it has not. A tenant without GPUs still carries the platform's default pools,
// which must not keep it off a cluster of CPU nodes.
func (p *Platform) gpuPools(t *Tenant) []string {
	if q := t.Spec.Quota.GPU; q == nil || q.Sign() <= 0 {
		return nil
	}
	var names []string
	for _, pool := range p.AllowedPools(t.Spec.Scheduling.GPU) {
		names = append(names, pool.Name)
	}
	return names
}

// CheckPlacement reports each cluster whose capacity the guarantees of the tenants that
// placement puts on it exceed. Validation checks the placement of an offline render
// (Place with no where); a fleet checks the one it applies, where sticky tenants stay.
func (r *Repo) CheckPlacement(placement Placement) Problems {
	if r.Platform == nil {
		return nil
	}
	return checkClusterCapacity(r.Platform, r.Tenants, placement)
}
