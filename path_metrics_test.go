package larksecrets

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/lark-vault/vault-plugin-secrets-lark/larkemu"
)

// scrapeMetrics reads the metrics path without an Accept header, as Vault forwards it by default,
// and parses the body with the library's text parser.
func (e *testEnv) scrapeMetrics() map[string]*dto.MetricFamily {
	e.t.Helper()
	resp, err := e.read("metrics")
	require.NoError(e.t, err)
	require.Equal(e.t, 200, resp.Data[logical.HTTPStatusCode])
	ctype := resp.Data[logical.HTTPContentType].(string)
	require.Equal(e.t, expfmt.TypeTextPlain, expfmt.Format(ctype).FormatType(), ctype)
	require.True(e.t, strings.HasPrefix(ctype, "text/plain; version=0.0.4; charset=utf-8"), ctype)
	body := resp.Data[logical.HTTPRawBody].([]byte)
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	require.NoError(e.t, err, "%s", body)
	return families
}

// sample finds the one sample of a family whose label set is exactly labels.
func sample(t *testing.T, families map[string]*dto.MetricFamily, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	f := families[name]
	require.NotNil(t, f, "family %s missing", name)
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, lp := range m.GetLabel() {
			got[lp.GetName()] = lp.GetValue()
		}
		if len(got) == len(labels) {
			same := true
			for k, v := range labels {
				if got[k] != v {
					same = false
				}
			}
			if same {
				return m
			}
		}
	}
	require.Failf(t, "no sample", "%s%v not in %v", name, labels, f.GetMetric())
	return nil
}

func counterValue(t *testing.T, families map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	require.Equal(t, dto.MetricType_COUNTER, families[name].GetType(), name)
	return sample(t, families, name, labels).GetCounter().GetValue()
}

func gaugeValue(t *testing.T, families map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	require.Equal(t, dto.MetricType_GAUGE, families[name].GetType(), name)
	return sample(t, families, name, labels).GetGauge().GetValue()
}

func grantsGauge(t *testing.T, families map[string]*dto.MetricFamily) map[string]float64 {
	t.Helper()
	got := map[string]float64{}
	for _, level := range gaugeLevels {
		got[level] = gaugeValue(t, families, "lark_user_grants", map[string]string{"level": level})
	}
	require.Len(t, families["lark_user_grants"].GetMetric(), 5, "one series per level")
	return got
}

func labelNames(f *dto.MetricFamily) []string {
	seen := map[string]bool{}
	for _, m := range f.GetMetric() {
		for _, lp := range m.GetLabel() {
			seen[lp.GetName()] = true
		}
	}
	var names []string
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func TestMetricsAfterRealActivity(t *testing.T) {
	env := newTestEnv(t)
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "admin"}))
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "u362"}))
	env.addOAuthApp()
	env.mustWrite("apps/"+testAppID, map[string]interface{}{"notify_open_ids": env.emu.OpenID(testAppID, "admin")})
	env.mustWrite("config", map[string]interface{}{"notify_schedule": "* * * * *"})
	env.grantUser("m")
	env.grantUser("flaky")
	env.importGrant("c", "u362", 362) // 3 days left: critical

	_, err := env.read("tenant-token/" + testAppID)
	require.NoError(t, err)
	env.clock.Advance(2 * time.Hour)
	_, err = env.read("user-token/" + testAppID + "/m") // a refresh that works
	require.NoError(t, err)
	require.NoError(t, env.emu.InjectFailure(larkemu.Failure{Endpoint: larkemu.EndpointRefresh, Mode: larkemu.FailError, Code: 20050}))
	_, err = env.read("user-token/" + testAppID + "/flaky") // one that Lark fails
	require.Error(t, err)

	fams := env.scrapeMetrics()
	// The families, their types and label names, declared once; nothing from the Go runtime or the
	// process, which share the plugin process with other mounts.
	want := map[string]struct {
		typ    dto.MetricType
		labels []string
	}{
		"lark_user_token_refreshes_total":  {dto.MetricType_COUNTER, []string{"reason", "result"}},
		"lark_api_calls_total":             {dto.MetricType_COUNTER, []string{"endpoint", "status"}},
		"lark_api_call_duration_seconds":   {dto.MetricType_HISTOGRAM, []string{"endpoint"}},
		"lark_sweeps_total":                {dto.MetricType_COUNTER, []string{"result"}},
		"lark_sweep_last_duration_seconds": {dto.MetricType_GAUGE, nil},
		"lark_user_grants":                 {dto.MetricType_GAUGE, []string{"level"}},
		"lark_apps_with_setup_problems":    {dto.MetricType_GAUGE, nil},
	}
	got := make([]string, 0, len(fams))
	for name, f := range fams {
		got = append(got, name)
		w, ok := want[name]
		require.True(t, ok, "unexpected family %s", name)
		require.Equal(t, w.typ, f.GetType(), name)
		require.Equal(t, w.labels, labelNames(f), name)
		require.NotEmpty(t, f.GetHelp(), name)
	}
	require.Len(t, got, len(want), "%v", got) // no notices yet: that family has no series

	require.Equal(t, 1.0, counterValue(t, fams, "lark_user_token_refreshes_total", map[string]string{"result": "ok", "reason": ""}))
	require.Equal(t, 1.0, counterValue(t, fams, "lark_user_token_refreshes_total", map[string]string{"result": "failed", "reason": "transient"}))
	require.Len(t, fams["lark_user_token_refreshes_total"].GetMetric(), 2)
	require.Equal(t, 1.0, counterValue(t, fams, "lark_api_calls_total", map[string]string{"endpoint": "tenant_access_token", "status": "ok"}))
	// The import spends the minted refresh token once (a call, not a grant refresh).
	require.Equal(t, 2.0, counterValue(t, fams, "lark_api_calls_total", map[string]string{"endpoint": "oauth_refresh", "status": "ok"}))
	require.Equal(t, 1.0, counterValue(t, fams, "lark_api_calls_total", map[string]string{"endpoint": "oauth_refresh", "status": "http_5xx"}))
	require.Equal(t, 2.0, counterValue(t, fams, "lark_api_calls_total", map[string]string{"endpoint": "oauth_token", "status": "ok"}))

	// The histogram: the declared buckets, one observation per call.
	require.Equal(t, dto.MetricType_HISTOGRAM, fams["lark_api_call_duration_seconds"].GetType())
	h := sample(t, fams, "lark_api_call_duration_seconds", map[string]string{"endpoint": "oauth_refresh"}).GetHistogram()
	require.Equal(t, uint64(3), h.GetSampleCount())
	bounds := make([]float64, 0, len(h.GetBucket()))
	for _, b := range h.GetBucket() {
		bounds = append(bounds, b.GetUpperBound())
		require.LessOrEqual(t, b.GetCumulativeCount(), h.GetSampleCount())
	}
	require.Equal(t, append(append([]float64{}, latencyBuckets...), math.Inf(1)), bounds)
	require.Equal(t, uint64(3), h.GetBucket()[len(h.GetBucket())-1].GetCumulativeCount(), "in-process calls take well under 10 s")
	userInfo := sample(t, fams, "lark_api_call_duration_seconds", map[string]string{"endpoint": "user_info"}).GetHistogram()
	require.Equal(t, uint64(3), userInfo.GetSampleCount(), "two authorizations and one import")

	// No sweep yet: both results exist at zero, so an alert on their increase has a series.
	require.Equal(t, 0.0, counterValue(t, fams, "lark_sweeps_total", map[string]string{"result": "complete"}))
	require.Equal(t, 0.0, counterValue(t, fams, "lark_sweeps_total", map[string]string{"result": "budget_exhausted"}))
	require.Equal(t, 0.0, gaugeValue(t, fams, "lark_apps_with_setup_problems", nil))
	// Every grant is counted at the level it had when it was last written (the failed refresh was
	// recorded on its grant, still ok), without a sweep.
	require.Equal(t, map[string]float64{levelOK: 2, levelWarning: 0, levelCritical: 1, levelExpired: 0, levelReauthRequired: 0}, grantsGauge(t, fams))

	// Sweeps on an every-minute schedule send the critical notice, once.
	notified := env.sweep().Notified
	env.clock.Advance(time.Minute)
	notified = append(notified, env.sweep().Notified...)
	require.Equal(t, []string{testAppID + "/c/critical"}, notified)
	fams = env.scrapeMetrics()
	require.Equal(t, 2.0, counterValue(t, fams, "lark_sweeps_total", map[string]string{"result": "complete"}))
	require.Equal(t, 1.0, counterValue(t, fams, "lark_notifications_total", map[string]string{"result": "sent", "level": "critical"}))
	require.Len(t, fams["lark_notifications_total"].GetMetric(), 1)
	require.Equal(t, []string{"level", "result"}, labelNames(fams["lark_notifications_total"]))
	require.Equal(t, 1.0, counterValue(t, fams, "lark_api_calls_total", map[string]string{"endpoint": "send_message", "status": "ok"}))
	require.Greater(t, gaugeValue(t, fams, "lark_sweep_last_duration_seconds", nil), 0.0)
	require.Equal(t, map[string]float64{levelOK: 2, levelWarning: 0, levelCritical: 1, levelExpired: 0, levelReauthRequired: 0}, grantsGauge(t, fams))

	// A deleted grant leaves the gauge at once, without waiting for a sweep.
	_, err = env.do(logical.DeleteOperation, "user-token/"+testAppID+"/c", nil)
	require.NoError(t, err)
	fams = env.scrapeMetrics()
	require.Equal(t, map[string]float64{levelOK: 2, levelWarning: 0, levelCritical: 0, levelExpired: 0, levelReauthRequired: 0}, grantsGauge(t, fams))

	// Low cardinality: no app, user, slot or Lark identity in any label value.
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				for _, id := range []string{testAppID, "cli_", "ou_", "on_", "m", "flaky", "c", "u362", "admin"} {
					if lp.GetValue() == id || (len(id) > 2 && strings.Contains(lp.GetValue(), id)) {
						t.Errorf("%s{%s=%q} names an app or a user", name, lp.GetName(), lp.GetValue())
					}
				}
			}
		}
	}
}

// Several mounts share one plugin process: each backend has a registry of its own, and nothing goes
// to the library's global default registry.
func TestMetricsArePerMount(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	env.grantUser("m")
	_, err := env.read("tenant-token/" + testAppID)
	require.NoError(t, err)
	_, err = env.read("user-token/" + testAppID + "/m")
	require.NoError(t, err)

	other := newTestEnv(t)
	fams := other.scrapeMetrics()
	require.Nil(t, fams["lark_api_calls_total"], "another mount's calls leak in")
	require.Equal(t, map[string]float64{levelOK: 0, levelWarning: 0, levelCritical: 0, levelExpired: 0, levelReauthRequired: 0}, grantsGauge(t, fams))

	fams = env.scrapeMetrics()
	require.Equal(t, 1.0, counterValue(t, fams, "lark_api_calls_total", map[string]string{"endpoint": "tenant_access_token", "status": "ok"}))
	require.Equal(t, 1.0, grantsGauge(t, fams)[levelOK])

	global, err := prometheus.DefaultGatherer.Gather()
	require.NoError(t, err)
	for _, f := range global {
		require.False(t, strings.HasPrefix(f.GetName(), "lark_"), "%s is in the global registry", f.GetName())
	}
}

// With the mount tuned to pass the Accept header, the format is negotiated like the library's own
// handler does; each answer decodes with the library's decoder for its content type.
func TestMetricsFormatNegotiation(t *testing.T) {
	env := newTestEnv(t)
	env.addApp()
	_, err := env.read("tenant-token/" + testAppID)
	require.NoError(t, err)

	for _, tc := range []struct {
		name, accept, wantType string
	}{
		{"no header", "", "text/plain"},
		{"Prometheus 3 default", "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1", "text/plain; version=0.0.4"},
		{"protobuf", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3", "application/vnd.google.protobuf"},
		{"text only", "text/plain;version=0.0.4", "text/plain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &logical.Request{Operation: logical.ReadOperation, Path: "metrics", Storage: env.storage, MountPoint: "lark/"}
			if tc.accept != "" {
				req.Headers = map[string][]string{"Accept": {tc.accept}}
			}
			resp, err := env.b.HandleRequest(context.Background(), req)
			require.NoError(t, err)
			ctype := resp.Data[logical.HTTPContentType].(string)
			require.True(t, strings.HasPrefix(ctype, tc.wantType), ctype)
			body := resp.Data[logical.HTTPRawBody].([]byte)
			dec := expfmt.NewDecoder(bytes.NewReader(body), expfmt.Format(ctype))
			found := false
			for {
				var f dto.MetricFamily
				err := dec.Decode(&f)
				if errors.Is(err, io.EOF) {
					break
				}
				require.NoError(t, err, "%s", body)
				if f.GetName() == "lark_api_calls_total" {
					require.Equal(t, dto.MetricType_COUNTER, f.GetType())
					require.Equal(t, 1.0, f.GetMetric()[0].GetCounter().GetValue())
					found = true
				}
			}
			require.True(t, found, "%s", body)
		})
	}
}
