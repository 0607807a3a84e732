// Package reconcile diffs rendered objects against live clusters and applies them with
// server-side apply, records what it applied in an inventory, prunes what is gone, and
// reports each tenant's health. Results are returned as data, one entry per object.
package reconcile
