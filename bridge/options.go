package bridge

import (
	"net/http"
	"time"
)

// FieldManager owns what the bridge writes: the labels, annotations and spec of the host
// copies, and the status of the virtual PodGroups.
const FieldManager = "raas-bridge"

// Labels and annotations on every host copy. LabelSourceNamespace, with the tenant and
// managed-by labels, selects the copies a bridge owns; a host PodGroup without them is
// never touched.
const (
	// LabelSourceNamespace is the virtual namespace of the PodGroup a host copy mirrors.
	LabelSourceNamespace = "raas.dev/podgroup-source-namespace"
	// AnnotationSource is <virtual namespace>/<name> of the mirrored PodGroup.
	AnnotationSource = "raas.dev/podgroup-source"
	// AnnotationSourceUID is the UID of the mirrored PodGroup. A host copy whose source
	// UID no longer exists inside the vcluster is stale and is deleted.
	AnnotationSourceUID = "raas.dev/podgroup-source-uid"
)

// Reasons of the Events the bridge records and of the Refusals in Status.
const (
	// ReasonNameCollision: another virtual namespace holds a PodGroup of the same name,
	// and its copy holds the host name.
	ReasonNameCollision = "NameCollision"
	// ReasonNameTaken: the host namespace holds a PodGroup of that name that the bridge
	// does not own.
	ReasonNameTaken = "HostNameTaken"
	// ReasonHostDenied: the host API server refused the copy, for example the admission
	// policy capping GPUs per job.
	ReasonHostDenied = "HostDenied"
)

// Options configure one Bridge. Tenant, HostNamespace and Queue are required.
type Options struct {
	// Tenant labels the host copies (raas.dev/tenant) and names the bridge in errors.
	Tenant string
	// HostNamespace is the tenant's namespace on the host, where the synced pods run and
	// the copies go.
	HostNamespace string
	// Queue is the tenant's Volcano queue; every copy's spec.queue is set to it, whatever
	// the tenant wrote.
	Queue string
	// Resync is how often both informers replay their caches, so that every PodGroup is
	// compared again and orphans are removed even if an event was missed. Zero disables
	// the replay; a lost watch still re-lists.
	Resync time.Duration
	// Workers is how many PodGroup names are synced at once.
	Workers int
	// QPS and Burst limit the requests to each API server, for each bridge.
	QPS   float32
	Burst int
	// Now is the clock of Status.LastErrorTime.
	Now func() time.Time
	// WrapTransport, if set, wraps the transport to the host and to the vcluster, for
	// metrics or request counting.
	WrapTransport func(http.RoundTripper) http.RoundTripper
}

// DefaultOptions returns the options without the tenant's names.
func DefaultOptions() Options {
	return Options{
		Resync:  10 * time.Minute,
		Workers: 2,
		QPS:     100,
		Burst:   200,
		Now:     time.Now,
	}
}
