package render

import (
	"fmt"
	"io/fs"
	"runtime"
	"sync"
	"time"

	"github.com/raas-dev/raas/render/catalog"
	"github.com/raas-dev/raas/schema"
)

// Options configure a repository render.
type Options struct {
	// Catalog says where charts and bases are found besides the repository's own catalog.
	Catalog catalog.Options
	// Tenants limits the render to these tenant names. Empty means all.
	Tenants []string
	// Filter, when set, limits a Cache's renders further to the tenants it returns true
	// for, asked afresh on every render: a sharded raas renders only the tenants its
	// replica owns. The whole repository is still loaded and validated.
	Filter func(tenant string) bool
	// Workers is how many tenants render at once. Defaults to the number of CPUs.
	Workers int
	// Now is the clock sandbox expiry is judged by. Nil means time.Now.
	Now func() time.Time
}

// DefaultOptions renders every tenant with the default catalog.
func DefaultOptions() Options {
	return Options{Catalog: catalog.DefaultOptions(), Workers: runtime.NumCPU()}
}

// Result is a whole repository rendered. A tenant that failed to render is in Failed,
// and the others are still in Tenants: one broken tenant does not stop the rest.
type Result struct {
	Repo     *schema.Repo
	Platform []*Object
	Tenants  []*Output
	Failed   []Failure
}

// Failure is a tenant that was valid but failed to render.
type Failure struct {
	Tenant string
	File   string
	Err    error
}

func (f Failure) Error() string { return fmt.Sprintf("%s: tenant %s: %v", f.File, f.Tenant, f.Err) }

// OK reports whether the repository validated and every tenant rendered.
func (r *Result) OK() bool { return r.Repo.OK() && len(r.Failed) == 0 && r.Platform != nil }

// Repo loads the tenants repository at the root of repoFS (found on disk at repoDir, for
// its catalog) and renders every valid tenant. It returns an error only when the
// repository cannot be read; validation problems and render failures are in the result.
// It is one render of a fresh Cache; the daemon keeps its Cache across revisions.
func Repo(repoFS fs.FS, repoDir string, opts Options) (*Result, error) {
	res, _, err := NewCache(opts).Render(repoFS, repoDir)
	return res, err
}

// Tenants renders tenants on up to workers goroutines and returns the outputs in tenant
// order, whatever order they finished in, and the tenants that failed.
func (r *Renderer) Tenants(tenants []*schema.Tenant, workers int) ([]*Output, []Failure) {
	var failed []Failure
	outs := make([]*Output, len(tenants))
	errs := make([]error, len(tenants))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, len(tenants)) {
		wg.Go(func() {
			for i := range next {
				outs[i], errs[i] = r.Tenant(tenants[i])
			}
		})
	}
	for i := range tenants {
		next <- i
	}
	close(next)
	wg.Wait()
	var ok []*Output
	for i, t := range tenants {
		if errs[i] != nil {
			failed = append(failed, Failure{Tenant: t.Metadata.Name, File: t.Source.File, Err: errs[i]})
			continue
		}
		ok = append(ok, outs[i])
	}
	return ok, failed
}
