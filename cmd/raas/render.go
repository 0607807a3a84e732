package main

import (
	"time"

	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/raas-dev/raas/render"
	"github.com/raas-dev/raas/scheduler"
	"github.com/raas-dev/raas/schema"
)

type renderFlags struct {
	catalog   catalogFlags
	tenants   []string
	out       string
	scheduler bool
}

func newRenderCommand(now func() time.Time) *cobra.Command {
	f := &renderFlags{}
	cmd := &cobra.Command{
		Use:   "render [PATH]",
		Short: "Render every tenant's objects offline",
		Long: `Render prints the exact objects raas would apply: the platform-wide objects, then for
each tenant its host objects and the objects applied inside its vcluster. The same commit
always renders to the same bytes. Invalid tenants are reported and skipped; the others
still render. It needs no cluster.`,
		Example: `  raas render examples
  raas render . --tenant ml-team-alpha
  raas render . --out rendered/
  raas render . --scheduler`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			root := repoArg(args)
			opts := render.DefaultOptions()
			opts.Catalog = f.catalog.options()
			opts.Tenants = f.tenants
			opts.Now = now
			// To stdout, tenants are written as they render rather than held until the
			// end; --out and --scheduler need the whole result.
			stream := !f.scheduler && f.out == ""
			var res *render.Result
			var err error
			if stream {
				res, err = render.Stream(cmd.OutOrStdout(), os.DirFS(root), root, opts)
			} else {
				res, err = render.Repo(os.DirFS(root), root, opts)
			}
			if err != nil {
				return err
			}
			printProblems(cmd.ErrOrStderr(), root, res.Repo.Problems)
			printProblems(cmd.ErrOrStderr(), root, res.Repo.Expired)
			for _, fail := range res.Failed {
				fmt.Fprintln(cmd.ErrOrStderr(), fail.Error())
			}
			if res.Repo.Platform == nil {
				return &exitError{code: 1, msg: "the platform config is invalid; nothing rendered"}
			}
			placement := offlinePlacement(cmd, res.Repo)
			for _, name := range f.tenants {
				if res.Repo.Tenant(name) == nil {
					return &exitError{code: 1, msg: fmt.Sprintf("tenant %q is not a valid tenant of %s", name, root)}
				}
			}
			switch {
			case f.scheduler:
				conf, err := scheduler.Config(res.Repo.Platform)
				if err != nil {
					return err
				}
				fmt.Fprint(cmd.OutOrStdout(), conf)
			case f.out != "":
				write := render.WriteDir
				if placement != nil {
					write = func(dir string, platform []*render.Object, tenants []*render.Output) error {
						return render.WriteClusterDirs(dir, res.Repo.Platform.ClusterNames(), placement, platform, tenants)
					}
				}
				if err := write(f.out, res.Platform, res.Tenants); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "rendered %d tenant(s) into %s\n", len(res.Tenants), f.out)
			}
			if !res.OK() {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	f.catalog.register(cmd)
	cmd.Flags().StringSliceVar(&f.tenants, "tenant", nil, "render only these tenants")
	cmd.Flags().StringVar(&f.out, "out", "", "write one file per object under this directory instead of stdout")
	cmd.Flags().BoolVar(&f.scheduler, "scheduler", false, "print only the Volcano scheduler configuration (volcano-scheduler.conf)")
	return cmd
}

// offlinePlacement places the tenants of a fleet as raas would place them on clusters
// that run none of them yet, as the render did, and says so on stderr: a render does not
// read the clusters, so where a tenant without spec.cluster runs now is unknown (raas
// diff reads it). It returns nil when the platform declares no clusters.
func offlinePlacement(cmd *cobra.Command, repo *schema.Repo) schema.Placement {
	placement := schema.Place(repo, nil)
	if placement != nil {
		fmt.Fprintln(cmd.ErrOrStderr(), "note: tenants without spec.cluster are placed as if no cluster ran them yet; "+
			"a tenant stays where it runs, which raas diff reads from the clusters")
	}
	return placement
}
