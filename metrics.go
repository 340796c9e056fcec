package larksecrets

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
)

// metrics is a small Prometheus-text registry. Labels are low-cardinality on purpose: results,
// reasons, endpoints and levels, never apps or users.
type metrics struct {
	mu            sync.Mutex
	refreshes     map[[2]string]uint64 // result, reason
	larkCalls     map[[2]string]uint64 // endpoint, status
	larkLatency   map[string]*histogram
	notifications map[[2]string]uint64 // result, level
	sweeps        map[string]uint64    // result
	lastSweep     time.Duration
	grantLevels   map[grantID]string // grant -> level, for the by-level gauge
	// appProblems counts apps whose setup Lark refuses (set by the backend).
	appProblems func() int
	// events counts Lark's events (metrics_events.go).
	events eventCounts
}

var latencyBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

type histogram struct {
	counts []uint64
	sum    float64
	n      uint64
}

func newMetrics() *metrics {
	return &metrics{
		refreshes:     map[[2]string]uint64{},
		larkCalls:     map[[2]string]uint64{},
		larkLatency:   map[string]*histogram{},
		notifications: map[[2]string]uint64{},
		sweeps:        map[string]uint64{},
		grantLevels:   map[grantID]string{},
	}
}

func (m *metrics) observeCall(c lark.Call) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.larkCalls[[2]string{c.Endpoint, c.Status}]++
	h := m.larkLatency[c.Endpoint]
	if h == nil {
		h = &histogram{counts: make([]uint64, len(latencyBuckets))}
		m.larkLatency[c.Endpoint] = h
	}
	secs := c.Duration.Seconds()
	for i, b := range latencyBuckets {
		if secs <= b {
			h.counts[i]++
		}
	}
	h.sum += secs
	h.n++
}

func (m *metrics) refresh(result, reason string) {
	m.mu.Lock()
	m.refreshes[[2]string{result, reason}]++
	m.mu.Unlock()
}

func (m *metrics) notification(result, level string) {
	m.mu.Lock()
	m.notifications[[2]string{result, level}]++
	m.mu.Unlock()
}

func (m *metrics) sweep(result string, took time.Duration) {
	m.mu.Lock()
	m.sweeps[result]++
	m.lastSweep = took
	m.mu.Unlock()
}

// setLevel records a grant's level for the gauge; "" forgets a deleted grant.
func (m *metrics) setLevel(id grantID, level string) {
	m.mu.Lock()
	if level == "" {
		delete(m.grantLevels, id)
	} else {
		m.grantLevels[id] = level
	}
	m.mu.Unlock()
}

// write renders the Prometheus text exposition format (version 0.0.4).
func (m *metrics) write(w io.Writer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	counter := func(name, help string, labels [2]string, values map[[2]string]uint64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", name, help, name)
		keys := make([][2]string, 0, len(values))
		for k := range values {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i][0]+"\x00"+keys[i][1] < keys[j][0]+"\x00"+keys[j][1] })
		for _, k := range keys {
			fmt.Fprintf(w, "%s{%s=%q,%s=%q} %d\n", name, labels[0], k[0], labels[1], k[1], values[k])
		}
	}
	counter("lark_user_token_refreshes_total", "User token refreshes by result and reason.", [2]string{"result", "reason"}, m.refreshes)
	counter("lark_api_calls_total", "HTTP requests to Lark by endpoint and outcome.", [2]string{"endpoint", "status"}, m.larkCalls)
	counter("lark_notifications_total", "Re-authorization notices by result and level.", [2]string{"result", "level"}, m.notifications)

	fmt.Fprintf(w, "# HELP lark_api_call_duration_seconds Latency of HTTP requests to Lark by endpoint.\n# TYPE lark_api_call_duration_seconds histogram\n")
	endpoints := make([]string, 0, len(m.larkLatency))
	for e := range m.larkLatency {
		endpoints = append(endpoints, e)
	}
	sort.Strings(endpoints)
	for _, e := range endpoints {
		h := m.larkLatency[e]
		for i, b := range latencyBuckets {
			fmt.Fprintf(w, "lark_api_call_duration_seconds_bucket{endpoint=%q,le=%q} %d\n", e, strings.TrimRight(strings.TrimRight(fmt.Sprintf("%f", b), "0"), "."), h.counts[i])
		}
		fmt.Fprintf(w, "lark_api_call_duration_seconds_bucket{endpoint=%q,le=\"+Inf\"} %d\n", e, h.n)
		fmt.Fprintf(w, "lark_api_call_duration_seconds_sum{endpoint=%q} %g\n", e, h.sum)
		fmt.Fprintf(w, "lark_api_call_duration_seconds_count{endpoint=%q} %d\n", e, h.n)
	}

	fmt.Fprintf(w, "# HELP lark_user_grants User grants by level, as last seen by the sweep or a read.\n# TYPE lark_user_grants gauge\n")
	byLevel := map[string]int{levelOK: 0, levelWarning: 0, levelCritical: 0, levelExpired: 0, levelReauthRequired: 0}
	for _, l := range m.grantLevels {
		byLevel[l]++
	}
	for _, l := range []string{levelOK, levelWarning, levelCritical, levelExpired, levelReauthRequired} {
		fmt.Fprintf(w, "lark_user_grants{level=%q} %d\n", l, byLevel[l])
	}

	problems := 0
	if m.appProblems != nil {
		problems = m.appProblems()
	}
	fmt.Fprintf(w, "# HELP lark_apps_with_setup_problems Apps whose setup Lark refuses (token refresh off, app disabled or not installed).\n# TYPE lark_apps_with_setup_problems gauge\nlark_apps_with_setup_problems %d\n", problems)

	fmt.Fprintf(w, "# HELP lark_sweeps_total Sweeps by result.\n# TYPE lark_sweeps_total counter\n")
	results := make([]string, 0, len(m.sweeps))
	for r := range m.sweeps {
		results = append(results, r)
	}
	sort.Strings(results)
	for _, r := range results {
		fmt.Fprintf(w, "lark_sweeps_total{result=%q} %d\n", r, m.sweeps[r])
	}
	fmt.Fprintf(w, "# HELP lark_sweep_last_duration_seconds Duration of the last sweep.\n# TYPE lark_sweep_last_duration_seconds gauge\nlark_sweep_last_duration_seconds %g\n", m.lastSweep.Seconds())
	m.events.write(w)
}
