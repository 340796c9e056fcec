//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The mount's refresh window and lease margin, as TestMain configures them.
const (
	userRefreshWindow = 70 * time.Second
	userLeaseMargin   = 10 * time.Second
)

// browser is what a person's browser does in these tests, minus the following of redirects: each
// hop is made by hand so the test can look at it.
var browser = &http.Client{
	Timeout:       30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func callbackURL() string { return env.vaultAddr + "/v1/" + mountPath + "/oauth/callback" }

// newOAuthApp registers an app in the emulator and in Vault, set up for the browser flow: Lark's
// accounts host is the emulator and Lark redirects to Vault's own callback.
func newOAuthApp(t *testing.T, appID string, extra ...string) {
	t.Helper()
	newApp(t, appID)
	args := append([]string{"write", mountPath + "/apps/" + appID,
		"redirect_uri=" + callbackURL(), "accounts_base_url=" + env.emuURL}, extra...)
	mustVault(t, rootToken, args...)
}

// larkUser registers a Lark user in the emulator and signs them in: the emulator's authorize page
// approves as this user from now on.
func larkUser(t *testing.T, userID, name string) {
	t.Helper()
	emulator(t, http.MethodPost, "/_emulator/users", map[string]string{"user_id": userID, "name": name})
}

// authorizeURL starts an authorization with the CLI (vault write <path> <args…>) and returns the
// authorize URL and the state in it, after checking the URL is the emulator's consent page with
// PKCE, the app's redirect_uri and offline_access.
func authorizeURL(t *testing.T, token, path string, args ...string) (authURL, state string) {
	t.Helper()
	if token == rootToken {
		bindEmptySlot(t, path, args...)
	}
	cmd := append([]string{"write"}, append([]string{path}, args...)...)
	if len(args) == 0 {
		cmd = []string{"write", "-f", path}
	}
	out := vaultJSON(t, token, cmd...)
	data, _ := out["data"].(map[string]any)
	authURL, _ = data["authorize_url"].(string)
	u, err := url.Parse(authURL)
	if err != nil || !strings.HasPrefix(authURL, env.emuURL+"/open-apis/authen/v1/authorize?") {
		t.Fatalf("authorize_url = %q, want the emulator's authorize page", authURL)
	}
	q := u.Query()
	state = q.Get("state")
	rememberRedirectValue(state, "OAuth state")
	if len(state) < 40 {
		t.Fatalf("state %q is too short to be 256 random bits", state)
	}
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
		t.Fatalf("authorize_url has no S256 PKCE challenge: %s", u.RawQuery)
	}
	if q.Get("redirect_uri") != callbackURL() || q.Get("response_type") != "code" {
		t.Fatalf("authorize_url redirect_uri=%q response_type=%q", q.Get("redirect_uri"), q.Get("response_type"))
	}
	if !strings.Contains(" "+q.Get("scope")+" ", " offline_access ") {
		t.Fatalf("authorize_url scope %q lacks offline_access", q.Get("scope"))
	}
	if exp, _ := data["expires_at"].(string); exp == "" {
		t.Fatalf("authorize response has no expires_at: %v", data)
	}
	return authURL, state
}

// atLark opens the authorize URL at the emulator, which approves (or denies) at once as the signed
// -in user, and returns where Lark sends the browser back to, with the code it carries.
func atLark(t *testing.T, authURL string) (location, code string) {
	t.Helper()
	resp, err := browser.Get(authURL)
	if err != nil {
		t.Fatalf("opening the authorize URL: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize page: HTTP %d, want 302: %s", resp.StatusCode, body)
	}
	location = resp.Header.Get("Location")
	if !strings.HasPrefix(location, callbackURL()+"?") {
		t.Fatalf("Lark redirected to %q, want the Vault callback", location)
	}
	u, _ := url.Parse(location)
	code = u.Query().Get("code")
	rememberRedirectValue(code, "authorization code")
	return location, code
}

// page is the callback's answer to the browser.
type page struct {
	status      int
	contentType string
	body        string
}

// callback opens a URL on Vault's callback the way a browser does: no Vault token, no redirects.
func callback(t *testing.T, rawURL string) page {
	t.Helper()
	resp, err := browser.Get(rawURL)
	if err != nil {
		t.Fatalf("GET callback: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{resp.StatusCode, resp.Header.Get("Content-Type"), string(body)}
}

// callbackWith builds a callback URL from raw query parameters.
func callbackWith(params url.Values) string { return callbackURL() + "?" + params.Encode() }

// wantPage checks a callback answer: status, an HTML page, the words it must contain, and none of
// the secret values given.
func wantPage(t *testing.T, p page, status int, words []string, secrets ...string) {
	t.Helper()
	if p.status != status {
		t.Fatalf("callback: HTTP %d, want %d; page:\n%s", p.status, status, p.body)
	}
	if !strings.HasPrefix(p.contentType, "text/html") || !strings.Contains(p.body, "<html") {
		t.Fatalf("callback: Content-Type %q, want an HTML page:\n%s", p.contentType, p.body)
	}
	for _, w := range words {
		if !strings.Contains(p.body, w) {
			t.Fatalf("callback page lacks %q:\n%s", w, p.body)
		}
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(p.body, s) {
			t.Fatalf("callback page contains a secret value (%s…)", s[:min(len(s), 8)])
		}
	}
	for _, s := range []string{"access_token", "refresh_token", "eyJ"} {
		if strings.Contains(p.body, s) {
			t.Fatalf("callback page mentions %q:\n%s", s, p.body)
		}
	}
}

// browserFlow is a whole authorization without a browser: Vault's authorize URL, the emulator's
// consent page, and Vault's unauthenticated callback. It returns the callback's page, the code and
// the state.
func browserFlow(t *testing.T, token, path string, args ...string) (p page, code, state string) {
	t.Helper()
	authURL, state := authorizeURL(t, token, path, args...)
	location, code := atLark(t, authURL)
	if got, _ := url.Parse(location); got.Query().Get("state") != state {
		t.Fatal("Lark did not echo the state")
	}
	return callback(t, location), code, state
}

// userToken reads a user token with the CLI and returns the whole JSON answer and its data.
func readUserToken(t *testing.T, token, app, slot string) (map[string]any, map[string]any) {
	t.Helper()
	out := vaultJSON(t, token, "read", mountPath+"/user-token/"+app+"/"+slot)
	data, _ := out["data"].(map[string]any)
	tok, _ := data["access_token"].(string)
	if tok == "" {
		t.Fatalf("user-token read has no access_token: %v", out)
	}
	remember(tok, "user_access_token of "+app+"/"+slot)
	if _, ok := data["refresh_token"]; ok {
		t.Fatal("user-token read shows a refresh_token")
	}
	return out, data
}

// slots lists an app's user slots over HTTP, with the full status of each (grants).
func slots(t *testing.T, app string) map[string]map[string]any {
	t.Helper()
	status, body := vaultHTTP(t, rootToken, "LIST", mountPath+"/user-token/"+app+"/", nil)
	out := map[string]map[string]any{}
	if status == http.StatusNotFound {
		return out
	}
	if status != http.StatusOK {
		t.Fatalf("LIST user-token/%s: HTTP %d %v", app, status, body["errors"])
	}
	data, _ := body["data"].(map[string]any)
	info, _ := data["grants"].(map[string]any)
	keys, _ := data["keys"].([]any)
	for _, k := range keys {
		m, _ := info[k.(string)].(map[string]any)
		out[k.(string)] = m
	}
	return out
}

// sameSlots fails unless the app's slots and their status are exactly as before.
func sameSlots(t *testing.T, app string, before map[string]map[string]any, why string) {
	t.Helper()
	after := slots(t, app)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("%s changed the stored grants:\nbefore %v\nafter  %v", why, before, after)
	}
}

// userInfo asks the emulator's user_info who a user access token belongs to. It returns the HTTP
// status, Lark's code and the open_id.
func userInfo(t *testing.T, accessToken string) (status, code int, openID string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, env.emuURL+"/open-apis/authen/v1/user_info", nil)
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("user_info: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Code int `json:"code"`
		Data struct {
			OpenID string `json:"open_id"`
		} `json:"data"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("user_info: HTTP %d, not JSON: %s", resp.StatusCode, raw)
	}
	return resp.StatusCode, body.Code, body.Data.OpenID
}

// larkGrants lists the emulator's grants of one app and Lark user (never with tokens).
func larkGrants(t *testing.T, app, userID string) []map[string]any {
	t.Helper()
	all, _ := emulator(t, http.MethodGet, "/_emulator/grants", nil)["grants"].([]any)
	var out []map[string]any
	for _, g := range all {
		m := g.(map[string]any)
		if m["app_id"] == app && (userID == "" || m["user_id"] == userID) {
			out = append(out, m)
		}
	}
	return out
}

// mustContainNone fails if text contains any of the values.
func mustContainNone(t *testing.T, what, text string, values ...string) {
	t.Helper()
	for _, v := range values {
		if v != "" && strings.Contains(text, v) {
			t.Fatalf("%s contains a secret value (%s…):\n%s", what, v[:min(len(v), 8)], text)
		}
	}
}

// waitForRefreshDue sleeps until the plugin, by its own clock, considers the token that expires
// at expiresAt (RFC 3339, whole seconds) due for a refresh, plus a little.
func waitForRefreshDue(t *testing.T, expiresAt string) {
	t.Helper()
	exp, err := time.Parse(time.RFC3339, expiresAt)
	if err != nil {
		t.Fatalf("expires_at %q: %v", expiresAt, err)
	}
	// expires_at is cut to whole seconds: the real expiry is up to a second later.
	due := exp.Add(time.Second - userRefreshWindow)
	t.Logf("waiting %s for the refresh point", time.Until(due).Round(time.Second))
	time.Sleep(time.Until(due) + 500*time.Millisecond)
}

// signedInUnionID is the union_id of the user signed in at the emulator (the one its authorize page
// approves as).
func signedInUnionID(t *testing.T, emuURL string) string {
	t.Helper()
	users, _ := emulatorAt(t, emuURL, http.MethodGet, "/_emulator/users", nil)["users"].([]any)
	for _, u := range users {
		if m, _ := u.(map[string]any); m["current"] == true {
			return m["union_id"].(string)
		}
	}
	t.Fatal("no user is signed in at the emulator")
	return ""
}

// unionIDOf is the union_id of an emulator user.
func unionIDOf(t *testing.T, emuURL, userID string) string {
	t.Helper()
	users, _ := emulatorAt(t, emuURL, http.MethodGet, "/_emulator/users", nil)["users"].([]any)
	for _, u := range users {
		if m, _ := u.(map[string]any); m["user_id"] == userID {
			return m["union_id"].(string)
		}
	}
	t.Fatalf("no emulator user %q", userID)
	return ""
}

// bindEmptySlot binds the slot a self-service authorization (oauth/<app>/authorize[/<slot>]) names
// to the user signed in at the emulator, the way an administrator prepares a person's first
// authorization, unless the slot is bound already or holds a grant (then it has an owner).
func bindEmptySlot(t *testing.T, path string, args ...string) {
	t.Helper()
	rest, ok := strings.CutPrefix(path, mountPath+"/oauth/")
	if !ok {
		return
	}
	app, tail, _ := strings.Cut(rest, "/")
	slot, isAuthorize := strings.CutPrefix(tail, "authorize/")
	if tail == "authorize" {
		isAuthorize = true
		for _, a := range args {
			if v, ok := strings.CutPrefix(a, "user="); ok {
				slot = v
			}
		}
	}
	if !isAuthorize || slot == "" || strings.ContainsAny(slot, " /") {
		return
	}
	if status, _ := vaultHTTP(t, rootToken, http.MethodGet, mountPath+"/slots/"+app+"/"+slot, nil); status == http.StatusOK {
		return
	}
	if _, held := slots(t, app)[slot]; held {
		return
	}
	mustVault(t, rootToken, "write", mountPath+"/slots/"+app+"/"+slot, "union_id="+signedInUnionID(t, env.emuURL))
}

// entityOf is the entity id behind a Vault token.
func entityOf(t *testing.T, token string) string {
	t.Helper()
	out := vaultJSON(t, token, "token", "lookup")
	data, _ := out["data"].(map[string]any)
	id, _ := data["entity_id"].(string)
	if id == "" {
		t.Fatalf("token has no entity: %v", data)
	}
	return id
}
