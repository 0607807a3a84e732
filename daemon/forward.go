package daemon

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// ForwardToLeader serves webhooks with h while leading reports true, and otherwise hands
// them to the leader: its identity in the Lease ends in _HOST:PORT (see RunAsLeader's
// Identity), and the request, signature and all, is proxied there. When no leader can be
// found it answers 503, and the next poll catches up.
func ForwardToLeader(h http.Handler, leading func() bool, cfg *rest.Config, opts LeaderOptions, log *slog.Logger) http.Handler {
	cs, err := kubernetes.NewForConfig(cfg)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if leading() {
			h.ServeHTTP(w, r)
			return
		}
		if err != nil {
			http.Error(w, "not the leader\n", http.StatusServiceUnavailable)
			return
		}
		lease, lerr := cs.CoordinationV1().Leases(opts.Namespace).Get(r.Context(), opts.Name, metav1.GetOptions{})
		addr := ""
		if lerr == nil && lease.Spec.HolderIdentity != nil {
			addr = leaderAddress(*lease.Spec.HolderIdentity)
		}
		if addr == "" || addr == opts.selfAddress() {
			http.Error(w, "not the leader, and no leader to hand the webhook to\n", http.StatusServiceUnavailable)
			return
		}
		log.Debug("handing the webhook to the leader", "leader", addr)
		proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: addr})
		proxy.ServeHTTP(w, r)
	})
}

// leaderAddress returns the HOST:PORT at the end of a Lease holder identity, or "".
func leaderAddress(identity string) string {
	i := strings.LastIndex(identity, "_")
	if i < 0 {
		return ""
	}
	addr := identity[i+1:]
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return ""
	}
	return addr
}

func (o LeaderOptions) selfAddress() string { return leaderAddress(o.Identity) }
