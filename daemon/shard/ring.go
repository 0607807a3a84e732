package shard

import (
	"hash/fnv"
	"slices"
)

// PlatformKey is the key of the platform-wide objects (the Volcano configuration, the
// shared queues): exactly one member owns it, as for any tenant. No tenant is named so.
const PlatformKey = "raas.dev/platform"

// Ring is a snapshot of the members of a ring. Its zero value has no member.
type Ring struct {
	members   []string
	addresses map[string]string
}

// NewRing returns the ring of members, in any order, duplicates ignored.
func NewRing(members ...string) Ring {
	ms := slices.Clone(members)
	slices.Sort(ms)
	return Ring{members: slices.Compact(ms)}
}

// Members lists the members, sorted.
func (r Ring) Members() []string { return slices.Clone(r.members) }

// Has reports whether member is in the ring.
func (r Ring) Has(member string) bool {
	_, found := slices.BinarySearch(r.members, member)
	return found
}

// Address is where member said it can be reached (Options.Address), or "".
func (r Ring) Address(member string) string { return r.addresses[member] }

// Owner returns the member that key belongs to, or "" when the ring is empty. It uses
// rendezvous (highest random weight) hashing: key goes to the member with the highest
// weight(member, key), so a member that joins takes only the keys it now weighs most
// for (about 1/N of them) and one that leaves gives only its own keys to the others.
// The weights depend on nothing but the two strings: every process agrees.
func (r Ring) Owner(key string) string {
	var owner string
	var best uint64
	for _, m := range r.members {
		if w := weight(m, key); owner == "" || w > best || (w == best && m < owner) {
			owner, best = m, w
		}
	}
	return owner
}

// weight is FNV-64a of member, a zero byte and key, through splitmix64's finalizer: FNV
// alone spreads keys that differ only in their last bytes (team-01, team-02) poorly over
// the high bits that decide the comparison.
func weight(member, key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(member))
	h.Write([]byte{0})
	h.Write([]byte(key))
	z := h.Sum64()
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
