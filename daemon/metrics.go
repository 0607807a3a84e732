package daemon

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/raas-dev/raas/reconcile"
	"github.com/raas-dev/raas/render"
)

// Metrics are raas's Prometheus metrics, on a registry of their own.
type Metrics struct {
	Registry *prometheus.Registry

	passDuration   prometheus.Histogram
	tenantDuration *prometheus.HistogramVec
	tenants        *prometheus.GaugeVec
	renderCache    *prometheus.CounterVec
	fetchDuration  prometheus.Histogram
	fetchErrors    prometheus.Counter
	applyActions   *prometheus.CounterVec
	passes         *prometheus.CounterVec
	revision       *prometheus.GaugeVec
}

// NewMetrics registers raas's metrics, and the Go and process collectors, on a new
// registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		passDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "raas_pass_duration_seconds", Help: "Duration of a whole reconcile pass.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 12),
		}),
		tenantDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "raas_reconcile_duration_seconds", Help: "Duration of the pass each tenant was reconciled in.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 12),
		}, []string{"tenant"}),
		tenants: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "raas_tenants", Help: "Tenants by phase after the last pass.",
		}, []string{"phase"}),
		renderCache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "raas_render_cache_total", Help: "Tenant renders served from the cache (hit) or rendered (miss).",
		}, []string{"result"}),
		fetchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "raas_git_fetch_duration_seconds", Help: "Duration of fetching the tenants repository.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
		}),
		fetchErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raas_git_fetch_errors_total", Help: "Failed fetches of the tenants repository.",
		}),
		applyActions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "raas_apply_actions_total", Help: "Objects by the action a pass took on them.",
		}, []string{"action"}),
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "raas_passes_total", Help: "Reconcile passes by outcome (ok, failed, skipped).",
		}, []string{"outcome"}),
		revision: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "raas_revision_info", Help: "The revision last applied (value 1).",
		}, []string{"revision"}),
	}
	m.Registry.MustRegister(m.passDuration, m.tenantDuration, m.tenants, m.renderCache, m.fetchDuration,
		m.fetchErrors, m.applyActions, m.passes, m.revision,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, phase := range []string{"Ready", "Progressing", "Failed", "Stalled", "Asleep"} {
		m.tenants.WithLabelValues(phase)
	}
	return m
}

// observe records a pass's result, and view, every tenant after it.
func (m *Metrics) observe(res, view *reconcile.Result, seconds float64, stats render.CacheStats) {
	m.passDuration.Observe(seconds)
	m.renderCache.WithLabelValues("hit").Add(float64(stats.Hits))
	m.renderCache.WithLabelValues("miss").Add(float64(stats.Misses))
	for action, n := range res.Count() {
		m.applyActions.WithLabelValues(string(action)).Add(float64(n))
	}
	for _, t := range res.Tenants {
		if t.Health == reconcile.HealthRemoved {
			m.tenantDuration.DeleteLabelValues(t.Name)
			continue
		}
		m.tenantDuration.WithLabelValues(t.Name).Observe(seconds)
	}
	m.countPhases(view)
	m.revision.Reset()
	m.revision.WithLabelValues(res.Revision).Set(1)
}

// forget drops the tenants another replica now owns from the per-tenant metrics, and
// counts the phases of view, what is left.
func (m *Metrics) forget(tenants []string, view *reconcile.Result) {
	for _, t := range tenants {
		m.tenantDuration.DeleteLabelValues(t)
	}
	m.countPhases(view)
}

// countPhases sets raas_tenants from view, every tenant after a pass.
func (m *Metrics) countPhases(view *reconcile.Result) {
	phases := map[string]float64{"Ready": 0, "Progressing": 0, "Failed": 0, "Stalled": 0, "Asleep": 0}
	if view != nil {
		for _, t := range view.Tenants {
			if t.Health != reconcile.HealthRemoved {
				phases[string(phaseOf(t))]++
			}
		}
	}
	for phase, n := range phases {
		m.tenants.WithLabelValues(phase).Set(n)
	}
}
