package scheduler

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/raas-dev/raas/internal/volcano"
	"github.com/raas-dev/raas/schema"
)

// The ConfigMap from which the Volcano scheduler hot-reloads its configuration.
const (
	ConfigNamespace = "volcano-system"
	ConfigName      = "volcano-scheduler-configmap"
	ConfigKey       = "volcano-scheduler.conf"
)

// The Volcano plugins raas configures itself.
const (
	PluginPriority    = "priority"
	PluginGang        = "gang"
	PluginConformance = "conformance"
	PluginDRF         = "drf"
	PluginPredicates  = "predicates"
	PluginCapacity    = "capacity"
	PluginProportion  = "proportion"
	PluginNodeOrder   = "nodeorder"
	PluginBinpack     = "binpack"
)

// The Volcano actions, in the order in which the scheduler must run them.
var actionOrder = []string{"enqueue", "allocate", "preempt", "reclaim", "backfill"}

// schedulerConf is volcano-scheduler.conf, with the YAML names of Volcano's own
// SchedulerConfiguration. It is marshalled with yaml.v3, which keeps the fields in
// declaration order (the plugin name first, for the reviewer) and sorts the arguments by
// key, so the text is the same every run.
type schedulerConf struct {
	Actions string `yaml:"actions"`
	Tiers   []tier `yaml:"tiers"`
}

type tier struct {
	Plugins []plugin `yaml:"plugins"`
}

type plugin struct {
	Name            string         `yaml:"name"`
	EnableHierarchy *bool          `yaml:"enableHierarchy,omitempty"`
	Arguments       map[string]any `yaml:"arguments,omitempty"`
}

// Config returns the text of volcano-scheduler.conf for platform p: the actions, then two
// tiers of plugins: priority, gang and conformance; drf, predicates, the queue plugin
// (capacity or proportion), nodeorder, binpack weighted for the GPU resources, and the
// platform's extra plugins. Unknown plugins and contradictory settings are errors.
func Config(p *schema.Platform) (string, error) {
	conf, err := buildConfig(p)
	if err != nil {
		return "", fmt.Errorf("%s: %w", ConfigKey, err)
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(conf); err != nil {
		return "", fmt.Errorf("%s: %w", ConfigKey, err)
	}
	if err := enc.Close(); err != nil {
		return "", fmt.Errorf("%s: %w", ConfigKey, err)
	}
	return b.String(), nil
}

func buildConfig(p *schema.Platform) (*schedulerConf, error) {
	s := &p.Spec.Scheduler
	var errs []error
	if s.Plugin != PluginCapacity && s.Plugin != PluginProportion {
		errs = append(errs, fmt.Errorf("spec.scheduler.plugin: %q is not a queue plugin; use %s or %s", s.Plugin, PluginCapacity, PluginProportion))
	}
	if s.Hierarchy && s.Plugin != PluginCapacity {
		errs = append(errs, fmt.Errorf("spec.scheduler.hierarchy: hierarchical queues need the %s plugin, not %q", PluginCapacity, s.Plugin))
	}
	if p.Spec.GPU.Resource == "" {
		errs = append(errs, errors.New("spec.gpu.resource: no GPU resource to binpack"))
	}

	var actions []string
	for _, a := range actionOrder {
		if (a == "preempt" && !s.Preempt) || (a == "reclaim" && !value(s.Reclaim, true)) {
			continue
		}
		actions = append(actions, a)
	}

	queue := plugin{Name: s.Plugin}
	if s.Hierarchy {
		queue.EnableHierarchy = ptr(true)
	}
	// No nodegroup plugin: the placement policies confine tenant pods by node affinity,
	// which predicates enforces, while Volcano 1.12's nodegroup would place every queue
	// without node-group affinity (default among them) on no node.
	second := []plugin{{Name: PluginDRF}, {Name: PluginPredicates}, queue, {Name: PluginNodeOrder}, binpack(p)}

	configured := []string{PluginPriority, PluginGang, PluginConformance}
	for _, pl := range second {
		configured = append(configured, pl.Name)
	}
	for i, name := range s.ExtraPlugins {
		field := fmt.Sprintf("spec.scheduler.extraPlugins[%d]", i)
		switch {
		case !slices.Contains(volcano.Plugins, name):
			errs = append(errs, fmt.Errorf("%s: unknown plugin %q; known: %s", field, name, strings.Join(volcano.Plugins, ", ")))
		case name == PluginCapacity || name == PluginProportion:
			errs = append(errs, fmt.Errorf("%s: %q contradicts spec.scheduler.plugin %q; capacity and proportion exclude each other", field, name, s.Plugin))
		case slices.Contains(configured, name):
			errs = append(errs, fmt.Errorf("%s: %q is already configured", field, name))
		default:
			second = append(second, plugin{Name: name})
			configured = append(configured, name)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &schedulerConf{
		Actions: strings.Join(actions, ", "),
		Tiers: []tier{
			{Plugins: []plugin{{Name: PluginPriority}, {Name: PluginGang}, {Name: PluginConformance}}},
			{Plugins: second},
		},
	}, nil
}

// binpack packs the GPU resources, all at the platform's weight, so that whole nodes stay
// free for large gangs.
func binpack(p *schema.Platform) plugin {
	weight := value(p.Spec.Scheduler.BinpackGPUWeight, schema.DefaultBinpackGPUWeight)
	resources := platformGPUResources(p)
	args := map[string]any{"binpack.resources": strings.Join(resources, ", ")}
	for _, r := range resources {
		args["binpack.resources."+r] = weight
	}
	return plugin{Name: PluginBinpack, Arguments: args}
}
