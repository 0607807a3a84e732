package main

import (
	"time"

	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/raas-dev/raas/schema"
)

func newValidateCommand(now func() time.Time) *cobra.Command {
	return &cobra.Command{
		Use:   "validate [PATH]",
		Short: "Check a tenants repository offline",
		Long: `Validate decodes raas.yaml and every tenants/*.yaml strictly and checks them: names,
quantities, pinned versions, GPU pools, and that the tenants' guarantees fit the cluster.
It prints one line per problem as FILE:LINE:COL: FIELD: MESSAGE and exits 1 if any is an
error. Warnings alone exit 0. It needs no cluster.`,
		Example: `  raas validate .
  raas validate path/to/tenants-repo`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			root := repoArg(args)
			repo, err := schema.LoadAt(os.DirFS(root), now())
			if err != nil {
				return err
			}
			printProblems(cmd.OutOrStdout(), root, repo.Problems)
			printProblems(cmd.OutOrStdout(), root, repo.Expired)
			for _, ref := range slices.Sorted(maps.Keys(repo.Deprecated)) {
				fmt.Fprintf(cmd.OutOrStdout(), "warning: profile %s is deprecated; still used by: %s\n",
					ref, strings.Join(repo.Deprecated[ref], ", "))
			}
			if !repo.OK() {
				n := len(repo.Problems.Errors()) + len(repo.Expired)
				return &exitError{code: 1, msg: fmt.Sprintf("%d error(s); %d of %d tenant(s) valid",
					n, len(repo.Tenants), len(repo.Tenants)+len(repo.Rejected))}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d tenant(s) valid\n", len(repo.Tenants))
			return nil
		},
	}
}

// printProblems writes each problem on its own line, with the file given relative to the
// working directory so that editors and CI annotations can jump to it.
func printProblems(w io.Writer, root string, problems schema.Problems) {
	for _, p := range problems {
		q := *p
		if q.File != "" {
			q.File = filepath.Join(root, q.File)
		}
		fmt.Fprintln(w, q.Error())
	}
}
