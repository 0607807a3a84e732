// Package golden compares what tests make with golden files, and rewrites them when the
// tests run with -update (`make golden`). A golden directory holds only what its test
// makes: a file there that the test no longer makes is stale and fails the test.
// Importing the package defines -update, so `go test -update` works in every package
// that has golden tests.
package golden
