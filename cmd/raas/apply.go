package main

import (
	"time"

	"fmt"

	"github.com/spf13/cobra"

	"github.com/raas-dev/raas/reconcile"
	"github.com/raas-dev/raas/report"
)

func newApplyCommand(now func() time.Time) *cobra.Command {
	f := &clusterFlags{now: now}
	var all bool
	cmd := &cobra.Command{
		Use:   "apply [PATH]",
		Short: "Reconcile a tenants repository onto the host cluster, once",
		Long: `Apply runs one reconcile pass from a directory: it renders every tenant, applies the
host objects with server-side apply, waits for each tenant's vcluster to export its
kubeconfig and applies KubeRay inside it, and prunes what is no longer rendered. It prints
one line per object that changed (all of them with --all), then each tenant's health.

Pruning stops at the safety rails: nothing is deleted when the checkout has a validation
error or a render failure, and removing more than --max-delete-share of the tenants, or all
of them, needs --allow-mass-delete. A removed tenant's namespace is kept, with its vcluster's
data volumes, unless the tenant set vcluster.retainData: false.

Exit status: 0 when every object applied (tenants may still be Progressing, such as a
vcluster that is not up yet), 1 when an object failed, a tenant failed to render or a rail
refused a deletion, 2 when the pass could not run.`,
		Example: `  raas apply examples
  raas apply . --kubeconfig host.kubeconfig --vcluster-timeout 30s
  raas apply . --prune=false`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			root := repoArg(args)
			res, err := f.render(cmd, root)
			if err != nil {
				return err
			}
			r, err := f.reconciler()
			if err != nil {
				return err
			}
			out, err := r.Apply(cmd.Context(), reconcile.Input{Render: res, Revision: "dir:" + root})
			if err != nil {
				return err
			}
			if err := report.WriteEntries(cmd.OutOrStdout(), out, all); err != nil {
				return err
			}
			failed := out.Failed() || !res.OK()
			for _, t := range out.Tenants {
				failed = failed || t.Health == reconcile.HealthFailed
			}
			if failed {
				return &exitError{code: 1, msg: fmt.Sprintf("pass incomplete: %s", out.Summary())}
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&all, "all", false, "print unchanged objects too")
	return cmd
}
