// Package trigger decides when a reconcile pass runs: a coalescing Trigger that many
// callers poke, a jittered poller, and a webhook receiver for GitHub and GitLab push
// events that checks their signature or token before it pokes.
package trigger
