package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/raas-dev/raas/render/catalog"
	"github.com/raas-dev/raas/schema"
)

// Set by `make build` with -ldflags "-X main.version=... -X main.commit=...". Without
// them, the module version and VCS stamp the Go toolchain records are used.
var (
	version string
	commit  string
)

// buildVersion is what ran: raas's own version and commit.
type buildVersion struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
	// Modified is set when the binary was built from a work tree with uncommitted changes.
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

// resolveVersion prefers the -ldflags values, then the build info: the module version (set
// by `go install ...@vX`) and the vcs.* settings (set by `go build` in a Git work tree).
// What neither knows is "devel" and "unknown".
func resolveVersion(ldVersion, ldCommit string, info *debug.BuildInfo, ok bool) buildVersion {
	v := buildVersion{Version: ldVersion, Commit: ldCommit, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if ok && info != nil {
		if info.GoVersion != "" {
			v.Go = info.GoVersion
		}
		if v.Version == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v.Version = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				if v.Commit == "" {
					v.Commit = s.Value
				}
			case "vcs.modified":
				v.Modified = s.Value == "true" && ldCommit == ""
			}
		}
	}
	if v.Version == "" {
		v.Version = "devel"
	}
	if v.Commit == "" {
		v.Commit = "unknown"
	}
	return v
}

// versionReport is the output of `raas version`.
type versionReport struct {
	Raas buildVersion `json:"raas"`
	// Catalog lists the artifacts in the catalog directories raas would search.
	Catalog []catalog.Artifact `json:"catalog"`
	// Platform is what the repository's raas.yaml allows, when a repository was given.
	Platform *platformVersions `json:"platform,omitempty"`
}

// platformVersions are the versions a platform lets tenants pin; the first of each is the
// default.
type platformVersions struct {
	VCluster   []string `json:"vcluster"`
	Kubernetes []string `json:"kubernetes"`
	KubeRay    []string `json:"kuberay"`
	Volcano    string   `json:"volcano"`
}

func newVersionCommand() *cobra.Command {
	cf := &catalogFlags{}
	var output string
	cmd := &cobra.Command{
		Use:   "version [PATH]",
		Short: "Print raas's version and commit, and the vcluster, KubeRay and Volcano versions it can use",
		Long: `Version prints raas's version and commit, the Go version it was built with, and the
vcluster charts, KubeRay bases and Volcano CRDs in the catalog directories it searches
(--catalog, env RAAS_CATALOG). Given a tenants repository, it also searches the
repository's own catalog directory first, and prints the versions its raas.yaml allows
(the first of each is the default) and the Volcano version it declares.

` + "`raas --version`" + ` prints the same as ` + "`raas version`" + `.`,
		Example: `  raas version
  raas version examples -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("-o %s: want text or json", output)
			}
			rep, err := collectVersions(cf.options(), args)
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			return writeVersions(cmd.OutOrStdout(), rep)
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func collectVersions(opts catalog.Options, args []string) (*versionReport, error) {
	info, ok := debug.ReadBuildInfo()
	rep := &versionReport{Raas: resolveVersion(version, commit, info, ok)}
	if len(args) > 0 {
		root := args[0]
		repo, err := schema.Load(os.DirFS(root))
		if err != nil {
			return nil, err
		}
		catDir := schema.DefaultCatalogDir
		if p := repo.Platform; p != nil {
			catDir = p.Spec.Catalog.Dir
			v := p.Spec.Versions
			rep.Platform = &platformVersions{VCluster: v.VCluster, Kubernetes: v.Kubernetes, KubeRay: v.KubeRay, Volcano: p.Spec.Scheduler.VolcanoVersion}
		}
		opts.Dirs = append([]string{filepath.Join(root, catDir)}, opts.Dirs...)
	}
	arts, err := catalog.New(opts).Artifacts()
	if err != nil {
		return nil, err
	}
	rep.Catalog = arts
	return rep, nil
}

func writeVersions(w io.Writer, rep *versionReport) error {
	r := rep.Raas
	c := r.Commit
	if r.Modified {
		c += ", modified"
	}
	fmt.Fprintf(w, "raas %s (commit %s, %s %s)\n", r.Version, c, r.Go, r.Platform)
	fmt.Fprintln(w, "catalog:")
	if len(rep.Catalog) == 0 {
		fmt.Fprintln(w, "  (empty: run `make catalog`, or pass --catalog)")
	}
	for _, kind := range []string{catalog.VClusterDir, catalog.KubeRayDir, catalog.VolcanoDir} {
		var vs []string
		for _, a := range rep.Catalog {
			if a.Kind == kind {
				vs = append(vs, a.Version+" ("+a.Dir+")")
			}
		}
		if len(vs) > 0 {
			fmt.Fprintf(w, "  %-9s %s\n", kind, strings.Join(vs, ", "))
		}
	}
	if p := rep.Platform; p != nil {
		fmt.Fprintln(w, "platform (raas.yaml; the first of each is the default):")
		fmt.Fprintf(w, "  %-11s %s\n", "vcluster", strings.Join(p.VCluster, ", "))
		fmt.Fprintf(w, "  %-11s %s\n", "kubernetes", strings.Join(p.Kubernetes, ", "))
		fmt.Fprintf(w, "  %-11s %s\n", "kuberay", strings.Join(p.KubeRay, ", "))
		fmt.Fprintf(w, "  %-11s %s\n", "volcano", p.Volcano)
	}
	return nil
}
