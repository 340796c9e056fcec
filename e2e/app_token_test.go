//go:build e2e

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestPluginRegisteredBySHA256AndVersion(t *testing.T) {
	info := vaultJSON(t, rootToken, "plugin", "info", "-version="+pluginVersion, "secret", pluginName)
	data := info // `vault plugin info` prints the catalog entry itself, not wrapped in "data"
	if data["sha256"] != env.pluginSHA {
		t.Fatalf("catalog sha256 = %v, want %s", data["sha256"], env.pluginSHA)
	}
	if data["version"] != pluginVersion {
		t.Fatalf("catalog version = %v, want %s", data["version"], pluginVersion)
	}
	mount := vaultJSON(t, rootToken, "read", "sys/mounts/"+mountPath)
	md := mount["data"].(map[string]any)
	if md["running_plugin_version"] != pluginVersion {
		t.Fatalf("running_plugin_version = %v, want %s (the plugin must report its version with a leading v)", md["running_plugin_version"], pluginVersion)
	}
	if md["running_sha256"] != env.pluginSHA {
		t.Fatalf("running_sha256 = %v, want %s", md["running_sha256"], env.pluginSHA)
	}
}

func TestAppTokenThroughCLIAndHTTP(t *testing.T) {
	const app = "cli_e2etokens"
	newApp(t, app)
	before := emulatorAppCount(t, app, "app_access_token")

	first := vaultJSON(t, rootToken, "read", mountPath+"/app-token/"+app)
	leaseID, _ := first["lease_id"].(string)
	if !strings.HasPrefix(leaseID, mountPath+"/app-token/"+app+"/") {
		t.Fatalf("lease_id = %q, want a lease under %s/app-token/%s/", leaseID, mountPath, app)
	}
	if first["renewable"] != false {
		t.Fatalf("renewable = %v, want false", first["renewable"])
	}
	ttl := first["lease_duration"].(float64)
	// 90 s token minus the 10 s margin configured in TestMain; never 0.
	if ttl < 1 || ttl > (emuTokenTTL-10*time.Second).Seconds() {
		t.Fatalf("lease_duration = %v, want between 1 and %v", ttl, (emuTokenTTL - 10*time.Second).Seconds())
	}
	data := first["data"].(map[string]any)
	token, _ := data["access_token"].(string)
	remember(token, "app_access_token of "+app)
	if !strings.HasPrefix(token, "t-") {
		t.Fatalf("access_token = %q…, want a t- token from the emulator", token[:min(len(token), 4)])
	}
	if data["token_type"] != "app_access_token" || data["app_id"] != app {
		t.Fatalf("unexpected data: token_type=%v app_id=%v", data["token_type"], data["app_id"])
	}
	if exp := data["expires_in"].(float64); exp <= ttl || exp > emuTokenTTL.Seconds() {
		t.Fatalf("expires_in = %v, want above the lease TTL %v and at most %v", exp, ttl, emuTokenTTL.Seconds())
	}

	// The lease is real and non-renewable.
	lookup := vaultJSON(t, rootToken, "lease", "lookup", leaseID)
	if lookup["data"].(map[string]any)["renewable"] != false {
		t.Fatalf("lease lookup says renewable: %v", lookup)
	}
	if out, err := runVault(rootToken, "lease", "renew", leaseID); err == nil {
		t.Fatalf("renewing a non-renewable lease succeeded:\n%s", out)
	}

	// A second read is served from the cache: same token, a new lease, no upstream call.
	second := vaultJSON(t, rootToken, "read", mountPath+"/app-token/"+app)
	if second["data"].(map[string]any)["access_token"] != token {
		t.Fatal("second read returned a different token; the cached one should be reused")
	}
	if second["lease_id"] == leaseID {
		t.Fatal("second read returned the same lease id")
	}
	if got := emulatorAppCount(t, app, "app_access_token") - before; got != 1 {
		t.Fatalf("upstream app_access_token calls = %d, want 1", got)
	}

	// Over raw HTTP, the tenant token.
	status, body := vaultHTTP(t, rootToken, http.MethodGet, mountPath+"/tenant-token/"+app, nil)
	if status != http.StatusOK {
		t.Fatalf("GET tenant-token: HTTP %d: %v", status, body)
	}
	if body["renewable"] != false || body["lease_id"] == "" || body["lease_duration"].(float64) < 1 {
		t.Fatalf("tenant-token lease: renewable=%v lease_id=%v lease_duration=%v", body["renewable"], body["lease_id"], body["lease_duration"])
	}
	tdata := body["data"].(map[string]any)
	remember(tdata["access_token"].(string), "tenant_access_token of "+app)
	if tdata["token_type"] != "tenant_access_token" || !strings.HasPrefix(tdata["access_token"].(string), "t-") {
		t.Fatalf("tenant-token data: token_type=%v", tdata["token_type"])
	}

	// Revoking the lease succeeds and costs nothing upstream.
	mustVault(t, rootToken, "lease", "revoke", "-sync", leaseID)
	if out, err := runVault(rootToken, "lease", "lookup", leaseID); err == nil {
		t.Fatalf("lease still exists after revoke:\n%s", out)
	}
}

func TestAppTokenRotatesAfterReuseWindow(t *testing.T) {
	const app = "cli_e2erotate"
	newApp(t, app)
	before := emulatorAppCount(t, app, "app_access_token")

	first := vaultJSON(t, rootToken, "read", mountPath+"/app-token/"+app)
	t1 := first["data"].(map[string]any)["access_token"].(string)
	remember(t1, "app_access_token of "+app)
	fetched := time.Now()

	// Move the emulator's clock on by 40 s: its token now has under 30 s left whenever the plugin
	// next asks (the plugin's own refresh point for a 90 s token is after 60 s of real time).
	emulator(t, http.MethodPost, "/_emulator/clock/advance", map[string]any{"seconds": 40})

	// Still within the plugin's refresh point: the cached token is served.
	again := vaultJSON(t, rootToken, "read", mountPath+"/app-token/"+app)
	if again["data"].(map[string]any)["access_token"] != t1 {
		t.Fatal("token changed before the refresh point")
	}

	time.Sleep(time.Until(fetched.Add(62 * time.Second)))
	rotated := vaultJSON(t, rootToken, "read", mountPath+"/app-token/"+app)
	t2 := rotated["data"].(map[string]any)["access_token"].(string)
	remember(t2, "app_access_token of "+app)
	if t2 == t1 {
		t.Fatal("token was not replaced after the emulator's reuse window passed")
	}
	if d := rotated["lease_duration"].(float64); d < 60 {
		t.Fatalf("lease of the new token is %v s, want close to 80 s", d)
	}
	if got := emulatorAppCount(t, app, "app_access_token") - before; got != 2 {
		t.Fatalf("upstream calls = %d, want 2 (one per token lifetime)", got)
	}
}

func TestThousandConcurrentColdReadsMakeOneUpstreamCall(t *testing.T) {
	const app = "cli_e2econcurrent"
	newApp(t, app)
	before := emulatorAppCount(t, app, "tenant_access_token")

	const readers = 1000
	// 200 requests in flight at once against one dev server.
	tokens, errs := concurrentTokenReads(t, mountPath+"/tenant-token/"+app, readers, 200)
	if len(errs) > 0 {
		t.Fatalf("%d of %d reads failed, first: %s", len(errs), readers, errs[0])
	}
	if len(tokens) != 1 {
		t.Fatalf("readers saw %d different tokens, want 1", len(tokens))
	}
	for tok := range tokens {
		remember(tok, "tenant_access_token of "+app)
	}
	if got := emulatorAppCount(t, app, "tenant_access_token") - before; got != 1 {
		t.Fatalf("upstream tenant_access_token calls = %d for %d concurrent cold reads, want exactly 1", got, readers)
	}
}

func TestUpstreamFailuresAreNamedAndChangeNothing(t *testing.T) {
	const app = "cli_e2ewrongsecret"
	secret := newApp(t, app)
	wrong := secret + "Wrong"
	remember(wrong, "wrong app_secret of "+app)
	mustVault(t, rootToken, "write", mountPath+"/apps/"+app, "app_secret="+wrong)
	appBefore := vaultJSON(t, rootToken, "read", mountPath+"/apps/"+app)["data"]

	status, body := vaultHTTP(t, rootToken, http.MethodGet, mountPath+"/app-token/"+app, nil)
	msg := fmt.Sprint(body["errors"])
	if status != http.StatusBadGateway || !strings.Contains(msg, "rejected the app secret") || !strings.Contains(msg, "10014") {
		t.Fatalf("wrong secret: HTTP %d %s; want 502 saying the app secret was rejected with code 10014", status, msg)
	}
	if strings.Contains(msg, wrong) || strings.Contains(msg, secret) {
		t.Fatal("the error message contains the app secret")
	}
	appAfter := vaultJSON(t, rootToken, "read", mountPath+"/apps/"+app)["data"]
	if fmt.Sprint(appBefore) != fmt.Sprint(appAfter) {
		t.Fatalf("a failed read changed the stored app:\nbefore %v\nafter  %v", appBefore, appAfter)
	}

	// Unknown to Lark: a different message.
	const ghost = "cli_e2eghost"
	remember("ghostSecret123", "app_secret of "+ghost)
	mustVault(t, rootToken, "write", mountPath+"/apps/"+ghost, "app_secret=ghostSecret123", "base_url="+env.emuURL)
	status, body = vaultHTTP(t, rootToken, http.MethodGet, mountPath+"/tenant-token/"+ghost, nil)
	if msg := fmt.Sprint(body["errors"]); status != http.StatusBadGateway || !strings.Contains(msg, "does not know app") {
		t.Fatalf("unknown app: HTTP %d %s", status, msg)
	}

	// Unreachable: a closed port. Distinct from a rejected secret.
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	const offline = "cli_e2eoffline"
	remember("offlineSecret123", "app_secret of "+offline)
	mustVault(t, rootToken, "write", mountPath+"/apps/"+offline, "app_secret=offlineSecret123", fmt.Sprintf("base_url=http://127.0.0.1:%d", port))
	status, body = vaultHTTP(t, rootToken, http.MethodGet, mountPath+"/app-token/"+offline, nil)
	if msg := fmt.Sprint(body["errors"]); status != http.StatusServiceUnavailable || !strings.Contains(msg, "Lark unreachable") || strings.Contains(msg, "app secret") {
		t.Fatalf("unreachable Lark: HTTP %d %s; want 503 saying Lark is unreachable", status, msg)
	}

	// A 5xx is retried; garbage is not, and leaves nothing cached.
	const flaky = "cli_e2eflaky"
	newApp(t, flaky)
	before := emulatorAppCount(t, flaky, "tenant_access_token")
	emulator(t, http.MethodPost, "/_emulator/failures", map[string]any{"endpoint": "tenant_access_token", "mode": "5xx", "count": 1})
	status, body = vaultHTTP(t, rootToken, http.MethodGet, mountPath+"/tenant-token/"+flaky, nil)
	if status != http.StatusOK {
		t.Fatalf("one 5xx then success: HTTP %d %v", status, body["errors"])
	}
	remember(body["data"].(map[string]any)["access_token"].(string), "tenant_access_token of "+flaky)
	if got := emulatorAppCount(t, flaky, "tenant_access_token") - before; got != 2 {
		t.Fatalf("upstream calls = %d, want 2 (the 5xx and its retry)", got)
	}

	emulator(t, http.MethodPost, "/_emulator/failures", map[string]any{"endpoint": "app_access_token", "mode": "garbage", "count": 1})
	status, body = vaultHTTP(t, rootToken, http.MethodGet, mountPath+"/app-token/"+flaky, nil)
	if msg := fmt.Sprint(body["errors"]); status != http.StatusBadGateway || !strings.Contains(msg, "Lark") {
		t.Fatalf("HTML answer: HTTP %d %s; want 502 naming Lark", status, msg)
	}
	// Nothing was cached: once the short backoff after a failure has passed (Lark is not asked
	// again by every reader meanwhile), the next read fetches a token, with one call.
	calls := emulatorAppCount(t, flaky, "app_access_token")
	deadline := time.Now().Add(15 * time.Second)
	for {
		status, body = vaultHTTP(t, rootToken, http.MethodGet, mountPath+"/app-token/"+flaky, nil)
		if status == http.StatusOK {
			break
		}
		if msg := fmt.Sprint(body["errors"]); status != http.StatusBadGateway || !strings.Contains(msg, "Vault asks again after") || time.Now().After(deadline) {
			t.Fatalf("read after the garbage answer: HTTP %d %s; want 502 naming the backoff, then the token", status, msg)
		}
		time.Sleep(500 * time.Millisecond)
	}
	remember(body["data"].(map[string]any)["access_token"].(string), "app_access_token of "+flaky)
	if got := emulatorAppCount(t, flaky, "app_access_token") - calls; got != 1 {
		t.Fatalf("the recovery cost %d calls at Lark, want 1", got)
	}
	emulator(t, http.MethodDelete, "/_emulator/failures", nil)
}

func TestAppSecretIsWriteOnly(t *testing.T) {
	const app = "cli_e2ewriteonly"
	secret := newApp(t, app)

	out := mustVault(t, rootToken, "read", mountPath+"/apps/"+app)
	if strings.Contains(out, secret) {
		t.Fatal("vault read of the app shows its secret")
	}
	data := vaultJSON(t, rootToken, "read", mountPath+"/apps/"+app)["data"].(map[string]any)
	if _, ok := data["app_secret"]; ok {
		t.Fatal("app read has an app_secret field")
	}
	sum := sha256.Sum256([]byte(secret))
	if data["app_secret_set"] != true || data["app_secret_fingerprint"] != "sha256:"+hex.EncodeToString(sum[:])[:8] {
		t.Fatalf("app_secret_set=%v fingerprint=%v", data["app_secret_set"], data["app_secret_fingerprint"])
	}
	list := mustVault(t, rootToken, "list", mountPath+"/apps")
	if !strings.Contains(list, app) || strings.Contains(list, secret) {
		t.Fatalf("list apps:\n%s", list)
	}
}

func TestBadInputIsRefusedAndStoresNothing(t *testing.T) {
	long := strings.Repeat("a", 500)
	cases := []struct {
		name string
		path string
		body map[string]any
		want string
	}{
		{"not a cli_ id", "apps/app_x", map[string]any{"app_secret": "s3cret"}, "not a Lark app id"},
		{"space in id", "apps/cli_a b", map[string]any{"app_secret": "s3cret"}, "not a Lark app id"},
		{"dot-dot id", "apps/cli_../x", map[string]any{"app_secret": "s3cret"}, "not a Lark app id"},
		{"very long id", "apps/cli_" + long, map[string]any{"app_secret": "s3cret"}, "too long"},
		{"empty secret", "apps/cli_e2ebad1", map[string]any{"app_secret": ""}, "must not be empty"},
		{"missing secret", "apps/cli_e2ebad2", map[string]any{"brand": "lark"}, "app_secret is required"},
		{"secret with newline", "apps/cli_e2ebad3", map[string]any{"app_secret": "abc\n"}, "whitespace"},
		{"huge secret", "apps/cli_e2ebad4", map[string]any{"app_secret": strings.Repeat("x", 5000)}, "too long"},
		{"unknown brand", "apps/cli_e2ebad5", map[string]any{"app_secret": "s3cret", "brand": "slack"}, "brand"},
		{"ftp base url", "apps/cli_e2ebad6", map[string]any{"app_secret": "s3cret", "base_url": "ftp://x"}, "base_url"},
		{"base url with userinfo", "apps/cli_e2ebad7", map[string]any{"app_secret": "s3cret", "base_url": "http://u:p@h"}, "base_url"},
		{"unknown field", "apps/cli_e2ebad8", map[string]any{"app_secret": "s3cret", "app_scret": "typo"}, "unknown field"},
		{"bad config", "config", map[string]any{"lease_safety_margin": "1h"}, "lease_safety_margin"},
		{"unknown config field", "config", map[string]any{"margin": "1m"}, "unknown field"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := vaultHTTP(t, rootToken, http.MethodPost, mountPath+"/"+tc.path, tc.body)
			msg := fmt.Sprint(body["errors"])
			if status != http.StatusBadRequest || !strings.Contains(msg, tc.want) {
				t.Fatalf("HTTP %d %s; want 400 mentioning %q", status, msg, tc.want)
			}
			if strings.Contains(msg, "s3cret") {
				t.Fatal("error message echoes the secret")
			}
		})
	}
	list := mustVault(t, rootToken, "list", mountPath+"/apps")
	if strings.Contains(list, "cli_e2ebad") {
		t.Fatalf("a refused write stored an app:\n%s", list)
	}
	cfg := vaultJSON(t, rootToken, "read", mountPath+"/config")["data"].(map[string]any)
	if cfg["lease_safety_margin"].(float64) != 10 {
		t.Fatalf("a refused config write changed lease_safety_margin to %v", cfg["lease_safety_margin"])
	}
}

func TestTeamPolicyScopesTokens(t *testing.T) {
	newApp(t, "cli_e2ea")
	newApp(t, "cli_e2eb")
	policy := `path "lark/app-token/cli_e2ea" { capabilities = ["read"] }`
	cmdOut, err := runVaultStdin(rootToken, policy, "policy", "write", "lark-team-a", "-")
	if err != nil {
		t.Fatalf("policy write: %v\n%s", err, cmdOut)
	}
	tok := vaultJSON(t, rootToken, "token", "create", "-policy=lark-team-a", "-ttl=10m")
	teamToken := tok["auth"].(map[string]any)["client_token"].(string)

	status, body := vaultHTTP(t, teamToken, http.MethodGet, mountPath+"/app-token/cli_e2ea", nil)
	if status != http.StatusOK {
		t.Fatalf("team token reading its own app: HTTP %d %v", status, body["errors"])
	}
	remember(body["data"].(map[string]any)["access_token"].(string), "app_access_token of cli_e2ea")
	for _, path := range []string{"app-token/cli_e2eb", "tenant-token/cli_e2ea", "apps/cli_e2ea", "config"} {
		if status, _ := vaultHTTP(t, teamToken, http.MethodGet, mountPath+"/"+path, nil); status != http.StatusForbidden {
			t.Fatalf("team token reading %s: HTTP %d, want 403", path, status)
		}
	}
	if out, err := runVault(teamToken, "read", mountPath+"/app-token/cli_e2eb"); err == nil || !strings.Contains(out, "403") {
		t.Fatalf("CLI read of another team's app: err=%v\n%s", err, out)
	}
}

func TestAuditLogHashesTokens(t *testing.T) {
	const app = "cli_e2eaudit"
	newApp(t, app)
	data := vaultJSON(t, rootToken, "read", mountPath+"/app-token/"+app)["data"].(map[string]any)
	remember(data["access_token"].(string), "app_access_token of "+app)
	lines := grepLines(t, env.auditLog, "app-token/"+app)
	if len(lines) < 2 {
		t.Fatalf("audit log has %d entries for the read, want the request and the response", len(lines))
	}
	found := false
	for _, l := range lines {
		if strings.Contains(l, `"access_token":"hmac-sha256:`) {
			found = true
		}
	}
	if !found {
		t.Fatal("no audit entry with an HMAC'd access_token")
	}
}

// TestAppTokenMinTTL: min_ttl reaches the plugin through Vault's listener on a read. The harness's
// tokens live 90 s with a 10 s lease margin: a fresh token satisfies min_ttl=60s, and min_ttl=85s
// (96 s of token life) cannot be had from a token Lark issued moments ago, so it is refused with
// 409 without another call.
func TestAppTokenMinTTL(t *testing.T) {
	const app = "cli_e2emintl"
	newApp(t, app)
	before := emulatorAppCount(t, app, "app_access_token")
	resp := vaultJSON(t, rootToken, "read", mountPath+"/app-token/"+app, "min_ttl=60s")
	remember(resp["data"].(map[string]any)["access_token"].(string), "app_access_token of "+app)
	if d := resp["lease_duration"].(float64); d < 60 {
		t.Fatalf("lease %v s, want at least min_ttl (60 s)", d)
	}
	status, body := vaultHTTP(t, rootToken, http.MethodGet, mountPath+"/app-token/"+app+"?min_ttl=85s", nil)
	if status != http.StatusConflict || !strings.Contains(fmt.Sprint(body["errors"]), "min_ttl") {
		t.Fatalf("min_ttl=85s: HTTP %d %v, want 409 naming min_ttl", status, body)
	}
	if got := emulatorAppCount(t, app, "app_access_token") - before; got != 1 {
		t.Fatalf("upstream calls = %d, want 1", got)
	}
}
