package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The images whose containers the twin runs as real processes, built from the Go module
// proxy into bin/. Every other container is only marked Running by kwok.
//
// The pretence, said wherever it shows: a container "of" one of these images is the
// upstream program at the version its tag names, run on this machine in a network and
// mount namespace of its own, not the image. The Kubernetes binaries the vcluster init
// container copies are bin/'s v1.37.2, not the image's v1.32.1.

// image says how the twin runs a container of one image repository.
type image struct {
	// repository is the image name without its tag.
	repository string
	// binary names the program in bin/ for a tag; "" means the twin has none.
	binary func(tag string) string
	// entrypoint is the image's ENTRYPOINT; its first element is replaced by binary.
	entrypoint []string
	// files are directories of the image (path inside → bin/ names) that the program
	// needs beside itself.
	files map[string][]string
	// copies marks an init container that copies binaries into a volume: the twin puts
	// bin/'s in the volume mounted at copies instead of running it.
	copies []string
}

var images = []image{{
	// vcluster v0.25.0 Dockerfile: ENTRYPOINT ["/vcluster", "start"], and kine v0.13.14
	// at /usr/local/bin/kine, the backing store of the default embedded database
	// (pkg/k8s/k8s.go StartKine).
	repository: "ghcr.io/loft-sh/vcluster-oss",
	binary:     versioned("vcluster", "0.25.0"),
	entrypoint: []string{"/vcluster", "start"},
	files:      map[string][]string{"/usr/local/bin": {"kine"}},
}, {
	// The chart's init container runs `cp -a /kubernetes/. /binaries/`.
	repository: "ghcr.io/loft-sh/kubernetes",
	copies:     []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"},
}, {
	repository: "quay.io/kuberay/operator",
	binary: func(tag string) string {
		return "kuberay-operator-" + tag
	},
	entrypoint: []string{"/manager"},
}}

// versioned is a binary built at exactly one version.
func versioned(name, version string) func(string) string {
	return func(tag string) string {
		if tag != version {
			return ""
		}
		return name
	}
}

// imageOf finds how to run ref, or nil if the twin only pretends.
func imageOf(ref string) (*image, string) {
	repo, tag := ref, "latest"
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		repo, tag = ref[:i], ref[i+1:]
	}
	repo = strings.TrimPrefix(repo, "docker.io/")
	for i := range images {
		if images[i].repository == repo {
			return &images[i], tag
		}
	}
	return nil, ""
}

// argv is the process the twin runs for a container of img at tag.
func (img *image) argv(binDir, tag string, command, args []string) ([]string, error) {
	name := ""
	if img.binary != nil {
		name = img.binary(tag)
	}
	if name == "" {
		return nil, fmt.Errorf("the twin has no build of %s:%s", img.repository, tag)
	}
	path := filepath.Join(binDir, name)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("%s:%s: %w (run `make twin`)", img.repository, tag, err)
	}
	if len(command) == 0 {
		command = img.entrypoint
	}
	argv := append([]string{path}, command[1:]...)
	return append(argv, args...), nil
}

// shims wrap a binary where the version the twin builds differs from the image's in a
// way the image's user trips on: the script gets the binary's path as $BINARY.
var shims = map[string]string{
	// vcluster v0.25.0 starts the virtual kube-controller-manager with
	// --controllers=*,...,-cloud-node-lifecycle,... (pkg/k8s/k8s.go). The image's v1.32.1
	// knows that controller; v1.37.2 refuses to start on the name. Only the name goes.
	"kube-controller-manager": `for a do
  shift
  case $a in --controllers=*) a=$(printf '%s' "$a" | sed 's/,-cloud-node-lifecycle//') ;; esac
  set -- "$@" "$a"
done
exec "$BINARY" "$@"
`,
}

// linkFiles fills dir with symlinks to bin/'s names, or with their shims.
func linkFiles(binDir, dir string, names []string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, name := range names {
		target := filepath.Join(binDir, name)
		if _, err := os.Stat(target); err != nil {
			return fmt.Errorf("%w (run `make twin`)", err)
		}
		link := filepath.Join(dir, name)
		_ = os.Remove(link)
		if shim, ok := shims[name]; ok {
			script := "#!/bin/sh\n# raas twin: a shim around " + target + "; see internal/testenv/images.go.\n" +
				"BINARY=" + shellQuote(target) + "\n" + shim
			if err := os.WriteFile(link, []byte(script), 0o755); err != nil {
				return err
			}
			continue
		}
		if err := os.Symlink(target, link); err != nil {
			return err
		}
	}
	return nil
}
