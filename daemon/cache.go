package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"path"

	"github.com/raas-dev/raas/render"
	"github.com/raas-dev/raas/render/catalog"
	"github.com/raas-dev/raas/schema"
)

// renderCache renders a revision, reusing every tenant's output whose inputs did not
// change. A tenant's key is a hash of its expanded spec (which folds in its profile, its
// parent for a sandbox, and the platform defaults); the platform key is a hash of
// raas.yaml, the overlays and the repository's catalog. A new platform key starts afresh.
type renderCache struct {
	catalog catalog.Options
	workers int

	platformKey string
	renderer    *render.Renderer
	platform    []*render.Object
	platformErr error
	tenants     map[string]cached
}

type cached struct {
	key string
	out *render.Output
}

// renderStats counts cache hits and misses of one render.
type renderStats struct{ hits, misses int }

func newRenderCache(opts catalog.Options, workers int) *renderCache {
	return &renderCache{catalog: opts, workers: workers, tenants: map[string]cached{}}
}

// render loads and renders the checkout in fsys (on disk at dir).
func (c *renderCache) render(fsys fs.FS, dir string) (*render.Result, renderStats, error) {
	var stats renderStats
	repo, err := schema.Load(fsys)
	if err != nil {
		return nil, stats, err
	}
	res := &render.Result{Repo: repo}
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
	if key != c.platformKey {
		c.platformKey, c.tenants = key, map[string]cached{}
		c.renderer, err = render.New(fsys, dir, repo.Platform, c.catalog)
		if err != nil {
			c.platformKey, c.renderer = "", nil
			for _, t := range repo.Tenants {
				res.Failed = append(res.Failed, render.Failure{Tenant: t.Metadata.Name, File: t.Source.File, Err: err})
			}
			return res, stats, nil
		}
		c.platform, c.platformErr = c.renderer.Platform()
	}
	res.Platform = c.platform
	if c.platformErr != nil {
		res.Platform = nil
		res.Failed = append(res.Failed, render.Failure{Tenant: "(platform)", File: schema.PlatformFile, Err: c.platformErr})
	}

	var todo []*schema.Tenant
	keys := map[string]string{}
	fresh := map[string]cached{}
	for _, t := range repo.Tenants {
		k, err := tenantKey(t)
		if err != nil {
			return nil, stats, err
		}
		keys[t.Metadata.Name] = k
		if hit, ok := c.tenants[t.Metadata.Name]; ok && hit.key == k {
			fresh[t.Metadata.Name] = hit
			stats.hits++
			continue
		}
		todo = append(todo, t)
		stats.misses++
	}
	outs, failed := c.renderer.Tenants(todo, c.workers)
	for _, out := range outs {
		fresh[out.Tenant] = cached{key: keys[out.Tenant], out: out}
	}
	c.tenants = fresh
	for _, t := range repo.Tenants {
		if hit, ok := fresh[t.Metadata.Name]; ok {
			res.Tenants = append(res.Tenants, hit.out)
		}
	}
	res.Failed = append(res.Failed, failed...)
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
