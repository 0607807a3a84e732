package testenv

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The twin's volume provisioner: for every pending claim it makes a hostPath
// PersistentVolume under dir, reserved for that claim (claimRef), which
// kube-controller-manager's binder then binds, as a cluster's dynamic provisioner
// would. The StatefulSet of every vcluster has a data claim, and its pod waits for it;
// the twin's kubelet mounts the directory as the pod's /data, so the vcluster's state
// survives a restart of its syncer as on a real volume. Volumes are kept when their
// claim goes (Retain), like the data volumes raas keeps.
type provisioner struct {
	host   client.Client
	dir    string
	output io.Writer
}

func (p *provisioner) run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if err := p.sync(ctx); err != nil && ctx.Err() == nil && p.output != nil {
			fmt.Fprintf(p.output, "twin provisioner: %v\n", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (p *provisioner) sync(ctx context.Context) error {
	var claims corev1.PersistentVolumeClaimList
	if err := p.host.List(ctx, &claims); err != nil {
		return err
	}
	for _, pvc := range claims.Items {
		if pvc.Spec.VolumeName != "" || pvc.Status.Phase != corev1.ClaimPending || pvc.DeletionTimestamp != nil {
			continue
		}
		pv := volumeFor(&pvc, p.dir)
		if err := p.host.Create(ctx, pv); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("volume for claim %s/%s: %w", pvc.Namespace, pvc.Name, err)
		}
	}
	return nil
}

// volumeFor is the PersistentVolume made for pvc.
func volumeFor(pvc *corev1.PersistentVolumeClaim, dir string) *corev1.PersistentVolume {
	name := "twin-" + string(pvc.UID)
	class := ""
	if pvc.Spec.StorageClassName != nil {
		class = *pvc.Spec.StorageClassName
	}
	hostPathType := corev1.HostPathDirectoryOrCreate
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"raas.dev/twin": "volume"}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: pvc.Spec.Resources.Requests[corev1.ResourceStorage]},
			AccessModes:                   pvc.Spec.AccessModes,
			StorageClassName:              class,
			VolumeMode:                    pvc.Spec.VolumeMode,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			ClaimRef: &corev1.ObjectReference{
				Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID,
			},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{
				Path: filepath.Join(dir, "volumes", name), Type: &hostPathType,
			}},
		},
	}
}
