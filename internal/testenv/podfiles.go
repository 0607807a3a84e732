package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// What the twin's kubelet does for a container before it runs its process: the files
// of its volumes and the values of its environment, taken from the host as a kubelet
// takes them. Only what the pods the twin runs use is resolved; anything else is an
// error that names it, never a silent gap.

// podFiles lays out the volumes of one pod under dir.
type podFiles struct {
	host client.Client
	pod  *corev1.Pod
	dir  string
	// volumeDir holds the data of persistent volumes.
	volumeDir string
	// volumes maps a volume's name to its directory on the machine.
	volumes map[string]string
}

func newPodFiles(ctx context.Context, host client.Client, pod *corev1.Pod, dir, volumeDir string) (*podFiles, error) {
	pf := &podFiles{host: host, pod: pod, dir: dir, volumeDir: volumeDir, volumes: map[string]string{}}
	for _, v := range pod.Spec.Volumes {
		path, err := pf.volume(ctx, v)
		if err != nil {
			return nil, fmt.Errorf("pod %s/%s: volume %s: %w", pod.Namespace, pod.Name, v.Name, err)
		}
		pf.volumes[v.Name] = path
	}
	return pf, nil
}

// volume makes the directory of v and fills it.
func (pf *podFiles) volume(ctx context.Context, v corev1.Volume) (string, error) {
	ns := pf.pod.Namespace
	dir := filepath.Join(pf.dir, "volumes", v.Name)
	switch {
	case v.PersistentVolumeClaim != nil:
		return pf.claimPath(ctx, v.PersistentVolumeClaim.ClaimName)
	case v.EmptyDir != nil:
		return dir, os.MkdirAll(dir, 0o755)
	case v.Secret != nil:
		var s corev1.Secret
		if err := pf.host.Get(ctx, types.NamespacedName{Namespace: ns, Name: v.Secret.SecretName}, &s); err != nil {
			return "", err
		}
		return dir, writeItems(dir, s.Data, v.Secret.Items)
	case v.ConfigMap != nil:
		var cm corev1.ConfigMap
		if err := pf.host.Get(ctx, types.NamespacedName{Namespace: ns, Name: v.ConfigMap.Name}, &cm); err != nil {
			return "", err
		}
		return dir, writeItems(dir, stringData(cm.Data), v.ConfigMap.Items)
	case v.Projected != nil:
		return dir, pf.projected(ctx, dir, v.Projected)
	case v.DownwardAPI != nil:
		return dir, pf.downward(dir, v.DownwardAPI.Items)
	}
	return "", fmt.Errorf("the twin's kubelet does not make this kind of volume")
}

// claimPath is the directory of the PersistentVolume bound to claim. The twin's
// volumes are made by kwok's pvc-provision stage with a hostPath that names nothing on
// this machine; the kubelet keeps each volume's data under its own directory instead,
// by the volume's name, so it outlives the pod as a volume does (a restarted syncer
// finds its /data).
func (pf *podFiles) claimPath(ctx context.Context, claim string) (string, error) {
	var pvc corev1.PersistentVolumeClaim
	if err := pf.host.Get(ctx, types.NamespacedName{Namespace: pf.pod.Namespace, Name: claim}, &pvc); err != nil {
		return "", err
	}
	if pvc.Spec.VolumeName == "" {
		return "", fmt.Errorf("claim %s is not bound", claim)
	}
	dir := filepath.Join(pf.volumeDir, pvc.Spec.VolumeName)
	return dir, os.MkdirAll(dir, 0o755)
}

func (pf *podFiles) projected(ctx context.Context, dir string, p *corev1.ProjectedVolumeSource) error {
	ns := pf.pod.Namespace
	for _, src := range p.Sources {
		switch {
		case src.ConfigMap != nil:
			var cm corev1.ConfigMap
			if err := pf.host.Get(ctx, types.NamespacedName{Namespace: ns, Name: src.ConfigMap.Name}, &cm); err != nil {
				return err
			}
			if err := writeItems(dir, stringData(cm.Data), src.ConfigMap.Items); err != nil {
				return err
			}
		case src.Secret != nil:
			var s corev1.Secret
			if err := pf.host.Get(ctx, types.NamespacedName{Namespace: ns, Name: src.Secret.Name}, &s); err != nil {
				return err
			}
			if err := writeItems(dir, s.Data, src.Secret.Items); err != nil {
				return err
			}
		case src.DownwardAPI != nil:
			if err := pf.downward(dir, src.DownwardAPI.Items); err != nil {
				return err
			}
		case src.ServiceAccountToken != nil:
			token, err := pf.token(ctx, src.ServiceAccountToken)
			if err != nil {
				return err
			}
			if err := writeFile(filepath.Join(dir, src.ServiceAccountToken.Path), []byte(token)); err != nil {
				return err
			}
		default:
			return fmt.Errorf("the twin's kubelet does not project this source")
		}
	}
	return nil
}

// token asks the host for a token of the pod's ServiceAccount, bound to the pod, as a
// kubelet does for a projected serviceAccountToken source.
func (pf *podFiles) token(ctx context.Context, src *corev1.ServiceAccountTokenProjection) (string, error) {
	sa := &corev1.ServiceAccount{}
	sa.Namespace, sa.Name = pf.pod.Namespace, pf.pod.Spec.ServiceAccountName
	if sa.Name == "" {
		sa.Name = "default"
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: src.ExpirationSeconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pf.pod.Name, UID: pf.pod.UID},
	}}
	if src.Audience != "" {
		req.Spec.Audiences = []string{src.Audience}
	}
	if err := pf.host.SubResource("token").Create(ctx, sa, req); err != nil {
		return "", fmt.Errorf("token for service account %s/%s: %w", sa.Namespace, sa.Name, err)
	}
	return req.Status.Token, nil
}

func (pf *podFiles) downward(dir string, items []corev1.DownwardAPIVolumeFile) error {
	for _, item := range items {
		if item.FieldRef == nil {
			return fmt.Errorf("downward API file %s: only fieldRef is resolved", item.Path)
		}
		value, err := fieldValue(pf.pod, item.FieldRef.FieldPath)
		if err != nil {
			return err
		}
		if err := writeFile(filepath.Join(dir, item.Path), []byte(value)); err != nil {
			return err
		}
	}
	return nil
}

// Binds returns the container's volume mounts as mount point → directory.
func (pf *podFiles) Binds(c corev1.Container) (map[string]string, error) {
	binds := map[string]string{}
	for _, m := range c.VolumeMounts {
		path, ok := pf.volumes[m.Name]
		if !ok {
			return nil, fmt.Errorf("container %s mounts volume %s, which the pod does not have", c.Name, m.Name)
		}
		binds[m.MountPath] = filepath.Join(path, m.SubPath)
	}
	return binds, nil
}

// Env resolves the container's environment as KEY=VALUE.
func (pf *podFiles) Env(ctx context.Context, c corev1.Container) ([]string, error) {
	env := make([]string, 0, len(c.Env))
	for _, e := range c.Env {
		value := e.Value
		if from := e.ValueFrom; from != nil {
			var err error
			switch {
			case from.FieldRef != nil:
				value, err = fieldValue(pf.pod, from.FieldRef.FieldPath)
			case from.SecretKeyRef != nil:
				var s corev1.Secret
				err = pf.host.Get(ctx, types.NamespacedName{Namespace: pf.pod.Namespace, Name: from.SecretKeyRef.Name}, &s)
				value = string(s.Data[from.SecretKeyRef.Key])
			case from.ConfigMapKeyRef != nil:
				var cm corev1.ConfigMap
				err = pf.host.Get(ctx, types.NamespacedName{Namespace: pf.pod.Namespace, Name: from.ConfigMapKeyRef.Name}, &cm)
				value = cm.Data[from.ConfigMapKeyRef.Key]
			default:
				err = fmt.Errorf("only fieldRef, secretKeyRef and configMapKeyRef are resolved")
			}
			if err != nil {
				return nil, fmt.Errorf("container %s: env %s: %w", c.Name, e.Name, err)
			}
		}
		env = append(env, e.Name+"="+value)
	}
	return env, nil
}

var fieldMapKey = regexp.MustCompile(`^metadata\.(annotations|labels)\['(.+)'\]$`)

// fieldValue is what the downward API gives for path.
func fieldValue(pod *corev1.Pod, path string) (string, error) {
	if m := fieldMapKey.FindStringSubmatch(path); m != nil {
		if m[1] == "annotations" {
			return pod.Annotations[m[2]], nil
		}
		return pod.Labels[m[2]], nil
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP":
		return pod.Status.PodIP, nil
	case "status.hostIP":
		return pod.Status.HostIP, nil
	}
	return "", fmt.Errorf("field %s is not resolved by the twin's kubelet", path)
}

func writeItems(dir string, data map[string][]byte, items []corev1.KeyToPath) error {
	if len(items) == 0 {
		for k, v := range data {
			if err := writeFile(filepath.Join(dir, k), v); err != nil {
				return err
			}
		}
		return nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			return fmt.Errorf("key %s is missing", it.Key)
		}
		if err := writeFile(filepath.Join(dir, it.Path), v); err != nil {
			return err
		}
	}
	return nil
}

func stringData(m map[string]string) map[string][]byte {
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k] = []byte(v)
	}
	return out
}

func writeFile(path string, data []byte) error {
	if strings.Contains(path, "..") {
		return fmt.Errorf("path %s leaves its volume", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}
