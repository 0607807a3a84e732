package render_test

import (
	"os"
	"slices"
	"testing"

	"github.com/raas-dev/raas/render"
)

// TestCacheFilter renders only the tenants the filter lets through, asking it afresh on
// every render, as a sharded replica does when it gains and loses tenants.
func TestCacheFilter(t *testing.T) {
	mine := map[string]bool{"ml-team-alpha": true}
	opts := testOptions(t)
	opts.Filter = func(tenant string) bool { return mine[tenant] }
	c := render.NewCache(opts)
	names := func(res *render.Result) []string {
		var n []string
		for _, out := range res.Tenants {
			n = append(n, out.Tenant)
		}
		return n
	}
	res, stats, err := c.Render(os.DirFS(examples), examples)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(res); !slices.Equal(got, []string{"ml-team-alpha"}) || stats.Misses != 1 {
		t.Errorf("rendered %v (%d misses), want only ml-team-alpha", got, stats.Misses)
	}
	if len(res.Repo.Tenants) != 4 {
		t.Errorf("the repository has %d valid tenants, want all 4 loaded", len(res.Repo.Tenants))
	}
	mine = map[string]bool{"vision-team": true, "ml-team-alpha": true}
	res, stats, err = c.Render(os.DirFS(examples), examples)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(res); !slices.Equal(got, []string{"ml-team-alpha", "vision-team"}) || stats.Hits != 1 || stats.Misses != 1 {
		t.Errorf("after gaining vision-team: rendered %v (%d hits, %d misses), want ml-team-alpha from the cache and vision-team fresh", got, stats.Hits, stats.Misses)
	}
}
