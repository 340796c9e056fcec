//go:build e2e

package e2e

// Helpers of the Lark fault tests (faults_test.go, client_gone_test.go): a mount of the plugin
// pointed at an emulator of the test's own, whose failures the test injects app by app.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The fault tests' emulator issues 10-minute app and tenant tokens and re-issues them once less than
// 9 minutes are left; the mount refreshes a token 9m30s before it ends. The plugin never fetches an
// app or tenant token again within a minute of the last fetch, so a token becomes due a minute after
// it was fetched and can then be served stale for 8m50s: room for every fault of a test.
const (
	faultAppTokenTTL    = 10 * time.Minute
	faultReuseWindow    = 9 * time.Minute
	faultRefreshWindow  = 9*time.Minute + 30*time.Second
	faultLeaseMargin    = 10 * time.Second
	faultMaxAttempts    = 3
	faultRequestTimeout = 2 * time.Second
	// A user access token of this life is due 20 s after each refresh and still good for minutes.
	faultUserTokenTTL = faultRefreshWindow + 20*time.Second
	// minRefetch is the plugin's floor between two fetches of one app or tenant token.
	minRefetch = time.Minute
)

// faultConfig is the mount configuration of every fault test.
var faultConfig = []string{
	"lease_safety_margin=" + faultLeaseMargin.String(),
	"token_refresh_window=" + faultRefreshWindow.String(),
	"lark_request_timeout=" + faultRequestTimeout.String(),
	"lark_max_attempts=" + strconv.Itoa(faultMaxAttempts),
}

// faultWorld is one mount of the plugin and the emulator it talks to.
type faultWorld struct {
	vaultAddr string
	mount     string
	emuURL    string
	// cli runs the vault CLI against the world's Vault as root.
	cli func(format string, args ...string) (string, error)
}

// startFaultEmulator runs an emulator of the test's own with the fault tests' token lifetimes.
func startFaultEmulator(t *testing.T) string {
	t.Helper()
	return startOwnEmulator(t, "-app-token-ttl", faultAppTokenTTL.String(), "-reuse-window", faultReuseWindow.String(),
		"-user-token-ttl", faultUserTokenTTL.String())
}

// newFaultWorld mounts the plugin registered as plugin at mount on the shared Vault (the path ends
// in "/lark", see swMount), pointed at an emulator of the test's own, and disables the mount when
// the test ends.
func newFaultWorld(t *testing.T, mount, plugin string) *faultWorld {
	t.Helper()
	w := &faultWorld{vaultAddr: env.vaultAddr, mount: mount, emuURL: startFaultEmulator(t),
		cli: func(format string, args ...string) (string, error) { return runVaultFormat(rootToken, format, args...) }}
	w.must(t, "secrets", "enable", "-path="+mount, "-plugin-version="+pluginVersion, plugin)
	t.Cleanup(func() {
		if out, err := runVault(rootToken, "secrets", "disable", mount+"/"); err != nil {
			t.Errorf("disabling %s/: %v\n%s", mount, err, out)
		}
	})
	w.must(t, append([]string{"write", mount + "/config"}, faultConfig...)...)
	return w
}

// newOwnVaultFaultWorld starts a Vault server of the test's own with extraConfig in its
// configuration, registers the plugin by sha256 as an operator would, and mounts it at lark/.
func newOwnVaultFaultWorld(t *testing.T, extraConfig string) *faultWorld {
	t.Helper()
	dir := t.TempDir()
	pluginDir := filepath.Join(dir, "plugins")
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		t.Fatal(err)
	}
	sha, err := copyFile(os.Getenv("PLUGIN_BIN"), filepath.Join(pluginDir, pluginName))
	if err != nil {
		t.Fatal(err)
	}
	emuURL := startFaultEmulator(t)
	v := startOwnVault(t, dir, fmt.Sprintf("plugin_directory = %q\n%s", pluginDir, extraConfig))
	w := &faultWorld{vaultAddr: v.addr, mount: mountPath, emuURL: emuURL,
		cli: func(format string, args ...string) (string, error) { return v.cli(rootToken, format, args...) }}
	w.must(t, "plugin", "register", "-sha256="+sha, "-command="+pluginName, "-version="+pluginVersion, "secret", pluginName)
	w.must(t, "secrets", "enable", "-path="+mountPath, "-plugin-version="+pluginVersion, pluginName)
	w.must(t, append([]string{"write", mountPath + "/config"}, faultConfig...)...)
	return w
}

func (w *faultWorld) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := w.cli("table", args...)
	if err != nil {
		t.Fatalf("vault %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// app registers appID at the emulator (user access tokens living userTTL, 0 for the emulator's
// default) and in the mount, both hosts pointing at the emulator.
func (w *faultWorld) app(t *testing.T, appID string, userTTL time.Duration) {
	t.Helper()
	secret := "e2eFault" + strings.TrimPrefix(appID, "cli_") + fmt.Sprint(time.Now().UnixNano())
	remember(secret, "app_secret of "+appID)
	emuControl(t, w.emuURL, http.MethodPost, "/_emulator/apps", map[string]any{
		"app_id": appID, "app_secret": secret, "user_token_ttl_seconds": userTTL.Seconds()})
	w.must(t, "write", w.mount+"/apps/"+appID, "app_secret="+secret, "base_url="+w.emuURL, "accounts_base_url="+w.emuURL)
}

// grant mints a Lark grant of a new user of appID at the emulator and imports it into slot (the
// import spends the minted refresh token at once). It returns the emulator's grant id.
func (w *faultWorld) grant(t *testing.T, appID, slot string) string {
	t.Helper()
	userID := "fault_" + strings.TrimPrefix(appID, "cli_") + "_" + slot
	emuControl(t, w.emuURL, http.MethodPost, "/_emulator/users", map[string]any{"user_id": userID, "name": "Fault " + slot, "sign_in": false})
	m := emuControl(t, w.emuURL, http.MethodPost, "/_emulator/grants", map[string]any{"app_id": appID, "user_id": userID})
	refresh, _ := m["refresh_token"].(string)
	access, _ := m["access_token"].(string)
	remember(refresh, "minted refresh_token of "+appID)
	remember(access, "minted user_access_token of "+appID)
	status, body, err := w.do(http.MethodPost, "user-token/"+appID+"/"+slot, map[string]any{"refresh_token": refresh})
	if err != nil || status != http.StatusOK {
		t.Fatalf("importing %s/%s: HTTP %d %v %v", appID, slot, status, body["errors"], err)
	}
	id, _ := m["grant_id"].(string)
	return id
}

// do sends one request to the mount over Vault's HTTP API as root.
func (w *faultWorld) do(method, path string, body any) (int, map[string]any, error) {
	return swDo(method, w.vaultAddr+"/v1/"+w.mount+"/"+path, rootToken, body)
}

// tokenRead is one token read: status, token, warnings and errors.
type tokenRead struct {
	status    int
	token     string
	expiresAt string
	warnings  []string
	errors    string
	err       error
}

func (r tokenRead) String() string {
	if r.err != nil {
		return "request failed: " + r.err.Error()
	}
	return fmt.Sprintf("HTTP %d warnings=%q errors=%s", r.status, r.warnings, r.errors)
}

// read reads a token path (app-token/…, tenant-token/…, user-token/…) and remembers the token.
func (w *faultWorld) read(path string) tokenRead {
	status, body, err := w.do(http.MethodGet, path, nil)
	r := tokenRead{status: status, err: err}
	if err != nil {
		return r
	}
	r.warnings = swStrings(body["warnings"])
	if errs, ok := body["errors"]; ok {
		r.errors = fmt.Sprint(errs)
	}
	if data, ok := body["data"].(map[string]any); ok {
		r.token, _ = data["access_token"].(string)
		r.expiresAt, _ = data["expires_at"].(string)
		remember(r.token, "token read from "+path)
	}
	return r
}

// readUntilOK reads path until it answers HTTP 200, for at most within; every answer before must be
// an upstream error (502 or 503), never a token-less success or "re-authorize".
func (w *faultWorld) readUntilOK(t *testing.T, path string, within time.Duration) tokenRead {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r := w.read(path)
		switch {
		case r.err == nil && r.status == http.StatusOK:
			return r
		case r.err != nil || (r.status != http.StatusBadGateway && r.status != http.StatusServiceUnavailable):
			t.Fatalf("%s after Lark recovered: %v", path, r)
		case time.Now().After(deadline):
			t.Fatalf("%s still fails %s after Lark recovered: %v", path, within, r)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// readUntilFresh reads path until it is served a token other than old, for at most within; every
// answer before must still serve old (the plugin may back off after failures).
func (w *faultWorld) readUntilFresh(t *testing.T, path, old string, within time.Duration) tokenRead {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r := w.read(path)
		switch {
		case r.err != nil || r.status != http.StatusOK || r.token == "":
			t.Fatalf("%s after Lark recovered: %v", path, r)
		case r.token != old:
			return r
		case time.Now().After(deadline):
			t.Fatalf("%s is still served the old token %s after Lark recovered: %v", path, within, r)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// readConcurrently starts n reads of path at the same moment and returns them.
func (w *faultWorld) readConcurrently(path string, n int) []tokenRead {
	out := make([]tokenRead, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i] = w.read(path)
		}()
	}
	close(start)
	wg.Wait()
	return out
}

// fail injects a failure at the world's emulator, aimed at one app.
func (w *faultWorld) fail(t *testing.T, appID, endpoint, mode string, extra map[string]any) {
	t.Helper()
	body := map[string]any{"endpoint": endpoint, "mode": mode, "app_id": appID, "count": -1}
	for k, v := range extra {
		body[k] = v
	}
	emuControl(t, w.emuURL, http.MethodPost, "/_emulator/failures", body)
}

// heal drops every failure aimed at appID: Lark works again for it.
func (w *faultWorld) heal(t *testing.T, appID string) {
	t.Helper()
	emuControl(t, w.emuURL, http.MethodDelete, "/_emulator/failures?app_id="+url.QueryEscape(appID), nil)
}

// calls is the number of requests for appID that reached endpoint at the emulator.
func (w *faultWorld) calls(t *testing.T, appID, endpoint string) int {
	t.Helper()
	c := emuControl(t, w.emuURL, http.MethodGet, "/_emulator/apps/"+appID+"/counters", nil)
	n, ok := c[endpoint].(float64)
	if !ok {
		t.Fatalf("emulator has no counter %q for %s: %v", endpoint, appID, c)
	}
	return int(n)
}

// larkGrant is the emulator's view of one grant (never with tokens).
func (w *faultWorld) larkGrant(t *testing.T, grantID string) map[string]any {
	t.Helper()
	all, _ := emuControl(t, w.emuURL, http.MethodGet, "/_emulator/grants", nil)["grants"].([]any)
	for _, g := range all {
		if m := g.(map[string]any); m["grant_id"] == grantID {
			return m
		}
	}
	t.Fatalf("the emulator has no grant %s", grantID)
	return nil
}

// sweeps is how many sweeps the mount's plugin has finished since it started (its metrics).
func (w *faultWorld) sweeps(t *testing.T) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, w.vaultAddr+"/v1/"+w.mount+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", rootToken)
	resp, err := swHTTP.Do(req)
	if err != nil {
		t.Fatalf("reading %s/metrics: %v", w.mount, err)
	}
	raw, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("reading %s/metrics: HTTP %d %s", w.mount, resp.StatusCode, raw)
	}
	total := 0
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "lark_sweeps_total{") {
			continue
		}
		n, err := strconv.Atoi(line[strings.LastIndexByte(line, ' ')+1:])
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		total += n
	}
	return total
}

// slot is the full status (grants) of one slot in the mount's detailed user-token list.
func (w *faultWorld) slot(t *testing.T, appID, slot string) map[string]any {
	t.Helper()
	status, body, err := w.do("LIST", "user-token/"+appID+"/", nil)
	if err != nil || status != http.StatusOK {
		t.Fatalf("LIST user-token/%s/: HTTP %d %v %v", appID, status, body, err)
	}
	info, _ := body["data"].(map[string]any)["grants"].(map[string]any)
	s, _ := info[slot].(map[string]any)
	if s == nil {
		t.Fatalf("slot %s/%s is not listed: %v", appID, slot, info)
	}
	return s
}

// callBudget is what readers may cost at Lark while the plugin tries once: one fetch (or refresh)
// of at most lark_max_attempts calls for all of them together, plus one more for each periodic
// sweep that may have overlapped (the sweep refreshes due tokens and resolves interrupted
// refreshes too): those that finished in the window and one still running at its end. There is
// no lower bound: a plugin that backs off after the failures it met while the token came due may
// serve the stale token at no cost, and the warning still says why.
func callBudget(sweepsInWindow int) int {
	return faultMaxAttempts * (1 + sweepsInWindow + 1)
}

// anyContains reports whether one of the strings contains sub.
func anyContains(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// remedyPhrases are ways a message tells an operator what to do about a failure upstream. They are
// phrased as advice, so that a detail such as "gave up before retrying" does not count.
var remedyPhrases = []string{"try again", "retry after", "retry in", "retry later", "check ", "wait ", "base_url", "base URL"}

// wantUpstreamError checks a read that found nothing valid to serve: the status, a message that
// names Lark and the app and says what to do, and no token.
func wantUpstreamError(t *testing.T, what string, r tokenRead, status int, appID string) {
	t.Helper()
	if r.err != nil || r.status != status {
		t.Errorf("%s: %v; want HTTP %d", what, r, status)
		return
	}
	if r.token != "" {
		t.Errorf("%s: an error answer carries a token", what)
	}
	t.Logf("%s: HTTP %d %s", what, r.status, strings.Join(strings.Fields(r.errors), " "))
	if !strings.Contains(r.errors, "Lark") || !strings.Contains(r.errors, appID) {
		t.Errorf("%s: the message does not name Lark and the app %s: %s", what, appID, r.errors)
	}
	remedy := false
	for _, p := range remedyPhrases {
		remedy = remedy || strings.Contains(strings.ToLower(r.errors), strings.ToLower(p))
	}
	if !remedy {
		t.Errorf("%s: the message does not say what to do (none of %q): %s", what, remedyPhrases, r.errors)
	}
}

// jsonString renders v for a failure message.
func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
