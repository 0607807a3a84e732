package daemon

import (
	"context"
	"fmt"
	"os"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaderOptions configure leader election on a coordination.k8s.io Lease.
type LeaderOptions struct {
	Namespace, Name string
	// Identity names this replica; defaults to the host name and the process ID.
	Identity                                  string
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// DefaultLeaderOptions uses the Lease raas-system/raas with client-go's usual timings.
func DefaultLeaderOptions() LeaderOptions {
	return LeaderOptions{
		Namespace: "raas-system", Name: "raas",
		LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
	}
}

// RunAsLeader runs lead while this replica holds the Lease, so that two replicas never
// apply at once. It returns when ctx ends; losing the Lease cancels lead's context and
// campaigns again. On a clean shutdown the Lease is released at once.
func RunAsLeader(ctx context.Context, cfg *rest.Config, opts LeaderOptions, lead func(context.Context)) error {
	if opts.Identity == "" {
		host, _ := os.Hostname()
		opts.Identity = fmt.Sprintf("%s_%d", host, os.Getpid())
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metaFor(opts),
		Client:     cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: opts.Identity},
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   opts.LeaseDuration,
			RenewDeadline:   opts.RenewDeadline,
			RetryPeriod:     opts.RetryPeriod,
			ReleaseOnCancel: true,
			Name:            opts.Name,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: lead,
				OnStoppedLeading: func() {},
			},
		})
		if err != nil {
			return err
		}
		le.Run(ctx) // returns when leadership is lost or ctx ends
	}
	return nil
}

func metaFor(opts LeaderOptions) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: opts.Namespace, Name: opts.Name}
}
