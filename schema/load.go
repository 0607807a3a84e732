package schema

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"reflect"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
)

// The layout of a tenants repository.
const (
	PlatformFile = "raas.yaml"
	TenantsDir   = "tenants"
	OverlaysDir  = "overlays"
)

// Repo is a tenants repository as read and checked. Tenants holds only the tenants that
// passed validation; Rejected names the files that did not, so that callers can keep
// what already runs for them instead of pruning it.
type Repo struct {
	Platform *Platform
	Tenants  []*Tenant
	Rejected []Rejected
	Problems Problems
	// Expired are sandboxes past their expiry date. They are in Tenants, asleep, but make
	// the repository fail validation until their files are removed.
	Expired Problems
	// Deprecated maps each deprecated profile still in use to the tenants that pin it.
	Deprecated map[string][]string
}

// Rejected is a tenant file that failed to decode or validate. Name is the tenant name
// taken from the file name, which must match metadata.name.
type Rejected struct {
	File string
	Name string
}

// OK reports whether the repository has no errors at all (warnings are fine).
func (r *Repo) OK() bool { return len(r.Problems.Errors()) == 0 && len(r.Expired) == 0 }

// Usable reports whether the platform config is valid, so that tenants can be rendered.
// When it is not, nothing may be applied or pruned.
func (r *Repo) Usable() bool { return r.Platform != nil }

// Tenant returns the valid tenant called name, or nil.
func (r *Repo) Tenant(name string) *Tenant {
	for _, t := range r.Tenants {
		if t.Metadata.Name == name {
			return t
		}
	}
	return nil
}

// Load reads the tenants repository at the root of fsys: raas.yaml and tenants/*.yaml.
// Every other entry under tenants/ is ignored by name or refused with a problem (see
// tenantFiles); symbolic links are followed when they stay inside fsys.
// It returns an error only when the repository cannot be read; problems with its content
// are in Repo.Problems. A tenant with problems is left out of Repo.Tenants and listed in
// Repo.Rejected; the other tenants are still loaded. When raas.yaml itself has errors,
// Repo.Platform is nil and no tenant is valid.
//
// Sandbox expiry is judged by the clock now; LoadAt takes the time.
func Load(fsys fs.FS) (*Repo, error) { return LoadAt(fsys, time.Now()) }

// LoadAt is Load with sandbox expiry judged at now.
func LoadAt(fsys fs.FS, now time.Time) (*Repo, error) {
	repo := &Repo{}
	platform, problems, err := loadPlatform(fsys)
	if err != nil {
		return nil, err
	}
	repo.Problems = append(repo.Problems, problems...)
	if len(problems.Errors()) == 0 {
		repo.Platform = platform
	}

	files, refused, err := tenantFiles(fsys)
	if err != nil {
		return nil, err
	}
	for _, r := range refused {
		repo.Problems = append(repo.Problems, &Problem{File: r.File, Message: r.Reason})
		repo.Rejected = append(repo.Rejected, Rejected{File: r.File, Name: tenantName(r.File)})
	}
	entries := make([]*entry, 0, len(files))
	byName := map[string]*entry{}
	for _, f := range files {
		data, err := fs.ReadFile(fsys, f.Read)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f.File, err)
		}
		e := &entry{name: tenantName(f.File)}
		e.tenant, e.problems = DecodeTenant(f.File, data)
		e.raw = &Tenant{Spec: deepCopy(reflect.ValueOf(e.tenant.Spec)).Interface().(TenantSpec), Source: e.tenant.Source}
		if n := e.tenant.Metadata.Name; n != "" && n != e.name {
			e.fail("metadata.name", "%q does not match the file name; name the file %s.yaml", n, n)
		}
		if other, dup := byName[e.name]; dup {
			e.fail("metadata.name", "tenant %q is also defined in %s", e.name, other.tenant.Source.File)
		}
		byName[e.name] = e
		entries = append(entries, e)
	}
	if p := repo.Platform; p != nil {
		// Regular tenants first: sandboxes inherit from them.
		for _, e := range entries {
			if e.decoded() && e.tenant.Spec.Sandbox == nil {
				e.complete(p, e.tenant.Source.pos.leaves())
			}
		}
		for _, e := range entries {
			if e.decoded() && e.tenant.Spec.Sandbox != nil {
				repo.Expired = append(repo.Expired, e.completeSandbox(p, byName[e.tenant.Spec.Sandbox.Of], now)...)
			}
		}
		shareQuota(entries, byName)
	}
	for _, e := range entries {
		repo.Problems = append(repo.Problems, e.problems...)
		if !e.ok() || repo.Platform == nil {
			repo.Rejected = append(repo.Rejected, Rejected{File: e.tenant.Source.File, Name: e.name})
			continue
		}
		repo.Tenants = append(repo.Tenants, e.tenant)
	}
	slices.SortFunc(repo.Tenants, func(a, b *Tenant) int { return strings.Compare(a.Metadata.Name, b.Metadata.Name) })
	if repo.Platform != nil {
		repo.Problems = append(repo.Problems, checkCapacity(repo.Platform, repo.Tenants)...)
		repo.Problems = append(repo.Problems, checkClusterCapacity(repo.Platform, repo.Tenants, Place(repo, nil))...)
		repo.Deprecated = deprecatedUse(repo.Platform, repo.Tenants)
	}
	repo.Problems.Sort()
	return repo, nil
}

// tenantName is the tenant a file under tenants/ is for: its name without the extension.
func tenantName(file string) string {
	return strings.TrimSuffix(path.Base(file), path.Ext(file))
}

// entry is one tenant file on its way through Load.
type entry struct {
	name     string  // from the file name
	tenant   *Tenant // decoded, then expanded, defaulted and validated in place
	raw      *Tenant // the spec as written, which sandboxes inherit
	problems Problems
}

func (e *entry) fail(field, format string, args ...any) {
	e.problems = append(e.problems, e.tenant.problem(field, format, args...))
}

func (e *entry) decoded() bool { return len(e.problems.Errors()) == 0 }
func (e *entry) ok() bool      { return len(e.problems.Errors()) == 0 }

// complete expands the tenant's profile, defaults it and validates it. set are the paths
// of the values the tenant sets.
func (e *entry) complete(p *Platform, set []string) {
	e.problems = append(e.problems, e.tenant.expandProfile(p, set)...)
	if !e.ok() {
		return
	}
	e.tenant.Default(p)
	e.problems = append(e.problems, e.tenant.Validate(p)...)
}

// completeSandbox inherits the parent's spec and completes the sandbox. It returns the
// expiry problem, if the sandbox is past its date at now, apart from the others: an expired
// sandbox still renders (asleep), but validation fails.
func (e *entry) completeSandbox(p *Platform, parent *entry, now time.Time) Problems {
	var parentTenant *Tenant
	parentOK := parent != nil && parent.ok()
	if parent != nil {
		parentTenant = parent.tenant
	}
	problems, expired := e.tenant.checkSandbox(parentTenant, parentOK, now)
	e.problems = append(e.problems, problems...)
	if !e.ok() {
		return nil
	}
	inherited := e.tenant.inheritFrom(parent.raw)
	e.complete(p, append(e.tenant.Source.pos.leaves(), inherited...))
	if expired != nil {
		return Problems{expired}
	}
	return nil
}

// shareQuota takes the quota of valid sandboxes out of their parents'. When a parent's
// sandboxes ask for more than it has, the sandboxes are rejected and the parent is left
// as it is.
func shareQuota(entries []*entry, byName map[string]*entry) {
	children := map[string][]*entry{}
	for _, e := range entries {
		if sb := e.tenant.Spec.Sandbox; sb != nil && e.ok() {
			children[sb.Of] = append(children[sb.Of], e)
		}
	}
	for _, parentName := range slices.Sorted(maps.Keys(children)) {
		parent, kids := byName[parentName], children[parentName]
		tenants := make([]*Tenant, len(kids))
		for i, k := range kids {
			tenants[i] = k.tenant
		}
		if msg := takeQuota(parent.tenant, tenants); msg != "" {
			for _, k := range kids {
				k.fail("spec.quota", "%s", msg)
			}
		}
	}
}

// deprecatedUse maps each deprecated profile still pinned to the tenants pinning it.
func deprecatedUse(p *Platform, tenants []*Tenant) map[string][]string {
	use := map[string][]string{}
	for _, t := range tenants {
		if prof := p.Profile(t.Spec.Profile); prof != nil && prof.Deprecated {
			use[prof.Ref()] = append(use[prof.Ref()], t.Metadata.Name)
		}
	}
	return use
}

func loadPlatform(fsys fs.FS) (*Platform, Problems, error) {
	data, err := fs.ReadFile(fsys, PlatformFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Problems{{File: PlatformFile, Message: "the platform config is missing; every tenants repository needs one at its root"}}, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", PlatformFile, err)
	}
	p, problems := DecodePlatform(PlatformFile, data)
	if len(problems.Errors()) > 0 {
		return nil, problems, nil
	}
	p.Default()
	return p, p.Validate(), nil
}

// DecodeTenant decodes one tenant file strictly, without defaulting or validating it.
func DecodeTenant(file string, data []byte) (*Tenant, Problems) {
	t := &Tenant{}
	pos, problems := decodeDocument(file, data, t)
	t.Source = Source{File: file, pos: pos}
	return t, problems
}

// DecodePlatform decodes the platform config strictly, without defaulting or validating it.
func DecodePlatform(file string, data []byte) (*Platform, Problems) {
	p := &Platform{}
	pos, problems := decodeDocument(file, data, p)
	p.Source = Source{File: file, pos: pos}
	return p, problems
}

func (t *Tenant) problem(field, format string, args ...any) *Problem {
	c := &checker{file: t.Source.File, pos: t.Source.pos}
	c.errorf(field, format, args...)
	return c.problems[0]
}

// checkCapacity reports when the tenants' guarantees add up to more than the platform's
// declared capacity, which caps the whole fleet. It names the tenants and the totals.
func checkCapacity(p *Platform, tenants []*Tenant) Problems {
	c := &checker{file: p.Source.File, pos: p.Source.pos}
	whole := "the cluster"
	if len(p.Spec.Clusters) > 0 {
		whole = "the fleet"
	}
	for _, r := range placedResources {
		capacity := r.get(&p.Spec.Capacity)
		if total, parts := guaranteed(tenants, r.get); capacity != nil && total.Cmp(*capacity) > 0 {
			c.errorf("spec.capacity."+r.name,
				"over-committed: tenants guarantee %s %s in total but %s has %s (%s)",
				total.String(), r.name, whole, capacity, strings.Join(parts, ", "))
		}
	}
	return c.problems
}

// checkClusterCapacity reports each cluster whose capacity the guarantees of the tenants
// placed on it exceed, naming the tenants and the totals.
func checkClusterCapacity(p *Platform, tenants []*Tenant, placement Placement) Problems {
	c := &checker{file: p.Source.File, pos: p.Source.pos}
	for i, cl := range p.Spec.Clusters {
		var on []*Tenant
		for _, t := range tenants {
			if placement[t.Metadata.Name] == cl.Name {
				on = append(on, t)
			}
		}
		for _, r := range placedResources {
			capacity := r.get(&cl.Capacity)
			if total, parts := guaranteed(on, r.get); capacity != nil && total.Cmp(*capacity) > 0 {
				c.errorf(fmt.Sprintf("spec.clusters[%d].capacity.%s", i, r.name),
					"cluster %q is over-committed: tenants guarantee %s %s in total but it has %s (%s)",
					cl.Name, total.String(), r.name, capacity, strings.Join(parts, ", "))
			}
		}
	}
	return c.problems
}

// guaranteed adds up one resource of the tenants' guarantees, and lists each tenant that
// guarantees some as "NAME AMOUNT".
func guaranteed(tenants []*Tenant, get func(*Resources) *resource.Quantity) (resource.Quantity, []string) {
	var total resource.Quantity
	var parts []string
	for _, t := range tenants {
		if g := get(&t.Spec.Scheduling.Guarantee); g != nil && !g.IsZero() {
			total.Add(*g)
			parts = append(parts, fmt.Sprintf("%s %s", t.Metadata.Name, g))
		}
	}
	return total, parts
}
