package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// A control plane can be restarted with its data, for fault tests: etcd keeps its data
// directory, and kube-apiserver its port, serving certificate, client CA and
// service-account keys, so clients built from Config before the restart still work after
// it.
//
// envtest allows this as long as it does not own the directories: its Etcd and APIServer
// create a temporary DataDir and CertDir when none is set and remove them on Stop, and
// then a restart would come back empty, with a new serving CA that no old client trusts.
// With the directories set, Stop leaves them, and Start reuses the listen URLs and ports
// chosen on the first start (Etcd.URL, APIServer.SecureServing), the serving certificate
// on disk, and the client CA it holds in memory (SecureServing.Authn). So StartControlPlane
// makes the directories itself, and Stop removes them.
const (
	dataDir = "etcd"
	certDir = "apiserver"
	// restartTimeout bounds the start of one process after a restart: kube-apiserver
	// reloads every CRD first, which takes long on a busy machine.
	restartTimeout = 3 * time.Minute
)

// ownDirs makes the directory that holds etcd's data and kube-apiserver's certificates.
func ownDirs() (string, error) {
	dir, err := os.MkdirTemp("", "raas-controlplane-")
	if err != nil {
		return "", err
	}
	for _, sub := range []string{dataDir, certDir} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			_ = os.RemoveAll(dir)
			return "", err
		}
	}
	return dir, nil
}

// RestartAPIServer stops kube-apiserver, waits down, and starts it again; see
// StopAPIServer and StartAPIServer. etcd keeps running throughout.
func (cp *ControlPlane) RestartAPIServer(down time.Duration) error {
	if err := cp.StopAPIServer(); err != nil {
		return err
	}
	time.Sleep(down)
	return cp.StartAPIServer()
}

// RestartEtcd stops etcd, waits down, and starts it again; see StopEtcd and StartEtcd.
// kube-apiserver keeps running and loses its storage meanwhile: its requests fail or wait
// until etcd is back.
func (cp *ControlPlane) RestartEtcd(down time.Duration) error {
	if err := cp.StopEtcd(); err != nil {
		return err
	}
	time.Sleep(down)
	return cp.StartEtcd()
}

// StopAPIServer stops kube-apiserver gracefully (SIGTERM), as a rolling upgrade does,
// and returns once it has exited. Start it again with StartAPIServer.
func (cp *ControlPlane) StopAPIServer() error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if err := cp.env.ControlPlane.APIServer.Stop(); err != nil {
		return fmt.Errorf("control plane: stop kube-apiserver: %w", err)
	}
	return nil
}

// StartAPIServer starts a stopped kube-apiserver on the same port with the same
// certificates and the same etcd, and returns once it answers /healthz.
func (cp *ControlPlane) StartAPIServer() error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	s := cp.env.ControlPlane.APIServer
	s.StartTimeout = max(s.StartTimeout, restartTimeout)
	if err := s.Start(); err != nil {
		return fmt.Errorf("control plane: start kube-apiserver again: %w", err)
	}
	return watchChildren()
}

// StopEtcd stops etcd gracefully (SIGTERM) and returns once it has exited. Start it
// again with StartEtcd.
func (cp *ControlPlane) StopEtcd() error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if err := cp.env.ControlPlane.Etcd.Stop(); err != nil {
		return fmt.Errorf("control plane: stop etcd: %w", err)
	}
	return nil
}

// StartEtcd starts a stopped etcd on the same URL with the same data directory, and
// returns once it answers /health.
func (cp *ControlPlane) StartEtcd() error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	e := cp.env.ControlPlane.Etcd
	e.StartTimeout = max(e.StartTimeout, restartTimeout)
	if err := e.Start(); err != nil {
		return fmt.Errorf("control plane: start etcd again: %w", err)
	}
	return watchChildren()
}
