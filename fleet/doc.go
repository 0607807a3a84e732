// Package fleet reconciles one tenants repository onto several host clusters: those
// raas.yaml declares in spec.clusters. It places each tenant on one cluster
// (schema.Place: its spec.cluster, else where it already runs, else where its GPU pools
// and guarantee fit), runs one reconcile.Reconciler per cluster over the tenants placed
// there, and merges their results, each entry and tenant naming its cluster.
//
// # Where a tenant runs
//
// A tenant runs where it already runs: a cluster holding its inventory or its namespace.
// That is read from every cluster at the start of each pass. When a cluster cannot be
// reached, a tenant that names no cluster and runs on no cluster that answered may well
// run on the silent one, so it is placed nowhere in that pass: it is reported
// Progressing, and nothing is created for it elsewhere.
//
// # Moving a tenant
//
// A tenant whose file names another cluster than the one holding its inventory moves.
// The new cluster applies it like a new tenant. The old one leaves it as it is (it is
// in the repository, so it is no removal) until the new one reports it Ready; then, in
// the same pass, the old cluster removes it as it removes a tenant whose file is gone:
// its host objects are pruned and its namespace kept with the vcluster's data volume
// when the tenant retains data (reconcile.Input.Evict).
//
// Without spec.clusters the fleet is the one host raas is pointed at, and every pass is
// that host's reconcile.Reconciler's, unchanged.
package fleet
