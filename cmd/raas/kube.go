package main

import (
	"fmt"
	"os"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/raas-dev/raas/fleet"
	"github.com/raas-dev/raas/reconcile"
	"github.com/raas-dev/raas/render"
)

// clusterFlags are the flags of the commands that talk to the host cluster: where it is,
// and how a pass treats it.
type clusterFlags struct {
	catalog         catalogFlags
	kubeconfig      string
	context         string
	inventory       string
	prune           bool
	allowMassDelete bool
	maxDeleteShare  float64
	vclusterTimeout time.Duration
	verify          bool
	now             func() time.Time // the clock, not a flag
}

func (f *clusterFlags) register(cmd *cobra.Command) {
	def := reconcile.DefaultOptions()
	f.catalog.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.kubeconfig, "kubeconfig", "",
		"kubeconfig of the host cluster (default $KUBECONFIG, then ~/.kube/config, then the in-cluster service account)")
	fl.StringVar(&f.context, "context", "", "kubeconfig context to use")
	fl.StringVar(&f.inventory, "inventory-namespace", def.InventoryNamespace, "namespace of raas's inventories on the host")
	fl.BoolVar(&f.prune, "prune", def.Prune, "delete objects raas applied before and no longer renders, and tenants whose file is gone")
	fl.BoolVar(&f.allowMassDelete, "allow-mass-delete", false,
		"remove more tenants in one pass than --max-delete-share allows, or all of them when the checkout has none")
	fl.Float64Var(&f.maxDeleteShare, "max-delete-share", def.MaxDeleteShare, "largest share of the tenants one pass may remove (at least one may always go)")
	fl.DurationVar(&f.vclusterTimeout, "vcluster-timeout", def.VClusterTimeout, "how long to wait for each tenant's vcluster to come up")
	fl.BoolVar(&f.verify, "verify", false, "compare every object with a server-side dry run, even those the inventory shows unchanged")
}

// reconciler loads the host's kubeconfig and returns the fleet it is home to: that one
// host, or the clusters the platform config declares.
func (f *clusterFlags) reconciler() (*fleet.Fleet, error) {
	// controller-runtime's clients log through a global logger and complain, with a
	// stack trace, when none is set. raas reports through its results instead.
	ctrllog.SetLogger(logr.Discard())
	cfg, err := f.restConfig()
	if err != nil {
		return nil, err
	}
	return fleet.New(cfg, f.options())
}

// options are the reconcile options the flags set.
func (f *clusterFlags) options() reconcile.Options {
	opts := reconcile.DefaultOptions()
	opts.InventoryNamespace = f.inventory
	opts.Prune = f.prune
	opts.AllowMassDelete = f.allowMassDelete
	opts.MaxDeleteShare = f.maxDeleteShare
	opts.VClusterTimeout = f.vclusterTimeout
	opts.Verify = f.verify
	return opts
}

// restConfig follows kubectl: --kubeconfig, else $KUBECONFIG, else ~/.kube/config, else
// the in-cluster service account when raas runs in a pod.
func (f *clusterFlags) restConfig() (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = f.kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: f.context}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("host cluster: %w", err)
	}
	return cfg, nil
}

// render renders the tenants repository at root and reports its problems on stderr.
func (f *clusterFlags) render(cmd *cobra.Command, root string) (*render.Result, error) {
	opts := render.DefaultOptions()
	opts.Catalog = f.catalog.options()
	opts.Now = f.now
	res, err := render.Repo(os.DirFS(root), root, opts)
	if err != nil {
		return nil, err
	}
	printProblems(cmd.ErrOrStderr(), root, res.Repo.Problems)
	printProblems(cmd.ErrOrStderr(), root, res.Repo.Expired)
	for _, fail := range res.Failed {
		fmt.Fprintln(cmd.ErrOrStderr(), fail.Error())
	}
	return res, nil
}
