//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The store app of examples/policies/lark-tenant.hcl and two of its tenants, plus a third.
const (
	storeApp     = "cli_c3d4e5f6a7b8c9d0"
	storeTenantA = "2ed263bf32cf1651"
	storeTenantB = "736588c92lxf175d"
	storeTenantC = "9a1b2c3d4e5f6071"
)

// TestStoreAppThroughVaultsListener runs a store (marketplace) app the way Lark does: an emulator of
// the test's own pushes encrypted events to Vault's HTTP listener at /v1/lark/events/<app_id>. The
// app gets its ticket by an event after asking Lark to resend it, serves tenant tokens for three
// tenants with one Lark call per tenant under concurrent readers, lets a per-tenant policy read one
// tenant only, refuses forged, replayed, malformed and oversized events without changing anything,
// and recovers by resend after Lark stops accepting its ticket.
func TestStoreAppThroughVaultsListener(t *testing.T) {
	t.Parallel()
	// The emulator's clock is moved in this test, so it is the test's own; tickets come only when
	// asked for, and a refused delivery is not retried (a forger does not retry either).
	emu := startOwnEmulator(t, "-app-token-ttl", emuTokenTTL.String(), "-reuse-window", emuReuseWindow.String(),
		"-ticket-interval", "1000h", "-event-retry-delays", "none", "-event-timeout", "5s")
	secret := fmt.Sprintf("storeSecret%d", time.Now().UnixNano())
	verification := fmt.Sprintf("verifyTok%d", time.Now().UnixNano())
	encryptKey := fmt.Sprintf("encryptKey%d", time.Now().UnixNano())
	for v, what := range map[string]string{secret: "app_secret", verification: "verification_token", encryptKey: "encrypt_key"} {
		remember(v, what+" of "+storeApp)
	}
	eventURL := env.vaultAddr + "/v1/" + mountPath + "/events/" + storeApp
	emuControl(t, emu, http.MethodPost, "/_emulator/apps", map[string]any{
		"app_id": storeApp, "app_secret": secret, "app_type": "store", "event_url": eventURL,
		"verification_token": verification, "encrypt_key": encryptKey, "event_types": []string{"app_open"},
	})
	mustVault(t, rootToken, "write", mountPath+"/apps/"+storeApp, "app_secret="+secret, "base_url="+emu,
		"app_type=store", "verification_token="+verification, "encrypt_key="+encryptKey)
	app := vaultJSON(t, rootToken, "read", mountPath+"/apps/"+storeApp)["data"].(map[string]any)
	if app["app_type"] != "store" || app["encrypt_key_set"] != true || app["events_path"] != "/v1/"+mountPath+"/events/"+storeApp {
		t.Fatalf("app settings: %v", app)
	}

	// Saving the Request URL in the console: Lark's encrypted challenge, answered by Vault.
	check := emuControl(t, emu, http.MethodPost, "/_emulator/apps/"+storeApp+"/url-verification", map[string]any{})
	if check["challenge_answered"] != true || check["encrypted"] != true {
		t.Fatalf("URL verification: %v", check)
	}

	// No ticket yet: a clear 503 at once, and Lark is asked to push one, which arrives encrypted
	// through Vault's listener.
	status, body := vaultHTTP(t, rootToken, http.MethodGet, mountPath+"/app-token/"+storeApp, nil)
	if status != http.StatusServiceUnavailable || !strings.Contains(fmt.Sprint(body["errors"]), "waiting for Lark's app_ticket") ||
		!strings.Contains(fmt.Sprint(body["errors"]), "Lark was asked to resend it") {
		t.Fatalf("app token without a ticket: HTTP %d %v", status, body["errors"])
	}
	waitFor(t, 30*time.Second, "the app_ticket event", func() bool {
		status, _ := vaultHTTP(t, rootToken, http.MethodGet, mountPath+"/app-token/"+storeApp, nil)
		return status == http.StatusOK
	})
	// The emulator files a delivery once Vault's answer is back, a moment after Vault used it.
	waitFor(t, 10*time.Second, "the ticket delivery to be filed", func() bool {
		ev := storeEvents(t, emu, "app_ticket")
		return len(ev) == 1 && ev[0]["state"] != "pending"
	})
	ticketEvents := storeEvents(t, emu, "app_ticket")
	if len(ticketEvents) != 1 || ticketEvents[0]["encrypted"] != true || ticketEvents[0]["state"] != "delivered" {
		t.Fatalf("app_ticket deliveries: %v", ticketEvents)
	}
	rememberTickets(t, emu)
	ticket := vaultJSON(t, rootToken, "read", mountPath+"/apps/"+storeApp+"/ticket")["data"].(map[string]any)
	if ticket["ticket_set"] != true || ticket["source"] != "event" {
		t.Fatalf("ticket status: %v", ticket)
	}

	// Three tenants install the app; app_open tells Vault about each.
	for _, tk := range []string{storeTenantA, storeTenantB, storeTenantC} {
		out := emuControl(t, emu, http.MethodPost, "/_emulator/apps/"+storeApp+"/tenants", map[string]any{"tenant_key": tk})
		if ev, _ := out["event"].(map[string]any); ev == nil || ev["state"] != "delivered" {
			t.Fatalf("app_open of %s: %v", tk, out)
		}
	}
	_, listed := vaultHTTP(t, rootToken, "LIST", mountPath+"/tenants/"+storeApp, nil)
	if keys := listed["data"].(map[string]any)["keys"]; fmt.Sprint(keys) != fmt.Sprint([]string{storeTenantA, storeTenantB, storeTenantC}) {
		t.Fatalf("tenants: %v", listed)
	}

	// Concurrent readers of every tenant: one Lark call per tenant, one token per tenant.
	for _, tk := range []string{storeTenantA, storeTenantB, storeTenantC} {
		tokens, errs := concurrentTokenReads(t, mountPath+"/tenant-token/"+storeApp+"/"+tk, 60, 20)
		if len(errs) > 0 || len(tokens) != 1 {
			t.Fatalf("tenant %s: %d distinct tokens, errors %v", tk, len(tokens), errs)
		}
		for tok := range tokens {
			remember(tok, "tenant_access_token of "+storeApp+"/"+tk)
			if ok, code := larkAccepts(t, emu, tok); !ok {
				t.Fatalf("Lark does not accept tenant %s's token: code %d", tk, code)
			}
		}
	}
	for _, ti := range storeTenants(t, emu) {
		if ti["tenant_access_token_calls"].(float64) != 1 {
			t.Fatalf("tenant %v: %v tenant_access_token calls, want 1", ti["tenant_key"], ti["tenant_access_token_calls"])
		}
	}
	if n := emuControl(t, emu, http.MethodGet, "/_emulator/apps/"+storeApp+"/counters", nil)["store_app_access_token"].(float64); n != 1 {
		t.Fatalf("store app token calls = %v, want 1 (one app token serves every tenant)", n)
	}
	status, body = vaultHTTP(t, rootToken, http.MethodGet, mountPath+"/tenant-token/"+storeApp+"/notatenant0000", nil)
	if status != http.StatusBadRequest || !strings.Contains(fmt.Sprint(body["errors"]), `tenant "notatenant0000"`) {
		t.Fatalf("unknown tenant: HTTP %d %v", status, body["errors"])
	}

	// examples/policies/lark-tenant.hcl, unchanged: that tenant's token and nothing else.
	policyFile := filepath.Join(repoRoot(t), "examples", "policies", "lark-tenant.hcl")
	mustVault(t, rootToken, "policy", "write", "lark-tenant-e2e", policyFile)
	tenantSvc := vaultJSON(t, rootToken, "token", "create", "-policy=lark-tenant-e2e", "-ttl=10m")["auth"].(map[string]any)["client_token"].(string)
	remember(tenantSvc, "Vault token of the tenant service")
	for path, want := range map[string]int{
		"tenant-token/" + storeApp + "/" + storeTenantA: 200,
		"tenant-token/" + storeApp + "/" + storeTenantB: 403,
		"app-token/" + storeApp:                         403,
		"apps/" + storeApp + "/ticket":                  403,
	} {
		if status, _ := vaultHTTP(t, tenantSvc, http.MethodGet, mountPath+"/"+path, nil); status != want {
			t.Errorf("tenant policy: GET %s: HTTP %d, want %d", path, status, want)
		}
	}
	if status, _ := vaultHTTP(t, tenantSvc, "LIST", mountPath+"/tenants/"+storeApp, nil); status != 403 {
		t.Errorf("tenant policy: LIST tenants: HTTP %d, want 403", status)
	}

	// Refused, each with the same answer, changing nothing: what Vault holds for the app before and
	// after must be identical.
	state := func() string {
		tk := vaultJSON(t, rootToken, "read", mountPath+"/apps/"+storeApp+"/ticket")["data"]
		_, tenants := vaultHTTP(t, rootToken, "LIST", mountPath+"/tenants/"+storeApp, nil)
		b, _ := json.Marshal([]any{tk, tenants["data"]})
		return string(b)
	}
	before := state()
	now := time.Now().Unix()
	ticketEvent := func(token, appID, id string) map[string]any {
		return map[string]any{"ts": fmt.Sprintf("%d.0000000", now), "uuid": id, "token": token, "type": "event_callback",
			"event": map[string]any{"app_id": appID, "app_ticket": "forged-ticket-value", "type": "app_ticket"}}
	}
	seq := ticketEvents[0]["seq"]
	refusals := []struct {
		name   string
		push   map[string]any
		status float64
	}{
		{"forged with another key", map[string]any{"event": ticketEvent(verification, storeApp, "forged-1"), "encrypt_key": "not-the-key"}, 400},
		{"wrong verification token", map[string]any{"event": ticketEvent("wrong", storeApp, "forged-2")}, 400},
		{"plain body", map[string]any{"event": ticketEvent(verification, storeApp, "forged-3"), "encrypt": false}, 400},
		{"another app's event", map[string]any{"event": ticketEvent(verification, "cli_otherapp", "forged-4")}, 400},
		{"replayed delivery", map[string]any{"replay_of": seq}, 400},
		{"malformed event", map[string]any{"event": map[string]any{"hello": "world"}}, 400},
		{"undecryptable body", map[string]any{"raw_body": `{"encrypt":"AAAAAAAA"}`}, 400},
		{"oversized", map[string]any{"event": ticketEvent(verification, storeApp, "forged-5"), "pad_bytes": 600 << 10}, 400},
	}
	for _, r := range refusals {
		d := emuControl(t, emu, http.MethodPost, "/_emulator/apps/"+storeApp+"/events/push", r.push)
		attempts := d["attempts"].([]any)
		last := attempts[len(attempts)-1].(map[string]any)
		if last["status"] != r.status || !jsonEqual(last["response"].(string), `{"error":"event refused"}`) {
			t.Errorf("%s: HTTP %v %q, want %v and the one refusal", r.name, last["status"], last["response"], r.status)
		}
		if after := state(); after != before {
			t.Fatalf("%s changed what Vault holds:\nbefore %s\nafter  %s", r.name, before, after)
		}
	}
	// The same probes sent to an app id Vault does not hold read exactly alike: the answers must
	// not tell a stranger which app ids are configured.
	for name, body := range map[string]map[string]any{
		"oversized": {"encrypt": strings.Repeat("A", 600<<10)},
		"malformed": {"hello": "world"},
	} {
		for _, appID := range []string{storeApp, "cli_e2enosuchapp"} {
			status, got := vaultHTTP(t, "", http.MethodPost, mountPath+"/events/"+appID, body)
			if status != http.StatusBadRequest || len(got) != 1 || got["error"] != "event refused" {
				t.Errorf("%s to %s: HTTP %d %v, want 400 and the one refusal", name, appID, status, got)
			}
		}
	}
	if after := state(); after != before {
		t.Fatalf("probes changed what Vault holds:\nbefore %s\nafter  %s", before, after)
	}
	// Not JSON at all: Vault's own HTTP layer refuses it before the plugin.
	d := emuControl(t, emu, http.MethodPost, "/_emulator/apps/"+storeApp+"/events/push", map[string]any{"raw_body": "not json"})
	if attempts := d["attempts"].([]any); attempts[len(attempts)-1].(map[string]any)["status"] != float64(400) || state() != before {
		t.Fatalf("not-JSON body: %v", d["attempts"])
	}

	// Lark stops accepting the ticket (three hours pass at Lark). When the app token is next due,
	// Vault asks Lark to resend, answers 503 meanwhile, and recovers with the new ticket.
	resendsBefore := emuControl(t, emu, http.MethodGet, "/_emulator/apps/"+storeApp+"/counters", nil)["app_ticket_resend"].(float64)
	emuControl(t, emu, http.MethodPost, "/_emulator/clock/advance", map[string]any{"seconds": 3 * 3600})
	sawWait := false
	waitFor(t, 3*time.Minute, "recovery by resend", func() bool {
		status, body := vaultHTTP(t, rootToken, http.MethodGet, mountPath+"/tenant-token/"+storeApp+"/"+storeTenantA, nil)
		if status == http.StatusServiceUnavailable && strings.Contains(fmt.Sprint(body["errors"]), "app_ticket") {
			sawWait = true
			return false
		}
		if status != http.StatusOK {
			t.Fatalf("tenant token while recovering: HTTP %d %v", status, body["errors"])
		}
		tok := body["data"].(map[string]any)["access_token"].(string)
		remember(tok, "tenant_access_token of "+storeApp+"/"+storeTenantA)
		ok, _ := larkAccepts(t, emu, tok)
		return ok
	})
	rememberTickets(t, emu)
	resends := emuControl(t, emu, http.MethodGet, "/_emulator/apps/"+storeApp+"/counters", nil)["app_ticket_resend"].(float64)
	if resends <= resendsBefore {
		t.Fatalf("recovered without asking Lark to resend (resends %v → %v, saw the wait: %v)", resendsBefore, resends, sawWait)
	}
	if ticket := vaultJSON(t, rootToken, "read", mountPath+"/apps/"+storeApp+"/ticket")["data"].(map[string]any); ticket["received_at"] == nil {
		t.Fatalf("ticket after recovery: %v", ticket)
	}
}

// TestStoreRevocationEventFlagsTheGrantBeforeAnyRead: Lark announces a revoked authorization; the
// grant is reauth_required with Lark's reason at once, without a refresh token being spent, and
// the next read says why.
func TestStoreRevocationEventFlagsTheGrantBeforeAnyRead(t *testing.T) {
	t.Parallel()
	const app = "cli_e2erevokeevent"
	secret := newApp(t, app)
	verification := fmt.Sprintf("verifyRevoke%d", time.Now().UnixNano())
	encryptKey := fmt.Sprintf("keyRevoke%d", time.Now().UnixNano())
	remember(verification, "verification_token of "+app)
	remember(encryptKey, "encrypt_key of "+app)
	emulator(t, http.MethodPost, "/_emulator/apps", map[string]any{
		"app_id": app, "app_secret": secret, "event_url": env.vaultAddr + "/v1/" + mountPath + "/events/" + app,
		"verification_token": verification, "encrypt_key": encryptKey, "event_types": []string{"auth.user_access_token.revoked_v4"},
	})
	mustVault(t, rootToken, "write", mountPath+"/apps/"+app, "accounts_base_url="+env.emuURL,
		"verification_token="+verification, "encrypt_key="+encryptKey)
	refresh := mintUserGrant(t, env.emuURL, app, "revoked_erin", "Erin")
	mustVault(t, rootToken, "write", mountPath+"/user-token/"+app+"/erin", "refresh_token="+refresh)
	spent := emulatorAppCount(t, app, "refresh")

	// The event must find erin's grant through the who index in Vault's storage, not through the
	// list of every grant the plugin falls back to before the indexes are built: wait until they
	// cover every grant (Vault's own sweep builds them; a run here hurries it along).
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Second) {
		st := vaultJSON(t, rootToken, "read", mountPath+"/status")["data"].(map[string]any)
		if st["grant_levels_complete"] == true {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the grant indexes of %s are not built after 2 minutes of sweeps", mountPath)
		}
		_, _ = runVault(rootToken, "write", "-f", mountPath+"/sweep") // "already running" is fine too
	}

	out := emulator(t, http.MethodPost, "/_emulator/grants/revoke", map[string]any{"app_id": app, "reason": "security"})
	events, _ := out["events"].([]any)
	if len(events) != 1 || events[0].(map[string]any)["state"] != "delivered" || events[0].(map[string]any)["encrypted"] != true {
		t.Fatalf("revocation event: %v", out)
	}

	_, list := vaultHTTP(t, rootToken, "LIST", mountPath+"/user-token/"+app, nil)
	erin := list["data"].(map[string]any)["grants"].(map[string]any)["erin"].(map[string]any)
	if erin["state"] != "reauth_required" || erin["reauth_end"] != "revoked" || !strings.Contains(erin["reauth_reason"].(string), "risk control") {
		t.Fatalf("grant after the revocation event: %v", erin)
	}
	if n := emulatorAppCount(t, app, "refresh"); n != spent {
		t.Fatalf("refresh calls %d → %d: the event must not spend a refresh token", spent, n)
	}
	status, body := vaultHTTP(t, rootToken, http.MethodGet, mountPath+"/user-token/"+app+"/erin", nil)
	if status != http.StatusConflict || !strings.Contains(fmt.Sprint(body["errors"]), "risk control") {
		t.Fatalf("read after revocation: HTTP %d %v", status, body["errors"])
	}
	if n := emulatorAppCount(t, app, "refresh"); n != spent {
		t.Fatalf("the read spent a refresh token: %d → %d", spent, n)
	}
}

// TestStoreV3ClientCredentialsTenantToken: a self-built app with tenant_token_endpoint=v3 gets its
// tenant token from accounts…/oauth/v3/token (client_credentials): a JWT of a few KB that Lark
// accepts, fetched once and then served from the cache.
func TestStoreV3ClientCredentialsTenantToken(t *testing.T) {
	t.Parallel()
	const app = "cli_e2ev3tenant"
	newApp(t, app)
	mustVault(t, rootToken, "write", mountPath+"/apps/"+app, "tenant_token_endpoint=v3", "accounts_base_url="+env.emuURL)
	first := vaultJSON(t, rootToken, "read", mountPath+"/tenant-token/"+app)["data"].(map[string]any)
	tok := first["access_token"].(string)
	remember(tok, "v3 tenant_access_token of "+app)
	if !strings.HasPrefix(tok, "eyJ") || len(tok) < 1000 {
		t.Fatalf("v3 tenant token is not a JWT of a few KB: %d bytes", len(tok))
	}
	if ok, code := larkAccepts(t, env.emuURL, tok); !ok {
		t.Fatalf("Lark does not accept the v3 tenant token: code %d", code)
	}
	second := vaultJSON(t, rootToken, "read", mountPath+"/tenant-token/"+app)["data"].(map[string]any)
	if second["access_token"] != tok {
		t.Fatal("second read fetched a new token instead of serving the cached one")
	}
	if n := emulatorAppCount(t, app, "client_credentials"); n != 1 {
		t.Fatalf("client_credentials calls = %d, want 1", n)
	}
	if n := emulatorAppCount(t, app, "tenant_access_token"); n != 0 {
		t.Fatalf("the legacy endpoint was called %d times", n)
	}
}

func storeEvents(t *testing.T, emu, eventType string) []map[string]any {
	t.Helper()
	out := emuControl(t, emu, http.MethodGet, "/_emulator/apps/"+storeApp+"/events?type="+eventType, nil)
	var list []map[string]any
	for _, e := range out["events"].([]any) {
		list = append(list, e.(map[string]any))
	}
	return list
}

func storeTenants(t *testing.T, emu string) []map[string]any {
	t.Helper()
	var list []map[string]any
	for _, ti := range emuControl(t, emu, http.MethodGet, "/_emulator/apps/"+storeApp+"/tenants", nil)["tenants"].([]any) {
		list = append(list, ti.(map[string]any))
	}
	return list
}

// rememberTickets adds every app_ticket the emulator pushed to the leak check.
func rememberTickets(t *testing.T, emu string) {
	t.Helper()
	for _, tk := range emuControl(t, emu, http.MethodGet, "/_emulator/apps/"+storeApp+"/tickets", nil)["tickets"].([]any) {
		remember(tk.(map[string]any)["ticket"].(string), "app_ticket of "+storeApp)
	}
}

func jsonEqual(a, b string) bool {
	var x, y any
	return json.Unmarshal([]byte(a), &x) == nil && json.Unmarshal([]byte(b), &y) == nil && reflect.DeepEqual(x, y)
}
