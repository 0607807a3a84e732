package testenv_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raas-dev/raas/internal/testenv"
)

// helperEnv makes TestHelperDiesWithProcesses run, in a child that TestReaper starts:
// "panic" panics, "kill" waits to be killed with SIGKILL.
const helperEnv = "RAAS_TESTENV_REAPER_HELPER"

// helperLine prefixes what the helper tells its parent on stdout.
const helperLine = "reaper-helper: "

// TestReaper runs a child test process that starts a host control plane and the host
// controllers and then dies without stopping them, and checks by PID that every process
// it started is gone soon after.
func TestReaper(t *testing.T) {
	for _, how := range []string{"panic", "kill"} {
		t.Run("leaves no process behind a test process that dies by "+how, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperDiesWithProcesses$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), helperEnv+"="+how)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var procs []proc
			var out strings.Builder
			ready := false
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				line := sc.Text()
				out.WriteString(line + "\n")
				msg, ok := strings.CutPrefix(line, helperLine)
				if !ok {
					continue
				}
				if msg == "ready" {
					ready = true
					break
				}
				var p proc
				if _, err := fmt.Sscanf(msg, "%d %d %s", &p.pid, &p.start, &p.comm); err != nil {
					t.Fatalf("helper line %q: %v", line, err)
				}
				procs = append(procs, p)
			}
			if !ready {
				_ = cmd.Wait()
				t.Fatalf("helper never got ready:\n%s\n%s", out.String(), stderr.String())
			}
			if how == "kill" {
				if err := cmd.Process.Kill(); err != nil {
					t.Fatal(err)
				}
			}
			go func() { _, _ = bufio.NewReader(stdout).WriteTo(&out) }()
			if err := cmd.Wait(); err == nil {
				t.Fatalf("helper exited 0, want it to die by %s", how)
			}

			var comms []string
			for _, p := range procs {
				comms = append(comms, p.comm)
			}
			// comm is the executable's name cut to 15 bytes (proc(5)).
			for _, want := range []string{"etcd", "kube-apiserver", "kube-controller", "kube-scheduler", "kwok"} {
				if !slices.Contains(comms, want) {
					t.Errorf("helper's processes %v lack %s: the test sees nothing", comms, want)
				}
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				var left []proc
				for _, p := range procs {
					if p.alive() {
						left = append(left, p)
					}
				}
				if len(left) == 0 {
					break
				}
				if time.Now().After(deadline) {
					for _, p := range left {
						_ = syscall.Kill(p.pid, syscall.SIGKILL)
					}
					t.Fatalf("still running 30s after the helper died: %v", left)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

// TestHelperDiesWithProcesses is TestReaper's child, not a test of its own.
func TestHelperDiesWithProcesses(t *testing.T) {
	how := os.Getenv(helperEnv)
	if how == "" {
		t.Skip("helper process of TestReaper: runs only in the child TestReaper starts")
	}
	// No Stop and no Cleanup: the processes must die with this one regardless.
	opts := testenv.DefaultControlPlaneOptions()
	opts.CRDDirs = nil
	host, err := testenv.StartControlPlane(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.StartHostControllers(context.Background(), host, examplePlatform(t), testenv.DefaultHostControllersOptions()); err != nil {
		t.Fatal(err)
	}
	procs, err := readProcs()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range below(procs, os.Getpid()) {
		fmt.Printf("%s%d %d %s\n", helperLine, p.pid, p.start, p.comm)
	}
	fmt.Println(helperLine + "ready")
	switch how {
	case "panic":
		// A panic off the test goroutine, as a -timeout expiry is, skips every Cleanup.
		go func() { panic("reaper helper: dying on purpose") }()
		time.Sleep(time.Minute)
	case "kill":
		time.Sleep(time.Minute)
	}
	t.Fatalf("reaper helper: still alive after a minute (%s)", how)
}

// proc is one process, read from /proc independently of the reaper's own reading.
type proc struct {
	pid, ppid int
	start     uint64
	comm      string
	state     string
}

func (p proc) String() string { return fmt.Sprintf("%d(%s)", p.pid, p.comm) }

func readProc(pid int) (proc, bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return proc{}, false
	}
	s := string(data)
	open, shut := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || shut < open {
		return proc{}, false
	}
	f := strings.Fields(s[shut+1:])
	if len(f) < 20 {
		return proc{}, false
	}
	p := proc{pid: pid, comm: s[open+1 : shut], state: f[0]}
	p.ppid, _ = strconv.Atoi(f[1])
	p.start, _ = strconv.ParseUint(f[19], 10, 64)
	return p, true
}

func readProcs() (map[int]proc, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	procs := map[int]proc{}
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			if p, ok := readProc(pid); ok {
				procs[pid] = p
			}
		}
	}
	return procs, nil
}

// below lists the descendants of root.
func below(procs map[int]proc, root int) []proc {
	var out []proc
	for _, p := range procs {
		for q, ok := p, true; ok && q.ppid != 0; q, ok = procs[q.ppid] {
			if q.ppid == root {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// alive tells whether the process is still the one seen, and not a zombie.
func (p proc) alive() bool {
	now, ok := readProc(p.pid)
	return ok && now.start == p.start && now.state != "Z" && now.state != "X"
}
