package reconcile_test

import (
	"testing"

	"github.com/raas-dev/raas/reconcile"
)

func TestHealthSettled(t *testing.T) {
	for h, want := range map[reconcile.Health]bool{
		reconcile.HealthReady:       true,
		reconcile.HealthRemoved:     true,
		reconcile.HealthAsleep:      true,
		reconcile.HealthProgressing: false,
		reconcile.HealthFailed:      false,
	} {
		if got := h.Settled(); got != want {
			t.Errorf("%s.Settled() = %v, want %v", h, got, want)
		}
	}
}
