package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestResolveVersion(t *testing.T) {
	vcs := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123abc"}, {Key: "vcs.modified", Value: "true"},
	}}
	t.Run("prefers what make build stamps", func(t *testing.T) {
		v := resolveVersion("v1.2.3", "fedcba9", vcs, true)
		if v.Version != "v1.2.3" || v.Commit != "fedcba9" || v.Modified {
			t.Errorf("%+v", v)
		}
	})
	t.Run("falls back on the VCS stamp of go build", func(t *testing.T) {
		v := resolveVersion("", "", vcs, true)
		if v.Version != "devel" || v.Commit != "0123abc" || !v.Modified || v.Go != "go1.26.8" {
			t.Errorf("%+v", v)
		}
	})
	t.Run("takes the module version of go install", func(t *testing.T) {
		v := resolveVersion("", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.4.0"}}, true)
		if v.Version != "v0.4.0" || v.Commit != "unknown" {
			t.Errorf("%+v", v)
		}
	})
	t.Run("says devel and unknown without build info", func(t *testing.T) {
		v := resolveVersion("", "", nil, false)
		if v.Version != "devel" || v.Commit != "unknown" || v.Go == "" || v.Platform == "" {
			t.Errorf("%+v", v)
		}
	})
}

func TestVersionCommand(t *testing.T) {
	cat := t.TempDir()
	for _, dir := range []string{"vcluster/0.25.0", "kuberay/1.4.0", "kuberay/1.5.0", "volcano/1.12.1"} {
		if err := os.MkdirAll(filepath.Join(cat, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("RAAS_CATALOG", cat)
	oldV, oldC := version, commit
	version, commit = "v9.8.7", "abcdef0"
	t.Cleanup(func() { version, commit = oldV, oldC })

	t.Run("prints raas's version and the catalog's", func(t *testing.T) {
		out, stderr, code := run(t, "version")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		for _, want := range []string{
			"raas v9.8.7 (commit abcdef0, go",
			"  vcluster  0.25.0 (" + cat + ")\n",
			"  kuberay   1.4.0 (" + cat + "), 1.5.0 (" + cat + ")\n",
			"  volcano   1.12.1 (" + cat + ")\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "platform") {
			t.Errorf("no repository was given, yet:\n%s", out)
		}
	})
	t.Run("prints the same for --version", func(t *testing.T) {
		want, _, _ := run(t, "version")
		got, stderr, code := run(t, "--version")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("(-version +--version):\n%s", diff)
		}
	})
	t.Run("adds the platform's versions and the repository's catalog", func(t *testing.T) {
		out, stderr, code := run(t, "version", "../../examples", "-o", "json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var rep versionReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		if rep.Raas.Version != "v9.8.7" || rep.Raas.Commit != "abcdef0" {
			t.Errorf("raas %+v", rep.Raas)
		}
		if rep.Platform == nil || rep.Platform.Volcano == "" || len(rep.Platform.VCluster) == 0 || len(rep.Platform.KubeRay) == 0 {
			t.Fatalf("platform %+v", rep.Platform)
		}
		if len(rep.Catalog) != 4 {
			t.Errorf("catalog %+v, want the 4 artifacts", rep.Catalog)
		}
	})
	t.Run("refuses an unknown output format", func(t *testing.T) {
		if _, _, code := run(t, "version", "-o", "yaml"); code == 0 {
			t.Error("exit 0")
		}
	})
	t.Run("still prints help with no arguments", func(t *testing.T) {
		out, _, code := run(t)
		if code != 0 || !strings.Contains(out, "Available Commands") {
			t.Errorf("exit %d:\n%s", code, out)
		}
	})
}
