package render

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/resid"
	"sigs.k8s.io/yaml"

	"github.com/raas-dev/raas/schema"
)

// Directories of the in-memory filesystem a build runs on. Nothing outside it can be read:
// the tenants repository's overlays and the catalog's bases are copied in first.
const (
	memOverlays = "/overlays"
	memBuild    = "/build"
)

// kustomize builds the kustomization in dir of fsys with raas's options: plugins, exec
// functions and Helm inflation stay off, and loads stay under the kustomization root.
func kustomize(fsys filesys.FileSystem, dir string) ([]*Object, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(fsys, dir)
	if err != nil {
		return nil, err
	}
	objs := make([]*Object, 0, m.Size())
	for _, r := range m.Resources() {
		// Through JSON, so that numbers become the int64 and float64 that unstructured
		// objects hold, not the int that kyaml gives. This is RNode.MarshalJSON
		// (kustomize/kyaml v0.21 yaml/rnode.go:975) without its round trip through YAML
		// text: decoding the node itself gives the same map, and the round trip was a
		// quarter of a render's CPU (issue 15).
		m := map[string]any{}
		if err := r.YNode().Decode(&m); err != nil {
			return nil, fmt.Errorf("%s: %w", r.CurId(), err)
		}
		data, err := json.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.CurId(), err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(data); err != nil {
			return nil, fmt.Errorf("%s: %w", r.CurId(), err)
		}
		objs = append(objs, newObject(u))
	}
	return objs, nil
}

// writeKustomization writes a kustomization file into fsys at dir.
func writeKustomization(fsys filesys.FileSystem, dir string, k *types.Kustomization) error {
	k.APIVersion = types.KustomizationVersion
	k.Kind = types.KustomizationKind
	data, err := yaml.Marshal(k)
	if err != nil {
		return err
	}
	return fsys.WriteFile(path.Join(dir, "kustomization.yaml"), data)
}

// copyTree copies the tree at root of src into dst under prefix. It refuses symlinks, so
// that nothing outside src can be reached through one.
func copyTree(src fs.FS, root string, dst filesys.FileSystem, prefix string) error {
	return fs.WalkDir(src, root, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := path.Join(prefix, strings.TrimPrefix(strings.TrimPrefix(name, root), "/"))
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			return fmt.Errorf("%s: symlinks are not allowed", name)
		case d.IsDir():
			return dst.MkdirAll(target)
		case !d.Type().IsRegular():
			return fmt.Errorf("%s: not a regular file", name)
		}
		data, err := fs.ReadFile(src, name)
		if err != nil {
			return err
		}
		return dst.WriteFile(target, data)
	})
}

// checkOverlay rejects a kustomization under the overlays directory that reaches outside
// it: remote bases, absolute paths, and ../ escapes. The in-memory filesystem already
// keeps it from reading the host's disk; this turns the attempt into a clear error
// instead of a clone attempt or a confusing "not found".
func checkOverlay(fsys filesys.FileSystem, file string) error {
	data, err := fsys.ReadFile(file)
	if err != nil {
		return err
	}
	var k types.Kustomization
	if err := yaml.Unmarshal(data, &k); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	dir := path.Dir(file)
	refs := append(append(append([]string(nil), k.Resources...), k.Components...), k.Crds...)
	for _, p := range k.Patches {
		if p.Path != "" {
			refs = append(refs, p.Path)
		}
	}
	if len(k.HelmCharts) > 0 || len(k.Generators) > 0 || len(k.Transformers) > 0 || len(k.Validators) > 0 {
		return fmt.Errorf("%s: helmCharts, generators, transformers and validators are not allowed in overlays", file)
	}
	for _, ref := range refs {
		if strings.Contains(ref, "://") || strings.HasPrefix(ref, "git@") || strings.HasPrefix(ref, "github.com/") {
			return fmt.Errorf("%s: remote reference %q is not allowed; overlays must stay inside the tenants repository", file, ref)
		}
		if path.IsAbs(ref) {
			return fmt.Errorf("%s: absolute path %q is not allowed", file, ref)
		}
		target := path.Join(dir, ref)
		if target != memOverlays && !strings.HasPrefix(target, memOverlays+"/") {
			return fmt.Errorf("%s: %q points outside the overlays directory", file, ref)
		}
		if !fsys.Exists(target) {
			return fmt.Errorf("%s: %q does not exist in the overlays directory", file, ref)
		}
	}
	return nil
}

// loadOverlays copies the repository's overlays directory into a fresh in-memory
// filesystem and checks every kustomization in it. A repository without overlays yields
// an empty filesystem.
func loadOverlays(repo fs.FS, dir string) (filesys.FileSystem, error) {
	mem := filesys.MakeFsInMemory()
	if _, err := fs.Stat(repo, dir); errors.Is(err, fs.ErrNotExist) {
		return mem, nil
	}
	if err := copyTree(repo, dir, mem, memOverlays); err != nil {
		return nil, fmt.Errorf("overlays: %w", err)
	}
	err := mem.Walk(memOverlays, func(name string, info fs.FileInfo, err error) error {
		if err != nil {
			return err
		}
		switch path.Base(name) {
		case "kustomization.yaml", "kustomization.yml", "Kustomization":
			return checkOverlay(mem, name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("overlays: %w", err)
	}
	return mem, nil
}

// kustomizeFile builds a single file of plain objects in dir, labelled as raas's.
func kustomizeFile(fsys filesys.FileSystem, dir, file string) ([]*Object, error) {
	k := &types.Kustomization{
		Resources: []string{file},
		Labels:    []types.Label{{Pairs: map[string]string{schema.LabelManagedBy: schema.ManagedBy}}},
	}
	if err := writeKustomization(fsys, dir, k); err != nil {
		return nil, err
	}
	return kustomize(fsys, dir)
}

// target selects one object of a kind by name, for a patch.
func target(group, kind, name string) *types.Selector {
	return &types.Selector{ResId: resid.NewResId(resid.Gvk{Group: group, Kind: kind}, name)}
}
