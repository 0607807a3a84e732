package reconcile

import (
	"crypto/sha256"
	"slices"
	"sync"

	"sigs.k8s.io/yaml"

	"github.com/raas-dev/raas/render"
)

// digestCache gives the digest of each rendered object. Objects keep their digest
// (render.Object.Digest), and a long-running raas keeps the objects of unchanged tenants
// between passes, so each is hashed once.
type digestCache struct{}

func (digestCache) of(o *render.Object) (string, error) { return o.Digest() }

// checkedCache remembers, per tenant, the objects a dry run found unchanged: their rendered
// digest and the live resourceVersion then. It lives as long as the Reconciler.
type checkedCache struct {
	mu sync.Mutex
	m  map[string]map[entryKey]checked
}

type checked struct{ digest, resourceVersion string }

func (c *checkedCache) match(tenant string, key entryKey, digest, rv string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	got, ok := c.m[tenant][key]
	return ok && got.digest == digest && got.resourceVersion == rv
}

func (c *checkedCache) store(tenant string, key entryKey, digest, rv string) {
	if rv == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]map[entryKey]checked{}
	}
	if c.m[tenant] == nil {
		c.m[tenant] = map[entryKey]checked{}
	}
	c.m[tenant][key] = checked{digest, rv}
}

func (c *checkedCache) forget(tenant string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, tenant)
}

// sizeCache remembers the stored size of each tenant's prospective inventory, keyed by the
// SHA-256 of its JSON: a pass over unchanged tenants checks every inventory's size, and
// converting it to YAML to count its bytes was half the CPU of a pass with nothing to do
// (issue 15). It lives as long as the Reconciler.
type sizeCache struct {
	mu sync.Mutex
	m  map[string]sizeEntry
}

type sizeEntry struct {
	sum  [sha256.Size]byte
	size int
}

// of returns the length of inv.encode().
func (c *sizeCache) of(inv *inventory) (int, error) {
	data, err := inv.encodeJSON()
	if err != nil {
		return 0, err
	}
	sum := sha256.Sum256(data)
	c.mu.Lock()
	got, ok := c.m[inv.Tenant]
	c.mu.Unlock()
	if ok && got.sum == sum {
		return got.size, nil
	}
	yamlData, err := yaml.JSONToYAML(data)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]sizeEntry{}
	}
	c.m[inv.Tenant] = sizeEntry{sum, len(yamlData)}
	return len(yamlData), nil
}

// decodedCache keeps each inventory ConfigMap decoded at its resourceVersion, so that a
// pass reads and decodes only the inventories written since the last one. Callers get a
// copy they may change. It lives as long as the Reconciler.
type decodedCache struct {
	mu sync.Mutex
	m  map[string]decodedEntry
}

type decodedEntry struct {
	resourceVersion string
	inv             *inventory
	err             error
}

// get returns the inventory stored in ConfigMap name, which a list saw at
// resourceVersion. When that is not the version decoded last, read fetches the ConfigMap:
// its version now and its inventory data; its error is returned as err. The version
// returned is the one decoded, and parseErr says why the inventory does not parse.
func (c *decodedCache) get(name, resourceVersion string, read func() (rv, data string, err error)) (inv *inventory, rv string, parseErr, err error) {
	c.mu.Lock()
	got, ok := c.m[name]
	c.mu.Unlock()
	if !ok || got.resourceVersion != resourceVersion || resourceVersion == "" {
		rv, data, err := read()
		if err != nil {
			return nil, "", nil, err
		}
		decoded := &inventory{}
		got = decodedEntry{rv, decoded, yaml.Unmarshal([]byte(data), decoded)}
		c.mu.Lock()
		if c.m == nil {
			c.m = map[string]decodedEntry{}
		}
		c.m[name] = got
		c.mu.Unlock()
	}
	cp := *got.inv
	cp.Objects = slices.Clone(got.inv.Objects)
	if got.inv.Quota != nil {
		q := *got.inv.Quota
		cp.Quota = &q
	}
	return &cp, got.resourceVersion, got.err, nil
}
