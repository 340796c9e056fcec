//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"
)

// A sample of the bad-input catalog (badinput_test.go) sent through Vault's HTTP listener to the
// plugin running as its own process: the framework, Vault's request parsing and the plugin's gRPC
// boundary all stand between the input and the handler here. Each case must get its status and a
// message naming the field; the mount, as the API shows it, and the emulator's counters for the
// app must be exactly as before.

// catalogWorld is what the API and Lark show of the catalog's app: lists, settings, bindings and
// every Lark counter of the app.
func catalogWorld(t *testing.T, app string) map[string]string {
	t.Helper()
	world := map[string]string{}
	show := func(what string, status int, body map[string]any) {
		data, _ := json.Marshal(body["data"])
		world[what] = fmt.Sprintf("HTTP %d %s", status, data)
	}
	for _, p := range []string{"apps", "user-token/" + app, "slots/" + app} {
		status, body := vaultHTTP(t, rootToken, "LIST", mountPath+"/"+p, nil)
		show("list "+p, status, body)
	}
	for _, p := range []string{"apps/" + app, "config", "slots/" + app + "/carol"} {
		status, body := vaultHTTP(t, rootToken, http.MethodGet, mountPath+"/"+p, nil)
		show("read "+p, status, body)
	}
	counters, _ := json.Marshal(emulator(t, http.MethodGet, "/_emulator/apps/"+app+"/counters", nil))
	world["lark counters"] = string(counters)
	return world
}

func sameWorld(t *testing.T, before, after map[string]string) {
	t.Helper()
	keys := make([]string, 0, len(before))
	for k := range before {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if before[k] != after[k] {
			t.Errorf("%s changed:\nbefore %s\nafter  %s", k, before[k], after[k])
		}
	}
}

func TestBadInputCatalogThroughHTTP(t *testing.T) {
	const app = "cli_e2ecatalog"
	newOAuthApp(t, app)
	larkUser(t, "e2e_carol", "Carol")
	mustVault(t, rootToken, "write", mountPath+"/slots/"+app+"/carol", "union_id="+signedInUnionID(t, env.emuURL))
	// A live refresh token Lark would accept: a refused import must leave it unspent.
	live := mintUserGrant(t, env.emuURL, app, "e2e_dave", "Dave")
	larkUser(t, "e2e_carol", "Carol") // signed in again for the authorizations below
	secret := "e2eCatalogSecret" + fmt.Sprint(time.Now().UnixNano())
	remember(secret, "app_secret sent as a map")
	// A token without an entity, like root (a child of it), but another one.
	other := strings.TrimSpace(mustVault(t, rootToken, "token", "create", "-field=token", "-ttl=1h"))
	remember(other, "second token")

	// Authorizations started by root; the browser's part happens at once, so each has a code.
	start := func() (location, code, state string) {
		authURL, state := authorizeURL(t, rootToken, mountPath+"/oauth/"+app+"/authorize/carol")
		location, code = atLark(t, authURL)
		return location, code, state
	}
	byOther, codeByOther, stateByOther := start()
	badCode, _, stateBadCode := start()

	appPath := mountPath + "/apps/" + app
	days := func(n int) string {
		return time.Now().Add(time.Duration(n) * 24 * time.Hour).UTC().Format(time.RFC3339)
	}
	many := map[string]any{}
	for i := 0; i < 500; i++ {
		many[fmt.Sprintf("field%03d", i)] = "1"
	}
	cases := []struct {
		name   string
		token  string
		method string
		path   string
		body   any
		status int
		names  []string
		secret string
	}{
		{"app secret as a map", "", http.MethodPost, mountPath + "/apps/cli_e2ecatnew", map[string]any{"app_secret": map[string]any{"v": secret}}, 400, []string{"app_secret"}, secret},
		{"app secret as a list", "", http.MethodPost, mountPath + "/apps/cli_e2ecatnew", map[string]any{"app_secret": []any{secret}}, 400, []string{"app_secret"}, secret},
		{"app id upper case", "", http.MethodPost, mountPath + "/apps/CLI_e2ecat", map[string]any{"app_secret": "s3cret"}, 400, []string{"app_id"}, ""},
		{"app id percent-encoded slash", "", http.MethodPost, mountPath + "/apps/cli_e2e%2Fcat", map[string]any{"app_secret": "s3cret"}, 400, []string{"app_id"}, ""},
		{"app id unicode", "", http.MethodPost, mountPath + "/apps/cli_" + url.PathEscape("äbc"), map[string]any{"app_secret": "s3cret"}, 400, []string{"app_id"}, ""},
		{"app id in the body differs", "", http.MethodPost, appPath, map[string]any{"app_id": "cli_e2eother"}, 400, []string{"app_id"}, ""},
		{"redirect_uri empty fragment", "", http.MethodPost, appPath, map[string]any{"redirect_uri": "https://vault.example/cb#"}, 400, []string{"redirect_uri"}, ""},
		{"redirect_uri port too big", "", http.MethodPost, appPath, map[string]any{"redirect_uri": "https://vault.example:99999/cb"}, 400, []string{"redirect_uri"}, ""},
		{"redirect_uri without host", "", http.MethodPost, appPath, map[string]any{"redirect_uri": "http://:"}, 400, []string{"redirect_uri"}, ""},
		{"base_url broken IPv6", "", http.MethodPost, appPath, map[string]any{"base_url": "http://[::1"}, 400, []string{"base_url"}, ""},
		{"scopes with a space", "", http.MethodPost, appPath, map[string]any{"scopes": "im:message offline_access"}, 400, []string{"scopes"}, ""},
		{"app delete with an unknown parameter", "", http.MethodDelete, appPath + "?force=true", nil, 400, []string{"force"}, ""},
		{"schedule with a zone and no fields", "", http.MethodPost, mountPath + "/config", map[string]any{"notify_schedule": "TZ=UTC"}, 400, []string{"notify_schedule"}, ""},
		{"schedule with its own zone", "", http.MethodPost, mountPath + "/config", map[string]any{"notify_schedule": "CRON_TZ=Local 0 9 * * *"}, 400, []string{"notify_schedule"}, ""},
		{"schedule that never fires", "", http.MethodPost, mountPath + "/config", map[string]any{"notify_schedule": "0 9 30 2 *"}, 400, []string{"notify_schedule"}, ""},
		{"schedule with a control character", "", http.MethodPost, mountPath + "/config", map[string]any{"notify_schedule": "0 9 * * \x1b[2J"}, 400, []string{"notify_schedule"}, "\x1b"},
		{"time zone Local", "", http.MethodPost, mountPath + "/config", map[string]any{"notify_timezone": "Local"}, 400, []string{"notify_timezone"}, ""},
		{"time zone empty", "", http.MethodPost, mountPath + "/config", map[string]any{"notify_timezone": ""}, 400, []string{"notify_timezone"}, ""},
		{"duration in words", "", http.MethodPost, mountPath + "/config", map[string]any{"lease_safety_margin": "five minutes"}, 400, []string{"lease_safety_margin"}, ""},
		{"min_ttl in words", "", http.MethodGet, mountPath + "/app-token/" + app + "?min_ttl=soon", nil, 400, []string{"min_ttl"}, ""},
		{"min_ttl beyond any app token", "", http.MethodGet, mountPath + "/tenant-token/" + app + "?min_ttl=3h", nil, 400, []string{"min_ttl", "more than Lark can ever give"}, ""},
		{"sweep with a parameter", "", http.MethodPost, mountPath + "/sweep", map[string]any{"format": "json"}, 400, []string{"format"}, ""},
		{"reauth with a parameter", "", http.MethodGet, mountPath + "/reauth?format=json", nil, 400, []string{"format"}, ""},
		{"reauth list with a parameter", "", "LIST", mountPath + "/reauth?format=json", nil, 400, []string{"format"}, ""},
		{"metrics with a parameter", "", http.MethodGet, mountPath + "/metrics?format=json", nil, 400, []string{"format"}, ""},
		{"apps list with a parameter", "", "LIST", mountPath + "/apps?filter=cli_", nil, 400, []string{"filter"}, ""},
		{"500 unknown fields", "", http.MethodPost, mountPath + "/sweep", many, 400, []string{"field000", "and 490 more"}, ""},
		{"import authorized 400 days ago", "", http.MethodPost, mountPath + "/user-token/" + app + "/dave", map[string]any{"refresh_token": live, "authorized_at": days(-400)}, 400, []string{"authorized_at"}, live},
		{"import authorized tomorrow", "", http.MethodPost, mountPath + "/user-token/" + app + "/dave", map[string]any{"refresh_token": live, "authorized_at": days(1)}, 400, []string{"authorized_at"}, live},
		{"import date without zone", "", http.MethodPost, mountPath + "/user-token/" + app + "/dave", map[string]any{"refresh_token": live, "authorized_at": "2026-01-01T09:00:00"}, 400, []string{"authorized_at"}, live},
		{"import token as a map", "", http.MethodPost, mountPath + "/user-token/" + app + "/dave", map[string]any{"refresh_token": map[string]any{"t": live}}, 400, []string{"refresh_token"}, live},
		{"import slot in the body differs", "", http.MethodPost, mountPath + "/user-token/" + app + "/dave", map[string]any{"refresh_token": live, "user": "eve"}, 400, []string{"user"}, live},
		{"slot binding with a union id as open_id", "", http.MethodPost, mountPath + "/slots/" + app + "/carol", map[string]any{"open_id": "on_abc"}, 400, []string{"open_id"}, ""},
		{"slot name with dot-dot", "", http.MethodPost, mountPath + "/slots/" + app + "/a..b", map[string]any{"open_id": "ou_abc"}, 400, []string{"user"}, ""},
		{"authorize path and body slots differ", "", http.MethodPost, mountPath + "/oauth/" + app + "/authorize/carol", map[string]any{"user": "eve"}, 400, []string{"user"}, ""},
		{"exchange state as a list", "", http.MethodPost, mountPath + "/oauth/" + app + "/exchange", map[string]any{"code": "abc", "state": []any{stateBadCode}}, 400, []string{"state"}, stateBadCode},
		// Issue 12, defect 1: root started it; another token without an entity may not finish it.
		{"exchange by another token without entity", other, http.MethodPost, mountPath + "/oauth/" + app + "/exchange", map[string]any{"code": codeByOther, "state": stateByOther}, 403, []string{"another Vault identity"}, codeByOther},
	}
	if len(cases) < 25 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := catalogWorld(t, app)
			token := tc.token
			if token == "" {
				token = rootToken
			}
			status, body := vaultHTTP(t, token, tc.method, tc.path, tc.body)
			msg := fmt.Sprint(body["errors"])
			if status != tc.status {
				t.Fatalf("HTTP %d %s; want %d", status, msg, tc.status)
			}
			for _, name := range tc.names {
				if !strings.Contains(msg, name) {
					t.Errorf("the message does not name %q: %s", name, msg)
				}
			}
			if tc.secret != "" && strings.Contains(msg, tc.secret) {
				t.Errorf("the message echoes a secret: %s", msg)
			}
			if len(msg) > 8192 {
				t.Errorf("message of %d bytes", len(msg))
			}
			sameWorld(t, before, catalogWorld(t, app))
		})
	}

	// The callback answers the browser with a page; a link without a valid code leaves the state for
	// the genuine one, and a repeated parameter is named.
	before := catalogWorld(t, app)
	u, _ := url.Parse(badCode)
	q := u.Query()
	q.Set("code", "not a code!")
	wantPage(t, callback(t, callbackWith(q)), http.StatusBadRequest, []string{"no valid authorization code"}, stateBadCode)
	wantPage(t, callback(t, callbackURL()+"?state=a&state=b&code=c"), http.StatusBadRequest, []string{"state parameter appears more than once"})
	wantPage(t, callback(t, callbackURL()+"?code=c&state="+strings.Repeat("s", 3000)), http.StatusBadRequest, []string{"state parameter is far too long"})
	sameWorld(t, before, catalogWorld(t, app))

	if n := emulatorAppCount(t, app, "refresh"); n != 0 {
		t.Fatalf("Lark saw %d refreshes of the app: a refused import spent a token", n)
	}
	// The link started by root and refused to the other token is used up.
	wantPage(t, callback(t, byOther), http.StatusBadRequest, []string{"unknown or already used"}, stateByOther)

	// The plugin survived everything above ("TZ=UTC" used to panic it), and the genuine link whose
	// state met a bad code still completes, once.
	wantPage(t, callback(t, badCode), http.StatusOK, []string{"Authorized"}, stateBadCode)
	if _, ok := slots(t, app)["carol"]; !ok {
		t.Fatal("the genuine callback stored no grant")
	}
	// No grant keeps refreshing in the background for the rest of the suite.
	mustVault(t, rootToken, "delete", mountPath+"/user-token/"+app+"/carol")
}
