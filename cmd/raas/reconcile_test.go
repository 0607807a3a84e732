package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReconcileVerifySignaturesFlags(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "none")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"refuses a directory source", []string{"--dir", t.TempDir()}, "needs a Git source"},
		{"needs trusted keys", []string{"--repo-url", "https://example.com/t.git"}, "needs --trusted-keys"},
		{"needs the keys file to exist", []string{"--repo-url", "https://example.com/t.git", "--trusted-keys", filepath.Join(t.TempDir(), "missing.asc")}, "--trusted-keys: "},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("RAAS_GIT_TRUSTED_KEYS_FILE", "")
			args := append([]string{"reconcile", "--verify-signatures", "--kubeconfig", kubeconfig, "--listen", "127.0.0.1:0"}, c.args...)
			cmd := newRootCommand(time.Now)
			cmd.SetArgs(args)
			err := cmd.Execute()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want it to say %q", err, c.want)
			}
		})
	}
}

func TestReconcileShardExcludesLeaderElection(t *testing.T) {
	cmd := newRootCommand(time.Now)
	cmd.SetArgs([]string{"reconcile", "--shard", "--leader-elect", "--dir", t.TempDir(),
		"--kubeconfig", filepath.Join(t.TempDir(), "none"), "--listen", "127.0.0.1:0"})
	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), "--shard or --leader-elect, not both") {
		t.Errorf("err = %v, want --shard and --leader-elect refused together", err)
	}
}
