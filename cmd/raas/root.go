package main

import (
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/raas-dev/raas/render/catalog"
)

// newRootCommand builds the command tree. now is the clock every command judges sandbox
// expiry and writes status by.
func newRootCommand(now func() time.Time) *cobra.Command {
	root := &cobra.Command{
		Use:   "raas",
		Short: "Ray as a Service: a vcluster with KubeRay per team, reconciled from Git",
		Long: `raas reads a tenants repository (raas.yaml plus tenants/<name>.yaml), renders each
tenant into host objects (namespace, quota, network policies, the vcluster chart, a Volcano
queue and admission policies) and objects inside its vcluster (KubeRay and the PodGroup CRD),
and reconciles them onto the host cluster.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
	}
	// --version prints what `raas version` prints, with the default catalog directories.
	cf := &catalogFlags{}
	var showVersion bool
	root.Flags().BoolVar(&showVersion, "version", false, "print what `raas version` prints and exit")
	root.RunE = func(cmd *cobra.Command, args []string) error {
		if !showVersion {
			return cmd.Help()
		}
		rep, err := collectVersions(cf.defaults(), nil)
		if err != nil {
			return err
		}
		return writeVersions(cmd.OutOrStdout(), rep)
	}
	root.AddCommand(newValidateCommand(now), newRenderCommand(now), newDiffCommand(now), newApplyCommand(now), newReconcileCommand(now), newStatusCommand(), newVersionCommand())
	return root
}

// catalogFlags are the flags that say where charts and bases come from.
type catalogFlags struct {
	dirs      []string
	chartRepo string
	cacheDir  string
}

// defaults are the catalog options when no flag is given.
func (f *catalogFlags) defaults() catalog.Options {
	def := catalog.DefaultOptions()
	if env := os.Getenv("RAAS_CATALOG"); env != "" {
		def.Dirs = filepath.SplitList(env)
	}
	return def
}

func (f *catalogFlags) register(cmd *cobra.Command) {
	def := f.defaults()
	cmd.Flags().StringSliceVar(&f.dirs, "catalog", def.Dirs,
		"catalog directories searched after the repository's own catalog (env RAAS_CATALOG)")
	cmd.Flags().StringVar(&f.chartRepo, "chart-repo", "",
		"Helm chart repository (https:// or oci://) for the vcluster chart; overrides raas.yaml")
	cmd.Flags().StringVar(&f.cacheDir, "cache-dir", filepath.Dir(def.CacheDir),
		"where raas keeps downloaded charts (charts/) and, for reconcile, its Git cache (git/)")
}

func (f *catalogFlags) options() catalog.Options {
	return catalog.Options{Dirs: f.dirs, ChartRepository: f.chartRepo, CacheDir: filepath.Join(f.cacheDir, "charts")}
}

// repoArg is the tenants repository a command works on: its first argument, or ".".
func repoArg(args []string) string {
	if len(args) > 0 {
		return args[0]
	}
	return "."
}
