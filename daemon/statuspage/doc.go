// Package statuspage serves the read-only status page of `raas reconcile`: every tenant
// with its phase, revision and last error, its quota used against hard, its Volcano queue,
// the PodGroups that wait and why, PodGroup bridge collisions, and the platform's GPU
// totals. It reads the host cluster on each request and writes nothing. The HTML is
// rendered on the server from templates embedded in the binary, with no JavaScript.
package statuspage
