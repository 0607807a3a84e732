package render

import (
	"bytes"
	"fmt"
	"io/fs"
	"path"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/raas-dev/raas/internal/memo"
	"github.com/raas-dev/raas/render/catalog"
	"github.com/raas-dev/raas/scheduler"
	"github.com/raas-dev/raas/schema"
)

// Target says where an object is applied.
type Target string

const (
	// Host objects go to the host cluster.
	Host Target = "host"
	// Virtual objects go into the tenant's vcluster.
	Virtual Target = "virtual"
)

// Output is everything one tenant renders to, grouped by target and ordered so that
// dependencies come first.
type Output struct {
	Tenant  string
	File    string
	Host    []*Object
	Virtual []*Object
	// Asleep is set for an expired sandbox: its vcluster is scaled to zero, so its
	// virtual objects cannot be applied, and must not be pruned, until it wakes.
	Asleep bool
	// Quota is what the tenant may use, as a reviewer weighs it. Like the objects, it is
	// shared: read it, do not change it.
	Quota *Quota
	// RetainData is spec.vcluster.retainData, defaulted: whether removing the tenant keeps
	// the namespace that holds its vcluster's data volumes.
	RetainData bool
	// Gang is set when the tenant's Ray clusters are gang-scheduled by Volcano: the
	// PodGroups made inside its vcluster must reach the host.
	Gang bool
}

// Objects returns the objects of target.
func (o *Output) Objects(target Target) []*Object {
	if target == Virtual {
		return o.Virtual
	}
	return o.Host
}

// Renderer renders the tenants of one repository. It loads each chart and base once and
// reuses it for every tenant that pins the same version. It is safe for concurrent use.
type Renderer struct {
	platform *schema.Platform
	catalog  *catalog.Catalog
	overlays filesys.FileSystem

	kuberayCache memo.Map[kuberayKey, []*Object]
	charts       chartShapes
	schemas      chartSchemas
}

// New returns a renderer for the repository at the root of repoFS, whose platform config
// is p (defaulted and valid). The repository's own catalog directory is searched before
// the directories in opts.
func New(repoFS fs.FS, repoDir string, p *schema.Platform, opts catalog.Options) (*Renderer, error) {
	if repoDir != "" {
		opts.Dirs = append([]string{path.Join(repoDir, p.Spec.Catalog.Dir)}, opts.Dirs...)
	}
	if opts.ChartRepository == "" {
		opts.ChartRepository = p.Spec.Catalog.VClusterChart
	}
	overlays, err := loadOverlays(repoFS, schema.OverlaysDir)
	if err != nil {
		return nil, err
	}
	return &Renderer{
		platform: p,
		catalog:  catalog.New(opts),
		overlays: overlays,
	}, nil
}

// Tenant renders one tenant (defaulted and valid).
func (r *Renderer) Tenant(t *schema.Tenant) (*Output, error) {
	name := t.Metadata.Name
	s := scheduler.ForTenant(r.platform, t)
	host, err := r.host(t, s)
	if err != nil {
		return nil, fmt.Errorf("tenant %s: %w", name, err)
	}
	virtual, err := r.virtual(t, s)
	if err != nil {
		return nil, fmt.Errorf("tenant %s: %w", name, err)
	}
	return &Output{Tenant: name, File: t.Source.File, Host: host, Virtual: virtual, Asleep: t.Asleep,
		Quota: quotaOf(t), RetainData: retainData(t), Gang: s.Gang}, nil
}

// virtual returns the objects applied inside the tenant's vcluster: the shared KubeRay
// objects and the tenant's own Ray policy.
func (r *Renderer) virtual(t *schema.Tenant, s *scheduler.Tenant) ([]*Object, error) {
	shared, err := r.kuberay(t.Spec.KubeRay.Version, s.Gang, t.Spec.KubeRay.Args)
	if err != nil {
		return nil, err
	}
	own, err := fromTypedAll(rayPolicy(t.Spec.Ray))
	if err != nil {
		return nil, err
	}
	for _, o := range own {
		o.SetLabels(map[string]string{schema.LabelManagedBy: schema.ManagedBy})
	}
	objs := append(append([]*Object(nil), shared...), own...)
	sortObjects(objs)
	return objs, nil
}

// Platform renders the platform-wide objects: the Volcano scheduler configuration and
// the admission policies every tenant's bindings refer to.
func (r *Renderer) Platform() ([]*Object, error) {
	typed, err := scheduler.Platform(r.platform)
	if err != nil {
		return nil, fmt.Errorf("platform: %w", err)
	}
	objs, err := fromTypedAll(typed)
	if err != nil {
		return nil, fmt.Errorf("platform: %w", err)
	}
	for _, o := range objs {
		o.SetLabels(mergeLabels(o.GetLabels(), map[string]string{schema.LabelManagedBy: schema.ManagedBy}))
	}
	sortObjects(objs)
	return objs, nil
}

// host assembles the tenant's host objects with kustomize: raas's own objects, the
// scheduler's, and the vcluster chart, with the platform's host overlay on top and the
// tenant and managed-by labels on everything.
func (r *Renderer) host(t *schema.Tenant, s *scheduler.Tenant) ([]*Object, error) {
	typed := hostObjects(r.platform, t, s)
	typed = append(typed, s.Queue())
	typed = append(typed, s.Objects()...)
	own, err := fromTypedAll(typed)
	if err != nil {
		return nil, err
	}
	ownYAML, err := joinYAML(own)
	if err != nil {
		return nil, err
	}
	chartYAML, err := r.vcluster(t, s)
	if err != nil {
		return nil, err
	}

	fsys, err := cloneFS(r.overlays)
	if err != nil {
		return nil, err
	}
	if err := fsys.WriteFile(path.Join(memBuild, "raas.yaml"), ownYAML); err != nil {
		return nil, err
	}
	if err := fsys.WriteFile(path.Join(memBuild, "vcluster.yaml"), chartYAML); err != nil {
		return nil, err
	}
	k := &types.Kustomization{
		Resources: []string{"raas.yaml", "vcluster.yaml"},
		Labels: []types.Label{{Pairs: map[string]string{
			schema.LabelTenant:    t.Metadata.Name,
			schema.LabelManagedBy: schema.ManagedBy,
		}}},
	}
	if t.Asleep {
		k.Patches = append(k.Patches, types.Patch{
			Patch: "- op: replace\n  path: /spec/replicas\n  value: 0\n" +
				"- op: add\n  path: /spec/persistentVolumeClaimRetentionPolicy/whenScaled\n  value: Retain\n",
			Target: target("apps", "StatefulSet", schema.Release(t.Metadata.Name)),
		})
	}
	if fsys.Exists(path.Join(memOverlays, string(Host))) {
		k.Components = []string{path.Join("..", memOverlays, string(Host))}
	}
	if err := writeKustomization(fsys, memBuild, k); err != nil {
		return nil, err
	}
	objs, err := kustomize(fsys, memBuild)
	if err != nil {
		return nil, fmt.Errorf("kustomize host objects: %w", err)
	}
	sortObjects(objs)
	return objs, nil
}

func (r *Renderer) vcluster(t *schema.Tenant, s *scheduler.Tenant) ([]byte, error) {
	ch, err := r.catalog.VClusterChart(t.Spec.VCluster.Version)
	if err != nil {
		return nil, err
	}
	return r.charts.render(chartInputsOf(t), func(in chartInputs) ([]byte, error) {
		values, err := vclusterValues(r.platform, in)
		if err != nil {
			return nil, err
		}
		return renderChart(ch, &r.schemas, schema.Release(in.Name), r.platform.Namespace(in.Name),
			r.platform.Spec.HostKubernetes, values)
	})
}

func fromTypedAll(typed []client.Object) ([]*Object, error) {
	objs := make([]*Object, 0, len(typed))
	for _, obj := range typed {
		o, err := fromTyped(obj)
		if err != nil {
			return nil, err
		}
		objs = append(objs, o)
	}
	return objs, nil
}

// joinYAML writes objects as one multi-document YAML stream.
func joinYAML(objs []*Object) ([]byte, error) {
	var b bytes.Buffer
	for _, o := range objs {
		data, err := o.YAML()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", o.ID(), err)
		}
		b.WriteString("---\n")
		b.Write(data)
	}
	return b.Bytes(), nil
}

// cloneFS copies an in-memory filesystem, so that each build gets its own.
func cloneFS(src filesys.FileSystem) (filesys.FileSystem, error) {
	dst := filesys.MakeFsInMemory()
	if !src.Exists("/") {
		return dst, nil
	}
	err := src.Walk("/", func(name string, info fs.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		data, err := src.ReadFile(name)
		if err != nil {
			return err
		}
		return dst.WriteFile(name, data)
	})
	return dst, err
}

func mergeLabels(base, extra map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}
