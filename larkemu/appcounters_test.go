package larkemu

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

const otherApp = "cli_otherapp"

func TestPerAppTokenLifetimes(t *testing.T) {
	s, ts, fc := newFakeEmu(t, Options{Apps: map[string]string{testApp: testSecret, otherApp: "otherSecret"}})
	ctl := ts.URL + ControlPrefix

	r := postJSON(t, ctl+"apps", `{"app_id":"`+testApp+`","app_secret":"`+testSecret+`","refresh_token_ttl_seconds":180,"user_token_ttl_seconds":600}`)
	expectEqual(t, "register status", r.status, http.StatusOK)
	expectEqual(t, "list", get(t, ctl+"apps").body,
		`{"apps":[{"app_id":"`+testApp+`","refresh_disabled":false,"scopes":[],"refresh_token_ttl_seconds":180,"user_token_ttl_seconds":600}`+
			`,{"app_id":"`+otherApp+`","refresh_disabled":false,"scopes":[]}]}`)

	// Code exchange, refresh and minting all use the app's lifetimes.
	tr := exchangeNew(t, ts, fullScope)
	expectEqual(t, "exchange expires_in", tr.ExpiresIn, int64(600))
	expectEqual(t, "exchange refresh_token_expires_in", tr.RefreshTokenExpiresIn, int64(180))
	fc.Advance(100 * time.Second)
	tr = okTokens(t, tokenV2(t, ts, refreshParams(tr.RefreshToken)))
	expectEqual(t, "refresh expires_in", tr.ExpiresIn, int64(600))
	expectEqual(t, "refresh refresh_token_expires_in", tr.RefreshTokenExpiresIn, int64(180))
	minted, err := s.MintGrant(MintRequest{AppID: testApp})
	if err != nil {
		t.Fatal(err)
	}
	expectEqual(t, "minted expires_in", minted.ExpiresIn, int64(600))
	expectEqual(t, "minted refresh_token_expires_in", minted.RefreshTokenExpiresIn, int64(180))

	// The 365-day cap still wins over a longer lifetime.
	late, err := s.MintGrant(MintRequest{AppID: testApp, AuthorizedAgo: 365*24*time.Hour - time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	expectEqual(t, "capped refresh_token_expires_in", late.RefreshTokenExpiresIn, int64(60))

	// Another app keeps the server's defaults.
	plain, err := s.MintGrant(MintRequest{AppID: otherApp})
	if err != nil {
		t.Fatal(err)
	}
	expectEqual(t, "other expires_in", plain.ExpiresIn, int64(DefaultUserTokenTTL/time.Second))
	expectEqual(t, "other refresh_token_expires_in", plain.RefreshTokenExpiresIn, int64(DefaultRefreshTokenTTL/time.Second))

	// The short refresh token really ends after 180 s.
	fc.Advance(180 * time.Second)
	wantOAuthError(t, tokenV2(t, ts, refreshParams(tr.RefreshToken)), oauthRefreshExpired)

	// Re-registering without the fields restores the defaults for tokens minted from then on.
	if err := s.AddApp(testApp, testSecret); err != nil {
		t.Fatal(err)
	}
	again, err := s.MintGrant(MintRequest{AppID: testApp})
	if err != nil {
		t.Fatal(err)
	}
	expectEqual(t, "default again", again.RefreshTokenExpiresIn, int64(DefaultRefreshTokenTTL/time.Second))

	for name, body := range map[string]string{
		"negative refresh": `{"app_id":"cli_x","app_secret":"x","refresh_token_ttl_seconds":-1}`,
		"negative user":    `{"app_id":"cli_x","app_secret":"x","user_token_ttl_seconds":-5}`,
		"absurd":           `{"app_id":"cli_x","app_secret":"x","refresh_token_ttl_seconds":1e12}`,
		"not a number":     `{"app_id":"cli_x","app_secret":"x","refresh_token_ttl_seconds":"180"}`,
	} {
		r := postJSON(t, ctl+"apps", body)
		expectEqual(t, name+" status", r.status, http.StatusBadRequest)
	}
	if err := s.RegisterApp(App{ID: "cli_x", Secret: "x", UserTokenTTL: -time.Second}); err == nil {
		t.Error("RegisterApp accepted a negative lifetime")
	}
	for _, a := range s.Apps() {
		if a.ID == "cli_x" {
			t.Error("a refused app was registered")
		}
	}
}

func TestAppCounters(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{Apps: map[string]string{testApp: testSecret, otherApp: "otherSecret"}})
	ctl := ts.URL + ControlPrefix

	tenant := fetchToken(t, ts, PathTenantAccessToken).TenantAccessToken
	fetchToken(t, ts, PathAppAccessToken)
	tr := exchangeNew(t, ts, fullScope)                                                                  // authorize, oauth_token, code_exchange
	next := okTokens(t, tokenV2(t, ts, refreshParams(tr.RefreshToken)))                                  // oauth_token, refresh
	wantOAuthError(t, tokenV2(t, ts, refreshParams(tr.RefreshToken)), oauthRefreshUsed)                  // oauth_token, refresh, refresh_reuse
	wantOAuthError(t, postForm(t, ts.URL+PathOAuthTokenV3, refreshParams("bogus")), oauthRefreshInvalid) // form body too
	expectEqual(t, "user_info", get(t, ts.URL+PathUserInfo, bearer(next.AccessToken)...).status, http.StatusOK)
	r := postJSON(t, sendURL(ts.URL, "open_id"), textBody(t, s.OpenID(testApp, DefaultUserID), "hello", ""), bearer(tenant)...)
	expectEqual(t, "send", r.status, http.StatusOK)
	expectEqual(t, "revoke", postForm(t, ts.URL+PathRevoke, map[string]string{
		"client_id": testApp, "client_secret": testSecret, "token": next.RefreshToken}).status, http.StatusOK)

	// The other app fetches one tenant token, over HTTP Basic on the v3 endpoint.
	req, _ := http.NewRequest(http.MethodPost, ts.URL+PathOAuthTokenV3, strings.NewReader(`{"grant_type":"client_credentials"}`))
	req.SetBasicAuth(otherApp, "otherSecret")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	// An app nobody registered is not counted per app (but globally, as always).
	postJSON(t, ts.URL+PathTenantAccessToken, credentials("cli_nobody", "x"))

	want := map[string]int{
		EndpointAppAccessToken: 1, EndpointTenantAccessToken: 1, EndpointAuthorize: 1, EndpointOAuthToken: 4,
		EndpointCodeExchange: 1, EndpointRefresh: 3, EndpointRefreshReuse: 1, EndpointRevoke: 1,
		EndpointUserInfo: 1, EndpointMessages: 1, CounterMaxRefreshPerSecond: 3,
		EndpointClientCredentials: 0, EndpointAppTicketResend: 0, EndpointStoreAppAccessToken: 0,
		EndpointStoreTenantAccessToken: 0, EndpointEventDelivery: 0,
		EndpointAuthenV1: 0, EndpointDeviceAuthorization: 0, EndpointDeviceToken: 0,
	}
	got := s.AppCounters(testApp)
	expectEqual(t, "counters", mustJSON(t, got), mustJSON(t, want))
	other := s.AppCounters(otherApp)
	expectEqual(t, "other oauth_token", other[EndpointOAuthToken], 1)
	expectEqual(t, "other refresh", other[EndpointRefresh], 0)
	expectEqual(t, "other client_credentials", other[EndpointClientCredentials], 1)
	expectEqual(t, "never registered", s.AppCounters("cli_nobody")[EndpointTenantAccessToken], 0)
	expectEqual(t, "global tenant_access_token", s.Calls(EndpointTenantAccessToken), 2)

	// The control API serves the same map, and resets one app without touching the other.
	var viaHTTP map[string]int
	if err := json.Unmarshal([]byte(get(t, ctl+"apps/"+testApp+"/counters").body), &viaHTTP); err != nil {
		t.Fatal(err)
	}
	expectEqual(t, "GET counters", mustJSON(t, viaHTTP), mustJSON(t, want))
	expectEqual(t, "reset", del(t, ctl+"apps/"+testApp+"/counters").body, `{"ok":true}`)
	expectEqual(t, "after reset", s.AppCounters(testApp)[EndpointRefresh], 0)
	expectEqual(t, "after reset rate", s.AppCounters(testApp)[CounterMaxRefreshPerSecond], 0)
	expectEqual(t, "other untouched", s.AppCounters(otherApp)[EndpointOAuthToken], 1)
	expectEqual(t, "global untouched", s.Calls(EndpointRefresh), 3)
	expectEqual(t, "malformed id", get(t, ctl+"apps/nope/counters").status, http.StatusBadRequest)
	expectEqual(t, "wrong method", postJSON(t, ctl+"apps/"+testApp+"/counters", `{}`).status, http.StatusMethodNotAllowed)
	expectEqual(t, "unknown sub path", get(t, ctl+"apps/"+testApp+"/tokens").status, http.StatusNotFound)

	// Reset clears per-app counters too.
	fetchToken(t, ts, PathTenantAccessToken)
	s.Reset()
	expectEqual(t, "after Reset", s.AppCounters(testApp)[EndpointTenantAccessToken], 0)
}

func TestMaxRefreshPerSecondWindow(t *testing.T) {
	var st appStats
	for _, step := range []struct {
		ms, inWindow, max int
	}{
		{0, 1, 1},
		{100, 2, 2},
		{200, 3, 3},
		{950, 4, 4},
		{1050, 4, 4}, // 0 has left the window; 100, 200, 950 and 1050 lie within one second
		{1500, 3, 4}, // 950, 1050, 1500
		{2500, 1, 4}, // 1500 is exactly one second earlier: not in the same window
		{4000, 1, 4},
		{4100, 2, 4},
		{4200, 3, 4},
		{4300, 4, 4},
		{4999, 5, 5},
	} {
		st.noteRefresh(epoch.Add(time.Duration(step.ms) * time.Millisecond))
		expectEqual(t, "in window at "+itoa(step.ms), len(st.recentRefreshes), step.inWindow)
		expectEqual(t, "max at "+itoa(step.ms), st.maxRefreshPerSecond, step.max)
	}
}

func TestMaxRefreshPerSecondOverHTTP(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	// A burst of refreshes (rejected ones count: they are requests all the same) ...
	for i := 0; i < 6; i++ {
		tokenV2(t, ts, refreshParams("bogus"))
	}
	got := s.AppCounters(testApp)
	expectEqual(t, "refresh", got[EndpointRefresh], 6)
	// ... measured on the wall clock: six local requests take well under a second.
	expectEqual(t, "max per second", got[CounterMaxRefreshPerSecond], 6)
	// Spread out over more than a second, the figure does not grow.
	time.Sleep(1100 * time.Millisecond)
	tokenV2(t, ts, refreshParams("bogus"))
	expectEqual(t, "max after a pause", s.AppCounters(testApp)[CounterMaxRefreshPerSecond], 6)
}

func TestRegisterUserWithoutSignIn(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	ctl := ts.URL + ControlPrefix
	expectEqual(t, "add bob", postJSON(t, ctl+"users", `{"user_id":"bob","name":"Bob","sign_in":false}`).body, `{"ok":true}`)
	expectEqual(t, "still signed in", s.CurrentUser().UserID, DefaultUserID)
	if s.OpenID(testApp, "bob") == "" {
		t.Fatal("bob is not registered")
	}
	if _, err := s.MintGrant(MintRequest{AppID: testApp, UserID: "bob"}); err != nil {
		t.Fatal(err)
	}
	expectEqual(t, "add carol", postJSON(t, ctl+"users", `{"user_id":"carol","sign_in":true}`).status, http.StatusOK)
	expectEqual(t, "carol signed in", s.CurrentUser().UserID, "carol")
	expectEqual(t, "add dave", postJSON(t, ctl+"users", `{"user_id":"dave"}`).status, http.StatusOK)
	expectEqual(t, "default signs in", s.CurrentUser().UserID, "dave")
}
