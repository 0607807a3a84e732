package shard_test

import (
	"fmt"
	"testing"

	"github.com/raas-dev/raas/daemon/shard"
)

func manyKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("team-%04d", i)
	}
	return keys
}

func TestRing(t *testing.T) {
	keys := manyKeys(1000)
	three := shard.NewRing("raas-0", "raas-1", "raas-2")
	four := shard.NewRing("raas-0", "raas-1", "raas-2", "raas-3")

	t.Run("a joining member takes about a quarter of the keys, all from the others", func(t *testing.T) {
		moved := 0
		for _, k := range keys {
			before, after := three.Owner(k), four.Owner(k)
			if before == after {
				continue
			}
			moved++
			if after != "raas-3" {
				t.Errorf("key %s moved from %s to %s, not to the new member", k, before, after)
			}
		}
		if moved < 200 || moved > 300 {
			t.Errorf("%d of %d keys moved, want about a quarter", moved, len(keys))
		}
	})
	t.Run("a leaving member's keys go to the others and no other key moves", func(t *testing.T) {
		two := shard.NewRing("raas-0", "raas-2")
		for _, k := range keys {
			if before, after := three.Owner(k), two.Owner(k); before != "raas-1" && before != after {
				t.Errorf("key %s moved from %s to %s though %s stayed", k, before, after, before)
			}
		}
	})
	t.Run("keys spread evenly", func(t *testing.T) {
		count := map[string]int{}
		for _, k := range keys {
			count[four.Owner(k)]++
		}
		for _, m := range four.Members() {
			if c := count[m]; c < 200 || c > 300 {
				t.Errorf("%s owns %d of %d keys, want about 250: %v", m, c, len(keys), count)
			}
		}
	})
	t.Run("the owner does not depend on the order of the members", func(t *testing.T) {
		shuffled := shard.NewRing("raas-2", "raas-0", "raas-1", "raas-0")
		for _, k := range keys {
			if a, b := three.Owner(k), shuffled.Owner(k); a != b {
				t.Fatalf("key %s: owner %s in one order, %s in another", k, a, b)
			}
		}
	})
	t.Run("an empty ring owns nothing", func(t *testing.T) {
		if got := (shard.Ring{}).Owner("team-a"); got != "" {
			t.Errorf("Owner = %q, want none", got)
		}
	})
}

func ExampleRing_Owner() {
	ring := shard.NewRing("raas-0", "raas-1", "raas-2")
	for _, key := range []string{"ml-team-alpha", "data-sandbox", shard.PlatformKey} {
		fmt.Println(key, ring.Owner(key))
	}
	// Output:
	// ml-team-alpha raas-1
	// data-sandbox raas-0
	// raas.dev/platform raas-0
}
