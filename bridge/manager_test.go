package bridge_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	schedulingv1beta1 "volcano.sh/apis/pkg/apis/scheduling/v1beta1"

	"github.com/raas-dev/raas/bridge"
	"github.com/raas-dev/raas/internal/testenv"
	"github.com/raas-dev/raas/schema"
)

// TestManager runs two tenants against one stand-in vcluster: the second tenant's host
// namespace gets a copy of the first's kubeconfig Secret. Each tenant's bridge mirrors
// every PodGroup of the vcluster into its own namespace, on its own queue.
func TestManager(t *testing.T) {
	host := testenv.Shared(t)
	e := newEnv(t, host, "", "team-c")
	otherNS := host.Namespace(t)
	secret, err := e.hostKube.CoreV1().Secrets(e.hostNS).Get(t.Context(), schema.KubeconfigSecret("team-c"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	copied := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: schema.KubeconfigSecret("team-d"), Namespace: otherNS},
		Data:       secret.Data,
	}
	if _, err := e.hostKube.CoreV1().Secrets(otherNS).Create(t.Context(), copied, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	other := *e
	other.hostNS = otherNS

	m, err := bridge.NewManager(host.Config, bridge.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	c := bridge.Target{Tenant: "team-c", HostNamespace: e.hostNS, Queue: "tenant-team-c", Release: "team-c"}
	d := bridge.Target{Tenant: "team-d", HostNamespace: otherNS, Queue: "tenant-team-d", Release: "team-d"}
	e.namespace(t, "work")

	t.Run("runs a bridge per tenant, built from its kubeconfig secret", func(t *testing.T) {
		if err := m.Sync(t.Context(), []bridge.Target{c, d}); err != nil {
			t.Fatal(err)
		}
		virtual := e.createVirtual(t, podGroup("work", "ray-one-pg", ""))
		e.waitHost(t, "ray-one-pg", "on queue tenant-team-c", func(h *schedulingv1beta1.PodGroup) bool { return mirrors(h, virtual, c.Queue) })
		other.waitHost(t, "ray-one-pg", "on queue tenant-team-d", func(h *schedulingv1beta1.PodGroup) bool { return mirrors(h, virtual, d.Queue) })
		st := m.Status()
		if len(st) != 2 || st[0].Tenant != "team-c" || st[1].Tenant != "team-d" {
			t.Errorf("status = %+v, want team-c and team-d", st)
		}
	})

	t.Run("a changed queue restarts the tenant's bridge with it", func(t *testing.T) {
		c.Queue = "tenant-team-c-v2"
		if err := m.Sync(t.Context(), []bridge.Target{c, d}); err != nil {
			t.Fatal(err)
		}
		virtual := e.getVirtual(t, "work", "ray-one-pg")
		e.waitHost(t, "ray-one-pg", "on queue "+c.Queue, func(h *schedulingv1beta1.PodGroup) bool { return mirrors(h, virtual, c.Queue) })
	})

	t.Run("a tenant no longer listed has its bridge stopped", func(t *testing.T) {
		if err := m.Sync(t.Context(), []bridge.Target{c}); err != nil {
			t.Fatal(err)
		}
		if st := m.Status(); len(st) != 1 || st[0].Tenant != "team-c" {
			t.Fatalf("status = %+v, want team-c alone", st)
		}
		virtual := e.createVirtual(t, podGroup("work", "ray-two-pg", ""))
		e.waitHost(t, "ray-two-pg", "on queue "+c.Queue, func(h *schedulingv1beta1.PodGroup) bool { return mirrors(h, virtual, c.Queue) })
		consistently(t, 500*time.Millisecond, func() {
			if n := countNamed(other.hostPodGroups(t), "ray-two-pg"); n != 0 {
				t.Fatalf("the stopped bridge of team-d mirrored ray-two-pg")
			}
		})
	})

	t.Run("a tenant without a kubeconfig secret is reported and the others run", func(t *testing.T) {
		missing := bridge.Target{Tenant: "team-e", HostNamespace: otherNS, Queue: "tenant-team-e", Release: "team-e"}
		err := m.Sync(t.Context(), []bridge.Target{c, missing})
		if err == nil || !strings.Contains(err.Error(), "tenant team-e") || !strings.Contains(err.Error(), "vc-team-e") {
			t.Fatalf("err = %v, want one naming tenant team-e and secret vc-team-e", err)
		}
		if st := m.Status(); len(st) != 1 || st[0].Tenant != "team-c" {
			t.Fatalf("status = %+v, want team-c alone", st)
		}
		eventually(t, "team-c to report its two PodGroups", func(context.Context) (bool, error) {
			st := m.Status()
			return len(st) == 1 && st[0].Mirrored == 2, nil
		})
	})

	t.Run("VirtualConfig reads the exported kubeconfig", func(t *testing.T) {
		cfg, err := bridge.VirtualConfig(t.Context(), e.hostKube, e.hostNS, "team-c")
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Host != e.vc.Config.Host {
			t.Errorf("host = %s, want the stand-in's %s", cfg.Host, e.vc.Config.Host)
		}
	})
}
