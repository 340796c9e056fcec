package larkemu

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestUserInfo(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	if err := s.AddUser(User{UserID: "alice", Name: "Alice", EnName: "Alice L", Email: "alice@example.com"}); err != nil {
		t.Fatal(err)
	}
	tr := exchangeNew(t, ts, fullScope)
	r := get(t, ts.URL+PathUserInfo, bearer(tr.AccessToken)...)
	expectEqual(t, "status", r.status, 200)
	m := decode(t, r.body)
	expectEqual(t, "code", m["code"], any(jsonNumber("0")))
	expectEqual(t, "msg", m["msg"], any("success"))
	data := m["data"].(map[string]any)
	expectEqual(t, "name", data["name"], any("Alice"))
	expectEqual(t, "en_name", data["en_name"], any("Alice L"))
	expectEqual(t, "open_id", data["open_id"], any(s.OpenID(testApp, "alice")))
	expectEqual(t, "union_id", data["union_id"], any(s.UnionID("alice")))
	expectEqual(t, "tenant_key", data["tenant_key"], any(DefaultTenantKey))
	for _, gated := range []string{"email", "user_id"} {
		if _, ok := data[gated]; ok {
			t.Errorf("%s returned without its contact scope", gated)
		}
	}

	withContact := exchangeNew(t, ts, ScopeUserEmail+" "+ScopeUserEmployeeID)
	data = decode(t, get(t, ts.URL+PathUserInfo, bearer(withContact.AccessToken)...).body)["data"].(map[string]any)
	expectEqual(t, "email", data["email"], any("alice@example.com"))
	expectEqual(t, "user_id", data["user_id"], any("alice"))

	// A user of another organisation reports their own tenant.
	if err := s.AddUser(User{UserID: "bob", TenantKey: "2ca1d211f64f6438"}); err != nil {
		t.Fatal(err)
	}
	bob := exchangeNew(t, ts, fullScope)
	data = decode(t, get(t, ts.URL+PathUserInfo, bearer(bob.AccessToken)...).body)["data"].(map[string]any)
	expectEqual(t, "bob's tenant_key", data["tenant_key"], any("2ca1d211f64f6438"))
	if err := s.AddUser(User{UserID: "carol", TenantKey: "not a tenant"}); err == nil {
		t.Error("a malformed tenant_key was accepted")
	}
}

func TestUserIDsPerApp(t *testing.T) {
	s, _, _ := newFakeEmu(t, Options{})
	_ = s.AddApp("cli_second", "x")
	_ = s.AddUser(User{UserID: "bob"})
	a, b := s.OpenID(testApp, "bob"), s.OpenID("cli_second", "bob")
	if a == b || a[:3] != "ou_" || len(a) != 35 {
		t.Fatalf("open_ids %q and %q: want distinct ou_ ids per app", a, b)
	}
	if u := s.UnionID("bob"); u[:3] != "on_" || u == s.UnionID(DefaultUserID) {
		t.Fatalf("union_id %q", u)
	}
	_ = s.AddUser(User{UserID: "carol", OpenID: "ou_fixed", UnionID: "on_fixed"})
	expectEqual(t, "fixed open_id", s.OpenID("cli_second", "carol"), "ou_fixed")
	expectEqual(t, "fixed union_id", s.UnionID("carol"), "on_fixed")
	expectEqual(t, "unknown", s.OpenID(testApp, "nobody"), "")
	if s.AddUser(User{UserID: "has space"}) == nil {
		t.Fatal("bad user id accepted")
	}
}

func TestUserInfoErrors(t *testing.T) {
	s, ts, fc := newFakeEmu(t, Options{})
	tenant := fetchToken(t, ts, PathTenantAccessToken).TenantAccessToken
	live := exchangeNew(t, ts, fullScope)
	revoked := exchangeNew(t, ts, fullScope)
	if _, err := s.RevokeGrants(GrantSelector{GrantID: s.Grants()[1].GrantID}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		header []string
		status int
		code   int
	}{
		{"no header", nil, 400, 99991661},
		{"no Bearer prefix", []string{"Authorization", live.AccessToken}, 400, 99991661},
		{"Basic", []string{"Authorization", "Basic eDp5"}, 400, 99991661},
		{"empty bearer", []string{"Authorization", "Bearer "}, 400, 99991661},
		{"unknown token", bearer("eyJnope"), 400, 99991668},
		{"refresh token", bearer(live.RefreshToken), 400, 99991668},
		{"tenant token", bearer(tenant), 400, 99991663},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := get(t, ts.URL+PathUserInfo, c.header...)
			expectEqual(t, "status", r.status, c.status)
			expectEqual(t, "code", gatewayCode(t, r), c.code)
		})
	}
	r := get(t, ts.URL+PathUserInfo, bearer(revoked.AccessToken)...)
	expectEqual(t, "revoked status", r.status, 200)
	expectEqual(t, "revoked body", r.body, `{"code":20005,"msg":"The user access token passed is invalid. Please check the value"}`)

	fc.Advance(2*time.Hour - time.Nanosecond)
	expectEqual(t, "just before expiry", get(t, ts.URL+PathUserInfo, bearer(live.AccessToken)...).status, http.StatusOK)
	fc.Advance(time.Nanosecond)
	r = get(t, ts.URL+PathUserInfo, bearer(live.AccessToken)...)
	expectEqual(t, "expired code", gatewayCode(t, r), 99991677)
	expectEqual(t, "counter", s.Calls(EndpointUserInfo), len(cases)+3)
}

func TestExpireGrantExpiresAccessTokens(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	tr := exchangeNew(t, ts, fullScope)
	if n, err := s.ExpireGrants(GrantSelector{AppID: testApp, UserID: DefaultUserID}); n != 1 || err != nil {
		t.Fatalf("ExpireGrants: %d %v", n, err)
	}
	expectEqual(t, "code", gatewayCode(t, get(t, ts.URL+PathUserInfo, bearer(tr.AccessToken)...)), 99991677)
}

// TestUserInfoCallsRecorded: every user_info call with a bearer token is recorded with its app, the
// SHA-256 of its token (never the token) and the code answered, so that a test can tell which of a
// user's tokens a client used; the control API lists and clears them, and a reset forgets them.
func TestUserInfoCallsRecorded(t *testing.T) {
	s, ts, clk := newFakeEmu(t, Options{})
	expectEqual(t, "before any call", get(t, ts.URL+ControlPrefix+"user-info-calls").body, `{"calls":[]}`)

	first := exchangeNew(t, ts, fullScope)
	second := exchangeNew(t, ts, fullScope)
	tenant := fetchToken(t, ts, PathTenantAccessToken).TenantAccessToken
	get(t, ts.URL+PathUserInfo, bearer(first.AccessToken)...)
	get(t, ts.URL+PathUserInfo, bearer(second.AccessToken)...)
	get(t, ts.URL+PathUserInfo, bearer("u-never-issued")...)
	get(t, ts.URL+PathUserInfo, bearer(tenant)...)
	get(t, ts.URL+PathUserInfo) // no token: not a call with a token, not recorded
	clk.Advance(3 * time.Hour)
	get(t, ts.URL+PathUserInfo, bearer(first.AccessToken)...)

	r := get(t, ts.URL+ControlPrefix+"user-info-calls")
	expectEqual(t, "status", r.status, http.StatusOK)
	for _, tok := range []string{first.AccessToken, second.AccessToken, tenant} {
		if strings.Contains(r.body, tok) {
			t.Fatal("the control API handed out a token")
		}
	}
	var list struct {
		Calls []UserInfoCall `json:"calls"`
	}
	if err := jsonUnmarshal([]byte(r.body), &list); err != nil {
		t.Fatal(err)
	}
	type want struct {
		app, openID, token string
		code               int
	}
	openID := s.OpenID(testApp, DefaultUserID)
	wants := []want{
		{testApp, openID, first.AccessToken, 0},
		{testApp, openID, second.AccessToken, 0},
		{"", "", "u-never-issued", gwInvalidUserToken},
		{"", "", tenant, gwInvalidAppToken},
		{testApp, "", first.AccessToken, gwUserTokenExpired},
	}
	if len(list.Calls) != len(wants) {
		t.Fatalf("recorded %d calls, want %d: %s", len(list.Calls), len(wants), r.body)
	}
	for i, w := range wants {
		c := list.Calls[i]
		expectEqual(t, "app_id", c.AppID, w.app)
		expectEqual(t, "open_id", c.OpenID, w.openID)
		expectEqual(t, "token_sha256", c.TokenSHA256, tokenSHA256(w.token))
		expectEqual(t, "code", c.Code, w.code)
	}
	expectEqual(t, "time of the last call", list.Calls[4].At.Equal(clk.Now()), true)

	expectEqual(t, "clear", del(t, ts.URL+ControlPrefix+"user-info-calls").body, `{"ok":true}`)
	expectEqual(t, "after clear", len(s.UserInfoCalls()), 0)
	get(t, ts.URL+PathUserInfo, bearer(second.AccessToken)...)
	expectEqual(t, "after a new call", len(s.UserInfoCalls()), 1)
	s.Reset()
	expectEqual(t, "after reset", len(s.UserInfoCalls()), 0)
}
