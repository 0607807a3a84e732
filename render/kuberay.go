package render

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sync"

	"sigs.k8s.io/kustomize/api/types"

	"github.com/raas-dev/raas/schema"
)

// KubeRayNamespace is the namespace inside each vcluster that the operator runs in. The
// upstream base says "default"; raas overrides it.
const KubeRayNamespace = "kuberay-system"

const (
	memKubeRay = "/kuberay"
	memVolcano = "/volcano"
)

// podGroupRule lets the operator manage the PodGroups it creates for gang scheduling. The
// upstream base lacks it.
const podGroupRule = `- op: add
  path: /rules/-
  value:
    apiGroups: [scheduling.volcano.sh]
    resources: [podgroups]
    verbs: [create, delete, get, list, patch, update, watch]
`

const batchSchedulerArg = `- op: add
  path: /spec/template/spec/containers/0/args/-
  value: --batch-scheduler=volcano
`

const kuberayNamespaceYAML = `apiVersion: v1
kind: Namespace
metadata:
  name: ` + KubeRayNamespace + "\n"

type kuberayKey struct {
	version string
	gang    bool
}

type kuberayEntry struct {
	once sync.Once
	objs []*Object
	err  error
}

// virtual returns the objects applied inside a vcluster: the KubeRay CRDs and operator at
// version, wired for Volcano when gang is on, and the PodGroup CRD. They are built once per
// version and gang setting and shared by every tenant that pins them.
func (r *Renderer) virtual(version string, gang bool) ([]*Object, error) {
	key := kuberayKey{version, gang}
	r.mu.Lock()
	e, ok := r.kuberay[key]
	if !ok {
		e = &kuberayEntry{}
		r.kuberay[key] = e
	}
	r.mu.Unlock()
	e.once.Do(func() { e.objs, e.err = r.buildVirtual(version, gang) })
	return e.objs, e.err
}

func (r *Renderer) buildVirtual(version string, gang bool) ([]*Object, error) {
	base, err := r.catalog.KubeRayBase(version)
	if err != nil {
		return nil, err
	}
	crds, err := r.catalog.VolcanoCRDs(r.platform.Spec.Scheduler.VolcanoVersion)
	if err != nil {
		return nil, err
	}
	fsys, err := cloneFS(r.overlays)
	if err != nil {
		return nil, err
	}
	if err := copyTree(os.DirFS(base), ".", fsys, memKubeRay); err != nil {
		return nil, fmt.Errorf("kuberay %s: %w", version, err)
	}
	podGroups, err := os.ReadFile(filepath.Join(crds, "scheduling.volcano.sh_podgroups.yaml"))
	if err != nil {
		return nil, fmt.Errorf("volcano podgroup crd: %w", err)
	}
	files := map[string][]byte{
		path.Join(memVolcano, "podgroups.yaml"):   podGroups,
		path.Join(memBuild, "namespace.yaml"):     []byte(kuberayNamespaceYAML),
		path.Join(memBuild, "podgroup-rbac.yaml"): []byte(podGroupRule),
		path.Join(memBuild, "batch-volcano.yaml"): []byte(batchSchedulerArg),
	}
	for name, data := range files {
		if err := fsys.WriteFile(name, data); err != nil {
			return nil, err
		}
	}
	// The PodGroup CRD goes in a layer of its own, so that the namespace override does
	// not reach it.
	k := &types.Kustomization{
		Namespace: KubeRayNamespace,
		Resources: []string{path.Join("..", memKubeRay, "config", "default"), "namespace.yaml"},
		Labels:    []types.Label{{Pairs: map[string]string{schema.LabelManagedBy: schema.ManagedBy}}},
		Patches: []types.Patch{{
			Path:   "podgroup-rbac.yaml",
			Target: target("rbac.authorization.k8s.io", "ClusterRole", "kuberay-operator"),
		}},
	}
	if gang {
		k.Patches = append(k.Patches, types.Patch{
			Path:   "batch-volcano.yaml",
			Target: target("apps", "Deployment", "kuberay-operator"),
		})
	}
	if fsys.Exists(path.Join(memOverlays, string(Virtual))) {
		k.Components = []string{path.Join("..", memOverlays, string(Virtual))}
	}
	if err := writeKustomization(fsys, memBuild, k); err != nil {
		return nil, err
	}
	objs, err := kustomize(fsys, memBuild)
	if err != nil {
		return nil, fmt.Errorf("kustomize kuberay %s: %w", version, err)
	}
	crdObjs, err := kustomizeFile(fsys, memVolcano, "podgroups.yaml")
	if err != nil {
		return nil, fmt.Errorf("volcano podgroup crd: %w", err)
	}
	objs = append(objs, crdObjs...)
	sortObjects(objs)
	return objs, nil
}
