package larksecrets

import (
	"bytes"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
)

// metrics holds one mount's Prometheus collectors in a registry of its own. Multiplexing serves
// several mounts from one plugin process, so nothing here may go to the library's global default
// registry: each mount's metrics path shows that mount only. Labels are low-cardinality on
// purpose: results, reasons, endpoints and levels, never apps, users or tenants.
type metrics struct {
	registry *prometheus.Registry

	refreshes     *prometheus.CounterVec // result, reason
	larkCalls     *prometheus.CounterVec // endpoint, status
	larkLatency   *prometheus.HistogramVec
	notifications *prometheus.CounterVec // result, level
	sweeps        *prometheus.CounterVec // result
	lastSweep     prometheus.Gauge

	// grantLevels is the mount's grants by level, from the persisted level counts (grant_index.go),
	// read at scrape time (set by the backend).
	grantLevels func() map[string]int

	// appProblems counts apps whose setup Lark refuses (set by the backend, read at scrape time).
	appProblems func() int
	// events counts Lark's events (metrics_events.go).
	events eventCounts
}

var latencyBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// sweepResults are every result sweep() is given, exposed at zero from the start so that a rate or
// increase over the first budget overrun is not lost to a series that did not exist yet.
var sweepResults = []string{"complete", "budget_exhausted"}

// gaugeLevels are the levels the grants gauge always shows, zeros included.
var gaugeLevels = []string{levelOK, levelWarning, levelCritical, levelExpired, levelReauthRequired}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lark_user_token_refreshes_total",
			Help: "User token refreshes by result and reason.",
		}, []string{"result", "reason"}),
		larkCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lark_api_calls_total",
			Help: "HTTP requests to Lark by endpoint and outcome.",
		}, []string{"endpoint", "status"}),
		larkLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lark_api_call_duration_seconds",
			Help:    "Latency of HTTP requests to Lark by endpoint.",
			Buckets: latencyBuckets,
		}, []string{"endpoint"}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lark_notifications_total",
			Help: "Re-authorization notices by result and level.",
		}, []string{"result", "level"}),
		sweeps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lark_sweeps_total",
			Help: "Sweeps by result.",
		}, []string{"result"}),
		lastSweep: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lark_sweep_last_duration_seconds",
			Help: "Duration of the last sweep.",
		}),
	}
	for _, r := range sweepResults {
		m.sweeps.WithLabelValues(r)
	}
	m.events = newEventCounts()
	m.registry.MustRegister(m.events.vec)
	m.registry.MustRegister(
		m.refreshes,
		m.larkCalls,
		m.larkLatency,
		m.notifications,
		m.sweeps,
		m.lastSweep,
		grantLevelCollector{m},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "lark_apps_with_setup_problems",
			Help: "Apps whose setup Lark refuses (token refresh off, app disabled or not installed).",
		}, func() float64 {
			if m.appProblems == nil {
				return 0
			}
			return float64(m.appProblems())
		}),
	)
	return m
}

func (m *metrics) observeCall(c lark.Call) {
	m.larkCalls.WithLabelValues(c.Endpoint, c.Status).Inc()
	m.larkLatency.WithLabelValues(c.Endpoint).Observe(c.Duration.Seconds())
}

func (m *metrics) refresh(result, reason string) {
	m.refreshes.WithLabelValues(result, reason).Inc()
}

func (m *metrics) notification(result, level string) {
	m.notifications.WithLabelValues(result, level).Inc()
}

func (m *metrics) sweep(result string, took time.Duration) {
	m.sweeps.WithLabelValues(result).Inc()
	m.lastSweep.Set(took.Seconds())
}

// expose gathers the mount's registry and encodes it in the given format with the library's
// encoder.
func (m *metrics) expose(format expfmt.Format) ([]byte, error) {
	families, err := m.registry.Gather()
	if err != nil {
		return nil, fmt.Errorf("gathering metrics: %w", err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, format)
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			return nil, fmt.Errorf("encoding metrics: %w", err)
		}
	}
	if closer, ok := enc.(expfmt.Closer); ok {
		if err := closer.Close(); err != nil {
			return nil, fmt.Errorf("encoding metrics: %w", err)
		}
	}
	return buf.Bytes(), nil
}

// grantsByLevel counts the grants per level; every level in gaugeLevels is present, zeros
// included, so a level's series exists before the first grant reaches it.
func (m *metrics) grantsByLevel() map[string]int {
	byLevel := make(map[string]int, len(gaugeLevels))
	for _, l := range gaugeLevels {
		byLevel[l] = 0
	}
	if m.grantLevels != nil {
		for l, n := range m.grantLevels() {
			byLevel[l] += n
		}
	}
	return byLevel
}

// grantLevelCollector computes the grants gauge from the level counts at scrape time, so a deleted
// grant leaves it at once and no gauge is kept in step by hand.
type grantLevelCollector struct{ m *metrics }

var grantLevelsDesc = prometheus.NewDesc("lark_user_grants",
	"User grants by level, as counted when each grant was last written (the sweep writes a grant when its level changes).", []string{"level"}, nil)

func (c grantLevelCollector) Describe(ch chan<- *prometheus.Desc) { ch <- grantLevelsDesc }

func (c grantLevelCollector) Collect(ch chan<- prometheus.Metric) {
	for level, n := range c.m.grantsByLevel() {
		ch <- prometheus.MustNewConstMetric(grantLevelsDesc, prometheus.GaugeValue, float64(n), level)
	}
}

// eventCounts counts the events Lark posted to events/<app_id>, by type and result. Both labels come
// from short fixed lists (eventTypeLabel, the event* results and larkevent's reasons), never from a
// request.
type eventCounts struct{ vec *prometheus.CounterVec }

func newEventCounts() eventCounts {
	return eventCounts{vec: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lark_events_total",
		Help: "Events received from Lark by type and result. Counters restart with the plugin process.",
	}, []string{"type", "result"})}
}

func (c eventCounts) add(eventType, result string) { c.vec.WithLabelValues(eventType, result).Inc() }

// event counts one event.
func (m *metrics) event(eventType, result string) { m.events.add(eventType, result) }
