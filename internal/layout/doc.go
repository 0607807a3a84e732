// Package layout holds no code: its test keeps the repository's folders true to the flow
// they are named for, by failing when an import points back up it.
//
//	source → schema → render/catalog → scheduler → render → reconcile → bridge → daemon → cmd
//
// Leaves that know nothing of the flow (the Tenant API types, Volcano's names, secrets,
// triggers) sit below it, and test support (internal/testenv, internal/exampletest) above
// the daemon, where only tests and hack/ reach it.
package layout
