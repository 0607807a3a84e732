package testenv

import "net/http"

// RoundTripperFunc is an http.RoundTripper made of a function, for tests that watch or
// change the requests a client sends to a control plane.
type RoundTripperFunc func(*http.Request) (*http.Response, error)

var _ http.RoundTripper = RoundTripperFunc(nil)

// RoundTrip calls f.
func (f RoundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
