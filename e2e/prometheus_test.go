//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const (
	promMount = "prom/lark" // ends in /lark for TestMain's audit scan, like the sweep tests' mounts
	promApp   = "cli_e2eprometheus"
)

// TestPrometheusAlertsOnCriticalGrant runs a real Prometheus (Debian's package; PROMETHEUS_BIN or
// prometheus on PATH) with examples/prometheus/prometheus.yml and lark-alerts.yml, substituted only
// where a test must: Vault's address and scheme, the mount, the token file, one-second intervals and
// two-second `for:` durations. Prometheus scrapes the plugin's metrics through the real Vault with a
// token holding only examples/policies/lark-metrics.hcl, and LarkGrantCritical fires once a grant
// goes critical, and not before.
func TestPrometheusAlertsOnCriticalGrant(t *testing.T) {
	t.Parallel()
	promBin := os.Getenv("PROMETHEUS_BIN")
	if promBin == "" {
		var err error
		if promBin, err = exec.LookPath("prometheus"); err != nil {
			t.Fatal("prometheus is not on PATH and PROMETHEUS_BIN is not set; run `make prometheus-tools` (Debian's prometheus package)")
		}
	}
	swMount(t, promMount, pluginName)
	swApp(t, promMount, promApp, nil)
	swUser(t, "prom_fine", "Prom Fine", "")
	swUser(t, "prom_late", "Prom Late", "")
	daysAgo := func(d float64) time.Time {
		return time.Now().Add(-time.Duration(d * float64(24*time.Hour))).Truncate(time.Second)
	}
	readGrant := func(slot string) {
		t.Helper()
		out := vaultJSON(t, rootToken, "read", promMount+"/user-token/"+promApp+"/"+slot)
		remember(out["data"].(map[string]any)["access_token"].(string), "user_access_token of "+promApp+"/"+slot)
	}
	swImport(t, promMount, promApp, "fine", swMint(t, promApp, "prom_fine", 30), daysAgo(30))
	readGrant("fine")

	// The scraper's policy, as in the examples, for this test's mount.
	policy := examplePolicy(t, "lark-metrics")
	if strings.Count(policy, `path "lark/metrics"`) != 1 {
		t.Fatalf("examples/policies/lark-metrics.hcl no longer grants exactly lark/metrics:\n%s", policy)
	}
	policy = strings.Replace(policy, `path "lark/metrics"`, `path "`+promMount+`/metrics"`, 1)
	if out, err := runVaultStdin(rootToken, policy, "policy", "write", "prom-lark-metrics", "-"); err != nil {
		t.Fatalf("policy write: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = runVault(rootToken, "policy", "delete", "prom-lark-metrics") })
	token := vaultJSON(t, rootToken, "token", "create", "-policy=prom-lark-metrics", "-ttl=10m")["auth"].(map[string]any)["client_token"].(string)
	remember(token, "Prometheus' Vault token")
	// Narrow: no token, no grant list; and the plugin's path takes no format parameter.
	if status, _ := vaultHTTP(t, token, http.MethodGet, promMount+"/user-token/"+promApp+"/fine", nil); status != http.StatusForbidden {
		t.Errorf("the scraper's token reads a user token: HTTP %d, want 403", status)
	}
	if status, _ := vaultHTTP(t, token, http.MethodGet, promMount+"/metrics?format=prometheus", nil); status != http.StatusBadRequest {
		t.Errorf("metrics?format=prometheus: HTTP %d, want 400 (the plugin's path takes no parameters)", status)
	}

	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "vault-token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vaultHost := strings.TrimPrefix(env.vaultAddr, "http://")
	writeSubstituted(t, filepath.Join(repoRoot(t), "examples", "prometheus", "prometheus.yml"), filepath.Join(dir, "prometheus.yml"),
		"scrape_interval: 30s", "scrape_interval: 1s",
		"evaluation_interval: 30s", "evaluation_interval: 1s",
		"scheme: https", "scheme: http",
		"metrics_path: /v1/lark/metrics", "metrics_path: /v1/"+promMount+"/metrics",
		"/etc/prometheus/vault-token", tokenFile,
		"    tls_config:\n      ca_file: /etc/prometheus/vault-ca.pem\n", "",
		"vault.example.internal:8200", vaultHost)
	rules, err := os.ReadFile(filepath.Join(repoRoot(t), "examples", "prometheus", "lark-alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	forLine := regexp.MustCompile(`(?m)^(\s+for:) \S+$`)
	if len(forLine.FindAll(rules, -1)) == 0 {
		t.Fatal("lark-alerts.yml has no for: lines to shorten")
	}
	if err := os.WriteFile(filepath.Join(dir, "lark-alerts.yml"), forLine.ReplaceAll(rules, []byte("$1 2s")), 0o644); err != nil {
		t.Fatal(err)
	}

	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	promURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	promLog := filepath.Join(dir, "prometheus.log")
	cmd, err := startProcess(promLog, promBin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopProcess(cmd)
		if log, err := os.ReadFile(promLog); err == nil && strings.Contains(string(log), token) {
			t.Error("Prometheus' log holds the Vault token")
		}
		if t.Failed() {
			log, _ := os.ReadFile(promLog)
			t.Logf("prometheus log:\n%s", log)
		}
	})
	start := time.Now()
	promWaitReady(t, promURL, 30*time.Second)

	// Prometheus scrapes through Vault: the target is up and the gauge shows the ok grant, none critical.
	promWait(t, 60*time.Second, "the lark target up with the grants gauge", func() (bool, string) {
		up := promQuery(t, promURL, `up{job="lark"}`)
		ok := promQuery(t, promURL, `lark_user_grants{job="lark",level="ok"}`)
		crit := promQuery(t, promURL, `lark_user_grants{job="lark",level="critical"}`)
		return up == "1" && ok == "1" && crit == "0", fmt.Sprintf("up=%q ok=%q critical=%q", up, ok, crit)
	})
	// Several evaluations later the alert is neither pending nor firing.
	time.Sleep(4 * time.Second)
	if a := promAlert(t, promURL, "LarkGrantCritical"); a != nil {
		t.Fatalf("LarkGrantCritical is %v before any grant is critical: %v", a["state"], a)
	}

	// A grant three days from its 365-day end: critical.
	swImport(t, promMount, promApp, "late", swMint(t, promApp, "prom_late", 362), daysAgo(362))
	readGrant("late")
	critAt := time.Now()
	var alert map[string]any
	promWait(t, 60*time.Second, "LarkGrantCritical firing", func() (bool, string) {
		alert = promAlert(t, promURL, "LarkGrantCritical")
		return alert != nil && alert["state"] == "firing", fmt.Sprintf("alert %v", alert)
	})
	labels, _ := alert["labels"].(map[string]any)
	annotations, _ := alert["annotations"].(map[string]any)
	if labels["severity"] != "page" || labels["level"] != "critical" || labels["job"] != "lark" {
		t.Errorf("LarkGrantCritical labels %v", labels)
	}
	if s, _ := annotations["summary"].(string); !strings.HasPrefix(s, "1 Lark user grant(s)") {
		t.Errorf("LarkGrantCritical summary %q", s)
	}
	if r, _ := annotations["runbook"].(string); !strings.Contains(r, "vault read lark/reauth") {
		t.Errorf("LarkGrantCritical runbook %q", r)
	}
	if raw, err := json.MarshalIndent(alert, "", "  "); err == nil {
		t.Logf("the alert as Prometheus' /api/v1/alerts shows it:\n%s", raw)
	}
	t.Logf("Prometheus scraped %s/metrics through Vault; LarkGrantCritical fired %s after the grant went critical (%s in all)",
		promMount, time.Since(critAt).Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond))
}

// writeSubstituted copies src to dst with each (old, new) pair replaced; every old must occur.
func writeSubstituted(t *testing.T, src, dst string, pairs ...string) {
	t.Helper()
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	for i := 0; i < len(pairs); i += 2 {
		if !strings.Contains(text, pairs[i]) {
			t.Fatalf("%s no longer contains %q", src, pairs[i])
		}
		text = strings.ReplaceAll(text, pairs[i], pairs[i+1])
	}
	if err := os.WriteFile(dst, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// promGet decodes the data of one Prometheus HTTP API answer.
func promGet(t *testing.T, promURL, path string, data any) {
	t.Helper()
	resp, err := env.httpClient.Get(promURL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Status != "success" {
		t.Fatalf("GET %s: HTTP %d, status %q, error %q (%v)", path, resp.StatusCode, body.Status, body.Error, err)
	}
	if err := json.Unmarshal(body.Data, data); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// promQuery evaluates an instant query with at most one series and returns its value ("" if none).
func promQuery(t *testing.T, promURL, query string) string {
	t.Helper()
	var data struct {
		Result []struct {
			Value [2]any `json:"value"`
		} `json:"result"`
	}
	promGet(t, promURL, "/api/v1/query?query="+url.QueryEscape(query), &data)
	switch len(data.Result) {
	case 0:
		return ""
	case 1:
		v, _ := data.Result[0].Value[1].(string)
		return v
	}
	t.Fatalf("query %s: %d series, want at most one", query, len(data.Result))
	return ""
}

// promAlert is the active (pending or firing) alert of that name, or nil.
func promAlert(t *testing.T, promURL, name string) map[string]any {
	t.Helper()
	var data struct {
		Alerts []map[string]any `json:"alerts"`
	}
	promGet(t, promURL, "/api/v1/alerts", &data)
	for _, a := range data.Alerts {
		if labels, _ := a["labels"].(map[string]any); labels["alertname"] == name {
			return a
		}
	}
	return nil
}

// promWaitReady waits for Prometheus to answer /-/ready.
func promWaitReady(t *testing.T, promURL string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if resp, err := env.httpClient.Get(promURL + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("Prometheus not ready at %s within %s", promURL, timeout)
}

// promWait polls cond every 250 ms until it holds or timeout passes.
func promWait(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("waited %s for %s; last: %s", timeout, what, last)
}
