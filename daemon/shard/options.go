package shard

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Options configure a member of a ring.
type Options struct {
	// Namespace holds the member Leases.
	Namespace string
	// Ring names the ring: its members' Leases carry the label LabelRing=Ring and are
	// named <Ring>-shard-<Identity>. Several rings can share a namespace.
	Ring string
	// Identity names this member; no two live processes may share it. Empty means the
	// host name, which in a pod is the pod's name. It must be a DNS label.
	Identity string
	// Address is where the other members reach this one (for handing it a webhook); it
	// is kept in the Lease and read back by Ring.Address. Optional.
	Address string

	// LeaseDuration is how long the others wait, from the last renewal they saw, before
	// they take a silent member's keys.
	LeaseDuration time.Duration
	// RenewPeriod is how often the member renews its Lease and lists the ring's Leases.
	RenewPeriod time.Duration
	// Timeout bounds every API call; a renewal answered later does not count.
	Timeout time.Duration
	// Margin is the time a write allowed by Fence may take to land, and the slack for
	// the clocks' rates; see the package documentation.
	Margin time.Duration

	// Now is the clock; nil means time.Now. Only its differences are used, never a time
	// read from another process, so its readings should carry a monotonic clock.
	Now func() time.Time
	// Logger receives joins, departures and renewal failures; nil discards them.
	Logger *slog.Logger
}

// DefaultOptions returns a member of the ring "raas" in raas-system, named after the
// host, whose keys others take 15 s after its last renewal. A write it allows has 3 s
// to land: at 1 s, Service and inventory writes of a pass over 1,000 tenants on a busy
// 2-core host timed out (BenchmarkFleet).
func DefaultOptions() Options {
	return Options{
		Namespace:     "raas-system",
		Ring:          "raas",
		LeaseDuration: 15 * time.Second,
		RenewPeriod:   2 * time.Second,
		Timeout:       time.Second,
		Margin:        3 * time.Second,
	}
}

// maxViewAge is how old the view of the ring may be (from the sending of the list it
// comes from) for the member to own anything: two renew periods, so that a list
// answered within Timeout keeps it fresh until the next one is answered.
func (o Options) maxViewAge() time.Duration { return 2 * o.RenewPeriod }

// maturity is how long after sending a write the member waits before it counts on it:
// by then every other member's fresh view has seen it (maxViewAge plus Timeout, within
// which the write was answered), and writes the others made before their view changed
// have landed (Margin).
func (o Options) maturity() time.Duration { return o.maxViewAge() + o.Timeout + o.Margin }

// complete fills the defaults of an Options and checks it.
func (o Options) complete() (Options, error) {
	if o.Identity == "" {
		host, err := os.Hostname()
		if err != nil {
			return o, fmt.Errorf("shard: identity: %w", err)
		}
		o.Identity = strings.ToLower(host)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	var errs []error
	if o.Namespace == "" {
		errs = append(errs, errors.New("no namespace"))
	}
	for _, msg := range validation.IsDNS1123Label(o.Ring) {
		errs = append(errs, fmt.Errorf("ring %q: %s", o.Ring, msg))
	}
	for _, msg := range validation.IsDNS1123Label(o.Identity) {
		errs = append(errs, fmt.Errorf("identity %q: %s", o.Identity, msg))
	}
	for _, msg := range validation.IsDNS1123Subdomain(leaseName(o.Ring, o.Identity)) {
		errs = append(errs, fmt.Errorf("lease name %q: %s", leaseName(o.Ring, o.Identity), msg))
	}
	if o.RenewPeriod <= 0 || o.Timeout <= 0 || o.Margin <= 0 {
		errs = append(errs, errors.New("renew period, timeout and margin must be positive"))
	}
	if o.Timeout >= o.RenewPeriod {
		errs = append(errs, fmt.Errorf("timeout %s must be shorter than the renew period %s", o.Timeout, o.RenewPeriod))
	}
	// A renewal counts from maturity until LeaseDuration-Margin after it was sent; the
	// next one, a renew period later, must count before it stops.
	if need := o.RenewPeriod + o.maturity() + o.Margin; o.LeaseDuration < need {
		errs = append(errs, fmt.Errorf("lease duration %s is shorter than 3×renew period + timeout + 2×margin = %s", o.LeaseDuration, need))
	}
	if err := errors.Join(errs...); err != nil {
		return o, fmt.Errorf("shard: options: %w", err)
	}
	return o, nil
}

func leaseName(ring, identity string) string { return ring + "-shard-" + identity }
