// Package report writes what a pass did, or a diff would do, for people and for bots: one
// line per object (`raas apply`), a unified diff (`raas diff`), a pull-request summary in
// Markdown (`raas diff -o markdown`) and a stable JSON document (`raas diff -o json`). It
// reads a reconcile.Result and nothing else.
package report
