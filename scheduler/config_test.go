package scheduler_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/raas-dev/raas/scheduler"
	"github.com/raas-dev/raas/schema"
)

// examplePlatform is the examples' platform, defaulted and valid, for a test to change.
func examplePlatform(t *testing.T) *schema.Platform {
	t.Helper()
	return load(t, "../examples").Platform
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*schema.SchedulerConfig)
		want   []string
	}{
		{
			name:   "rejects an unknown queue plugin",
			change: func(s *schema.SchedulerConfig) { s.Plugin = "fairshare" },
			want:   []string{`spec.scheduler.plugin: "fairshare" is not a queue plugin; use capacity or proportion`},
		},
		{
			name:   "rejects hierarchy with the proportion plugin",
			change: func(s *schema.SchedulerConfig) { s.Plugin, s.Hierarchy = "proportion", true },
			want:   []string{`spec.scheduler.hierarchy: hierarchical queues need the capacity plugin, not "proportion"`},
		},
		{
			name:   "rejects an unknown extra plugin",
			change: func(s *schema.SchedulerConfig) { s.ExtraPlugins = []string{"sla", "gpu-magic"} },
			want:   []string{`spec.scheduler.extraPlugins[1]: unknown plugin "gpu-magic"; known: binpack, capacity`},
		},
		{
			name:   "rejects proportion next to capacity",
			change: func(s *schema.SchedulerConfig) { s.ExtraPlugins = []string{"proportion"} },
			want:   []string{`spec.scheduler.extraPlugins[0]: "proportion" contradicts spec.scheduler.plugin "capacity"; capacity and proportion exclude each other`},
		},
		{
			name:   "rejects capacity next to proportion",
			change: func(s *schema.SchedulerConfig) { s.Plugin, s.ExtraPlugins = "proportion", []string{"capacity"} },
			want:   []string{`spec.scheduler.extraPlugins[0]: "capacity" contradicts spec.scheduler.plugin "proportion"`},
		},
		{
			name:   "rejects a plugin raas configures already",
			change: func(s *schema.SchedulerConfig) { s.ExtraPlugins = []string{"binpack"} },
			want:   []string{`spec.scheduler.extraPlugins[0]: "binpack" is already configured`},
		},
		{
			name:   "rejects an extra plugin listed twice",
			change: func(s *schema.SchedulerConfig) { s.ExtraPlugins = []string{"pdb", "pdb"} },
			want:   []string{`spec.scheduler.extraPlugins[1]: "pdb" is already configured`},
		},
		{
			name: "reports every problem at once",
			change: func(s *schema.SchedulerConfig) {
				s.Plugin, s.Hierarchy, s.ExtraPlugins = "proportion", true, []string{"nope"}
			},
			want: []string{
				`volcano-scheduler.conf: spec.scheduler.hierarchy: hierarchical queues need the capacity plugin`,
				`spec.scheduler.extraPlugins[0]: unknown plugin "nope"`,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := examplePlatform(t)
			tc.change(&p.Spec.Scheduler)
			conf, err := scheduler.Config(p)
			if err == nil {
				t.Fatalf("no error; got config:\n%s", conf)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not say %q:\n%v", want, err)
				}
			}
			if _, err := scheduler.Platform(p); err == nil || !strings.HasPrefix(err.Error(), "platform gpu-prod: volcano-scheduler.conf: ") {
				t.Errorf("Platform: want the config error behind the platform's name, got %v", err)
			}
		})
	}
}

// conf is the part of volcano-scheduler.conf the tests look at.
type conf struct {
	Actions string `yaml:"actions"`
	Tiers   []struct {
		Plugins []struct {
			Name            string         `yaml:"name"`
			EnableHierarchy bool           `yaml:"enableHierarchy"`
			Arguments       map[string]any `yaml:"arguments"`
		} `yaml:"plugins"`
	} `yaml:"tiers"`
}

func parseConfig(t *testing.T, p *schema.Platform) conf {
	t.Helper()
	text, err := scheduler.Config(p)
	if err != nil {
		t.Fatal(err)
	}
	var c conf
	if err := yaml.Unmarshal([]byte(text), &c); err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	return c
}

func (c conf) plugins(tier int) []string {
	var names []string
	for _, pl := range c.Tiers[tier].Plugins {
		names = append(names, pl.Name)
	}
	return names
}

func TestConfig(t *testing.T) {
	t.Run("orders actions as Volcano runs them", func(t *testing.T) {
		p := examplePlatform(t)
		p.Spec.Scheduler.Preempt = true
		if got, want := parseConfig(t, p).Actions, "enqueue, allocate, preempt, reclaim, backfill"; got != want {
			t.Errorf("actions = %q, want %q", got, want)
		}
		p.Spec.Scheduler.Preempt, p.Spec.Scheduler.Reclaim = false, new(bool)
		if got, want := parseConfig(t, p).Actions, "enqueue, allocate, backfill"; got != want {
			t.Errorf("actions = %q, want %q", got, want)
		}
	})
	t.Run("uses proportion instead of capacity when asked", func(t *testing.T) {
		p := examplePlatform(t)
		p.Spec.Scheduler.Plugin = "proportion"
		c := parseConfig(t, p)
		want := []string{"drf", "predicates", "proportion", "nodeorder", "binpack"}
		if diff := cmp.Diff(want, c.plugins(1)); diff != "" {
			t.Errorf("second tier (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"priority", "gang", "conformance"}, c.plugins(0)); diff != "" {
			t.Errorf("first tier (-want +got):\n%s", diff)
		}
	})
	t.Run("leaves nodegroup out, so that queues without node-group affinity still schedule", func(t *testing.T) {
		p := examplePlatform(t)
		want := []string{"drf", "predicates", "capacity", "nodeorder", "binpack"}
		if diff := cmp.Diff(want, parseConfig(t, p).plugins(1)); diff != "" {
			t.Errorf("second tier (-want +got):\n%s", diff)
		}
	})
	t.Run("weighs the platform's GPU resource in binpack", func(t *testing.T) {
		p := examplePlatform(t)
		p.Spec.GPU.Resource, p.Spec.GPU.Sharing = "amd.com/gpu", nil
		p.Spec.Scheduler.BinpackGPUWeight = new(int32(7))
		c := parseConfig(t, p)
		pl := c.Tiers[1].Plugins[len(c.Tiers[1].Plugins)-1]
		want := map[string]any{"binpack.resources": "amd.com/gpu", "binpack.resources.amd.com/gpu": 7}
		if diff := cmp.Diff(want, pl.Arguments); pl.Name != "binpack" || diff != "" {
			t.Errorf("%s arguments (-want +got):\n%s", pl.Name, diff)
		}
	})
	t.Run("is the same text every time", func(t *testing.T) {
		p := load(t, "../testdata/scheduler/hierarchy/input").Platform
		first, err := scheduler.Config(p)
		if err != nil {
			t.Fatal(err)
		}
		for range 20 {
			if again, _ := scheduler.Config(p); again != first {
				t.Fatalf("config changed between runs:\n%s", cmp.Diff(first, again))
			}
		}
	})
}
