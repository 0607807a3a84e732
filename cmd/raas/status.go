package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/raas-dev/raas/api/v1alpha1"
)

func newStatusCommand() *cobra.Command {
	var kube clusterFlags
	var output string
	cmd := &cobra.Command{
		Use:   "status [TENANT...]",
		Short: "Show each tenant's phase, as raas reconcile last left it",
		Long: `Status reads the Tenant objects that raas reconcile keeps in the host cluster (the same
ones kubectl get tenants lists) and prints a table, or YAML or JSON with -o.`,
		Example: `  raas status
  raas status ml-team-alpha -o yaml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := kube.restConfig()
			if err != nil {
				return err
			}
			scheme := runtime.NewScheme()
			if err := v1alpha1.AddToScheme(scheme); err != nil {
				return err
			}
			c, err := client.New(cfg, client.Options{Scheme: scheme})
			if err != nil {
				return err
			}
			var list v1alpha1.TenantList
			if err := c.List(cmd.Context(), &list); err != nil {
				return fmt.Errorf("list tenants (is raas's CRD installed? apply deploy/crds): %w", err)
			}
			items := list.Items
			if len(args) > 0 {
				items = slices.DeleteFunc(items, func(t v1alpha1.Tenant) bool { return !slices.Contains(args, t.Name) })
			}
			slices.SortFunc(items, func(a, b v1alpha1.Tenant) int { return strings.Compare(a.Name, b.Name) })
			for i := range items {
				items[i].ManagedFields = nil
			}
			w := cmd.OutOrStdout()
			switch output {
			case "yaml":
				data, err := yaml.Marshal(items)
				if err != nil {
					return err
				}
				_, err = w.Write(data)
				return err
			case "json":
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(items)
			case "", "table":
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fleet := slices.ContainsFunc(items, func(t v1alpha1.Tenant) bool { return t.Status.Cluster != "" })
				if fleet {
					fmt.Fprintln(tw, "TENANT\tCLUSTER\tPHASE\tREVISION\tSINCE\tMESSAGE")
				} else {
					fmt.Fprintln(tw, "TENANT\tPHASE\tREVISION\tSINCE\tMESSAGE")
				}
				for _, t := range items {
					since := ""
					if lt := t.Status.LastTransitionTime; lt != nil {
						since = time.Since(lt.Time).Round(time.Second).String()
					}
					rev := t.Status.AppliedRevision
					if len(rev) > 12 {
						rev = rev[:12]
					}
					name := t.Name
					if fleet {
						cluster := t.Status.Cluster
						if t.Status.MovingFrom != "" {
							cluster = t.Status.MovingFrom + "→" + cluster
						}
						name += "\t" + cluster
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, t.Status.Phase, rev, since, firstLine(t.Status.Message))
				}
				return tw.Flush()
			}
			return fmt.Errorf("-o %q: use table, yaml or json", output)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&kube.kubeconfig, "kubeconfig", "", "kubeconfig of the host cluster (default $KUBECONFIG, then ~/.kube/config, then in-cluster)")
	fl.StringVar(&kube.context, "context", "", "kubeconfig context to use")
	fl.StringVarP(&output, "output", "o", "table", "table, yaml or json")
	return cmd
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	if len(line) > 100 {
		line = line[:97] + "..."
	}
	return line
}
