// Package volcano holds what raas knows of the Volcano release it targets (v1.12): the
// names of its scheduler plugins and the keys under which it reads pods and nodes. The
// schema checks a platform against it and the scheduler package writes Volcano's config
// and policies with it; neither is the home of the other's facts.
package volcano

// Plugins are the scheduler plugins that Volcano v1.12 registers, by the names its
// volcano-scheduler.conf takes.
var Plugins = []string{
	"binpack", "capacity", "cdp", "conformance", "deviceshare", "drf", "extender", "gang",
	"network-topology-aware", "nodegroup", "nodeorder", "numa-aware", "overcommit", "pdb",
	"predicates", "priority", "proportion", "rescheduling", "resourcequota", "sla",
	"task-topology", "tdm", "usage",
}

// The keys under which Volcano reads a pod's queue (the label, then either annotation),
// and the label that names a node's group.
const (
	QueueLabel         = "volcano.sh/queue-name"
	QueueAnnotation    = "scheduling.volcano.sh/queue-name"
	LabelNodeGroupName = "volcano.sh/nodegroup-name"
)
