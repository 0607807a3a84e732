package schema

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// profileFields are the spec fields a profile decides. A tenant on a profile may set them
// only where the profile lists them as overridable.
var profileFields = []string{"vcluster", "kuberay", "scheduling", "ray"}

// Profile returns the profile pinned as ref (NAME@VERSION), or nil.
func (p *Platform) Profile(ref string) *Profile {
	for i := range p.Spec.Profiles {
		if p.Spec.Profiles[i].Ref() == ref {
			return &p.Spec.Profiles[i]
		}
	}
	return nil
}

// liveProfiles lists the refs of the profiles that are neither deprecated nor removed.
func (p *Platform) liveProfiles() []string {
	var refs []string
	for _, prof := range p.Spec.Profiles {
		if !prof.Deprecated && !prof.Removed {
			refs = append(refs, prof.Ref())
		}
	}
	return refs
}

// expandProfile fills the tenant's unset profile fields from its profile, and reports
// fields the tenant sets that the profile does not let it override. set are the paths of
// the values the tenant sets.
func (t *Tenant) expandProfile(p *Platform, set []string) Problems {
	ref := t.Spec.Profile
	if ref == "" {
		return nil
	}
	c := &checker{file: t.Source.File, pos: t.Source.pos}
	prof := p.Profile(ref)
	switch {
	case prof == nil:
		c.errorf("spec.profile", "profile %q does not exist; live profiles: %s", ref, strings.Join(p.liveProfiles(), ", "))
		return c.problems
	case prof.Removed:
		c.errorf("spec.profile", "profile %s was removed; move to one of: %s", ref, strings.Join(p.liveProfiles(), ", "))
		return c.problems
	case prof.Deprecated:
		c.add(SeverityWarning, "spec.profile", "profile %s is deprecated; move to one of: %s", ref, strings.Join(p.liveProfiles(), ", "))
	}
	for _, path := range set {
		field, ok := strings.CutPrefix(path, "spec.")
		if !ok || !slices.Contains(profileFields, topField(field)) || overridable(prof, field) {
			continue
		}
		allowed := "nothing"
		if len(prof.Overridable) > 0 {
			allowed = strings.Join(prof.Overridable, ", ")
		}
		c.errorf(path, "profile %s does not let tenants set %s; it allows: %s", ref, field, allowed)
	}
	fillFrom(reflect.ValueOf(&t.Spec.VCluster).Elem(), reflect.ValueOf(prof.VCluster))
	fillFrom(reflect.ValueOf(&t.Spec.KubeRay).Elem(), reflect.ValueOf(prof.KubeRay))
	fillFrom(reflect.ValueOf(&t.Spec.Scheduling).Elem(), reflect.ValueOf(prof.Scheduling))
	fillFrom(reflect.ValueOf(&t.Spec.Ray).Elem(), reflect.ValueOf(prof.Ray))
	return c.problems
}

// overridable reports whether field (a path under spec) is at or below one of the
// profile's overridable fields.
func overridable(prof *Profile, field string) bool {
	for _, o := range prof.Overridable {
		if field == o || strings.HasPrefix(field, o+".") || strings.HasPrefix(field, o+"[") {
			return true
		}
	}
	return false
}

func topField(path string) string {
	if i := strings.IndexAny(path, ".["); i >= 0 {
		return path[:i]
	}
	return path
}

// leaves returns the paths of the scalar values a document sets, sorted.
func (p positions) leaves() []string {
	var paths []string
	for path, n := range p.values {
		if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
			paths = append(paths, path)
		}
	}
	slices.Sort(paths)
	return paths
}

// fillFrom sets every zero field of dst, a struct, from src, recursing into structs. A
// field the tenant set, even to an empty list, is kept.
func fillFrom(dst, src reflect.Value) {
	for i := range dst.NumField() {
		d, s := dst.Field(i), src.Field(i)
		switch {
		case !d.CanSet():
		case d.Kind() == reflect.Struct:
			fillFrom(d, s)
		case d.IsZero():
			d.Set(deepCopy(s))
		}
	}
}

// deepCopy copies pointers and slices so that tenants never share a profile's values.
func deepCopy(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		c := reflect.New(v.Type().Elem())
		c.Elem().Set(deepCopy(v.Elem()))
		return c
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			c.Index(i).Set(deepCopy(v.Index(i)))
		}
		return c
	case reflect.Struct:
		c := reflect.New(v.Type()).Elem()
		c.Set(v)
		for i := range v.NumField() {
			if c.Field(i).CanSet() {
				c.Field(i).Set(deepCopy(v.Field(i)))
			}
		}
		return c
	}
	return v
}

// validateProfiles checks the platform's profiles.
func validateProfiles(c *checker, p *Platform) {
	seen := map[string]bool{}
	specFields := jsonPaths(reflect.TypeFor[TenantSpec](), "")
	for i, prof := range p.Spec.Profiles {
		f := fmt.Sprintf("spec.profiles[%d]", i)
		c.dnsLabel(f+".name", prof.Name, 63)
		if prof.Version < 1 {
			c.errorf(f+".version", "must be a whole number from 1, got %d", prof.Version)
		}
		if seen[prof.Ref()] {
			c.errorf(f, "profile %s is declared twice", prof.Ref())
		}
		seen[prof.Ref()] = true
		if prof.Removed {
			continue // nothing renders from a removed profile
		}
		v := &p.Spec.Versions
		if prof.VCluster.Version != "" {
			c.oneOf(f+".vcluster.version", prof.VCluster.Version, v.VCluster)
		}
		if prof.VCluster.Kubernetes != "" {
			c.oneOf(f+".vcluster.kubernetes", prof.VCluster.Kubernetes, v.Kubernetes)
		}
		if prof.KubeRay.Version != "" {
			c.oneOf(f+".kuberay.version", prof.KubeRay.Version, v.KubeRay)
		}
		checkArgs(c, f+".kuberay.args", prof.KubeRay.Args)
		for j, o := range prof.Overridable {
			if !slices.Contains(specFields, o) {
				c.errorf(fmt.Sprintf("%s.overridable[%d]", f, j), "%q is not a tenant field under spec", o)
			}
		}
		checkRayPolicy(c, f+".ray", prof.Ray)
	}
}

// jsonPaths lists the dotted JSON paths of a struct type's fields, at every depth.
func jsonPaths(t reflect.Type, prefix string) []string {
	var paths []string
	for name, idx := range jsonFields(t) {
		path := prefix + name
		paths = append(paths, path)
		ft := t.Field(idx).Type
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft.PkgPath() == t.PkgPath() {
			paths = append(paths, jsonPaths(ft, path+".")...)
		}
	}
	return paths
}

func checkArgs(c *checker, field string, args []string) {
	for i, a := range args {
		if !strings.HasPrefix(a, "--") || strings.ContainsAny(a, " \t\n") {
			c.errorf(fmt.Sprintf("%s[%d]", field, i), "%q is not a flag such as --name=value", a)
		}
	}
}

func checkRayPolicy(c *checker, field string, r RayPolicy) {
	for i, v := range r.Versions {
		if _, err := strconv.Atoi(strings.ReplaceAll(v, ".", "")); err != nil || strings.Count(v, ".") > 2 {
			c.errorf(fmt.Sprintf("%s.versions[%d]", field, i), "%q is not a Ray version such as 2.46.0", v)
		}
	}
	for i, img := range r.Images {
		if img == "" || strings.ContainsAny(img, " \t\n") || strings.Contains(strings.TrimSuffix(img, "*"), "*") {
			c.errorf(fmt.Sprintf("%s.images[%d]", field, i), "%q is not an image reference, or a prefix ending in *", img)
		}
	}
}
