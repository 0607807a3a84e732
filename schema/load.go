package schema

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

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
}

// Rejected is a tenant file that failed to decode or validate. Name is the tenant name
// taken from the file name, which must match metadata.name.
type Rejected struct {
	File string
	Name string
}

// OK reports whether the repository has no errors at all (warnings are fine).
func (r *Repo) OK() bool { return len(r.Problems.Errors()) == 0 }

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
// It returns an error only when the repository cannot be read; problems with its content
// are in Repo.Problems. A tenant with problems is left out of Repo.Tenants and listed in
// Repo.Rejected; the other tenants are still loaded. When raas.yaml itself has errors,
// Repo.Platform is nil and no tenant is valid.
func Load(fsys fs.FS) (*Repo, error) {
	repo := &Repo{}
	platform, problems, err := loadPlatform(fsys)
	if err != nil {
		return nil, err
	}
	repo.Problems = append(repo.Problems, problems...)
	if len(problems.Errors()) == 0 {
		repo.Platform = platform
	}

	files, err := tenantFiles(fsys)
	if err != nil {
		return nil, err
	}
	byName := map[string]string{}
	for _, file := range files {
		data, err := fs.ReadFile(fsys, file)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", file, err)
		}
		t, problems := DecodeTenant(file, data)
		if len(problems.Errors()) == 0 && repo.Platform != nil {
			t.Default(repo.Platform)
			problems = append(problems, t.Validate(repo.Platform)...)
		}
		name := strings.TrimSuffix(path.Base(file), path.Ext(file))
		if t.Metadata.Name != "" && t.Metadata.Name != name {
			problems = append(problems, t.problem("metadata.name",
				"%q does not match the file name; name the file %s.yaml", t.Metadata.Name, t.Metadata.Name))
		}
		if other, dup := byName[name]; dup {
			problems = append(problems, t.problem("metadata.name", "tenant %q is also defined in %s", name, other))
		}
		byName[name] = file
		repo.Problems = append(repo.Problems, problems...)
		if len(problems.Errors()) > 0 || repo.Platform == nil {
			repo.Rejected = append(repo.Rejected, Rejected{File: file, Name: name})
			continue
		}
		repo.Tenants = append(repo.Tenants, t)
	}
	slices.SortFunc(repo.Tenants, func(a, b *Tenant) int { return strings.Compare(a.Metadata.Name, b.Metadata.Name) })
	if repo.Platform != nil {
		repo.Problems = append(repo.Problems, checkCapacity(repo.Platform, repo.Tenants)...)
	}
	repo.Problems.Sort()
	return repo, nil
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

// tenantFiles lists tenants/*.yaml and tenants/*.yml in lexical order. A missing
// tenants directory is an empty list, not an error.
func tenantFiles(fsys fs.FS) ([]string, error) {
	entries, err := fs.ReadDir(fsys, TenantsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", TenantsDir, err)
	}
	var files []string
	for _, e := range entries {
		ext := path.Ext(e.Name())
		if e.Type().IsRegular() && (ext == ".yaml" || ext == ".yml") {
			files = append(files, path.Join(TenantsDir, e.Name()))
		}
	}
	return files, nil
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

// checkCapacity reports when the tenants' guarantees add up to more than the cluster's
// declared capacity. It names the tenants and the totals.
func checkCapacity(p *Platform, tenants []*Tenant) Problems {
	c := &checker{file: p.Source.File, pos: p.Source.pos}
	check := func(resourceName string, capacity *resource.Quantity, guarantee func(*Tenant) *resource.Quantity) {
		if capacity == nil {
			return
		}
		var total resource.Quantity
		var parts []string
		for _, t := range tenants {
			if g := guarantee(t); g != nil && !g.IsZero() {
				total.Add(*g)
				parts = append(parts, fmt.Sprintf("%s %s", t.Metadata.Name, g))
			}
		}
		if total.Cmp(*capacity) > 0 {
			c.errorf("spec.capacity."+resourceName,
				"over-committed: tenants guarantee %s %s in total but the cluster has %s (%s)",
				total.String(), resourceName, capacity, strings.Join(parts, ", "))
		}
	}
	capacity := &p.Spec.Capacity
	check("gpu", capacity.GPU, func(t *Tenant) *resource.Quantity { return t.Spec.Scheduling.Guarantee.GPU })
	check("cpu", capacity.CPU, func(t *Tenant) *resource.Quantity { return t.Spec.Scheduling.Guarantee.CPU })
	check("memory", capacity.Memory, func(t *Tenant) *resource.Quantity { return t.Spec.Scheduling.Guarantee.Memory })
	return c.problems
}
