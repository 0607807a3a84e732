package reconcile

import (
	"net/http"
	"time"

	"github.com/raas-dev/raas/render"
)

// Names raas uses on the host.
const (
	// FieldManager is the server-side apply field manager of every object raas applies.
	FieldManager = "raas"
	// SystemNamespace is where raas runs and keeps its inventories.
	SystemNamespace = "raas-system"
	// LabelInventory marks inventory ConfigMaps; its value is "tenant" or "platform".
	LabelInventory = "raas.dev/inventory"
	// AnnotationRetained marks the namespace of a removed tenant that raas kept because it
	// holds the vcluster's data volumes.
	AnnotationRetained = "raas.dev/retained"
)

// Options configure a Reconciler.
type Options struct {
	// FieldManager owns the fields raas applies. Conflicts with other managers are forced:
	// raas owns what it renders.
	FieldManager string
	// InventoryNamespace holds one inventory ConfigMap per tenant and one for the platform.
	// It is created when missing.
	InventoryNamespace string
	// Prune deletes objects that were applied before and are no longer rendered, and
	// removes tenants whose file is gone.
	Prune bool
	// MaxDeleteShare is the largest share of the known tenants that one pass may remove;
	// at least one tenant may always go. More is refused unless AllowMassDelete is set.
	MaxDeleteShare float64
	// AllowMassDelete lifts the MaxDeleteShare limit, and lets a checkout without any
	// tenant file remove every tenant.
	AllowMassDelete bool
	// VClusterTimeout bounds how long a pass waits for tenants' vclusters to export their
	// kubeconfig Secret and answer, counted from the start of the pass and shared by all
	// tenants (each still gets one attempt). A tenant whose vcluster is not up by then is
	// Progressing; the next pass tries again.
	VClusterTimeout time.Duration
	// WaitTimeout bounds the wait for new or changed CRDs to be established and
	// namespaces to be active before the objects that need them are applied.
	WaitTimeout time.Duration
	// PollInterval is how often those waits look again.
	PollInterval time.Duration
	// Workers is how many tenants are reconciled at once. A pass mostly waits on API
	// servers, so more workers than CPUs pay off.
	Workers int
	// Verify compares every object with a server-side dry run. Without it, an object whose
	// rendered form and live resourceVersion both equal what the inventory recorded after
	// the last write is known to be unchanged without asking the API server.
	Verify bool
	// QPS and Burst limit the requests to each API server (client-go's defaults, 5 and
	// 10, are far too low for a whole fleet).
	QPS   float32
	Burst int
	// WrapTransport, if set, wraps the transport to the host and to every vcluster, for
	// metrics or request counting.
	WrapTransport func(http.RoundTripper) http.RoundTripper
	// Now is the clock that deadlines are counted on. Nil means time.Now.
	Now func() time.Time
}

// DefaultOptions prunes with the safety rails on: at most a quarter of the tenants may go
// in one pass.
func DefaultOptions() Options {
	return Options{
		FieldManager:       FieldManager,
		InventoryNamespace: SystemNamespace,
		Prune:              true,
		MaxDeleteShare:     0.25,
		VClusterTimeout:    2 * time.Minute,
		WaitTimeout:        time.Minute,
		PollInterval:       500 * time.Millisecond,
		Workers:            8,
		QPS:                100,
		Burst:              200,
	}
}

// Input is what one pass works from.
type Input struct {
	// Render is the rendered checkout.
	Render *render.Result
	// Revision names the checkout, for example a commit; it is recorded in inventories.
	Revision string
	// FetchErr is set when fetching the newest revision failed, so that Render is an
	// older checkout. It is still applied, but nothing is pruned.
	FetchErr error
	// Only, when set, limits the pass to these tenants: the others are neither read nor
	// written nor reported. The platform objects, tenants being removed, tenants whose
	// file is broken and tenants whose inventory is rebuilt are always in the pass, and
	// removals are still weighed against every tenant (MaxDeleteShare). A long-running
	// raas passes the tenants that changed, and every tenant now and then to put drift
	// back.
	Only map[string]bool
	// Owns, when set, leaves out of the pass every tenant it says no to, whatever Only
	// says: those are another replica's (see daemon/shard). Removals are still weighed
	// against every tenant.
	Owns func(tenant string) bool
	// SkipPlatform leaves the platform-wide objects to another replica.
	SkipPlatform bool
	// Fence, when set, is asked before each write the pass makes for a tenant (tenant ""
	// for the platform objects): to its objects on the host and inside its vcluster, and
	// to its inventory. The write goes ahead only if Fence returns nil, and is given
	// FenceTimeout to land; otherwise that tenant's writes stop and the tenant is
	// reported with the error. A sharded raas fences with its membership in the ring, so
	// that a replica that may have lost a tenant writes nothing more of it.
	Fence        func(tenant string) error
	FenceTimeout time.Duration
	// Evict names tenants whose file places them on another host cluster, where they are
	// now Ready, with that cluster's name: they are removed from this one as if their
	// file were gone (their data volumes kept as retainData says), and do not count
	// against MaxDeleteShare, since nothing is lost. A tenant placed elsewhere and not
	// in Evict is left here as it is.
	Evict map[string]string
}

// owns reports whether the pass may cover the tenant called name at all.
func (in Input) owns(name string) bool { return in.Owns == nil || in.Owns(name) }

// covers reports whether the pass covers the rendered tenant called name.
func (in Input) covers(name string) bool {
	return in.owns(name) && (in.Only == nil || in.Only[name])
}
