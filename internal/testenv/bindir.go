package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

const (
	// BinDirEnv overrides where the control-plane binaries and generated CRDs are found.
	BinDirEnv = "RAAS_BIN_DIR"

	modulePath = "github.com/raas-dev/raas"
)

// ErrMissingBinaries is returned when bin/ lacks a control-plane binary or the CRDs.
var ErrMissingBinaries = errors.New("not built: run `make controlplane`")

// BinDir returns the directory that holds kube-apiserver, etcd and crds/: $RAAS_BIN_DIR
// if set, otherwise bin/ in the root of the raas module found above the working directory.
func BinDir() (string, error) {
	if dir := os.Getenv(BinDirEnv); dir != "" {
		return filepath.Abs(dir)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("bin dir: %w", err)
	}
	root, err := moduleRoot(wd)
	if err != nil {
		return "", fmt.Errorf("bin dir: %w", err)
	}
	return filepath.Join(root, "bin"), nil
}

// moduleRoot walks up from dir to the directory whose go.mod declares the raas module.
// The tools modules under hack/tools have go.mod files of their own, so the walk
// checks the module path rather than stopping at the first go.mod.
func moduleRoot(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		if declaresModule(filepath.Join(d, "go.mod")) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod of module %s above %s (set %s)", modulePath, dir, BinDirEnv)
		}
	}
}

func declaresModule(gomod string) bool {
	f, err := os.Open(gomod)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(line), `"`) == modulePath
		}
	}
	return false
}

// checkBinaries fails with ErrMissingBinaries unless every path exists.
func checkBinaries(paths ...string) error {
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s: %w", p, ErrMissingBinaries)
		}
	}
	return nil
}
