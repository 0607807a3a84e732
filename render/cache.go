package render

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/raas-dev/raas/schema"
)

// Cache renders revisions of a repository, reusing every tenant's output whose inputs
// did not change since the last render. A tenant's key is a hash of its expanded spec
// (which folds in its profile, its parent for a sandbox, and the platform defaults); the
// platform key is a hash of raas.yaml, the overlays and the repository's catalog. A new
// platform key starts afresh. A Cache is for one goroutine at a time.
type Cache struct {
	opts Options

	platformKey string
	renderer    *Renderer
	platform    []*Object
	platformErr error
	tenants     map[string]cached

	// emit, when set, is given each rendered tenant instead of the result (see Stream),
	// and placement, for a fleet, the cluster of each, placed offline.
	emit      func(*Output) error
	placement schema.Placement
}

type cached struct {
	key string
	out *Output
}

// CacheStats counts the tenants of one render served from the cache and rendered.
type CacheStats struct{ Hits, Misses int }

// NewCache returns an empty cache that renders with opts.
func NewCache(opts Options) *Cache {
	return &Cache{opts: opts, tenants: map[string]cached{}}
}

// Render loads the repository at the root of fsys (found on disk at dir, for its
// catalog) and renders every valid tenant, from the cache where it can. It returns an
// error only when the repository cannot be read; validation problems and render failures
// are in the result.
func (c *Cache) Render(fsys fs.FS, dir string) (*Result, CacheStats, error) {
	var stats CacheStats
	now := time.Now
	if c.opts.Now != nil {
		now = c.opts.Now
	}
	repo, err := schema.LoadAt(fsys, now())
	if err != nil {
		return nil, stats, err
	}
	res := &Result{Repo: repo}
	if !repo.Usable() {
		return res, stats, nil
	}
	key, err := hashTrees(fsys, schema.PlatformFile, schema.OverlaysDir, repo.Platform.Spec.Catalog.Dir)
	if err != nil {
		return nil, stats, err
	}
	if _, err := fs.Stat(fsys, repo.Platform.Spec.Catalog.Dir); err == nil {
		// The renderer reads the repository's catalog from this checkout's directory,
		// which goes away after a few revisions.
		key += "@" + dir
	}
	tenants := repo.Tenants
	if len(c.opts.Tenants) > 0 || c.opts.Filter != nil {
		tenants = slices.DeleteFunc(slices.Clone(tenants), func(t *schema.Tenant) bool {
			name := t.Metadata.Name
			return (len(c.opts.Tenants) > 0 && !slices.Contains(c.opts.Tenants, name)) ||
				(c.opts.Filter != nil && !c.opts.Filter(name))
		})
	}
	if key != c.platformKey {
		c.platformKey, c.tenants = key, map[string]cached{}
		c.renderer, err = New(fsys, dir, repo.Platform, c.opts.Catalog)
		if err != nil {
			// Overlays apply to every tenant, so none can render without them.
			c.platformKey, c.renderer = "", nil
			for _, t := range tenants {
				res.Failed = append(res.Failed, Failure{Tenant: t.Metadata.Name, File: t.Source.File, Err: err})
			}
			return res, stats, nil
		}
		c.platform, c.platformErr = c.renderer.Platform()
	}
	res.Platform = c.platform
	if c.platformErr != nil {
		res.Platform = nil
		res.Failed = append(res.Failed, Failure{Tenant: "(platform)", File: schema.PlatformFile, Err: c.platformErr})
	}

	var todo []*schema.Tenant
	keys := map[string]string{}
	fresh := map[string]cached{}
	for _, t := range tenants {
		k, err := tenantKey(t)
		if err != nil {
			return nil, stats, err
		}
		keys[t.Metadata.Name] = k
		if hit, ok := c.tenants[t.Metadata.Name]; ok && hit.key == k {
			fresh[t.Metadata.Name] = hit
			stats.Hits++
			continue
		}
		todo = append(todo, t)
		stats.Misses++
	}
	if c.emit != nil {
		c.placement = schema.Place(repo, nil)
		// A fresh cache renders every tenant: hand them on in order, a few at a time, and
		// keep none.
		chunk := 4 * max(c.opts.Workers, 1)
		for len(todo) > 0 {
			n := min(chunk, len(todo))
			outs, failed := c.renderer.Tenants(todo[:n], max(c.opts.Workers, 1))
			todo = todo[n:]
			res.Failed = append(res.Failed, failed...)
			for _, out := range outs {
				if err := c.emit(out); err != nil {
					return nil, stats, err
				}
			}
		}
		slices.SortFunc(res.Failed, func(a, b Failure) int { return strings.Compare(a.Tenant, b.Tenant) })
		return res, stats, nil
	}
	outs, failed := c.renderer.Tenants(todo, max(c.opts.Workers, 1))
	for _, out := range outs {
		fresh[out.Tenant] = cached{key: keys[out.Tenant], out: out}
	}
	c.tenants = fresh
	for _, t := range tenants {
		if hit, ok := fresh[t.Metadata.Name]; ok {
			res.Tenants = append(res.Tenants, hit.out)
		}
	}
	res.Failed = append(res.Failed, failed...)
	slices.SortFunc(res.Failed, func(a, b Failure) int { return strings.Compare(a.Tenant, b.Tenant) })
	return res, stats, nil
}

// tenantKey hashes everything of a tenant that its render depends on, after expansion.
func tenantKey(t *schema.Tenant) (string, error) {
	data, err := json.Marshal(struct {
		Meta   schema.ObjectMeta
		Spec   schema.TenantSpec
		File   string
		Asleep bool
	}{t.Metadata, t.Spec, t.Source.File, t.Asleep})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// hashTrees hashes the files at the given paths of fsys, and of the trees below them;
// missing paths count as empty.
func hashTrees(fsys fs.FS, roots ...string) (string, error) {
	h := sha256.New()
	for _, root := range roots {
		err := fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) && p == root {
					return nil
				}
				return err
			}
			if d.IsDir() {
				return nil
			}
			data, err := fs.ReadFile(fsys, p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			h.Write([]byte(path.Clean(p) + "\x00"))
			h.Write(sum[:])
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
