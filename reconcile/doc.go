// Package reconcile diffs rendered objects against live clusters and applies them with
// server-side apply, on the host and inside each tenant's vcluster. A pass (reconciler.go)
// reconciles the platform (platform.go) and each tenant (tenant.go, sleep.go): it applies
// objects (apply.go) after the definitions they need (wait.go), records them in per-tenant
// inventories on the host (record.go, inventory.go), prunes what is no longer rendered,
// behind safety rails that keep data volumes (prune.go), and reports each tenant's health
// (health.go). Every write goes through the pass's writer (write.go); Diff's writes
// nothing. Apply and Diff return a Result: one entry per object, as data.
package reconcile
