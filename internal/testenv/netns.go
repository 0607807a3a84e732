package testenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// The twin's pod network. A process the twin runs for a pod (a vcluster syncer) gets a
// network namespace of its own, with the pod's IP on its eth0, so that two syncers can
// each listen on 127.0.0.1:6443 and :10099 as they do in their own pods (vcluster v0.25.0
// pkg/k8s/k8s.go waitForAPI polls https://127.0.0.1:6443/readyz; pkg/plugin/v1/plugin.go
// listens on localhost:10099), and so that the host's Endpoints for the pod's Service
// lead to the process.
//
// A veth pair joins the namespace to the machine's: the pod's end carries the pod IP as
// a /32, the machine's end carries HostGatewayIP, and each side routes the other's
// address over the pair. Nothing is bridged or NATed: the machine reaches every pod IP,
// and a pod reaches the machine (its API servers bind 0.0.0.0), not other pods.
//
// It uses iproute2's `ip` rather than a netlink library: a process has to enter the
// namespace between fork and exec, which os/exec cannot do, and `ip netns exec` is
// the standard way to do it; setting the namespace up with the same tool keeps one
// vocabulary. It needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN).

// HostGatewayIP is the machine's address as pods see it.
const HostGatewayIP = "10.251.0.1"

// podNetwork is one pod's network namespace and veth pair.
type podNetwork struct {
	// Name is the namespace's name under /run/netns.
	Name string
	// IP is the pod's address inside it.
	IP string
	// hostLink is the machine's end of the veth pair.
	hostLink string
}

// newPodNetwork makes a network namespace for the pod with uid, with ip on its eth0.
// The names derive from uid, so a namespace left by a killed run is replaced.
func newPodNetwork(ctx context.Context, uid, ip string) (*podNetwork, error) {
	if net.ParseIP(ip) == nil {
		return nil, fmt.Errorf("pod network: %q is not an IP", ip)
	}
	sum := sha256.Sum256([]byte(uid))
	id := hex.EncodeToString(sum[:])[:10]
	n := &podNetwork{Name: "raas-" + id, IP: ip, hostLink: "rh" + id}
	peer := "rp" + id
	n.remove(ctx) // a namespace of the same pod from a run that was killed

	steps := [][]string{
		{"netns", "add", n.Name},
		{"link", "add", n.hostLink, "type", "veth", "peer", "name", peer},
		{"link", "set", peer, "netns", n.Name},
		{"addr", "add", HostGatewayIP + "/32", "dev", n.hostLink},
		{"link", "set", n.hostLink, "up"},
		{"route", "replace", ip + "/32", "dev", n.hostLink},
		{"-n", n.Name, "link", "set", "lo", "up"},
		{"-n", n.Name, "link", "set", peer, "name", "eth0"},
		{"-n", n.Name, "addr", "add", ip + "/32", "dev", "eth0"},
		{"-n", n.Name, "link", "set", "eth0", "up"},
		{"-n", n.Name, "route", "add", HostGatewayIP + "/32", "dev", "eth0"},
		{"-n", n.Name, "route", "add", "default", "via", HostGatewayIP, "dev", "eth0"},
	}
	for _, args := range steps {
		if err := ipCommand(ctx, args...); err != nil {
			n.remove(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("pod network %s for %s: %w", n.Name, ip, err)
		}
	}
	return n, nil
}

// Command returns a command that runs argv inside the namespace, in a mount namespace
// of its own where each of binds (mount point → directory on the machine) is
// bind-mounted, as a container's volumes are. Mount points that do not exist are
// created first, on the machine; they stay, empty. A mount point that holds another
// bind's source (a pod's /tmp, when the pod's directories are under /tmp) is mounted
// last, so that the sources are still the machine's when they are bound.
func (n *podNetwork) Command(ctx context.Context, binds map[string]string, argv ...string) *exec.Cmd {
	targets := slices.Sorted(maps.Keys(binds))
	holdsSource := func(target string) bool {
		for _, src := range binds {
			if strings.HasPrefix(src, strings.TrimSuffix(target, "/")+"/") {
				return true
			}
		}
		return false
	}
	slices.SortStableFunc(targets, func(a, b string) int {
		switch ha, hb := holdsSource(a), holdsSource(b); {
		case ha == hb:
			return 0
		case hb:
			return -1
		}
		return 1
	})
	var script strings.Builder
	script.WriteString("set -e\n")
	for _, target := range targets {
		fmt.Fprintf(&script, "mkdir -p %s && mount --bind %s %s\n",
			shellQuote(target), shellQuote(binds[target]), shellQuote(target))
	}
	script.WriteString(`exec "$@"` + "\n")
	args := append([]string{"netns", "exec", n.Name,
		"unshare", "--mount", "--propagation", "private",
		"sh", "-c", script.String(), "sh"}, argv...)
	return exec.CommandContext(ctx, "ip", args...)
}

// Close removes the namespace and the veth pair, and the route to the pod.
func (n *podNetwork) Close() error {
	n.remove(context.Background())
	return nil
}

// remove deletes what newPodNetwork made, ignoring what is not there.
func (n *podNetwork) remove(ctx context.Context) {
	_ = ipCommand(ctx, "route", "del", n.IP+"/32", "dev", n.hostLink)
	_ = ipCommand(ctx, "link", "del", n.hostLink) // deletes the peer too
	_ = ipCommand(ctx, "netns", "del", n.Name)
}

func ipCommand(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// sweepPodNetworks deletes the namespaces of raas's pods that hold no process and are
// older than a minute: those of a twin whose test process was killed (the reaper ends
// the processes; nothing else would remove their namespaces). A namespace just made
// for a process about to start is younger than that.
func sweepPodNetworks(ctx context.Context) {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "raas-") {
			continue
		}
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < time.Minute {
			continue
		}
		out, err := exec.CommandContext(ctx, "ip", "netns", "pids", e.Name()).Output()
		if err == nil && strings.TrimSpace(string(out)) == "" {
			_ = ipCommand(ctx, "netns", "del", e.Name())
		}
	}
}
