package shard_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/raas-dev/raas/daemon/shard"
	"github.com/raas-dev/raas/internal/testenv"
)

var three = []string{"m0", "m1", "m2"}

// maturity is how long a member waits after a write of its Lease before it owns keys:
// 2×RenewPeriod + Timeout + Margin.
const maturity = 2*renewPeriod + timeout + margin

// start joins the members named ids one after another, samples them for overlaps throughout the test
// and waits until they share the keys.
func start(t *testing.T, ids []string) (*ring, []*member, map[string]string) {
	r := newRing(t)
	r.watch()
	for _, id := range ids {
		r.join(id)
		// Spread the members' renew periods, so that one lists soon after another writes.
		time.Sleep(renewPeriod / time.Duration(len(ids)))
	}
	ms := r.all()
	return r, ms, settle(t, ms, ids, maturity+slack)
}

func TestMembersShareTheKeys(t *testing.T) {
	_, ms, owner := start(t, three)

	t.Run("every view gives each key the member that may write it", func(t *testing.T) {
		for _, m := range ms {
			ring := m.Ring()
			for _, k := range keys {
				if got := ring.Owner(k); got != owner[k] {
					t.Errorf("%s's view gives %s to %s, but %s may write it", m.Identity(), k, got, owner[k])
				}
			}
		}
	})
	t.Run("every member owns some keys", func(t *testing.T) {
		count := map[string]int{}
		for _, k := range keys {
			count[owner[k]]++
		}
		for _, id := range three {
			if count[id] < len(keys)/6 {
				t.Errorf("%s owns %d of %d keys: %v", id, count[id], len(keys), count)
			}
		}
	})
	t.Run("a member's Fence names the owner", func(t *testing.T) {
		k := keys[0]
		for _, m := range ms {
			err := m.Fence(k)
			if m.Identity() == owner[k] {
				continue
			}
			if !errors.Is(err, shard.ErrNotOwner) || !strings.Contains(err.Error(), owner[k]+" owns it") {
				t.Errorf("%s: Fence(%s) = %v, want ErrNotOwner naming %s", m.Identity(), k, err, owner[k])
			}
		}
	})
	t.Run("the ring gives every member's address", func(t *testing.T) {
		if got := ms[0].Ring().Address("m2"); got != "m2.test:8080" {
			t.Errorf("address of m2 = %q", got)
		}
	})
}

func TestKilledMemberHandsOverWhenItsLeaseExpires(t *testing.T) {
	_, ms, before := start(t, three)
	survivors := []*member{ms[0], ms[2]}

	killed := time.Now()
	ms[1].kill()
	took := waitOwned(t, "m1 killed", survivors, killed, leaseDuration+renewPeriod+timeout+slack)
	// The others cannot know before m1's last renewal (at most a renew period before
	// the kill) expires.
	if took < leaseDuration-renewPeriod-timeout {
		t.Errorf("m1's keys taken %s after the kill, before its Lease expired", took)
	}
	after := settle(t, survivors, []string{"m0", "m2"}, slack)
	movedOnly(t, before, after, "m1")
	for _, k := range keys {
		if ms[1].Owns(k) {
			t.Errorf("killed m1 still owns %s", k)
		}
	}
}

func TestLeavingMemberHandsOverAtOnce(t *testing.T) {
	r, ms, before := start(t, three)
	survivors := []*member{ms[0], ms[2]}

	begin := time.Now()
	if err := ms[1].Leave(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Logf("Leave took %s", time.Since(begin).Round(time.Millisecond))
	for _, k := range keys {
		if err := ms[1].Fence(k); !errors.Is(err, shard.ErrNotOwner) {
			t.Fatalf("after Leave, Fence(%s) = %v", k, err)
		}
	}
	took := waitOwned(t, "m1 left", survivors, begin, margin+renewPeriod+timeout+slack)
	if took < margin {
		t.Errorf("m1's keys taken %s after Leave was called, before the writes it allowed could land", took)
	}
	movedOnly(t, before, settle(t, survivors, []string{"m0", "m2"}, slack), "m1")

	if uid := leaseUID(t, r, "m1"); uid != "" {
		t.Errorf("m1's Lease %s is still there after Leave", uid)
	}
}

func TestJoiningMemberTakesAQuarterOnlyWhenTheOthersHaveLetGo(t *testing.T) {
	r, _, before := start(t, three)

	begin := time.Now()
	newcomer := r.join("m3")
	// Until the ring settles, note every owner seen for each key ("" for none) and when
	// the newcomer first owned one.
	ms := r.all()
	seen := map[string]map[string]bool{}
	for _, k := range keys {
		seen[k] = map[string]bool{}
	}
	var first time.Duration
	deadline := time.Now().Add(maturity + slack)
	for settledFor := 0; settledFor < 20; {
		got := owners(ms)
		settledFor++
		for _, k := range keys {
			name := ""
			if len(got[k]) == 1 {
				name = ms[got[k][0]].Identity()
			}
			if name == "m3" && first == 0 {
				first = time.Since(begin)
			}
			if name == "" || first == 0 {
				settledFor = 0
			}
			seen[k][name] = true
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled within %s of the join", maturity+slack)
		}
		time.Sleep(5 * time.Millisecond)
	}
	after := settle(t, ms, []string{"m0", "m1", "m2", "m3"}, slack)
	t.Logf("the newcomer owned its first key %s after Join was called", first.Round(time.Millisecond))
	if first < maturity {
		t.Errorf("the newcomer owned a key %s after joining, before its Lease was %s old", first, maturity)
	}

	moved := 0
	for _, k := range keys {
		switch {
		case after[k] == before[k]:
			if len(seen[k]) != 1 {
				t.Errorf("key %s stayed with %s, yet had the owners %v meanwhile", k, before[k], seen[k])
			}
		case after[k] != newcomer.Identity():
			t.Errorf("key %s moved from %s to %s, not to the newcomer", k, before[k], after[k])
		default:
			moved++
		}
	}
	t.Logf("%d of %d keys moved to the newcomer", moved, len(keys))
	if moved < len(keys)/8 || moved > len(keys)*3/8 {
		t.Errorf("%d of %d keys moved, want about a quarter", moved, len(keys))
	}
}

func TestMemberWhoseRenewalsFailStopsBeforeItsLeaseExpires(t *testing.T) {
	_, ms, before := start(t, three)
	survivors := []*member{ms[0], ms[2]}

	ms[1].cut.writes.Store(true) // it still lists the ring, so its view stays fresh
	begin := time.Now()
	stopped := waitOwnsNothing(t, ms[1], leaseDuration-margin+slack)
	t.Logf("m1 owned nothing %s after its writes were cut", stopped.Round(time.Millisecond))
	took := waitOwned(t, "m1's writes cut", survivors, begin, leaseDuration+renewPeriod+timeout+slack)
	if took < leaseDuration-renewPeriod-timeout {
		t.Errorf("m1's keys taken %s after its writes were cut, before its Lease expired", took)
	}
	movedOnly(t, before, settle(t, survivors, []string{"m0", "m2"}, slack), "m1")

	ms[1].cut.writes.Store(false)
	healed := settle(t, ms, three, maturity+renewPeriod+slack)
	t.Logf("back %s after the cut", time.Since(begin).Round(time.Millisecond))
	movedOnly(t, before, healed, "")
}

func TestMemberCutOffLosesItsLeaseAndJoinsAgain(t *testing.T) {
	r, ms, before := start(t, three)
	survivors := []*member{ms[0], ms[2]}
	uid := leaseUID(t, r, "m1")

	ms[1].cut.all.Store(true)
	begin := time.Now()
	stopped := waitOwnsNothing(t, ms[1], 2*renewPeriod+slack)
	t.Logf("m1 owned nothing %s after it was cut off: its view of the ring went stale", stopped.Round(time.Millisecond))
	waitOwned(t, "m1 cut off", survivors, begin, leaseDuration+renewPeriod+timeout+slack)
	waitFor(t, "the others remove m1's expired Lease", leaseDuration+renewPeriod+timeout+slack, func() bool {
		return leaseUID(t, r, "m1") == ""
	})

	ms[1].cut.all.Store(false)
	movedOnly(t, before, settle(t, ms, three, maturity+renewPeriod+slack), "")
	if now := leaseUID(t, r, "m1"); now == uid || now == "" {
		t.Errorf("m1's Lease is %q, want a new one (the old one was %s)", now, uid)
	}
}

func TestDeletedLeaseIsReleasedAndMadeAgain(t *testing.T) {
	r, ms, before := start(t, three)
	uid := leaseUID(t, r, "m1")
	host := testenv.Shared(t)

	lease := &coordinationv1.Lease{}
	lease.Namespace, lease.Name = r.namespace, "test-shard-m1"
	if err := host.Client.Delete(t.Context(), lease); err != nil {
		t.Fatal(err)
	}
	// The finalizer keeps it, and the others count m1, until m1 has let go.
	waitFor(t, "m1 stops owning", renewPeriod+slack, func() bool { return ownsNothing(ms[1]) })
	waitFor(t, "m1 makes a new Lease", renewPeriod+margin+slack, func() bool {
		now := leaseUID(t, r, "m1")
		return now != "" && now != uid
	})
	movedOnly(t, before, settle(t, ms, three, maturity+renewPeriod+slack), "")
}

func TestRestartedMemberWaitsForItsOldLeaseToExpire(t *testing.T) {
	r, ms, before := start(t, three)

	ms[1].kill()
	begin := time.Now()
	restarted := r.join("m1") // the same identity, as a pod restarted in place
	var first time.Duration
	waitFor(t, "the restarted m1 owns keys", 2*leaseDuration+maturity+slack, func() bool {
		if ownsNothing(restarted) {
			return false
		}
		first = time.Since(begin)
		return true
	})
	t.Logf("the restarted m1 owned keys %s after it joined", first.Round(time.Millisecond))
	if first < leaseDuration+maturity {
		t.Errorf("the restarted m1 owned keys %s after it joined, before the old Lease could expire", first)
	}
	movedOnly(t, before, settle(t, []*member{ms[0], restarted, ms[2]}, three, slack), "")
}

// movedOnly fails the test for every key that changed owner from before to after,
// unless gone owned it before.
func movedOnly(t *testing.T, before, after map[string]string, gone string) {
	t.Helper()
	for _, k := range keys {
		if before[k] != gone && after[k] != before[k] {
			t.Errorf("key %s moved from %s to %s", k, before[k], after[k])
		}
	}
}

func ownsNothing(m *member) bool {
	return !slices.ContainsFunc(keys, m.Owns)
}

// waitOwnsNothing waits until m owns no key and returns how long that took.
func waitOwnsNothing(t *testing.T, m *member, within time.Duration) time.Duration {
	t.Helper()
	begin := time.Now()
	waitFor(t, m.Identity()+" owns nothing", within, func() bool { return ownsNothing(m) })
	return time.Since(begin)
}

func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// leaseUID is the UID of the member Lease of id, or "" when there is none.
func leaseUID(t *testing.T, r *ring, id string) string {
	t.Helper()
	var l coordinationv1.Lease
	err := testenv.Shared(t).Client.Get(t.Context(), client.ObjectKey{Namespace: r.namespace, Name: "test-shard-" + id}, &l)
	if apierrors.IsNotFound(err) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(l.UID)
}

func TestChangesTellsWhenTheKeysChange(t *testing.T) {
	r, ms, _ := start(t, []string{"m0", "m1"})
	m0 := ms[0]
	drain(m0)

	begin := time.Now()
	ms[1].kill()
	waitChange(t, m0, "m1 expires", leaseDuration+renewPeriod+timeout+slack)
	if took := time.Since(begin); took < leaseDuration-renewPeriod-timeout {
		t.Errorf("signalled %s after the kill, before m1's Lease could expire", took)
	}
	if !slices.Equal(m0.Ring().Members(), []string{"m0"}) || !slices.ContainsFunc(keys, m0.Owns) || slices.ContainsFunc(keys, func(k string) bool { return !m0.Owns(k) }) {
		t.Errorf("after the signal, m0 sees %v and owns some keys only", m0.Ring().Members())
	}

	// m2 would count m1 for a LeaseDuration from when it first listed m1's Lease.
	waitFor(t, "m0 removes m1's expired Lease", renewPeriod+timeout+slack, func() bool { return leaseUID(t, r, "m1") == "" })
	m2 := r.join("m2")
	waitChange(t, m0, "m2 joins", renewPeriod+timeout+slack)
	if !m0.Ring().Has("m2") {
		t.Errorf("after the signal, m0 sees %v", m0.Ring().Members())
	}
	deadline := time.Now().Add(maturity + slack)
	for ownsNothing(m2) { // its joining, then its owning
		waitChange(t, m2, "m2 owns keys", time.Until(deadline))
	}
	settle(t, []*member{m0, m2}, []string{"m0", "m2"}, slack)

	drain(m0)
	if err := m2.Leave(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitChange(t, m0, "m2 leaves", renewPeriod+timeout+slack)
	if m0.Ring().Has("m2") {
		t.Errorf("after the signal, m0 sees %v", m0.Ring().Members())
	}
}

// drain takes a signal left in m's Changes.
func drain(m *member) {
	select {
	case <-m.Changes():
	default:
	}
}

func waitChange(t *testing.T, m *member, what string, within time.Duration) {
	t.Helper()
	select {
	case <-m.Changes():
	case <-time.After(within):
		t.Fatalf("%s: %s's Changes not signalled within %s", what, m.Identity(), within)
	}
}
