package source

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
)

// A remoteRepo is a bare Git repository on disk with a working clone that pushes to it.
// Commits are made with the git CLI, as a user would.
type remoteRepo struct {
	tb   testing.TB
	root string // holds tenants.git
	bare string
	work string
}

func newRemoteRepo(tb testing.TB) *remoteRepo {
	tb.Helper()
	root := tb.TempDir()
	r := &remoteRepo{tb: tb, root: root, bare: filepath.Join(root, "tenants.git"), work: tb.TempDir()}
	r.git(root, "init", "--quiet", "--bare", "--initial-branch=main", r.bare)
	r.git(r.work, "init", "--quiet", "--initial-branch=main")
	r.git(r.work, "remote", "add", "origin", r.bare)
	return r
}

// git runs the git CLI in dir, isolated from the user's and the system's configuration.
func (r *remoteRepo) git(dir string, args ...string) string {
	r.tb.Helper()
	cmd := exec.Command("git", append([]string{
		"-c", "user.name=raas test", "-c", "user.email=test@raas.dev", "-c", "commit.gpgsign=false",
	}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.tb.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files (an empty content removes the file), commits them on main, pushes,
// and returns the commit SHA.
func (r *remoteRepo) commit(msg string, files map[string]string) string {
	r.tb.Helper()
	for name, content := range files {
		path := filepath.Join(r.work, filepath.FromSlash(name))
		if content == "" {
			if err := os.Remove(path); err != nil {
				r.tb.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			r.tb.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			r.tb.Fatal(err)
		}
	}
	r.git(r.work, "add", "--all")
	r.git(r.work, "commit", "--quiet", "--allow-empty", "-m", msg)
	r.git(r.work, "push", "--quiet", "--force", "origin", "main", "--tags")
	return r.git(r.work, "rev-parse", "HEAD")
}

// tag tags HEAD (annotated when msg is set) and pushes the tag.
func (r *remoteRepo) tag(name, msg string) {
	r.tb.Helper()
	if msg != "" {
		r.git(r.work, "tag", "--force", "-a", "-m", msg, name)
	} else {
		r.git(r.work, "tag", "--force", name)
	}
	r.git(r.work, "push", "--quiet", "--force", "origin", "refs/tags/"+name)
}

// allowSHA1InWant lets clients fetch any reachable commit by its SHA, as GitHub and
// GitLab do.
func (r *remoteRepo) allowSHA1InWant(allow bool) {
	r.tb.Helper()
	v := "false"
	if allow {
		v = "true"
	}
	r.git(r.bare, "config", "uploadpack.allowReachableSHA1InWant", v)
}

// An httpServer serves the repositories under root over Git's smart HTTP protocol, with
// `git http-backend` behind net/http/cgi, on loopback. Every request must carry HTTP basic
// auth with the password token; the user name is not checked, as on GitHub.
type httpServer struct {
	tb       testing.TB
	handler  http.Handler
	token    string
	addr     string
	requests atomic.Int64

	mu  sync.Mutex
	srv *http.Server
}

func newHTTPServer(tb testing.TB, root, token string) *httpServer {
	tb.Helper()
	execPath, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		tb.Fatalf("git --exec-path: %v", err)
	}
	backend := filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		tb.Fatalf("git-http-backend: %v", err)
	}
	s := &httpServer{tb: tb, token: token, handler: &cgi.Handler{
		Path: backend,
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1"},
	}}
	s.start("127.0.0.1:0")
	tb.Cleanup(s.stop)
	return s
}

func (s *httpServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	_, password, ok := r.BasicAuth()
	if !ok || subtle.ConstantTimeCompare([]byte(password), []byte(s.token)) != 1 {
		w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	s.handler.ServeHTTP(w, r)
}

// start listens on addr; after stop, start(s.addr) brings the server back on the same port.
func (s *httpServer) start(addr string) {
	s.tb.Helper()
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; {
		if ln, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.tb.Fatal(err)
	}
	s.addr = ln.Addr().String()
	srv := &http.Server{Handler: s}
	go srv.Serve(ln)
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
}

func (s *httpServer) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		s.srv.Close()
		s.srv = nil
	}
}

func (s *httpServer) url(repo string) string { return "http://" + s.addr + "/" + repo }

// An sshServer serves git-upload-pack for the repositories under root over SSH on
// loopback. It is golang.org/x/crypto/ssh's server running the real git-upload-pack; it
// accepts one client key.
type sshServer struct {
	addr       string
	hostKey    ssh.Signer
	clientKey  string // PEM file of the accepted key
	lockedKey  string // the same key, encrypted with sshPassphrase
	knownHosts string // known_hosts file naming this server
}

const sshPassphrase = "ssh-passphrase-5d2e"

func newSSHServer(tb testing.TB, root string) *sshServer {
	tb.Helper()
	dir := tb.TempDir()
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostKey, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		tb.Fatal(err)
	}
	clientPub, clientPriv, _ := ed25519.GenerateKey(rand.Reader)
	authorized, err := ssh.NewPublicKey(clientPub)
	if err != nil {
		tb.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(clientPriv, "")
	if err != nil {
		tb.Fatal(err)
	}
	locked, err := ssh.MarshalPrivateKeyWithPassphrase(clientPriv, "", []byte(sshPassphrase))
	if err != nil {
		tb.Fatal(err)
	}
	s := &sshServer{hostKey: hostKey, clientKey: filepath.Join(dir, "id_ed25519"),
		lockedKey: filepath.Join(dir, "id_ed25519_locked"), knownHosts: filepath.Join(dir, "known_hosts")}
	if err := os.WriteFile(s.clientKey, pem.EncodeToMemory(block), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(s.lockedKey, pem.EncodeToMemory(locked), 0o600); err != nil {
		tb.Fatal(err)
	}
	config := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(key.Marshal(), authorized.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("key not authorized")
		},
	}
	config.AddHostKey(hostKey)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	s.addr = ln.Addr().String()
	line := knownhosts.Line([]string{knownhosts.Normalize(s.addr)}, hostKey.PublicKey())
	if err := os.WriteFile(s.knownHosts, []byte(line+"\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go serveSSH(conn, config, root)
		}
	}()
	return s
}

func (s *sshServer) url(repo string) string { return "ssh://git@" + s.addr + "/" + repo }

func serveSSH(conn net.Conn, config *ssh.ServerConfig, root string) {
	defer conn.Close()
	_, chans, reqs, err := ssh.NewServerConn(conn, config)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "sessions only")
			continue
		}
		ch, requests, err := nc.Accept()
		if err != nil {
			continue
		}
		go serveSession(ch, requests, root)
	}
}

// serveSession runs `git-upload-pack '<path>'` for an exec request; nothing else.
func serveSession(ch ssh.Channel, requests <-chan *ssh.Request, root string) {
	defer ch.Close()
	for req := range requests {
		if req.Type != "exec" {
			req.Reply(req.Type == "env", nil)
			continue
		}
		if len(req.Payload) < 4 {
			req.Reply(false, nil)
			return
		}
		command := string(req.Payload[4 : 4+binary.BigEndian.Uint32(req.Payload)])
		repo, ok := strings.CutPrefix(command, "git-upload-pack ")
		if !ok {
			req.Reply(false, nil)
			return
		}
		repo = filepath.Join(root, filepath.Clean("/"+strings.Trim(repo, "'")))
		req.Reply(true, nil)
		cmd := exec.CommandContext(context.Background(), "git-upload-pack", repo)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1")
		stdin, _ := cmd.StdinPipe()
		cmd.Stdout, cmd.Stderr = ch, ch.Stderr()
		status := uint32(0)
		if err := cmd.Start(); err != nil {
			status = 127
		} else {
			go func() { io.Copy(stdin, ch); stdin.Close() }()
			if err := cmd.Wait(); err != nil {
				status = 1
			}
		}
		ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, status))
		return
	}
}
