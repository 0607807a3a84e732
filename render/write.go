package render

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/raas-dev/raas/schema"
)

// PlatformDir is the directory WriteDir puts platform-wide objects in. A tenant name is
// a DNS label and cannot start with an underscore, so it never collides.
const PlatformDir = "_platform"

// Stream renders the repository at the root of repoFS as Repo does and writes it to w as
// WriteStream would, each tenant as soon as it and those before it have rendered, keeping
// none: the Result has no Tenants. A render of a thousand tenants holds a few at a time
// rather than all of them (issue 15: 240 MiB live, 650 MiB resident). The platform
// objects are written first unless opts.Tenants limits the render.
func Stream(w io.Writer, repoFS fs.FS, repoDir string, opts Options) (*Result, error) {
	c := NewCache(opts)
	wrotePlatform := false
	writePlatform := func() error {
		if wrotePlatform || len(opts.Tenants) > 0 || c.platform == nil {
			return nil
		}
		wrotePlatform = true
		return WriteStream(w, c.platform, nil)
	}
	c.emit = func(out *Output) error {
		if err := writePlatform(); err != nil {
			return err
		}
		return writeStream(w, nil, []*Output{out}, c.placement)
	}
	res, _, err := c.Render(repoFS, repoDir)
	if err != nil {
		return nil, err
	}
	if err := writePlatform(); err != nil {
		return nil, err
	}
	return res, nil
}

// WriteStream writes the platform objects and each tenant's objects, host first, as one
// multi-document YAML stream. A comment before each object says where it goes.
func WriteStream(w io.Writer, platform []*Object, tenants []*Output) error {
	return writeStream(w, platform, tenants, nil)
}

// writeStream is WriteStream, naming each tenant's cluster for a fleet's placement.
func writeStream(w io.Writer, platform []*Object, tenants []*Output, placement schema.Placement) error {
	write := func(scope string, target Target, objs []*Object) error {
		for _, o := range objs {
			data, err := o.YAML()
			if err != nil {
				return fmt.Errorf("%s: %w", o.ID(), err)
			}
			if _, err := fmt.Fprintf(w, "---\n# raas: %s %s\n%s", scope, target, data); err != nil {
				return err
			}
		}
		return nil
	}
	if err := write("platform", Host, platform); err != nil {
		return err
	}
	for _, t := range tenants {
		scope := "tenant=" + t.Tenant
		if placement != nil {
			scope = "cluster=" + placement[t.Tenant] + " " + scope
		}
		if err := write(scope, Host, t.Host); err != nil {
			return err
		}
		if err := write(scope, Virtual, t.Virtual); err != nil {
			return err
		}
	}
	return nil
}

// WriteDir writes one file per object under dir: _platform/ for the platform objects and
// <tenant>/<target>/ for each tenant. It replaces what those directories held, so that a
// deleted object does not linger.
func WriteDir(dir string, platform []*Object, tenants []*Output) error {
	if platform != nil {
		if err := writeObjects(filepath.Join(dir, PlatformDir), platform); err != nil {
			return err
		}
	}
	for _, t := range tenants {
		for _, target := range []Target{Host, Virtual} {
			if err := writeObjects(filepath.Join(dir, t.Tenant, string(target)), t.Objects(target)); err != nil {
				return err
			}
		}
	}
	return nil
}

// WriteClusterDirs writes a fleet's render: under dir/<cluster>/, for each of clusters,
// what WriteDir writes for the tenants placement puts there, and the platform objects,
// which every cluster gets.
func WriteClusterDirs(dir string, clusters []string, placement schema.Placement, platform []*Object, tenants []*Output) error {
	for _, c := range clusters {
		var here []*Output
		for _, t := range tenants {
			if placement[t.Tenant] == c {
				here = append(here, t)
			}
		}
		if err := WriteDir(filepath.Join(dir, c), platform, here); err != nil {
			return err
		}
	}
	return nil
}

func writeObjects(dir string, objs []*Object) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i, o := range objs {
		data, err := o.YAML()
		if err != nil {
			return fmt.Errorf("%s: %w", o.ID(), err)
		}
		if err := os.WriteFile(filepath.Join(dir, fileName(i, o)), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// fileName is NNN-kind-namespace-name.yaml: the number keeps apply order in a listing.
func fileName(i int, o *Object) string {
	parts := []string{fmt.Sprintf("%03d", i), strings.ToLower(o.GetKind())}
	if ns := o.GetNamespace(); ns != "" {
		parts = append(parts, ns)
	}
	parts = append(parts, o.GetName())
	return strings.ReplaceAll(strings.Join(parts, "-"), ":", "_") + ".yaml"
}
