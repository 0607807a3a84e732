// Package reconcile diffs rendered objects against live clusters and applies them with
// server-side apply, on the host and inside each tenant's vcluster; records what it
// applied in per-tenant inventories on the host (inventory.go); prunes what is no longer
// rendered, behind safety rails that keep data volumes (prune.go); and reports each
// tenant's health. Apply and Diff return a Result: one entry per object, as data.
package reconcile
