//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The sweep tests (sweep_test.go) run beside other tests on the shared Vault and emulator, so each
// works on a mount of its own, with apps of its own, reads only its apps' counters at the emulator,
// and disables its mount when it ends, which stops Vault's periodic sweep from touching its grants.

// swHTTP is for the many requests of the scale test: connections are kept and reused.
var swHTTP = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConns: 128, MaxIdleConnsPerHost: 64}}

// swUserTokenTTL is the lifetime of the user access tokens the emulator issues to the sweep tests'
// apps: Lark's real two hours, so that reads are served without a refresh and only the sweep's
// keep-alive refreshes grants.
const swUserTokenTTL = 2 * time.Hour

// swDo sends one JSON request and decodes the JSON answer. It never stops the test, so the workers
// of the scale test can use it.
func swDo(method, url, vaultToken string, body any) (int, map[string]any, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if vaultToken != "" {
		req.Header.Set("X-Vault-Token", vaultToken)
	}
	resp, err := swHTTP.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, err
	}
	var v map[string]any
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &v); err != nil {
			return resp.StatusCode, nil, fmt.Errorf("%s %s: HTTP %d, body is not JSON", method, url, resp.StatusCode)
		}
	}
	return resp.StatusCode, v, nil
}

// swMount mounts the plugin (registered as plugin, normally pluginName) at path for one test,
// configures it (lease margin and refresh window as on lark/, plus config), and disables the mount
// when the test ends.
//
// The sweep tests' mount paths end in "/lark": TestMain's leak scan insists that the audit log shows
// reads under "lark/app-token/" or "lark/user-token/", and so it sees this file's reads when the
// file's tests run alone.
func swMount(t *testing.T, path, plugin string, config ...string) {
	t.Helper()
	mustVault(t, rootToken, "secrets", "enable", "-path="+path, "-plugin-version="+pluginVersion, plugin)
	t.Cleanup(func() {
		start := time.Now()
		if out, err := runVault(rootToken, "secrets", "disable", path+"/"); err != nil {
			t.Errorf("disabling %s/: %v\n%s", path, err, out)
			return
		}
		t.Logf("disabled %s/ in %s", path, time.Since(start).Round(time.Millisecond))
	})
	args := append([]string{"write", path + "/config", "lease_safety_margin=10s", "token_refresh_window=70s"}, config...)
	mustVault(t, rootToken, args...)
}

// swPrivatePlugin registers the plugin binary once more under another name, for a test that
// restarts its mount: Vault runs each registered plugin in one multiplexed process for all its
// mounts, and reloading a mount kills that process, so reloading a mount of pluginName would also
// restart lark/ and the mounts of tests running beside it. The entry is removed when the test ends.
func swPrivatePlugin(t *testing.T, name string) {
	t.Helper()
	mustVault(t, rootToken, "plugin", "register", "-sha256="+env.pluginSHA, "-command="+pluginName, "-version="+pluginVersion, "secret", name)
	t.Cleanup(func() {
		if out, err := runVault(rootToken, "plugin", "deregister", "-version="+pluginVersion, "secret", name); err != nil {
			t.Errorf("deregistering %s: %v\n%s", name, err, out)
		}
	})
}

// swEmulatorApp registers (or re-registers) an app at the emulator with 2-hour user access tokens
// plus the extra fields given, such as refresh_token_ttl_seconds.
func swEmulatorApp(appID, secret string, extra map[string]any) error {
	body := map[string]any{"app_id": appID, "app_secret": secret, "user_token_ttl_seconds": swUserTokenTTL.Seconds()}
	for k, v := range extra {
		body[k] = v
	}
	status, resp, err := swDo(http.MethodPost, env.emuURL+"/_emulator/apps", "", body)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("emulator POST /_emulator/apps: HTTP %d %v", status, resp["error"])
	}
	return nil
}

// swApp registers an app at the emulator and on a mount (both hosts pointing at the emulator) and
// returns its secret.
func swApp(t *testing.T, mount, appID string, emuExtra map[string]any, vaultExtra ...string) string {
	t.Helper()
	secret := "e2eSweep" + strings.TrimPrefix(appID, "cli_") + fmt.Sprint(time.Now().UnixNano())
	remember(secret, "app_secret of "+appID)
	if err := swEmulatorApp(appID, secret, emuExtra); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"write", mount + "/apps/" + appID, "app_secret=" + secret,
		"base_url=" + env.emuURL, "accounts_base_url=" + env.emuURL}, vaultExtra...)
	mustVault(t, rootToken, args...)
	return secret
}

// swUser registers a Lark user at the emulator without signing them in, so the authorize page of
// tests running beside these keeps approving as whoever they signed in. openID may be "" (then
// each app sees its own derived open_id).
func swUser(t *testing.T, userID, name, openID string) {
	t.Helper()
	body := map[string]any{"user_id": userID, "name": name, "sign_in": false}
	if openID != "" {
		body["open_id"] = openID
	}
	emulator(t, http.MethodPost, "/_emulator/users", body)
}

// swMinted is a grant minted at the emulator, with its tokens.
type swMinted struct {
	GrantID      string    `json:"grant_id"`
	OpenID       string    `json:"open_id"`
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token"`
	AuthorizedAt time.Time `json:"authorized_at"`
}

// swMintErr mints a grant at the emulator as if userID had authorized daysAgo days ago.
func swMintErr(appID, userID string, daysAgo float64) (swMinted, error) {
	status, body, err := swDo(http.MethodPost, env.emuURL+"/_emulator/grants", "",
		map[string]any{"app_id": appID, "user_id": userID, "authorized_days_ago": daysAgo})
	if err != nil {
		return swMinted{}, err
	}
	if status != http.StatusOK {
		return swMinted{}, fmt.Errorf("minting a grant: HTTP %d %v", status, body["error"])
	}
	raw, _ := json.Marshal(body)
	var m swMinted
	if err := json.Unmarshal(raw, &m); err != nil || m.RefreshToken == "" {
		return swMinted{}, fmt.Errorf("minted grant without a refresh token (%v)", err)
	}
	return m, nil
}

// swMint mints a grant and remembers its tokens for the leak check.
func swMint(t *testing.T, appID, userID string, daysAgo float64) swMinted {
	t.Helper()
	m, err := swMintErr(appID, userID, daysAgo)
	if err != nil {
		t.Fatal(err)
	}
	remember(m.RefreshToken, "minted refresh_token of "+appID)
	remember(m.AccessToken, "minted user_access_token of "+appID)
	return m
}

// swImportErr imports a minted grant into mount/user-token/app/slot over Vault's HTTP API, with
// authorized_at when it is not zero.
func swImportErr(mount, appID, slot, refreshToken string, authorizedAt time.Time) (int, map[string]any, error) {
	body := map[string]any{"refresh_token": refreshToken}
	if !authorizedAt.IsZero() {
		body["authorized_at"] = authorizedAt.UTC().Format(time.RFC3339)
	}
	return swDo(http.MethodPost, env.vaultAddr+"/v1/"+mount+"/user-token/"+appID+"/"+slot, rootToken, body)
}

// swImport imports and insists on success; it returns the import's answer.
func swImport(t *testing.T, mount, appID, slot string, m swMinted, authorizedAt time.Time) map[string]any {
	t.Helper()
	status, body, err := swImportErr(mount, appID, slot, m.RefreshToken, authorizedAt)
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusOK {
		t.Fatalf("importing %s/%s: HTTP %d %v", appID, slot, status, body["errors"])
	}
	return body
}

// swAppCounters reads one app's counters at the emulator.
func swAppCounters(t *testing.T, appID string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for k, v := range emulator(t, http.MethodGet, "/_emulator/apps/"+appID+"/counters", nil) {
		n, _ := v.(float64)
		out[k] = int(n)
	}
	return out
}

// swLarkGrants returns the emulator's grants of one app (never with tokens), by grant id.
func swLarkGrants(t *testing.T, appID string) map[string]map[string]any {
	t.Helper()
	all, _ := emulator(t, http.MethodGet, "/_emulator/grants", nil)["grants"].([]any)
	out := map[string]map[string]any{}
	for _, g := range all {
		m := g.(map[string]any)
		if m["app_id"] == appID {
			out[m["grant_id"].(string)] = m
		}
	}
	return out
}

// swMessages returns the messages the emulator recorded from one app.
func swMessages(t *testing.T, appID string) []map[string]any {
	t.Helper()
	all, _ := emulator(t, http.MethodGet, "/_emulator/messages", nil)["messages"].([]any)
	var out []map[string]any
	for _, m := range all {
		if mm := m.(map[string]any); mm["app_id"] == appID {
			out = append(out, mm)
		}
	}
	return out
}

// swSweepResult is the answer of `vault write -f <mount>/sweep`.
type swSweepResult struct {
	Data     map[string]any `json:"data"`
	Warnings []string       `json:"warnings"`
}

func (r swSweepResult) list(field string) []string { return swStrings(r.Data[field]) }

func (r swSweepResult) number(field string) float64 {
	n, _ := r.Data[field].(float64)
	return n
}

// swSweep runs the sweep now with the CLI, waiting while Vault's periodic run holds the mount's
// sweep lock.
func swSweep(t *testing.T, mount string) swSweepResult {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, err := runVaultFormat(rootToken, "json", "write", "-f", mount+"/sweep")
		if err == nil {
			var r swSweepResult
			if err := json.Unmarshal([]byte(out), &r); err != nil || r.Data == nil {
				t.Fatalf("vault write -f %s/sweep: not a sweep report (%v):\n%s", mount, err, out)
			}
			return r
		}
		if !strings.Contains(out, "already running") || time.Now().After(deadline) {
			t.Fatalf("vault write -f %s/sweep: %v\n%s", mount, err, out)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// swStrings turns a decoded JSON array of strings into []string.
func swStrings(v any) []string {
	arr, _ := v.([]any)
	out := make([]string, 0, len(arr))
	for _, s := range arr {
		if str, ok := s.(string); ok {
			out = append(out, str)
		}
	}
	return out
}

func swContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// swAnyContains reports whether any of the strings contains all the parts.
func swAnyContains(list []string, parts ...string) bool {
	for _, s := range list {
		all := true
		for _, p := range parts {
			if !strings.Contains(s, p) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// swTime parses an RFC 3339 time from a response, failing the test if it is not one.
func swTime(t *testing.T, what string, v any) time.Time {
	t.Helper()
	s, _ := v.(string)
	ts, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatalf("%s = %q: not an RFC 3339 time", what, s)
	}
	return ts
}

// swSleepPastNextMinute sleeps until a few seconds after the next full minute, so that a
// "* * * * *" notify schedule has fired again by the next sweep.
// swFailedNoticeAttempts returns, in log order, the attempt counts the plugin of one mount logged
// for notices of appID it could not send; every sweep writes this line, Vault's periodic ones too.
func swFailedNoticeAttempts(t *testing.T, plugin, appID string) []int {
	t.Helper()
	var attempts []int
	for _, line := range grepLines(t, env.serverLog, "notice not sent; it stays queued") {
		if !strings.Contains(line, "secrets."+plugin+".") || !strings.Contains(line+" ", "app_id="+appID+" ") {
			continue
		}
		m := attemptsInLog.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("a failed-notice log line without attempts: %s", line)
		}
		n, _ := strconv.Atoi(m[1])
		attempts = append(attempts, n)
	}
	return attempts
}

var attemptsInLog = regexp.MustCompile(`\battempts=(\d+)\b`)

func swSleepPastNextMinute(t *testing.T) {
	t.Helper()
	next := time.Now().Truncate(time.Minute).Add(time.Minute + 3*time.Second)
	t.Logf("waiting %s for the next scheduled minute", time.Until(next).Round(time.Second))
	time.Sleep(time.Until(next))
}
