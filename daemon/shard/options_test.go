package shard_test

import (
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/raas-dev/raas/daemon/shard"
)

func TestJoinRefusesOptions(t *testing.T) {
	// Nothing listens there: Join must refuse the options before any call.
	cfg := &rest.Config{Host: "http://127.0.0.1:1"}
	for _, tc := range []struct {
		name, want string
		change     func(*shard.Options)
	}{
		{"refuses an identity that is no DNS label", `identity "raas-0_10.0.0.1:8080"`, func(o *shard.Options) { o.Identity = "raas-0_10.0.0.1:8080" }},
		{"refuses a lease too short for its renew period", "lease duration 5s is shorter than", func(o *shard.Options) { o.LeaseDuration = 5 * time.Second }},
		{"refuses a timeout as long as the renew period", "timeout 2s must be shorter", func(o *shard.Options) { o.Timeout = o.RenewPeriod }},
		{"refuses an empty namespace", "no namespace", func(o *shard.Options) { o.Namespace = "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := shard.DefaultOptions()
			opts.Identity = "raas-0"
			tc.change(&opts)
			_, err := shard.Join(t.Context(), cfg, opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Join: %v, want an error with %q", err, tc.want)
			}
		})
	}
	t.Run("accepts the defaults", func(t *testing.T) {
		opts := shard.DefaultOptions()
		opts.Identity = "raas-0"
		_, err := shard.Join(t.Context(), cfg, opts)
		if err == nil || strings.Contains(err.Error(), "options") {
			t.Errorf("Join: %v, want only a failure to reach the API server", err)
		}
	})
}
