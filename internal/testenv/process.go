package testenv

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a binary that testenv starts and owns. It dies with this process twice
// over: the reaper watches it, and it gets SIGKILL as its parent-death signal.
//
// The kernel sends the parent-death signal when the thread that forked the child exits,
// not the process (prctl(2) PR_SET_PDEATHSIG; golang/go#27505). The Go runtime ends a
// thread when a goroutine locked to it returns, so a child forked from an ordinary
// goroutine can be killed at random once some other goroutine has locked and left that
// thread. Here the child is forked from a goroutine locked to its thread, and that
// goroutine stays in Wait, keeping the thread, until the child has exited.
type Process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // Wait's result, set before done is closed
	tail *tailWriter
	// dir holds the process's files; Stop removes it.
	dir string
}

// stopTimeout is how long a process has to exit after SIGTERM before SIGKILL.
const stopTimeout = 10 * time.Second

// startProcess starts path with args, its output going to out (if not nil) with every
// line prefixed by name, and its last lines kept for errors.
func startProcess(name, path string, args, env []string, out io.Writer) (*Process, error) {
	if err := startReaper(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &Process{name: name, done: make(chan struct{}), tail: &tailWriter{max: 8 << 10}}
	p.cmd = exec.Command(path, args...)
	p.cmd.Env = env
	var w io.Writer = p.tail
	if out != nil {
		w = io.MultiWriter(p.tail, &prefixWriter{prefix: name + ": ", w: out})
	}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	// Its own process group keeps a terminal's Ctrl-C for this process, which stops
	// the child in order; Pdeathsig covers this process dying without doing so.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}

	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		if err := p.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- watchProcess(p.cmd.Process.Pid)
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		if p.cmd.Process != nil {
			_ = p.cmd.Process.Kill()
		}
		return nil, fmt.Errorf("%s: start: %w", name, err)
	}
	return p, nil
}

// PID is the process's ID.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// exitErr says how the process ended, with its last output, once it has.
func (p *Process) exitErr() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited (%v); last output:\n%s", p.name, p.err, p.tail)
	default:
		return nil
	}
}

// Stop sends SIGTERM, and SIGKILL after stopTimeout, returns once the process has
// exited, and removes its files. An exit caused by either signal is not an error; an
// exit before Stop is.
func (p *Process) Stop() error {
	var err error
	select {
	case <-p.done:
		err = p.unexpectedExit()
	default:
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(stopTimeout):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	if p.dir != "" {
		if rmErr := os.RemoveAll(p.dir); rmErr != nil && err == nil {
			err = fmt.Errorf("%s: %w", p.name, rmErr)
		}
		keepDir(p.dir)
	}
	return err
}

// unexpectedExit reports a process that ended before it was stopped.
func (p *Process) unexpectedExit() error {
	return fmt.Errorf("%s had exited before stop (%v); last output:\n%s", p.name, p.err, p.tail)
}

// tailWriter keeps the last max bytes written to it.
type tailWriter struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailWriter) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(b), nil
}

func (t *tailWriter) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}

// prefixWriter writes whole lines to w, each after prefix. Writers of several processes
// share one w, so a package-wide lock keeps their lines whole.
type prefixWriter struct {
	prefix string
	w      io.Writer
	part   []byte
}

var outputMu sync.Mutex

func (p *prefixWriter) Write(b []byte) (int, error) {
	outputMu.Lock()
	defer outputMu.Unlock()
	p.part = append(p.part, b...)
	for {
		i := bytes.IndexByte(p.part, '\n')
		if i < 0 {
			break
		}
		if _, err := fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.part[:i]); err != nil {
			return len(b), err
		}
		p.part = p.part[i+1:]
	}
	return len(b), nil
}
