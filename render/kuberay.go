package render

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

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
// upstream base lacks it. KubeRay 1.4.0 also reads the PodGroup CRD once at start when
// --batch-scheduler=volcano is set, and panics when it may not
// (controllers/ray/batchscheduler/volcano/volcano_scheduler.go:157, called from
// raycluster_controller.go:69); the second rule allows that one get and nothing else.
// internal/testenv's TestKubeRay, which runs 1.4.0 as its ServiceAccount, found it.
const podGroupRule = `- op: add
  path: /rules/-
  value:
    apiGroups: [scheduling.volcano.sh]
    resources: [podgroups]
    verbs: [create, delete, get, list, patch, update, watch]
- op: add
  path: /rules/-
  value:
    apiGroups: [apiextensions.k8s.io]
    resources: [customresourcedefinitions]
    resourceNames: [podgroups.scheduling.volcano.sh]
    verbs: [get]
`

const kuberayNamespaceYAML = `apiVersion: v1
kind: Namespace
metadata:
  name: ` + KubeRayNamespace + "\n"

type kuberayKey struct {
	version string
	gang    bool
	args    string // extra operator flags, joined by newlines
}

// kuberay returns the KubeRay CRDs and operator at version, wired for Volcano when gang is
// on and given the extra flags args, and the PodGroup CRD. They are built once per
// version, gang setting and flags, and shared by every tenant that pins them.
func (r *Renderer) kuberay(version string, gang bool, args []string) ([]*Object, error) {
	key := kuberayKey{version, gang, strings.Join(args, "\n")}
	return r.kuberayCache.Get(key, func() ([]*Object, error) { return r.buildKubeRay(version, gang, args) })
}

func (r *Renderer) buildKubeRay(version string, gang bool, args []string) ([]*Object, error) {
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
		}, {
			// KubeRay's base drops no capability, which the restricted Pod Security
			// Standard requires: in a restricted tenant, the vcluster refuses the
			// operator's pod (found by running the real syncer in the twin).
			Patch:  restrictedOperatorPatch,
			Target: target("apps", "Deployment", "kuberay-operator"),
		}},
	}
	flags := args
	if gang {
		flags = append([]string{"--batch-scheduler=volcano"}, args...)
	}
	if len(flags) > 0 {
		var patch strings.Builder
		for _, f := range flags {
			fmt.Fprintf(&patch, "- op: add\n  path: /spec/template/spec/containers/0/args/-\n  value: %q\n", f)
		}
		k.Patches = append(k.Patches, types.Patch{
			Patch:  patch.String(),
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
	for _, o := range objs {
		o.shared = true
	}
	sortObjects(objs)
	return objs, nil
}

// restrictedOperatorPatch makes the operator's container meet the restricted Pod
// Security Standard: it needs no capability.
const restrictedOperatorPatch = `- op: add
  path: /spec/template/spec/containers/0/securityContext/capabilities
  value: {drop: [ALL]}
`
