package daemon

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/raas-dev/raas/daemon/shard"
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

// RingMember is what ForwardToMembers needs of this replica's place in a shard ring: a
// *shard.Member.
type RingMember interface {
	Identity() string
	Ring() shard.Ring
}

var _ RingMember = (*shard.Member)(nil)

const (
	// HeaderRelayedBy marks a webhook that a member relayed to the others, with its
	// identity: it is served, never relayed again.
	HeaderRelayedBy = "X-Raas-Relayed-By"
	// relayTimeout bounds the relays of one webhook, all together. The poll catches up
	// on a member that missed one.
	relayTimeout = 3 * time.Second
	// maxRelayBody is the largest body relayed; the webhook itself refuses larger ones.
	maxRelayBody = 4 << 20
)

// ForwardToMembers serves webhooks with h and, when h accepts one (202: the trigger
// fired), relays it to every other member of m's ring at the address it gave
// (shard.Options.Address), so that each member starts a pass over the tenants it owns.
// The request goes on as it came, body and signature headers intact, so that each member
// verifies it; a relayed request carries HeaderRelayedBy and is not relayed again. The
// relays run at once and are bounded by a short timeout; the answer waits for them. A
// failed relay is logged, and that member's next poll catches up.
func ForwardToMembers(h http.Handler, m RingMember, log *slog.Logger) http.Handler {
	client := &http.Client{Timeout: relayTimeout}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(HeaderRelayedBy) != "" || r.ContentLength > maxRelayBody {
			h.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxRelayBody+1))
		if err != nil {
			http.Error(w, "cannot read the request\n", http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		if rec.status != http.StatusAccepted || len(body) > maxRelayBody {
			return
		}
		relay(r.Context(), client, m, r, body, log)
	})
}

// relay sends the webhook r, whose body is body, to every other member with an address,
// at once, and waits for their answers.
func relay(ctx context.Context, client *http.Client, m RingMember, r *http.Request, body []byte, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), relayTimeout)
	defer cancel()
	ring := m.Ring()
	var wg sync.WaitGroup
	for _, member := range ring.Members() {
		if member == m.Identity() {
			continue
		}
		addr := ring.Address(member)
		if addr == "" {
			log.Warn("webhook not relayed: the member has no address", "member", member)
			continue
		}
		wg.Go(func() {
			u := url.URL{Scheme: "http", Host: addr, Path: r.URL.Path, RawQuery: r.URL.RawQuery}
			req, err := http.NewRequestWithContext(ctx, r.Method, u.String(), bytes.NewReader(body))
			if err != nil {
				log.Warn("webhook not relayed", "member", member, "error", err)
				return
			}
			req.Header = r.Header.Clone()
			req.Header.Set(HeaderRelayedBy, m.Identity())
			resp, err := client.Do(req)
			if err != nil {
				log.Warn("webhook not relayed", "member", member, "address", addr, "error", err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				log.Warn("webhook relayed and refused", "member", member, "address", addr, "status", resp.Status)
				return
			}
			log.Debug("webhook relayed", "member", member, "address", addr)
		})
	}
	wg.Wait()
}

// statusRecorder remembers the status code a handler answered with.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(p)
}
