// Package benchrepo generates the tenants repositories the benchmarks measure: a platform
// sized for them and n tenants in the four shapes of issue 15, taken in turn, so that
// every benchmark of every package measures the same repository.
package benchrepo

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing/fstest"
)

// Shape is one of the kinds of tenant a GPU platform serves.
type Shape int

const (
	// GangH100 is a GPU team on the dedicated H100 pool, on profile standard@3 (KubeRay
	// 1.5), with gang scheduling.
	GangH100 Shape = iota
	// CPUOnly is a team without GPUs or gang scheduling, at the restricted Pod Security
	// level.
	CPUOnly
	// DeprecatedA10 is a team on the deprecated profile standard@2 (KubeRay 1.4), on the
	// shared A10 pool with time-sliced GPUs.
	DeprecatedA10
	// GPUNoProfile is a GPU team that pins no profile and takes the platform defaults.
	GPUNoProfile
	shapes
)

func (s Shape) String() string {
	return [...]string{"gang-h100", "cpu-only", "deprecated-a10", "gpu-no-profile"}[s]
}

// ShapeOf is the shape of the i-th tenant.
func ShapeOf(i int) Shape { return Shape(i % int(shapes)) }

// Name is the i-th tenant's name.
func Name(i int) string { return fmt.Sprintf("team-%04d", i) }

// File is where the i-th tenant's file is in the repository.
func File(i int) string { return "tenants/" + Name(i) + ".yaml" }

// Files is a repository of n tenants, by path. The platform's capacity and GPU pools
// grow with n, so that no guarantee over-commits the cluster whatever n is.
func Files(n int) map[string]string {
	files := map[string]string{
		"raas.yaml":                              Platform(n),
		"overlays/host/kustomization.yaml":       hostOverlay,
		"overlays/host/control-plane-nodes.yaml": hostOverlayPatch,
	}
	for i := range n {
		files[File(i)] = Tenant(i, 0)
	}
	return files
}

// FS is the repository of n tenants in memory.
func FS(n int) fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, body := range Files(n) {
		fsys[name] = &fstest.MapFile{Data: []byte(body)}
	}
	return fsys
}

// Write writes the repository of n tenants under dir.
func Write(dir string, n int) error { return write(dir, Files(n)) }

func write(dir string, files map[string]string) error {
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("bench repository: %w", err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return fmt.Errorf("bench repository: %w", err)
		}
	}
	return nil
}

// Tenant is the i-th tenant's file at generation gen: each generation raises its CPU
// quota by one core, so that a commit of a new generation changes its ResourceQuota and
// nothing else of the repository.
func Tenant(i, gen int) string {
	name := Name(i)
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: raas.dev/v1alpha1\nkind: Tenant\nmetadata:\n  name: %s\n", name)
	fmt.Fprintf(&b, "  labels:\n    cost-center: cc-%02d\nspec:\n  owners: [%s@example.com]\n", i%17, name)
	switch ShapeOf(i) {
	case GangH100:
		fmt.Fprintf(&b, "  profile: standard@3\n")
		fmt.Fprintf(&b, "  quota: {cpu: %q, memory: 256Gi, gpu: 8, storage: 1Ti, pods: 200}\n", fmt.Sprint(64+gen))
		b.WriteString("  scheduling:\n    weight: 2\n    guarantee: {cpu: \"16\", memory: 64Gi, gpu: 4}\n" +
			"    gpu: {pools: [h100], maxPerJob: 8}\n")
	case CPUOnly:
		fmt.Fprintf(&b, "  quota: {cpu: %q, memory: 32Gi, storage: 100Gi, pods: 50}\n", fmt.Sprint(8+gen))
		b.WriteString("  podSecurity: restricted\n  scheduling:\n    gang: {enabled: false}\n")
	case DeprecatedA10:
		fmt.Fprintf(&b, "  profile: standard@2\n")
		fmt.Fprintf(&b, "  quota: {cpu: %q, memory: 128Gi, gpu: 4, storage: 500Gi, pods: 100}\n", fmt.Sprint(32+gen))
		b.WriteString("  scheduling:\n    weight: 1\n    guarantee: {gpu: 2}\n" +
			"    gpu: {pools: [a10], maxPerJob: 4, sharing: time-slicing}\n" +
			"  network:\n    allowFrom: [monitoring]\n")
	case GPUNoProfile:
		fmt.Fprintf(&b, "  quota: {cpu: %q, memory: 64Gi, gpu: 2, storage: 200Gi, pods: 80}\n", fmt.Sprint(16+gen))
		b.WriteString("  scheduling:\n    guarantee: {gpu: 1}\n    gpu: {pools: [h100], maxPerJob: 2}\n")
	}
	return b.String()
}

// Platform is raas.yaml for a repository of n tenants: the examples' offerings, with
// capacity and pools that fit n tenants' guarantees.
func Platform(n int) string {
	gpus := 8 * (n + 1)
	return fmt.Sprintf(platform, 32*(n+1), 128*(n+1), 2*gpus, gpus, gpus)
}

const platform = `apiVersion: raas.dev/v1alpha1
kind: Platform
metadata:
  name: bench
spec:
  namespacePrefix: tenant-
  hostKubernetes: v1.37.2
  versions:
    vcluster: [0.25.0]
    kubernetes: [v1.32.1]
    kuberay: [1.5.0, 1.4.0]
  defaults:
    podSecurity: baseline
    vcluster:
      storage: 5Gi
    scheduling:
      weight: 1
      reclaimable: true
      gang: {enabled: true}
    container:
      request: {cpu: 100m, memory: 128Mi}
      limit: {cpu: "1", memory: 1Gi}
  profiles:
    - name: standard
      version: 2
      description: KubeRay 1.4 with Ray 2.41, on Kubernetes 1.32.
      deprecated: true
      vcluster: {version: 0.25.0, kubernetes: v1.32.1}
      kuberay: {version: 1.4.0}
      scheduling: {gang: {enabled: true}}
      ray:
        versions: ["2.41.0"]
        images: ["rayproject/ray:2.41.0*", "docker.io/rayproject/ray:2.41.0*"]
      overridable: [scheduling.weight, scheduling.guarantee, scheduling.gpu]
    - name: standard
      version: 3
      description: KubeRay 1.5 with Ray 2.46, on Kubernetes 1.32.
      vcluster: {version: 0.25.0, kubernetes: v1.32.1}
      kuberay: {version: 1.5.0}
      scheduling: {gang: {enabled: true}}
      ray:
        versions: ["2.46.0"]
        images: ["rayproject/ray:2.46.0*", "docker.io/rayproject/ray:2.46.0*"]
      overridable: [scheduling.weight, scheduling.guarantee, scheduling.gpu]
  capacity:
    cpu: "%d"
    memory: %dGi
    gpu: %d
  gpu:
    resource: nvidia.com/gpu
    pools:
      - name: h100
        product: NVIDIA-H100-80GB-HBM3
        gpus: %d
        taint: {key: raas.dev/gpu-pool, value: h100, effect: NoSchedule}
      - name: a10
        product: NVIDIA-A10G
        gpus: %d
    sharing:
      - name: time-slicing
        resources: [nvidia.com/gpu.shared]
  scheduler:
    plugin: capacity
    sharedNodeGroups: [cpu]
    preempt: false
    binpackGPUWeight: 10
`

// The platform's host overlay, as in the examples: every vcluster control plane runs on
// the system node pool.
const (
	hostOverlay = `apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
patches:
  - path: control-plane-nodes.yaml
    target:
      group: apps
      kind: StatefulSet
`
	hostOverlayPatch = `- op: add
  path: /spec/template/spec/nodeSelector
  value:
    node-role.kubernetes.io/system: "true"
`
)
