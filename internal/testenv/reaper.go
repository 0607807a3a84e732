package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The reaper makes sure that no process testenv starts outlives the process that started
// it, even when that process panics (t.Cleanup and deferred Stops do not run then), a
// test times out, or it is killed with SIGKILL.
//
// It is a watchdog child: this same binary run again with reaperEnv set, caught by init
// below before main or TestMain. It reads commands from a pipe whose only write end this
// process holds (os.Pipe opens it close-on-exec, so no other child inherits it). When
// this process dies, however it dies, the kernel closes that end; the reaper reads EOF
// and SIGKILLs every process it was told about and every descendant of this process it
// has seen, then removes the directories it was told about. It runs in its own process
// group and ignores SIGINT, SIGTERM and SIGHUP, so that a Ctrl-C sent to the terminal's
// group does not take it down before the processes it guards.
//
// Processes are named by PID and start time (field 22 of /proc/PID/stat), so a PID that
// the kernel has handed to an unrelated process since is never killed.
//
// envtest starts etcd and kube-apiserver itself and gives no access to their PIDs; the
// reaper learns them from watchChildren, called once they are up, and from its own scan
// of this process's descendants twice a second. The processes testenv starts itself also
// get a parent-death signal (see process.go).
const (
	reaperEnv    = "RAAS_TESTENV_REAPER"
	reaperScan   = 500 * time.Millisecond
	reaperLinger = 10 * time.Second
)

func init() {
	if parent := os.Getenv(reaperEnv); parent != "" {
		os.Exit(runReaper(parent))
	}
}

// theReaper is this process's watchdog, started on first use.
var theReaper struct {
	once sync.Once
	mu   sync.Mutex
	w    *os.File
	pid  int
	err  error
}

// startReaper starts the watchdog unless it runs already.
func startReaper() error {
	theReaper.once.Do(func() {
		theReaper.w, theReaper.pid, theReaper.err = spawnReaper()
	})
	return theReaper.err
}

func spawnReaper() (*os.File, int, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, 0, fmt.Errorf("reaper: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, 0, fmt.Errorf("reaper: pipe: %w", err)
	}
	defer r.Close()
	cmd := exec.Command(exe)
	cmd.Args = []string{"raas-testenv-reaper"}
	cmd.Env = append(os.Environ(), reaperEnv+"="+strconv.Itoa(os.Getpid()))
	cmd.Stdin = r
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = w.Close()
		return nil, 0, fmt.Errorf("reaper: start %s: %w", exe, err)
	}
	// The reaper normally outlives this process; Wait only collects it if it dies first.
	go func() { _ = cmd.Wait() }()
	return w, cmd.Process.Pid, nil
}

// tellReaper sends one command line to the watchdog, starting it if need be.
func tellReaper(verb, arg string) error {
	if err := startReaper(); err != nil {
		return err
	}
	theReaper.mu.Lock()
	defer theReaper.mu.Unlock()
	if _, err := fmt.Fprintf(theReaper.w, "%s %s\n", verb, arg); err != nil {
		return fmt.Errorf("reaper (pid %d): %s %s: %w", theReaper.pid, verb, arg, err)
	}
	return nil
}

// watchProcess has the reaper kill pid, and its process group if it leads one, should
// this process die first.
func watchProcess(pid int) error {
	st, err := readStat(pid)
	if err != nil {
		return fmt.Errorf("reaper: %w", err)
	}
	return tellReaper("watch", fmt.Sprintf("%d %d", pid, st.start))
}

// watchChildren has the reaper watch every current child of this process except itself.
func watchChildren() error {
	procs, err := scanProcs()
	if err != nil {
		return fmt.Errorf("reaper: %w", err)
	}
	self := os.Getpid()
	for pid, st := range procs {
		if st.ppid == self && pid != theReaper.pid {
			if err := tellReaper("watch", fmt.Sprintf("%d %d", pid, st.start)); err != nil {
				return err
			}
		}
	}
	return nil
}

// removeOnExit has the reaper remove dir after killing the processes, should this
// process die first; keepDir takes that back once dir has been removed in order.
func removeOnExit(dir string) error { return tellReaper("remove", dir) }

func keepDir(dir string) { _ = tellReaper("keep", dir) }

// procStat is what the reaper reads of /proc/PID/stat.
type procStat struct {
	state      byte
	ppid, pgrp int
	start      uint64 // clock ticks after boot
}

// readStat parses /proc/PID/stat. The command name (field 2) may hold spaces and
// parentheses, so the fields are counted from its last ')'.
func readStat(pid int) (procStat, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3, state
	if len(f) < 20 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	var st procStat
	st.state = f[0][0]
	st.ppid, _ = strconv.Atoi(f[1])
	st.pgrp, _ = strconv.Atoi(f[2])
	st.start, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("/proc/%d/stat: start time: %w", pid, err)
	}
	return st, nil
}

// scanProcs reads the stat of every process in /proc.
func scanProcs() (map[int]procStat, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	procs := make(map[int]procStat, len(entries))
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil {
			procs[pid] = st
		}
	}
	return procs, nil
}

// descendants returns the processes below root in procs, by PID with their start time.
func descendants(procs map[int]procStat, root int) map[int]uint64 {
	children := map[int][]int{}
	for pid, st := range procs {
		children[st.ppid] = append(children[st.ppid], pid)
	}
	out := map[int]uint64{}
	queue := []int{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			if _, ok := out[c]; !ok {
				out[c] = procs[c].start
				queue = append(queue, c)
			}
		}
	}
	return out
}

// alive tells whether pid is still the process that started at start. A zombie has
// exited already: only its parent's wait is missing.
func alive(pid int, start uint64) bool {
	st, err := readStat(pid)
	return err == nil && st.start == start && st.state != 'Z' && st.state != 'X'
}

// runReaper is the watchdog's main: parent is the PID of the process it guards.
func runReaper(parent string) int {
	ppid, err := strconv.Atoi(parent)
	if err != nil {
		return 2
	}
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	r := reaperState{parent: ppid, self: os.Getpid(), procs: map[int]uint64{}, dirs: map[string]bool{}}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	tick := time.NewTicker(reaperScan)
	defer tick.Stop()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				r.reap()
				return 0
			}
			r.handle(line)
		case <-tick.C:
			// A parent that died while another process held the pipe open is noticed by
			// the reparenting of this process.
			if os.Getppid() != r.parent {
				r.reap()
				return 0
			}
			r.scan()
		}
	}
}

type reaperState struct {
	parent, self int
	procs        map[int]uint64 // PID → start time
	dirs         map[string]bool
}

func (r *reaperState) handle(line string) {
	verb, arg, _ := strings.Cut(line, " ")
	switch verb {
	case "watch":
		p, s, _ := strings.Cut(arg, " ")
		pid, err1 := strconv.Atoi(p)
		start, err2 := strconv.ParseUint(s, 10, 64)
		if errors.Join(err1, err2) == nil {
			r.procs[pid] = start
		}
	case "remove":
		r.dirs[arg] = true
	case "keep":
		delete(r.dirs, arg)
	}
}

// scan remembers every descendant of the parent, so that it can be killed once the
// parent is gone and the kernel has handed it to init.
func (r *reaperState) scan() {
	procs, err := scanProcs()
	if err != nil {
		return
	}
	for pid, start := range descendants(procs, r.parent) {
		if pid != r.self {
			r.procs[pid] = start
		}
	}
	for pid, start := range r.procs {
		if !alive(pid, start) {
			delete(r.procs, pid)
		}
	}
}

// reap kills what is left, waits for it to be gone, and removes the directories.
func (r *reaperState) reap() {
	procs, _ := scanProcs()
	targets := map[int]uint64{}
	for pid, start := range r.procs {
		if !alive(pid, start) {
			continue
		}
		targets[pid] = start
		for c, s := range descendants(procs, pid) {
			targets[c] = s
		}
	}
	for pid, start := range targets {
		if pid == r.self || !alive(pid, start) {
			continue
		}
		if st, err := readStat(pid); err == nil && st.pgrp == pid {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(reaperLinger)
	for time.Now().Before(deadline) {
		left := 0
		for pid, start := range targets {
			if alive(pid, start) {
				left++
			}
		}
		if left == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for dir := range r.dirs {
		_ = os.RemoveAll(dir)
	}
}
