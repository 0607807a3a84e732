package reconcile

import (
	"crypto/sha256"
	"encoding/hex"
	"sync"

	"github.com/raas-dev/raas/render"
)

// digestCache computes the digest of each rendered object once per pass: the virtual
// objects are shared by every tenant on the same KubeRay version.
type digestCache struct {
	mu sync.Mutex
	m  map[*render.Object]string
}

func (d *digestCache) of(o *render.Object) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.m[o]; ok {
		return s, nil
	}
	data, err := o.YAML()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	s := hex.EncodeToString(sum[:])
	if d.m == nil {
		d.m = map[*render.Object]string{}
	}
	d.m[o] = s
	return s, nil
}

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
