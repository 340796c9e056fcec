//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestUserTokenIdentityTemplatedPolicy(t *testing.T) {
	const app = "cli_e2eself"
	// Each person's Lark identity comes from their entity's metadata, so a self-service
	// authorization can only be completed by that person.
	newOAuthApp(t, app, "identity_metadata_key=lark_union_id")
	mustVault(t, rootToken, "auth", "enable", "-path=e2euserpass", "userpass")
	auths := vaultJSON(t, rootToken, "auth", "list")
	mount, _ := auths["e2euserpass/"].(map[string]any)
	accessor, _ := mount["accessor"].(string)
	if accessor == "" {
		t.Fatalf("no accessor for e2euserpass/: %v", auths)
	}
	// Each person may read their own slot and start an authorization for it, named by their
	// userpass login; any of them may complete an exchange (the plugin checks the identity).
	policy := fmt.Sprintf(`
path "%[1]s/user-token/%[2]s/{{identity.entity.aliases.%[3]s.name}}" { capabilities = ["read"] }
path "%[1]s/oauth/%[2]s/authorize/{{identity.entity.aliases.%[3]s.name}}" { capabilities = ["update"] }
path "%[1]s/oauth/%[2]s/exchange" { capabilities = ["update"] }
`, mountPath, app, accessor)
	if out, err := runVaultStdin(rootToken, policy, "policy", "write", "lark-own-slot", "-"); err != nil {
		t.Fatalf("policy write: %v\n%s", err, out)
	}

	tokens := map[string]string{}
	openIDs := map[string]string{}
	for _, who := range []string{"alice", "bob"} {
		password := fmt.Sprintf("pw-%s-%d", who, time.Now().UnixNano())
		remember(password, "userpass password of "+who)
		mustVault(t, rootToken, "write", "auth/e2euserpass/users/"+who, "password="+password, "token_policies=lark-own-slot")
		login := vaultJSON(t, "", "write", "auth/e2euserpass/login/"+who, "password="+password)
		tok := login["auth"].(map[string]any)["client_token"].(string)
		remember(tok, "Vault token of "+who)
		tokens[who] = tok

		// The person starts the authorization for their own slot (path form), signs in to Lark as
		// themselves and comes back through the callback. An administrator recorded their Lark
		// identity on their entity.
		larkUser(t, "e2e_"+who, strings.ToUpper(who[:1])+who[1:])
		mustVault(t, rootToken, "write", "identity/entity/id/"+entityOf(t, tok), "metadata=lark_union_id="+unionIDOf(t, env.emuURL, "e2e_"+who))
		p, code, state := browserFlow(t, tok, mountPath+"/oauth/"+app+"/authorize/"+who)
		wantPage(t, p, http.StatusOK, []string{"Authorized", fmt.Sprintf("slot &#34;%s&#34;", who)}, code, state)

		out, err := runVault(tok, "read", mountPath+"/user-token/"+app+"/"+who)
		if err != nil || !strings.Contains(out, "access_token") {
			t.Fatalf("%s reading their own slot with the CLI: %v\n%s", who, err, out)
		}
		_, data := readUserToken(t, tok, app, who)
		openIDs[who] = data["open_id"].(string)
	}
	if openIDs["alice"] == openIDs["bob"] {
		t.Fatal("alice and bob hold the same Lark user")
	}

	for who, other := range map[string]string{"alice": "bob", "bob": "alice"} {
		tok := tokens[who]
		status, _ := vaultHTTP(t, tok, http.MethodGet, mountPath+"/user-token/"+app+"/"+who, nil)
		if status != http.StatusOK {
			t.Fatalf("%s reading their own slot: HTTP %d", who, status)
		}
		if status, _ := vaultHTTP(t, tok, http.MethodGet, mountPath+"/user-token/"+app+"/"+other, nil); status != http.StatusForbidden {
			t.Fatalf("%s reading %s's slot: HTTP %d, want 403", who, other, status)
		}
		if out, err := runVault(tok, "read", mountPath+"/user-token/"+app+"/"+other); err == nil || !strings.Contains(out, "403") {
			t.Fatalf("%s reading %s's slot with the CLI: err=%v\n%s", who, other, err, out)
		}
		// Starting an authorization for someone else's slot: not by path, not by field.
		for _, try := range []struct {
			path string
			body map[string]any
		}{
			{mountPath + "/oauth/" + app + "/authorize/" + other, nil},
			{mountPath + "/oauth/" + app + "/authorize", map[string]any{"user": other}},
			{mountPath + "/oauth/" + app + "/replace/" + other, nil},
			{mountPath + "/user-token/" + app + "/" + other, map[string]any{"refresh_token": "x"}},
		} {
			if status, body := vaultHTTP(t, tok, http.MethodPost, try.path, try.body); status != http.StatusForbidden {
				t.Fatalf("%s writing %s %v: HTTP %d %v, want 403", who, try.path, try.body, status, body)
			}
		}
		// The path the policy allows, with another slot in the body: the plugin refuses the mismatch.
		status, body := vaultHTTP(t, tok, http.MethodPost, mountPath+"/oauth/"+app+"/authorize/"+who, map[string]any{"user": other})
		if msg := fmt.Sprint(body["errors"]); status != http.StatusBadRequest || !strings.Contains(msg, "differ") {
			t.Fatalf("%s: authorize/%s with user=%s: HTTP %d %s, want 400 saying they differ", who, who, other, status, msg)
		}
		if status, _ := vaultHTTP(t, tok, "LIST", mountPath+"/user-token/"+app+"/", nil); status != http.StatusForbidden {
			t.Fatalf("%s listing the slots: HTTP %d, want 403", who, status)
		}
	}

	// exchange: only the identity that started an authorization may complete it.
	larkUser(t, "e2e_alice", "Alice")
	before := slots(t, app)
	authURL, state := authorizeURL(t, tokens["alice"], mountPath+"/oauth/"+app+"/authorize/alice")
	location, code := atLark(t, authURL)
	if u, _ := url.Parse(location); u.Query().Get("state") != state {
		t.Fatal("state not echoed")
	}
	out, err := runVault(tokens["bob"], "write", mountPath+"/oauth/"+app+"/exchange", "code="+code, "state="+state)
	if err == nil || !strings.Contains(out, "started by another Vault identity") {
		t.Fatalf("bob completing alice's authorization: err=%v\n%s", err, out)
	}
	out, err = runVault(tokens["alice"], "write", mountPath+"/oauth/"+app+"/exchange", "code="+code, "state="+state)
	if err == nil || !strings.Contains(out, "unknown or was already used") {
		t.Fatalf("alice reusing the state bob used up: err=%v\n%s", err, out)
	}
	sameSlots(t, app, before, "a refused exchange")

	// alice completes her own, fresh one: the answer is the grant's status, never a token.
	authURL, state = authorizeURL(t, tokens["alice"], mountPath+"/oauth/"+app+"/authorize/alice")
	_, code = atLark(t, authURL)
	ex := vaultJSON(t, tokens["alice"], "write", mountPath+"/oauth/"+app+"/exchange", "code="+code, "state="+state)
	exData, _ := ex["data"].(map[string]any)
	if exData["state"] != "ok" || exData["user"] != "alice" || exData["open_id"] != openIDs["alice"] {
		t.Fatalf("exchange answer: %v", exData)
	}
	if _, ok := exData["access_token"]; ok {
		t.Fatal("the exchange answer carries an access token")
	}
	_, data := readUserToken(t, tokens["alice"], app, "alice")
	raw, _ := runVaultFormat(tokens["alice"], "json", "write", mountPath+"/oauth/"+app+"/exchange", "code="+code, "state="+state)
	mustContainNone(t, "a replayed exchange's answer", raw, data["access_token"].(string), code, state)
}

func TestOAuthCallbackBadInputStoresNothing(t *testing.T) {
	const app = "cli_e2ebadcallback"
	newOAuthApp(t, app)
	larkUser(t, "e2e_eve", "Eve")
	exchangesBefore := emulatorCount(t, "code_exchange")

	// A genuine authorization, whose callback URL the cases below tamper with.
	authURL, state := authorizeURL(t, rootToken, mountPath+"/oauth/"+app+"/authorize", "user=eve")
	location, code := atLark(t, authURL)
	empty := slots(t, app)
	if len(empty) != 0 {
		t.Fatalf("slots before any callback: %v", empty)
	}

	tampered := []byte(state)
	if tampered[10] == 'A' {
		tampered[10] = 'B'
	} else {
		tampered[10] = 'A'
	}
	huge := strings.Repeat("s", 10<<10)
	freshState := func() string {
		_, s := authorizeURL(t, rootToken, mountPath+"/oauth/"+app+"/authorize", "user=eve")
		return s
	}
	cases := []struct {
		name   string
		url    string
		status int
		words  []string
	}{
		{"tampered state", callbackWith(url.Values{"code": {code}, "state": {string(tampered)}}), 400, []string{"unknown or already used", "Nothing was stored"}},
		{"no state", callbackWith(url.Values{"code": {code}}), 400, []string{"no state parameter", "Nothing was stored"}},
		{"no parameters", callbackURL(), 400, []string{"no state parameter"}},
		{"10 kB state", callbackWith(url.Values{"code": {code}, "state": {huge}}), 400, []string{"far too long", "Nothing was stored"}},
		{"10 kB code", callbackWith(url.Values{"code": {huge}, "state": {"x"}}), 400, []string{"far too long"}},
		{"10 kB extra parameter", callbackWith(url.Values{"code": {code}, "state": {"x"}, "junk": {huge}}), 400, []string{"far too long"}},
		{"long parameter name", callbackWith(url.Values{"code": {code}, "state": {"x"}, strings.Repeat("k", 100): {"v"}}), 400, []string{"far too long"}},
		{"invalid code", callbackWith(url.Values{"code": {"not a code!"}, "state": {freshState()}}), 400, []string{"no valid authorization code", "Nothing was stored"}},
		{"no code", callbackWith(url.Values{"state": {freshState()}}), 400, []string{"no valid authorization code"}},
		{"Lark error", callbackWith(url.Values{"error": {"server_error"}, "state": {freshState()}}), 400, []string{"Lark reported an error", "server_error"}},
		{"markup in error", callbackWith(url.Values{"error": {"<script>alert(1)</script>"}, "state": {freshState()}}), 400, []string{"&lt;script&gt;"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := callback(t, tc.url)
			wantPage(t, p, tc.status, tc.words, code, state)
			if strings.Contains(p.body, "<script>") {
				t.Fatalf("the page echoes markup unescaped:\n%s", p.body)
			}
			sameSlots(t, app, empty, tc.name)
		})
	}
	// A repeated parameter: Vault hands the plugin a list instead of a string. The browser must
	// still get the callback's page, which never repeats the state.
	for _, q := range []string{
		"state=" + url.QueryEscape(state) + "&state=other&code=" + code,
		"state=x&code=" + code + "&code=other",
	} {
		p := callback(t, callbackURL()+"?"+q)
		if p.status != http.StatusBadRequest {
			t.Fatalf("repeated parameter: HTTP %d %s; want 400", p.status, p.body)
		}
		if !strings.HasPrefix(p.contentType, "text/html") || strings.Contains(p.body, state) || strings.Contains(p.body, code) {
			t.Errorf("repeated parameter (%s…): the browser gets %q with body\n%s\nwant the callback's HTML page, without the state or code "+
				"(the SDK's field validation answers before the callback runs and quotes the values)", q[:12], p.contentType, p.body)
		}
		sameSlots(t, app, empty, "a repeated parameter")
	}
	if got := emulatorCount(t, "code_exchange") - exchangesBefore; got != 0 {
		t.Fatalf("the refused callbacks made %d code exchanges at Lark, want 0", got)
	}

	// None of that used up the genuine link: it still works, once.
	p := callback(t, location)
	wantPage(t, p, http.StatusOK, []string{"Authorized"}, code, state)
	stored := slots(t, app)
	if _, ok := stored["eve"]; !ok || len(stored) != 1 {
		t.Fatalf("slots after the genuine callback: %v", stored)
	}
	p = callback(t, location)
	wantPage(t, p, http.StatusBadRequest, []string{"unknown or already used"}, code, state)
	sameSlots(t, app, stored, "a replayed callback")

	// Many tabs open the same link at once: exactly one wins.
	authURL, state2 := authorizeURL(t, rootToken, mountPath+"/oauth/"+app+"/authorize", "user=eve2")
	location2, code2 := atLark(t, authURL)
	exchangesBefore2 := emulatorCount(t, "code_exchange")
	const tabs = 20
	pages := make(chan page, tabs)
	var wg sync.WaitGroup
	for i := 0; i < tabs; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); pages <- callback(t, location2) }()
	}
	wg.Wait()
	close(pages)
	won := 0
	for p := range pages {
		switch {
		case p.status == http.StatusOK:
			won++
		case p.status != http.StatusBadRequest || !strings.Contains(p.body, "unknown or already used"):
			t.Fatalf("a concurrent callback got HTTP %d:\n%s", p.status, p.body)
		}
		mustContainNone(t, "a concurrent callback's page", p.body, code2, state2)
	}
	if won != 1 {
		t.Fatalf("%d of %d concurrent callbacks with one state succeeded, want 1", won, tabs)
	}
	if got := emulatorCount(t, "code_exchange") - exchangesBefore2; got != 1 {
		t.Fatalf("%d concurrent callbacks made %d code exchanges, want 1", tabs, got)
	}
	stored = slots(t, app)

	// The code again, with a state that is fresh and genuine: Lark refuses the used code.
	p = callback(t, callbackWith(url.Values{"code": {code}, "state": {freshState()}}))
	wantPage(t, p, http.StatusBadRequest, []string{"Lark refused the authorization code", "Nothing was stored"}, code, state)
	sameSlots(t, app, stored, "a replayed code")
	// The same through exchange, which must tell the operator why, with the CLI and over HTTP.
	out, err := runVault(rootToken, "write", mountPath+"/oauth/"+app+"/exchange", "code="+code, "state="+freshState())
	if err == nil || !strings.Contains(out, "Code: 400") {
		t.Fatalf("CLI exchange of a used code: err=%v, want HTTP 400:\n%s", err, out)
	}
	mustContainNone(t, "the CLI's exchange error", out, code)
	if !strings.Contains(out, "Lark refused the authorization code") {
		t.Errorf("CLI exchange of a used code does not say why:\n%s\n(the plugin answers exchange failures with "+
			"RespondWithStatusCode(ErrorResponse(msg)), which puts the message in data.error, where Vault clients do not look; "+
			"logical.CodedError(status, msg) puts it in errors)", out)
	}
	status, body := vaultHTTP(t, rootToken, http.MethodPost, mountPath+"/oauth/"+app+"/exchange", map[string]any{"code": code, "state": freshState()})
	if status != http.StatusBadRequest {
		t.Fatalf("exchange of a used code over HTTP: HTTP %d %v", status, body)
	}
	if msg := fmt.Sprint(body["errors"]); !strings.Contains(msg, "Lark refused the authorization code") {
		t.Errorf("exchange of a used code over HTTP: errors = %s, want Lark's refusal (the body is %v)", msg, body)
	}
	mustContainNone(t, "the exchange error", fmt.Sprint(body), code)
	sameSlots(t, app, stored, "a replayed code through exchange")
	if got := emulatorCount(t, "code_exchange") - exchangesBefore; got != 5 {
		t.Fatalf("code exchanges at Lark = %d, want 5 (the genuine one, the race's winner and three replays)", got)
	}

	// exchange's own checks.
	for _, tc := range []struct {
		name string
		body map[string]any
		want string
	}{
		{"unknown state", map[string]any{"code": code, "state": string(tampered)}, "unknown or was already used"},
		{"10 kB state", map[string]any{"code": code, "state": huge}, "missing or too long"},
		{"10 kB code", map[string]any{"code": huge, "state": "x"}, "not a Lark authorization code"},
		{"no state", map[string]any{"code": code}, "missing"},
		{"unknown field", map[string]any{"code": code, "state": "x", "stat": "x"}, "unknown field"},
	} {
		status, body := vaultHTTP(t, rootToken, http.MethodPost, mountPath+"/oauth/"+app+"/exchange", tc.body)
		if msg := fmt.Sprint(body["errors"]); status != http.StatusBadRequest || !strings.Contains(msg, tc.want) {
			t.Fatalf("exchange, %s: HTTP %d %s; want 400 mentioning %q", tc.name, status, msg, tc.want)
		}
	}
	sameSlots(t, app, stored, "refused exchanges")
}

func TestOAuthAuthorizeBadInputStoresNothing(t *testing.T) {
	const app = "cli_e2ebadauthorize"
	newOAuthApp(t, app)
	// An app without redirect_uri cannot start the browser flow.
	const noRedirect = "cli_e2enoredirect"
	newApp(t, noRedirect)
	before := slots(t, app)

	long := strings.Repeat("a", 500)
	badSlots := []struct{ slot, want string }{
		{"a/b", "not a valid slot name"},
		{"..", "not a valid slot name"},
		{"../eve", "not a valid slot name"},
		{"a..b", "not a valid slot name"},
		{"a b", "not a valid slot name"},
		{".hidden", "not a valid slot name"},
		{"eve\n", "not a valid slot name"},
		{long, "too long"},
	}
	for _, bs := range badSlots {
		name := bs.slot
		if len(name) > 20 {
			name = fmt.Sprintf("%d characters", len(name))
		}
		t.Run("slot "+name, func(t *testing.T) {
			for _, path := range []string{"authorize", "replace"} {
				status, body := vaultHTTP(t, rootToken, http.MethodPost, mountPath+"/oauth/"+app+"/"+path, map[string]any{"user": bs.slot})
				if msg := fmt.Sprint(body["errors"]); status != http.StatusBadRequest || !strings.Contains(msg, bs.want) {
					t.Fatalf("%s user=%q: HTTP %d %s; want 400 mentioning %q", path, bs.slot, status, msg, bs.want)
				}
			}
			status, body := vaultHTTP(t, rootToken, http.MethodPost, mountPath+"/user-token/"+app+"/"+url.PathEscape(bs.slot), map[string]any{"refresh_token": "x"})
			if msg := fmt.Sprint(body["errors"]); status < 400 || status >= 500 {
				t.Fatalf("import into %q: HTTP %d %s; want a 4xx", bs.slot, status, msg)
			}
			status, body = vaultHTTP(t, rootToken, http.MethodGet, mountPath+"/user-token/"+app+"/"+url.PathEscape(bs.slot), nil)
			if status < 400 || status >= 500 {
				t.Fatalf("read of %q: HTTP %d %v; want a 4xx", bs.slot, status, body)
			}
			if !strings.Contains(bs.slot, "/") {
				status, body = vaultHTTP(t, rootToken, http.MethodPost, mountPath+"/oauth/"+app+"/authorize/"+url.PathEscape(bs.slot), nil)
				if status < 400 || status >= 500 {
					t.Fatalf("authorize/%q: HTTP %d %v; want a 4xx", bs.slot, status, body)
				}
			}
		})
	}
	// The CLI shows why.
	if out, err := runVault(rootToken, "write", mountPath+"/oauth/"+app+"/authorize", "user=a b"); err == nil || !strings.Contains(out, "not a valid slot name") {
		t.Fatalf("CLI authorize user='a b': err=%v\n%s", err, out)
	}
	if out, err := runVault(rootToken, "read", mountPath+"/user-token/"+app+"/"+long); err == nil || !strings.Contains(out, "too long") {
		t.Fatalf("CLI read of a 500-character slot: err=%v\n%s", err, out)
	}

	for _, tc := range []struct {
		name, path string
		body       map[string]any
		want       string
	}{
		{"unknown app", "oauth/cli_e2enosuchapp/authorize", map[string]any{"user": "eve"}, "app cli_e2enosuchapp is not configured"},
		{"not an app id", "oauth/nosuchapp/authorize", map[string]any{"user": "eve"}, "not a Lark app id"},
		{"app without redirect_uri", "oauth/" + noRedirect + "/authorize", map[string]any{"user": "eve"}, "no redirect_uri"},
		{"no slot", "oauth/" + app + "/authorize", map[string]any{}, "user is required"},
		{"unknown field", "oauth/" + app + "/authorize", map[string]any{"user": "eve", "scope": "x"}, "unknown field"},
		{"scope with a space", "oauth/" + app + "/authorize", map[string]any{"user": "eve", "scopes": "im:message contact:x"}, "not a Lark scope"},
		{"bad expected_open_id", "oauth/" + app + "/authorize", map[string]any{"user": "eve", "expected_open_id": "eve"}, "not a Lark open_id"},
		{"import without a token", "user-token/" + app + "/eve", map[string]any{"authorized_at": "2026-01-01T00:00:00Z"}, "refresh_token is required"},
		{"import with a future date", "user-token/" + app + "/eve", map[string]any{"refresh_token": "plausible-refresh-token", "authorized_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, "in the future"},
		{"import with a bad date", "user-token/" + app + "/eve", map[string]any{"refresh_token": "plausible-refresh-token", "authorized_at": "yesterday"}, "RFC 3339"},
		{"import with a date past the 365-day end", "user-token/" + app + "/eve", map[string]any{"refresh_token": "plausible-refresh-token", "authorized_at": time.Now().Add(-400 * 24 * time.Hour).UTC().Format(time.RFC3339)}, "more than 365 days ago"},
		{"import of something that is no token", "user-token/" + app + "/eve", map[string]any{"refresh_token": "x y"}, "not a Lark refresh token"},
		{"import of a token Lark never issued", "user-token/" + app + "/eve", map[string]any{"refresh_token": "not-a-token-lark-ever-issued"}, "Lark refused the refresh token"},
	} {
		status, body := vaultHTTP(t, rootToken, http.MethodPost, mountPath+"/"+tc.path, tc.body)
		if msg := fmt.Sprint(body["errors"]); status != http.StatusBadRequest || !strings.Contains(msg, tc.want) {
			t.Fatalf("%s: HTTP %d %s; want 400 mentioning %q", tc.name, status, msg, tc.want)
		}
	}
	status, body := vaultHTTP(t, rootToken, http.MethodGet, mountPath+"/user-token/cli_e2enosuchapp/eve", nil)
	if msg := fmt.Sprint(body["errors"]); status != http.StatusNotFound || !strings.Contains(msg, "no Lark grant") || !strings.Contains(msg, "not configured") {
		t.Fatalf("read from an unknown app: HTTP %d %s; want 404 saying the app is not configured", status, msg)
	}
	sameSlots(t, app, before, "the refused requests")
	if got := slots(t, "cli_e2enosuchapp"); len(got) != 0 {
		t.Fatalf("slots of an unknown app: %v", got)
	}
}

func TestOAuthSlotHolderAndReplace(t *testing.T) {
	const app = "cli_e2eowner"
	newOAuthApp(t, app)
	larkUser(t, "e2e_holder", "Holder")
	p, _, _ := browserFlow(t, rootToken, mountPath+"/oauth/"+app+"/authorize", "user=desk")
	wantPage(t, p, http.StatusOK, []string{"Authorized", "Holder"})
	_, first := readUserToken(t, rootToken, app, "desk")
	holderOpenID := first["open_id"].(string)

	// The holder authorizes again: the slot takes the new grant. The one it let go of is left to
	// expire at Lark: revoking it could end the user's whole authorization, new tokens included
	// (Lark does not say), and nobody holds its refresh token any more.
	p, _, _ = browserFlow(t, rootToken, mountPath+"/oauth/"+app+"/authorize", "user=desk")
	wantPage(t, p, http.StatusOK, []string{"Authorized", "Holder"})
	_, held := readUserToken(t, rootToken, app, "desk")
	if held["access_token"] == first["access_token"] || held["open_id"] != holderOpenID {
		t.Fatal("re-authorization by the holder did not store the new grant")
	}
	if n := activeGrants(t, app, "e2e_holder"); n != 2 {
		t.Errorf("after the holder re-authorized, %d of their grants are active at Lark; want 2 (the slot's and the one left to expire)", n)
	}
	if g := larkGrants(t, app, "e2e_holder"); len(g) != 2 || g[0]["status"] == "revoked" || g[1]["status"] == "revoked" {
		t.Fatalf("the same user re-authorizing revoked something at Lark: %v", g)
	}
	before := slots(t, app)

	// Someone else signs in to Lark and comes back for the occupied slot: refused, and the grant
	// Lark just issued is revoked.
	larkUser(t, "e2e_intruder", "Intruder")
	p, code, state := browserFlow(t, rootToken, mountPath+"/oauth/"+app+"/authorize", "user=desk")
	wantPage(t, p, http.StatusForbidden, []string{"Authorization failed", "different Lark user than this link was made for", "only the slot", "Nothing was stored"}, code, state)
	sameSlots(t, app, before, "a refused authorization by another Lark user")
	if _, again := readUserToken(t, rootToken, app, "desk"); again["access_token"] != held["access_token"] || again["open_id"] != holderOpenID {
		t.Fatal("the slot no longer serves its holder's token")
	}
	if g := larkGrants(t, app, "e2e_intruder"); len(g) != 1 || g[0]["status"] != "revoked" {
		t.Fatalf("the refused grant at Lark: %v, want one revoked grant", g)
	}

	// A link an administrator made for a particular Lark user refuses anyone else.
	p, code, state = browserFlow(t, rootToken, mountPath+"/oauth/"+app+"/replace", "user=frontdesk", "expected_open_id="+holderOpenID)
	wantPage(t, p, http.StatusForbidden, []string{"different Lark user than this link was made for"}, code, state)
	sameSlots(t, app, before, "an authorization by an unexpected Lark user")

	// An administrator hands the slot over with replace.
	p, code, state = browserFlow(t, rootToken, mountPath+"/oauth/"+app+"/replace", "user=desk")
	wantPage(t, p, http.StatusOK, []string{"Authorized", "Intruder"}, code, state)
	_, now := readUserToken(t, rootToken, app, "desk")
	if now["open_id"] == holderOpenID || now["name"] != "Intruder" || now["access_token"] == held["access_token"] {
		t.Fatalf("after replace the slot holds open_id %v (%v), want the new user", now["open_id"], now["name"])
	}
	if info := slots(t, app)["desk"]; info["open_id"] != now["open_id"] {
		t.Fatalf("key_info after replace: %v", info)
	}
	// The grant the slot held when it passed to someone else is revoked at Lark; the holder's older
	// one, which Vault let go of at their re-authorization, only expires on its own.
	if n := activeGrants(t, app, "e2e_holder"); n != 1 {
		t.Errorf("after replace, %d of the previous holder's grants are still active at Lark; want 1 (the one left to expire)", n)
	}
	if n := activeGrants(t, app, "e2e_intruder"); n != 1 {
		t.Fatalf("the new holder has %d active grants at Lark, want 1", n)
	}
}

func TestOAuthDeclinedStoresNothing(t *testing.T) {
	const app = "cli_e2edecline"
	newOAuthApp(t, app)
	larkUser(t, "e2e_dora", "Dora")
	emulator(t, http.MethodPost, "/_emulator/authorize-mode", map[string]string{"mode": "deny"})
	t.Cleanup(func() {
		emulator(t, http.MethodPost, "/_emulator/authorize-mode", map[string]string{"mode": "approve"})
	})
	exchangesBefore := emulatorCount(t, "code_exchange")

	authURL, state := authorizeURL(t, rootToken, mountPath+"/oauth/"+app+"/authorize", "user=dora")
	location, code := atLark(t, authURL)
	if u, _ := url.Parse(location); code != "" || u.Query().Get("error") != "access_denied" || u.Query().Get("state") != state {
		t.Fatalf("declined at Lark: redirect %q, want error=access_denied with the state", location)
	}
	p := callback(t, location)
	wantPage(t, p, http.StatusBadRequest, []string{"Authorization declined", "no grant"}, state)
	if got := slots(t, app); len(got) != 0 {
		t.Fatalf("a declined authorization stored %v", got)
	}
	if got := emulatorCount(t, "code_exchange") - exchangesBefore; got != 0 {
		t.Fatalf("code exchanges = %d after a decline, want 0", got)
	}
	// The state is used up.
	p = callback(t, location)
	wantPage(t, p, http.StatusBadRequest, []string{"unknown or already used"}, state)
	status, body := vaultHTTP(t, rootToken, http.MethodGet, mountPath+"/user-token/"+app+"/dora", nil)
	if status != http.StatusNotFound || !strings.Contains(fmt.Sprint(body["errors"]), "no Lark grant") {
		t.Fatalf("read after a decline: HTTP %d %v; want 404", status, body["errors"])
	}
}

// activeGrants counts a Lark user's grants to an app that the emulator still honours.
func activeGrants(t *testing.T, app, userID string) int {
	t.Helper()
	n := 0
	for _, g := range larkGrants(t, app, userID) {
		if g["status"] == "active" {
			n++
		}
	}
	return n
}
