package testenv_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/internal/testenv"
)

// TestRestart restarts a host's kube-apiserver, then its etcd: the objects written before
// are still there, read through the client made before either restart.
func TestRestart(t *testing.T) {
	host := testenv.StartHost(t, testenv.DefaultControlPlaneOptions())
	ns := host.Namespace(t)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kept"}, Data: map[string]string{"a": "b"}}
	if err := host.Client.Create(t.Context(), cm); err != nil {
		t.Fatal(err)
	}
	for _, restart := range []struct {
		name string
		do   func(time.Duration) error
	}{
		{"keeps the objects across a kube-apiserver restart", host.RestartAPIServer},
		{"keeps the objects across an etcd restart", host.RestartEtcd},
	} {
		t.Run(restart.name, func(t *testing.T) {
			begin := time.Now()
			if err := restart.do(time.Second); err != nil {
				t.Fatal(err)
			}
			t.Logf("restarted in %s", time.Since(begin).Round(time.Millisecond))
			got := &corev1.ConfigMap{}
			err := waitFor(3*time.Minute, func() error {
				return host.Client.Get(t.Context(), client.ObjectKeyFromObject(cm), got)
			})
			if err != nil {
				t.Fatalf("after the restart: %v", err)
			}
			if got.UID != cm.UID || got.Data["a"] != "b" {
				t.Errorf("after the restart: uid %s data %v, want uid %s data %v", got.UID, got.Data, cm.UID, cm.Data)
			}
		})
	}
}

// waitFor calls f until it succeeds or timeout has passed, and returns its last error.
func waitFor(timeout time.Duration, f func() error) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		err := f()
		if err == nil || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}
