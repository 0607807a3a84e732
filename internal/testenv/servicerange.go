package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// WithServiceRange returns opts with a kube-apiserver that allocates Service IPs from
// cidr rather than from envtest's 10.0.0.0/24, which holds 254 Services: a benchmark with
// a thousand tenants, each with a vcluster Service, needs more. The API server is a
// wrapper in a directory of its own that passes cidr after envtest's flags (the last
// value of a flag wins); etcd and the CRDs are links to opts's.
func WithServiceRange(t testing.TB, opts ControlPlaneOptions, cidr string) ControlPlaneOptions {
	t.Helper()
	bin := opts.BinDir
	if bin == "" {
		var err error
		if bin, err = BinDir(); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	entries, err := os.ReadDir(bin)
	if err != nil {
		t.Fatalf("service range: %v", err)
	}
	for _, e := range entries {
		if e.Name() == "kube-apiserver" {
			continue
		}
		if err := os.Symlink(filepath.Join(bin, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			t.Fatalf("service range: %v", err)
		}
	}
	script := fmt.Sprintf("#!/bin/sh\nexec %q \"$@\" --service-cluster-ip-range=%s\n", filepath.Join(bin, "kube-apiserver"), cidr)
	if err := os.WriteFile(filepath.Join(dir, "kube-apiserver"), []byte(script), 0o755); err != nil {
		t.Fatalf("service range: %v", err)
	}
	opts.BinDir = dir
	return opts
}
