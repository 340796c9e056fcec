//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestUserTokenBrowserFlowThroughCLI(t *testing.T) {
	const app = "cli_e2eoauth"
	newOAuthApp(t, app, "scopes=im:message")
	larkUser(t, "e2e_ada", "Ada Lovelace")
	before := emulatorCount(t, "code_exchange")

	p, code, state := browserFlow(t, rootToken, mountPath+"/oauth/"+app+"/authorize", "user=ada")
	wantPage(t, p, http.StatusOK, []string{"Authorized", app, "Ada Lovelace", `slot &#34;ada&#34;`}, code, state)
	if got := emulatorCount(t, "code_exchange") - before; got != 1 {
		t.Fatalf("code exchanges at Lark = %d, want 1", got)
	}

	// The token, with the CLI.
	out, data := readUserToken(t, rootToken, app, "ada")
	tok := data["access_token"].(string)
	mustContainNone(t, "the callback page", p.body, tok)
	leaseID, _ := out["lease_id"].(string)
	if !strings.HasPrefix(leaseID, mountPath+"/user-token/"+app+"/ada/") || out["renewable"] != false {
		t.Fatalf("lease_id=%q renewable=%v, want a non-renewable lease under user-token/%s/ada/", leaseID, out["renewable"], app)
	}
	if d := out["lease_duration"].(float64); d < 1 || d > (emuUserTokenTTL-userLeaseMargin).Seconds() {
		t.Fatalf("lease_duration = %v, want at most %v", d, (emuUserTokenTTL - userLeaseMargin).Seconds())
	}
	if data["token_type"] != "user_access_token" || data["user"] != "ada" || data["name"] != "Ada Lovelace" {
		t.Fatalf("token_type=%v user=%v name=%v", data["token_type"], data["user"], data["name"])
	}
	if sc, _ := data["scope"].(string); !strings.Contains(sc, "im:message") || !strings.Contains(sc, "offline_access") {
		t.Fatalf("scope = %q, want im:message and offline_access", sc)
	}
	openID, _ := data["open_id"].(string)
	authorizedAt, err := time.Parse(time.RFC3339, data["authorized_at"].(string))
	if err != nil || time.Since(authorizedAt) > time.Minute {
		t.Fatalf("authorized_at = %v", data["authorized_at"])
	}
	if data["grant_expires_at"] != authorizedAt.Add(365*24*time.Hour).UTC().Format(time.RFC3339) {
		t.Fatalf("grant_expires_at = %v, want authorized_at + 365 days", data["grant_expires_at"])
	}

	// Lark accepts the token, as the user who signed in; its grant listing shows the grant.
	if status, lcode, who := userInfo(t, tok); status != http.StatusOK || lcode != 0 || who != openID || !strings.HasPrefix(who, "ou_") {
		t.Fatalf("user_info with the token: HTTP %d code %d open_id %q, want 200/0/%q", status, lcode, who, openID)
	}
	grants := larkGrants(t, app, "e2e_ada")
	if len(grants) != 1 || grants[0]["status"] != "active" || grants[0]["open_id"] != openID {
		t.Fatalf("emulator grants of ada: %v", grants)
	}

	// A second read is the same token (not due for a refresh).
	if _, again := readUserToken(t, rootToken, app, "ada"); again["access_token"] != tok {
		t.Fatal("second read returned a different token before the refresh point")
	}

	// vault list, plain, with key_info, and as JSON.
	list := mustVault(t, rootToken, "list", mountPath+"/user-token/"+app)
	if !strings.Contains(list, "ada") {
		t.Fatalf("vault list:\n%s", list)
	}
	detailed := mustVault(t, rootToken, "list", "-detailed", mountPath+"/user-token/"+app)
	mustContainNone(t, "vault list -detailed", detailed, tok, code, state)
	info := slots(t, app)["ada"]
	if info == nil || info["state"] != "ok" || info["open_id"] != openID || info["name"] != "Ada Lovelace" || info["reauth_required"] != false {
		t.Fatalf("key_info of ada: %v", info)
	}
	for _, k := range []string{"authorized_at", "grant_expires_at", "refresh_expires_at", "access_expires_at", "last_refresh_at"} {
		if s, _ := info[k].(string); s == "" {
			t.Fatalf("key_info of ada has no %s: %v", k, info)
		}
	}
	// The table keeps to a few columns (120 characters); JSON with -detailed has every field.
	if !strings.Contains(detailed, "ada") || !strings.Contains(detailed, "Ada Lovelace") || !strings.Contains(detailed, "grant_expires_at") {
		t.Fatalf("vault list -detailed does not show the slot's status:\n%s", detailed)
	}
	for _, line := range strings.Split(detailed, "\n") {
		if len(line) > 120 {
			t.Fatalf("vault list -detailed is wider than 120 columns:\n%s", detailed)
		}
	}
	asJSON := mustVault(t, rootToken, "list", "-detailed", "-format=json", mountPath+"/user-token/"+app)
	mustContainNone(t, "vault list -detailed -format=json", asJSON, tok, code, state)
	if !strings.Contains(asJSON, `"grants"`) || !strings.Contains(asJSON, openID) || !strings.Contains(asJSON, `"refresh_expires_at"`) {
		t.Fatalf("vault list -detailed -format=json does not keep every field:\n%s", asJSON)
	}

	// The app's own read shows no user token, code or state.
	appOut := mustVault(t, rootToken, "read", mountPath+"/apps/"+app)
	mustContainNone(t, "vault read apps/"+app, appOut, tok, code, state)

	// Revoking a lease ends only that lease: the grant stays, and so does the token at Lark.
	mustVault(t, rootToken, "lease", "revoke", "-sync", leaseID)
	if _, again := readUserToken(t, rootToken, app, "ada"); again["access_token"] != tok {
		t.Fatal("the token changed after a lease was revoked")
	}
	if g := larkGrants(t, app, "e2e_ada"); g[0]["status"] != "active" {
		t.Fatalf("revoking a lease revoked the grant at Lark: %v", g)
	}

	// The grant lives in Vault's storage: a restarted plugin serves the same token.
	mustVault(t, rootToken, "plugin", "reload", "-type=secret", "-plugin="+pluginName)
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, body := vaultHTTP(t, rootToken, http.MethodGet, mountPath+"/user-token/"+app+"/ada", nil)
		if status == http.StatusOK {
			if body["data"].(map[string]any)["access_token"] != tok {
				t.Fatal("the reloaded plugin serves a different token")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("read after plugin reload: HTTP %d %v", status, body["errors"])
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Deleting forgets the grant and revokes it at Lark.
	mustVault(t, rootToken, "delete", mountPath+"/user-token/"+app+"/ada")
	if _, ok := slots(t, app)["ada"]; ok {
		t.Fatal("the slot is still listed after delete")
	}
	if g := larkGrants(t, app, "e2e_ada"); len(g) != 1 || g[0]["status"] != "revoked" {
		t.Fatalf("emulator grant after delete: %v, want revoked", g)
	}
	if status, lcode, _ := userInfo(t, tok); status == http.StatusOK && lcode == 0 {
		t.Fatal("Lark still accepts the access token after the grant was deleted")
	}
	status, body := vaultHTTP(t, rootToken, http.MethodGet, mountPath+"/user-token/"+app+"/ada", nil)
	if msg := fmt.Sprint(body["errors"]); status != http.StatusNotFound || !strings.Contains(msg, "no Lark grant") || !strings.Contains(msg, "oauth/"+app+"/authorize") {
		t.Fatalf("read after delete: HTTP %d %s; want 404 saying there is no grant and how to start one", status, msg)
	}
	// The CLI: a second delete says there is nothing to delete; a read prints Vault's own line for
	// any 404 (the vault CLI drops a 404's message on read).
	if out, err := runVault(rootToken, "delete", mountPath+"/user-token/"+app+"/ada"); err == nil || !strings.Contains(out, "Code: 404") || !strings.Contains(out, "nothing was deleted") {
		t.Fatalf("second delete: %v\n%s; want an error with 404 and the message", err, out)
	}
	if out, err := runVault(rootToken, "read", mountPath+"/user-token/"+app+"/ada"); err == nil || !strings.Contains(out, "No value found at "+mountPath+"/user-token/"+app+"/ada") {
		t.Fatalf("CLI read after delete: %v\n%s", err, out)
	}
}

func TestUserTokenRefreshedOnceExpiredAtLark(t *testing.T) {
	const app = "cli_e2euserrefresh"
	newOAuthApp(t, app)
	larkUser(t, "e2e_grace", "Grace Hopper")
	p, _, _ := browserFlow(t, rootToken, mountPath+"/oauth/"+app+"/authorize/grace")
	wantPage(t, p, http.StatusOK, []string{"Authorized"})

	_, first := readUserToken(t, rootToken, app, "grace")
	t1 := first["access_token"].(string)
	openID := first["open_id"].(string)
	if status, lcode, _ := userInfo(t, t1); status != http.StatusOK || lcode != 0 {
		t.Fatalf("user_info with the first token: HTTP %d code %d", status, lcode)
	}
	refreshBefore, reuseBefore := emulatorCount(t, "refresh"), emulatorCount(t, "refresh_reuse")

	// Lark's clock moves past the token's expiry: Lark now refuses it.
	emulator(t, http.MethodPost, "/_emulator/clock/advance", map[string]any{"seconds": emuUserTokenTTL.Seconds() + 1})
	if status, lcode, _ := userInfo(t, t1); status != http.StatusBadRequest || lcode != 99991677 {
		t.Fatalf("user_info with the expired token: HTTP %d code %d, want 400/99991677", status, lcode)
	}

	// The plugin goes by its own clock: once the token is inside the refresh window, the next read
	// spends the refresh token and returns a new access token.
	waitForRefreshDue(t, first["expires_at"].(string))
	out, second := readUserToken(t, rootToken, app, "grace")
	t2 := second["access_token"].(string)
	if t2 == t1 {
		t.Fatal("the read after the refresh point returned the old token")
	}
	if got := emulatorCount(t, "refresh") - refreshBefore; got != 1 {
		t.Fatalf("refresh calls = %d, want 1", got)
	}
	if d := out["lease_duration"].(float64); d < 60 || d > (emuUserTokenTTL-userLeaseMargin).Seconds() {
		t.Fatalf("lease of the new token is %v s, want close to %v", d, (emuUserTokenTTL - userLeaseMargin).Seconds())
	}
	if second["open_id"] != openID || second["authorized_at"] != first["authorized_at"] || second["grant_expires_at"] != first["grant_expires_at"] {
		t.Fatalf("identity or grant dates changed on refresh:\nbefore %v\nafter  %v", first, second)
	}
	if status, lcode, who := userInfo(t, t2); status != http.StatusOK || lcode != 0 || who != openID {
		t.Fatalf("user_info with the new token: HTTP %d code %d open_id %q", status, lcode, who)
	}
	if status, lcode, _ := userInfo(t, t1); status != http.StatusBadRequest || lcode != 99991677 {
		t.Fatalf("user_info with the old token after the refresh: HTTP %d code %d, want 400/99991677", status, lcode)
	}

	// The new token is served from storage until its own refresh point.
	if _, third := readUserToken(t, rootToken, app, "grace"); third["access_token"] != t2 {
		t.Fatal("a read right after the refresh returned yet another token")
	}
	if got := emulatorCount(t, "refresh") - refreshBefore; got != 1 {
		t.Fatalf("refresh calls = %d after another read, want still 1", got)
	}
	if got := emulatorCount(t, "refresh_reuse") - reuseBefore; got != 0 {
		t.Fatalf("refresh token reuse attempts = %d, want 0", got)
	}
	info := slots(t, app)["grace"]
	if info["refresh_count"] != float64(1) || info["state"] != "ok" || info["last_refresh_at"] == info["authorized_at"] {
		t.Fatalf("key_info after the refresh: %v", info)
	}
	if g := larkGrants(t, app, "e2e_grace"); len(g) != 1 || g[0]["refreshes"] != float64(1) || g[0]["status"] != "active" {
		t.Fatalf("emulator grant: %v", g)
	}
}

func TestUserToken200ConcurrentReadersAcrossExpiry(t *testing.T) {
	const app = "cli_e2euserherd"
	newOAuthApp(t, app)
	larkUser(t, "e2e_herd", "Herd User")
	p, _, _ := browserFlow(t, rootToken, mountPath+"/oauth/"+app+"/authorize", "user=herd")
	wantPage(t, p, http.StatusOK, []string{"Authorized"})
	_, first := readUserToken(t, rootToken, app, "herd")
	t1 := first["access_token"].(string)
	exp, _ := time.Parse(time.RFC3339, first["expires_at"].(string))
	refreshBefore, reuseBefore := emulatorCount(t, "refresh"), emulatorCount(t, "refresh_reuse")

	// Just before the refresh point the stored token is served and nothing is refreshed.
	time.Sleep(time.Until(exp.Add(-userRefreshWindow - 2*time.Second)))
	if _, d := readUserToken(t, rootToken, app, "herd"); d["access_token"] != t1 {
		t.Fatal("token changed before the refresh point")
	}
	if got := emulatorCount(t, "refresh") - refreshBefore; got != 0 {
		t.Fatalf("refresh calls before the refresh point = %d, want 0", got)
	}

	// Lark's clock moves past the token's expiry; 200 readers come at once, just past the
	// plugin's refresh point.
	emulator(t, http.MethodPost, "/_emulator/clock/advance", map[string]any{"seconds": emuUserTokenTTL.Seconds()})
	if status, lcode, _ := userInfo(t, t1); status != http.StatusBadRequest || lcode != 99991677 {
		t.Fatalf("user_info with the expired token: HTTP %d code %d, want 400/99991677", status, lcode)
	}
	waitForRefreshDue(t, first["expires_at"].(string))
	const readers = 200
	tokens, errs := concurrentTokenReads(t, mountPath+"/user-token/"+app+"/herd", readers, readers)
	for tok := range tokens {
		remember(tok, "user_access_token of "+app+"/herd")
	}
	if len(errs) > 0 {
		t.Fatalf("%d of %d reads failed, first: %s", len(errs), readers, errs[0])
	}
	if len(tokens) != 1 || tokens[t1] != 0 {
		t.Fatalf("readers saw %d tokens (%d saw the old one), want all %d to see the one new token", len(tokens), tokens[t1], readers)
	}
	if got := emulatorCount(t, "refresh") - refreshBefore; got != 1 {
		t.Fatalf("refresh calls = %d for %d concurrent readers, want exactly 1", got, readers)
	}
	if got := emulatorCount(t, "refresh_reuse") - reuseBefore; got != 0 {
		t.Fatalf("refresh token reuse attempts = %d, want 0", got)
	}
	if g := larkGrants(t, app, "e2e_herd"); len(g) != 1 || g[0]["refreshes"] != float64(1) || g[0]["reuse_attempts"] != float64(0) || g[0]["status"] != "active" {
		t.Fatalf("emulator grant: %v, want 1 refresh and 0 reuse attempts", g)
	}
	for tok := range tokens {
		if status, lcode, who := userInfo(t, tok); status != http.StatusOK || lcode != 0 || who != first["open_id"] {
			t.Fatalf("user_info with the refreshed token: HTTP %d code %d open_id %q", status, lcode, who)
		}
	}
	if info := slots(t, app)["herd"]; info["refresh_count"] != float64(1) {
		t.Fatalf("key_info refresh_count = %v, want 1", info["refresh_count"])
	}
}

func TestUserTokenImportThenRevokedAtLark(t *testing.T) {
	const app = "cli_e2euserimport"
	// This app talks to Lark's v2 token endpoint; the others use the default v3.
	newOAuthApp(t, app, "token_endpoint=v2")
	larkUser(t, "e2e_ivan", "Ivan Sutherland")

	minted := emulator(t, http.MethodPost, "/_emulator/grants", map[string]any{"app_id": app, "user_id": "e2e_ivan", "authorized_days_ago": 100})
	rt, _ := minted["refresh_token"].(string)
	remember(rt, "minted refresh_token")
	remember(minted["access_token"].(string), "minted user_access_token")
	mintedAt, err := time.Parse(time.RFC3339Nano, minted["authorized_at"].(string))
	if err != nil || rt == "" {
		t.Fatalf("minted grant: %v (%v)", minted, err)
	}
	authorizedAt := mintedAt.UTC().Truncate(time.Second)
	refreshBefore := emulatorCount(t, "refresh")

	// Import with the CLI, the refresh token on stdin.
	out, err := runVaultStdin(rootToken, rt, "write", "-format=json", mountPath+"/user-token/"+app+"/ivan",
		"refresh_token=-", "authorized_at="+authorizedAt.Format(time.RFC3339))
	if err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	mustContainNone(t, "the import's answer", out, rt, minted["access_token"].(string))
	if strings.Contains(out, "access_token\"") || strings.Contains(out, "refresh_token\"") {
		t.Fatalf("the import's answer has a token field:\n%s", out)
	}
	var imported struct {
		Data     map[string]any `json:"data"`
		Warnings []string       `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(out), &imported); err != nil {
		t.Fatalf("import output: %v\n%s", err, out)
	}
	wantEnd := authorizedAt.Add(365 * 24 * time.Hour).Format(time.RFC3339)
	if imported.Data["grant_expires_at"] != wantEnd || imported.Data["authorized_at"] != authorizedAt.Format(time.RFC3339) {
		t.Fatalf("imported grant: authorized_at=%v grant_expires_at=%v, want %s and %s",
			imported.Data["authorized_at"], imported.Data["grant_expires_at"], authorizedAt.Format(time.RFC3339), wantEnd)
	}
	if imported.Data["open_id"] != minted["open_id"] || imported.Data["name"] != "Ivan Sutherland" || imported.Data["state"] != "ok" {
		t.Fatalf("imported grant: %v", imported.Data)
	}
	if len(imported.Warnings) != 0 {
		t.Fatalf("import with 265 days left warned: %v", imported.Warnings)
	}
	if got := emulatorCount(t, "refresh") - refreshBefore; got != 1 {
		t.Fatalf("refresh calls for the import = %d, want 1 (it spends the imported token at once)", got)
	}
	if info := slots(t, app)["ivan"]; info["grant_expires_at"] != wantEnd {
		t.Fatalf("key_info grant_expires_at = %v, want %s", info["grant_expires_at"], wantEnd)
	}

	_, data := readUserToken(t, rootToken, app, "ivan")
	tok := data["access_token"].(string)
	if tok == minted["access_token"] {
		t.Fatal("the read returned the minted access token; the import should have refreshed it")
	}
	if data["grant_expires_at"] != wantEnd {
		t.Fatalf("read grant_expires_at = %v, want %s", data["grant_expires_at"], wantEnd)
	}
	if status, lcode, who := userInfo(t, tok); status != http.StatusOK || lcode != 0 || who != minted["open_id"] {
		t.Fatalf("user_info with the imported grant's token: HTTP %d code %d open_id %q", status, lcode, who)
	}

	// The spent refresh token cannot be imported again, and a refused import stores nothing.
	status, body := vaultHTTP(t, rootToken, http.MethodPost, mountPath+"/user-token/"+app+"/ivan2", map[string]any{"refresh_token": rt})
	if msg := fmt.Sprint(body["errors"]); status != http.StatusBadRequest || !strings.Contains(msg, "Lark refused the refresh token") || !strings.Contains(msg, "nothing was stored") {
		t.Fatalf("re-import of a spent refresh token: HTTP %d %s", status, msg)
	} else {
		mustContainNone(t, "the refused import's message", msg, rt)
	}
	if _, ok := slots(t, app)["ivan2"]; ok {
		t.Fatal("a refused import stored a slot")
	}

	// A grant close to Lark's 365-day cap imports with a warning.
	late := emulator(t, http.MethodPost, "/_emulator/grants", map[string]any{"app_id": app, "user_id": "e2e_ivan", "authorized_days_ago": 362})
	remember(late["refresh_token"].(string), "minted refresh_token")
	remember(late["access_token"].(string), "minted user_access_token")
	lateAt, _ := time.Parse(time.RFC3339Nano, late["authorized_at"].(string))
	status, body = vaultHTTP(t, rootToken, http.MethodPost, mountPath+"/user-token/"+app+"/ivanlate",
		map[string]any{"refresh_token": late["refresh_token"], "authorized_at": lateAt.UTC().Format(time.RFC3339)})
	if w := fmt.Sprint(body["warnings"]); status != http.StatusOK || !strings.Contains(w, "365 days after the user authorized") ||
		!strings.Contains(w, "The user should authorize again before then") {
		t.Fatalf("import 362 days after authorization: HTTP %d warnings=%v errors=%v", status, body["warnings"], body["errors"])
	}

	lateExpires, _ := body["data"].(map[string]any)["access_expires_at"].(string)

	// Revoked at Lark: the plugin learns it at the next due refresh and every read then says the
	// user must authorize again. The late grant is ended at Lark as if its 365 days were over.
	emulator(t, http.MethodPost, "/_emulator/grants/revoke", map[string]any{"grant_id": minted["grant_id"]})
	emulator(t, http.MethodPost, "/_emulator/grants/expire", map[string]any{"grant_id": late["grant_id"]})
	waitForRefreshDue(t, data["expires_at"].(string))
	refreshBefore = emulatorCount(t, "refresh")
	for i := 0; i < 2; i++ {
		status, body = vaultHTTP(t, rootToken, http.MethodGet, mountPath+"/user-token/"+app+"/ivan", nil)
		msg := fmt.Sprint(body["errors"])
		if status != http.StatusConflict || !strings.Contains(msg, "needs re-authorization") || !strings.Contains(msg, "revoked") ||
			!strings.Contains(msg, "20064") || !strings.Contains(msg, "oauth/"+app+"/authorize user=ivan") {
			t.Fatalf("read %d of a revoked grant: HTTP %d %s; want 409 saying re-authorization is needed", i+1, status, msg)
		}
	}
	if out, err := runVault(rootToken, "read", mountPath+"/user-token/"+app+"/ivan"); err == nil || !strings.Contains(out, "409") || !strings.Contains(out, "authorize again") {
		t.Fatalf("CLI read of a revoked grant: err=%v\n%s", err, out)
	}
	if got := emulatorCount(t, "refresh") - refreshBefore; got != 1 {
		t.Fatalf("refresh calls = %d over three reads of a revoked grant, want 1 (the failure is remembered)", got)
	}
	info := slots(t, app)["ivan"]
	if info["state"] != "reauth_required" || info["reauth_required"] != true || info["reauth_code"] != float64(20064) || info["reauth_reason"] == "" {
		t.Fatalf("key_info of the revoked grant: %v", info)
	}

	waitForRefreshDue(t, lateExpires)
	status, body = vaultHTTP(t, rootToken, http.MethodGet, mountPath+"/user-token/"+app+"/ivanlate", nil)
	if msg := fmt.Sprint(body["errors"]); status != http.StatusConflict || !strings.Contains(msg, "365-day") || !strings.Contains(msg, "20037") {
		t.Fatalf("read of a grant Lark ended: HTTP %d %s; want 409 naming the 365-day limit", status, msg)
	}
	if info := slots(t, app)["ivanlate"]; info["state"] != "reauth_required" || info["reauth_code"] != float64(20037) {
		t.Fatalf("key_info of the ended grant: %v", info)
	}
}
