// Package shard shares keys (tenants, and PlatformKey) among the replicas of raas. Each
// replica joins a ring with a coordination.k8s.io Lease of its own; each key belongs to
// one member by rendezvous hashing over the live members, so that a member joining or
// leaving moves only the keys it takes or gives (about 1/N). Fence tells a member, before
// each write of a key, whether it may write it now.
//
// # Never two writers
//
// Let D be LeaseDuration, P RenewPeriod, T Timeout, m Margin and F = 2P. Durations are
// measured by each process on its own monotonic clock and never compared with a time
// another process wrote, so clock skew does not matter. Assumed: the clocks' rates agree
// to within m/D; a list without resourceVersion shows every write answered before it was
// sent (Kubernetes' consistent reads); a write allowed by Fence lands within m; no one but
// the members removes the Finalizer or the ring label from a member Lease.
//
// A member counts a write of its own Lease (the create, each renewal) sent at s if it was
// answered by s+T. At t it owns key K only if (1) its newest counted write with
// s+F+T+m ≤ t has t < s+D−m, (2) its view of the ring comes from a list sent after t−F,
// and (3) K's owner in that view is itself. The view holds the member itself and each
// listed Lease until D after the member first received it at its resourceVersion: others
// count a new member as soon as they list it, and a silent one for D.
//
// Suppose A and B both own K at t, with A heavier for K: B's view lacks A. A's write s
// landed by s+T ≤ t−F−m, before B's list was sent, so B listed A's Lease at that version
// or a later one, received after s, and counts A until after s+D > t. Unless A's Lease was
// gone from the list: but only A deletes it, after it stopped owning and then waited m
// (Leave, or when its Lease is being deleted, which the Finalizer lets it see), or a
// member that saw it unchanged for D, under a resourceVersion precondition, when A's
// writes no longer count. The margins space the handovers: a silent A stops at s+D−m and
// B takes over at s+D or later; B owns a newcomer A's keys only on views listed before
// s+T, stale by s+T+F, m before A starts. Those keys have no owner in between, and none
// while a member that has just started counts, for D, the Lease of one that died.
package shard
