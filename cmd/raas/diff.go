package main

import (
	"time"

	"fmt"

	"github.com/spf13/cobra"

	"github.com/raas-dev/raas/reconcile"
	"github.com/raas-dev/raas/report"
)

func newDiffCommand(now func() time.Time) *cobra.Command {
	f := &clusterFlags{now: now}
	var output string
	cmd := &cobra.Command{
		Use:   "diff [PATH]",
		Short: "Show what apply would change on the host cluster",
		Long: `Diff renders the tenants repository and compares it with the live host: a server-side
dry run of every host object, and the deletions that the inventories call for, within the
same safety rails as apply. Objects inside the vclusters are compared with what the
inventory on the host recorded when they were last applied, so that a CI job that reaches
only the host still sees them change. Secret values are masked.

The output is grouped by tenant, with a unified diff of each changed object. With
-o markdown it is a summary for a pull request comment: tenants added, changed and removed,
quota and GPU totals before and after, and every object to delete. With -o json it is
the same result as data (see the README for its fields); the exit status is the same.

A dry run is authorized like the write it stands for (patch on every kind raas applies).
With read-only credentials, as in a CI job, an object the dry run may not reach is
compared with the digest the inventory recorded when it was last applied: the diff says
whether it would change, but not how, and cannot see drift.

Exit status: 0 when nothing would change, 1 when something would, 2 on error (including a
tenant that does not validate or render, and a refused mass deletion).`,
		Example: `  raas diff examples
  raas diff . -o markdown > comment.md
  raas diff . -o json | jq '.tenants[] | select(.change != "unchanged") | .name'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "markdown" && output != "json" {
				return fmt.Errorf("-o %s: want text, markdown or json", output)
			}
			root := repoArg(args)
			res, err := f.render(cmd, root)
			if err != nil {
				return err
			}
			r, err := f.reconciler()
			if err != nil {
				return err
			}
			out, err := r.Diff(cmd.Context(), reconcile.Input{Render: res, Revision: "dir:" + root})
			if err != nil {
				return err
			}
			switch output {
			case "markdown":
				err = report.WriteMarkdown(cmd.OutOrStdout(), out)
			case "json":
				err = report.WriteJSON(cmd.OutOrStdout(), out)
			default:
				err = report.WriteDiff(cmd.OutOrStdout(), out)
			}
			if err != nil {
				return err
			}
			switch {
			case out.Failed() || !res.OK():
				return &exitError{code: 2, msg: "the diff is incomplete: fix the errors above"}
			case out.Changed():
				return &exitError{code: 1}
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text, markdown or json")
	return cmd
}
