// Package loop is `raas reconcile`: it keeps every tenant of a tenants repository
// converged. Each pass fetches the source, renders what changed, applies with the
// reconcile package, and reports each tenant's status, events and metrics. Triggers
// (poll, webhook, file watch, retries) coalesce into passes; leader election keeps two
// replicas from ever applying at once.
package daemon
