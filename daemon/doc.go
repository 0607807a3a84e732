// Package daemon is `raas reconcile`: it keeps every tenant of a tenants repository
// converged. Each pass fetches the source, renders what changed, applies with the
// reconcile package, and reports each tenant's status, events and metrics. Triggers
// (poll, webhook, file watch, changes on the host, retries) coalesce into passes. Leader
// election keeps two replicas from ever applying at once; or the replicas share the
// tenants (Options.Owner, a daemon/shard member), each write of a tenant fenced.
//
// A pass covers the tenants that need it (Loop.scope): those whose render changed, those
// whose backoff is up, and those whose objects on the host someone changed, as the
// reconciler's watches see it. Every DriftInterval a pass covers every tenant. So the
// cost of a commit follows the tenants it touches, not the size of the repository.
package daemon
