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

// RestartAPIServer stops kube-apiserver gracefully (SIGTERM), waits down, and starts it
// again on the same port with the same certificates and the same etcd. It returns once the
// new process answers /healthz. etcd keeps running throughout.
func (cp *ControlPlane) RestartAPIServer(down time.Duration) error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	s := cp.env.ControlPlane.APIServer
	if err := s.Stop(); err != nil {
		return fmt.Errorf("control plane: restart kube-apiserver: stop: %w", err)
	}
	time.Sleep(down)
	s.StartTimeout = max(s.StartTimeout, restartTimeout)
	if err := s.Start(); err != nil {
		return fmt.Errorf("control plane: restart kube-apiserver: start: %w", err)
	}
	return nil
}

// RestartEtcd stops etcd gracefully (SIGTERM), waits down, and starts it again on the
// same URL with the same data directory. kube-apiserver keeps running and loses its
// storage meanwhile: its requests fail or wait until etcd is back. It returns once etcd
// answers /health.
func (cp *ControlPlane) RestartEtcd(down time.Duration) error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	e := cp.env.ControlPlane.Etcd
	if err := e.Stop(); err != nil {
		return fmt.Errorf("control plane: restart etcd: stop: %w", err)
	}
	time.Sleep(down)
	e.StartTimeout = max(e.StartTimeout, restartTimeout)
	if err := e.Start(); err != nil {
		return fmt.Errorf("control plane: restart etcd: start: %w", err)
	}
	return nil
}
