package render

import (
	"bytes"
	"fmt"
	"path"
	"slices"
	"strings"

	vclusterconfig "github.com/loft-sh/vcluster/config"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"

	"github.com/raas-dev/raas/schema"
)

// The resources of the vcluster's own pods in the host namespace. raas sets them
// explicitly, with requests no higher than limits, and adds them to the tenant's quota so
// that the control plane does not eat into what the team asked for.
var (
	controlPlaneResources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:              resource.MustParse("200m"),
			corev1.ResourceMemory:           resource.MustParse("256Mi"),
			corev1.ResourceEphemeralStorage: resource.MustParse("400Mi"),
		},
		Limits: corev1.ResourceList{
			corev1.ResourceCPU:              resource.MustParse("1"),
			corev1.ResourceMemory:           resource.MustParse("2Gi"),
			corev1.ResourceEphemeralStorage: resource.MustParse("8Gi"),
		},
	}
	distroInitResources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("40m"),
			corev1.ResourceMemory: resource.MustParse("64Mi"),
		},
		Limits: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("100m"),
			corev1.ResourceMemory: resource.MustParse("256Mi"),
		},
	}
	corednsResources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("20m"),
			corev1.ResourceMemory: resource.MustParse("64Mi"),
		},
		Limits: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("1"),
			corev1.ResourceMemory: resource.MustParse("170Mi"),
		},
	}
	// controlPlanePods is the number of host pods the vcluster itself runs: the control
	// plane and CoreDNS.
	controlPlanePods = int64(2)
)

// restrictedPodSecurity and restrictedContainerSecurity let the control plane run in a
// namespace that enforces the restricted Pod Security Standard.
var (
	restrictedPodSecurity = map[string]any{
		"runAsNonRoot":   true,
		"runAsUser":      int64(12345),
		"runAsGroup":     int64(12345),
		"fsGroup":        int64(12345),
		"seccompProfile": map[string]any{"type": "RuntimeDefault"},
	}
	restrictedContainerSecurity = map[string]any{
		"allowPrivilegeEscalation": false,
		"runAsNonRoot":             true,
		"runAsUser":                int64(12345),
		"runAsGroup":               int64(12345),
		"capabilities":             map[string]any{"drop": []any{"ALL"}},
		"seccompProfile":           map[string]any{"type": "RuntimeDefault"},
	}
)

// chartInputs is everything of a tenant that its vcluster chart renders from. Keeping it
// to this struct is what lets chartShapes share one render between tenants that differ
// only in Name: a new input must be added here, and so becomes part of a shape's key.
type chartInputs struct {
	Name       string
	Version    string
	Kubernetes string
	Storage    string
	RetainData bool
	// PodSecurity is the tenant's Pod Security Standard, which its vcluster enforces.
	PodSecurity string
}

func chartInputsOf(t *schema.Tenant) chartInputs {
	return chartInputs{
		Name:        t.Metadata.Name,
		Version:     t.Spec.VCluster.Version,
		Kubernetes:  t.Spec.VCluster.Kubernetes,
		Storage:     t.Spec.VCluster.Storage.String(),
		RetainData:  *t.Spec.VCluster.RetainData,
		PodSecurity: t.Spec.PodSecurity,
	}
}

// vclusterValues builds the chart values for a tenant from vcluster's own typed config,
// and returns only what differs from the chart's defaults.
func vclusterValues(p *schema.Platform, in chartInputs) (map[string]any, error) {
	base, err := vclusterconfig.NewDefaultConfig()
	if err != nil {
		return nil, fmt.Errorf("vcluster default config: %w", err)
	}
	cfg, err := vclusterconfig.NewDefaultConfig()
	if err != nil {
		return nil, fmt.Errorf("vcluster default config: %w", err)
	}
	release := schema.Release(in.Name)
	namespace := p.Namespace(in.Name)
	cp := &cfg.ControlPlane

	cp.Distro.K8S.Enabled = true
	cp.Distro.K8S.Image.Tag = in.Kubernetes
	cp.Distro.K8S.Resources = resourcesMap(distroInitResources)
	cp.Distro.K8S.SecurityContext = restrictedContainerSecurity
	// The open-source build: raas uses no Pro feature.
	cp.StatefulSet.Image.Repository = "loft-sh/vcluster-oss"
	cp.StatefulSet.Image.Tag = in.Version
	cp.StatefulSet.Resources = chartResources(controlPlaneResources)
	cp.StatefulSet.Security.PodSecurityContext = restrictedPodSecurity
	cp.StatefulSet.Security.ContainerSecurityContext = restrictedContainerSecurity
	cp.StatefulSet.Persistence.VolumeClaim.Enabled = "true"
	cp.StatefulSet.Persistence.VolumeClaim.Size = in.Storage
	cp.StatefulSet.Persistence.VolumeClaim.RetentionPolicy = "Delete"
	if in.RetainData {
		cp.StatefulSet.Persistence.VolumeClaim.RetentionPolicy = "Retain"
	}
	cp.CoreDNS.Deployment.Resources = chartResources(corednsResources)
	// The syncer checks the pods it syncs against the host namespace's standard, and
	// the chart gives CoreDNS the seccomp profile that restricted requires (its
	// coredns-configmap.yaml sets one only with podSecurityStandard): without it, the
	// CoreDNS of a restricted tenant is refused on the host and the vcluster never has
	// DNS (found by running the real syncer in the twin).
	if in.PodSecurity != "privileged" {
		cfg.Policies.PodSecurityStandard = in.PodSecurity
	}
	cp.Proxy.ExtraSANs = []string{release + "." + namespace, release + "." + namespace + ".svc"}

	cfg.ExportKubeConfig.Server = fmt.Sprintf("https://%s.%s:443", release, namespace)
	// vcluster v0.25.0 cannot detect the service CIDR of a host on Kubernetes v1.33 or
	// later (pkg/util/servicecidr parses an error message that changed); the field is
	// marked deprecated there but is still what initialize.go reads first.
	cfg.ServiceCIDR = p.Spec.HostServiceCIDR

	diff, err := vclusterconfig.Diff(base, cfg)
	if err != nil {
		return nil, fmt.Errorf("vcluster values: %w", err)
	}
	values := map[string]any{}
	if err := yaml.Unmarshal([]byte(diff), &values); err != nil {
		return nil, fmt.Errorf("vcluster values: %w", err)
	}
	return values, nil
}

func resourcesMap(r corev1.ResourceRequirements) map[string]any {
	c := chartResources(r)
	return map[string]any{"requests": c.Requests, "limits": c.Limits}
}

func chartResources(r corev1.ResourceRequirements) vclusterconfig.Resources {
	list := func(l corev1.ResourceList) map[string]any {
		m := map[string]any{}
		for name, q := range l {
			m[string(name)] = q.String()
		}
		return m
	}
	return vclusterconfig.Resources{Requests: list(r.Requests), Limits: list(r.Limits)}
}

// renderChart renders ch with values into YAML, as `helm template --kube-version` would
// for a host at kubeVersion, validating the
// values against the chart's values.schema.json. Template files are concatenated in name
// order so that the output does not depend on map order.
func renderChart(ch *chart.Chart, schemas *chartSchemas, release, namespace, kubeVersion string, values map[string]any) ([]byte, error) {
	caps := chartutil.DefaultCapabilities.Copy()
	kv, err := chartutil.ParseKubeVersion(kubeVersion)
	if err != nil {
		return nil, fmt.Errorf("host kubernetes version: %w", err)
	}
	caps.KubeVersion = *kv
	opts := chartutil.ReleaseOptions{Name: release, Namespace: namespace, IsInstall: true, Revision: 1}
	vals, err := chartutil.ToRenderValuesWithSchemaValidation(ch, values, opts, caps, schemas.validates(ch))
	if err != nil {
		return nil, fmt.Errorf("chart %s %s: values: %w", ch.Name(), ch.Metadata.Version, err)
	}
	if err := schemas.validate(ch, vals); err != nil {
		return nil, fmt.Errorf("chart %s %s: values: %w", ch.Name(), ch.Metadata.Version, err)
	}
	files, err := engine.Render(ch, vals)
	if err != nil {
		return nil, fmt.Errorf("chart %s %s: %w", ch.Name(), ch.Metadata.Version, err)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		base := path.Base(name)
		ext := path.Ext(base)
		if strings.HasPrefix(base, "_") || (ext != ".yaml" && ext != ".yml") || strings.Contains(name, "/tests/") {
			continue
		}
		names = append(names, name)
	}
	slices.Sort(names)
	var out bytes.Buffer
	for _, name := range names {
		body := strings.TrimSpace(files[name])
		if body == "" {
			continue
		}
		fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", name, body)
	}
	return out.Bytes(), nil
}
