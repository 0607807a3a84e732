package testenv

import (
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/raas-dev/raas/render"
)

// kubeRayImage is the repository of the operator image in KubeRay's base
// (ray-operator/config/manager/kustomization.yaml); its tag is the KubeRay version.
const kubeRayImage = "kuberay/operator"

// kubeRayDeploy is what a pod of the rendered operator Deployment would run with.
type kubeRayDeploy struct {
	name, namespace, serviceAccount string
	// version is the image tag, such as v1.5.0.
	version string
	// argv0 is the container's command, /manager in KubeRay's base: the operator names
	// some of its clients after it (client-go's default user agent), so field managers
	// read as in a pod.
	argv0 string
	args  []string
	env   []string
	grace time.Duration
}

// kubeRayDeployment finds the one Deployment among virtual whose container runs the
// KubeRay operator image and reads how its pod would run.
func kubeRayDeployment(virtual []*render.Object) (*kubeRayDeploy, error) {
	var found []*kubeRayDeploy
	for _, o := range virtual {
		gvk := o.GroupVersionKind()
		if gvk.Group != appsv1.GroupName || gvk.Kind != "Deployment" {
			continue
		}
		var dep appsv1.Deployment
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &dep); err != nil {
			return nil, fmt.Errorf("deployment %s/%s: %w", o.GetNamespace(), o.GetName(), err)
		}
		for _, c := range dep.Spec.Template.Spec.Containers {
			repo, tag, ok := imageTag(c.Image)
			if !ok || !strings.HasSuffix(repo, "/"+kubeRayImage) {
				continue
			}
			d, err := podOf(&dep, &c, tag)
			if err != nil {
				return nil, fmt.Errorf("deployment %s/%s: %w", dep.Namespace, dep.Name, err)
			}
			found = append(found, d)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no Deployment with a %s container among %d virtual objects", kubeRayImage, len(virtual))
	case 1:
		return found[0], nil
	default:
		return nil, fmt.Errorf("%d %s containers among the virtual objects, want one", len(found), kubeRayImage)
	}
}

// podOf reads the identity, args, env and grace period of container c of dep.
func podOf(dep *appsv1.Deployment, c *corev1.Container, version string) (*kubeRayDeploy, error) {
	spec := dep.Spec.Template.Spec
	d := &kubeRayDeploy{
		name:           dep.Name,
		namespace:      dep.Namespace,
		serviceAccount: spec.ServiceAccountName,
		version:        version,
		args:           append([]string(nil), c.Args...),
		argv0:          KubeRayBinaryPrefix + version,
		grace:          corev1.DefaultTerminationGracePeriodSeconds * time.Second,
	}
	switch len(c.Command) {
	case 0:
	case 1:
		d.argv0 = c.Command[0]
	default:
		return nil, fmt.Errorf("container %s: command %q: only the operator binary, with no arguments before args, is supported", c.Name, c.Command)
	}
	if d.namespace == "" {
		return nil, fmt.Errorf("no namespace")
	}
	if d.serviceAccount == "" {
		d.serviceAccount = "default" // what the ServiceAccount admission plugin would set
	}
	if s := spec.TerminationGracePeriodSeconds; s != nil {
		d.grace = time.Duration(*s) * time.Second
	}
	if len(c.EnvFrom) > 0 {
		return nil, fmt.Errorf("container %s: envFrom is not supported outside a pod", c.Name)
	}
	for _, e := range c.Env {
		value := e.Value
		if e.ValueFrom != nil {
			// Only the pod's namespace has a meaning outside a pod; anything else would
			// be made up, so it fails rather than being dropped.
			f := e.ValueFrom.FieldRef
			if f == nil || f.FieldPath != "metadata.namespace" {
				return nil, fmt.Errorf("container %s: env %s: only valueFrom.fieldRef metadata.namespace is supported outside a pod", c.Name, e.Name)
			}
			value = d.namespace
		}
		d.env = append(d.env, e.Name+"="+value)
	}
	return d, nil
}

// imageTag splits image into repository and tag; ok is false without a tag.
func imageTag(image string) (repo, tag string, ok bool) {
	image, _, _ = strings.Cut(image, "@")
	i := strings.LastIndex(image, ":")
	if i < 0 || strings.Contains(image[i:], "/") {
		return image, "", false
	}
	return image[:i], image[i+1:], true
}

// kubeRayArgs returns the rendered args and, after them, the only ones the operator
// needs outside a pod. Go's flag package keeps the last value of a flag given twice, so
// an added flag wins over a rendered one of the same name.
func kubeRayArgs(d *kubeRayDeploy, kubeConfig, metricsAddr, probeAddr string) ([]string, error) {
	if argSet(d.args, "config") {
		// ray-operator main.go (v1.4.0 and v1.5.0): "Flags are ignored if config file
		// is set", so the flags below could not take effect.
		return nil, fmt.Errorf("deployment %s/%s: --config is not supported: it overrides the flags the twin must add", d.namespace, d.name)
	}
	args := append([]string(nil), d.args...)
	// There is no in-cluster config outside a pod. controller-runtime's GetConfig takes
	// --kubeconfig first (pkg/client/config/config.go:123, v0.21.0 and v0.22.1), which
	// also keeps a KUBECONFIG of the caller from mattering.
	args = append(args, "--kubeconfig="+kubeConfig)
	if !argSet(d.args, "leader-election-namespace") {
		// Leader election is on by default (apis/config/v1alpha1/defaults.go:11) and,
		// without a namespace, reads the pod's service account mount
		// (controller-runtime pkg/leaderelection/leader_election.go:84-141), which is
		// absent here. The pod's namespace is the one it would have found, so the
		// rendered leader-election Role is exercised as in production.
		args = append(args, "--leader-election-namespace="+d.namespace)
	}
	// In a pod, :8080 and :8082 are the pod's own. On one machine, several operators
	// (one per tenant) and other tests need ports of their own, on loopback only.
	args = append(args, "--metrics-addr="+metricsAddr, "--health-probe-bind-address="+probeAddr)
	return args, nil
}
