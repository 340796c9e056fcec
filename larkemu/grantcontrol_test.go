package larkemu

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

func TestControlUsers(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	ctl := ts.URL + ControlPrefix
	r := postJSON(t, ctl+"users", `{"user_id":"alice","name":"Alice","email":"alice@example.com","open_id":"ou_alice"}`)
	expectEqual(t, "add", r.body, `{"ok":true}`)
	expectEqual(t, "bad user", postJSON(t, ctl+"users", `{"user_id":""}`).status, http.StatusBadRequest)
	expectEqual(t, "unknown field", postJSON(t, ctl+"users", `{"user_id":"x","nick":"y"}`).status, http.StatusBadRequest)

	var listed struct {
		Users []struct {
			UserID  string `json:"user_id"`
			OpenID  string `json:"open_id"`
			UnionID string `json:"union_id"`
			Current bool   `json:"current"`
		} `json:"users"`
	}
	if err := json.Unmarshal([]byte(get(t, ctl+"users").body), &listed); err != nil || len(listed.Users) != 2 {
		t.Fatalf("users: %+v %v", listed, err)
	}
	alice := listed.Users[0]
	expectEqual(t, "alice", alice.UserID, "alice")
	expectEqual(t, "alice current", alice.Current, true)
	expectEqual(t, "alice open_id", alice.OpenID, "ou_alice")
	expectEqual(t, "default no longer current", listed.Users[1].Current, false)

	// The authorize page now approves as Alice.
	tr := exchangeNew(t, ts, fullScope)
	data := decode(t, get(t, ts.URL+PathUserInfo, bearer(tr.AccessToken)...).body)["data"].(map[string]any)
	expectEqual(t, "user_info open_id", data["open_id"], any("ou_alice"))
	expectEqual(t, "grant user", s.Grants()[0].UserID, "alice")
}

func TestControlGrants(t *testing.T) {
	s, ts, fc := newFakeEmu(t, Options{})
	ctl := ts.URL + ControlPrefix

	r := postJSON(t, ctl+"grants", `{"app_id":"`+testApp+`","authorized_days_ago":364.5}`)
	expectEqual(t, "mint status", r.status, 200)
	var minted MintedGrant
	if err := json.Unmarshal([]byte(r.body), &minted); err != nil {
		t.Fatal(err)
	}
	expectEqual(t, "grant id", minted.GrantID, "grant-1")
	expectEqual(t, "scope", minted.Scope, fullScope)
	expectEqual(t, "authorized_at", minted.AuthorizedAt, epoch.Add(-time.Duration(364.5*24*float64(time.Hour))))
	expectEqual(t, "refresh capped at half a day", minted.RefreshTokenExpiresIn, int64(12*3600))
	expectEqual(t, "open_id", minted.OpenID, s.OpenID(testApp, DefaultUserID))
	okTokens(t, tokenV2(t, ts, refreshParams(minted.RefreshToken)))

	r = postJSON(t, ctl+"grants", `{"app_id":"`+testApp+`","scopes":["auth:user.id:read"]}`)
	var noRefresh MintedGrant
	_ = json.Unmarshal([]byte(r.body), &noRefresh)
	if noRefresh.RefreshToken != "" || noRefresh.AccessToken == "" {
		t.Fatalf("mint without offline_access: %s", r.body)
	}

	for name, body := range map[string]string{
		"unknown app":   `{"app_id":"cli_nobody"}`,
		"unknown user":  `{"app_id":"` + testApp + `","user_id":"ghost"}`,
		"negative days": `{"app_id":"` + testApp + `","authorized_days_ago":-1}`,
	} {
		expectEqual(t, name, postJSON(t, ctl+"grants", body).status, http.StatusBadRequest)
	}

	var listed struct {
		Grants []GrantInfo `json:"grants"`
	}
	if err := json.Unmarshal([]byte(get(t, ctl+"grants").body), &listed); err != nil || len(listed.Grants) != 2 {
		t.Fatalf("grants: %+v %v", listed, err)
	}
	expectEqual(t, "refreshes", listed.Grants[0].Refreshes, 1)
	expectEqual(t, "no-refresh grant status", listed.Grants[1].Status, GrantActive)
	if listed.Grants[1].RefreshExpiry != nil {
		t.Error("grant without refresh token reports a refresh expiry")
	}

	for _, body := range []string{`{}`, `{"grant_id":"grant-1","app_id":"` + testApp + `"}`, `{"grant_id":"grant-1","user_id":"x"}`} {
		expectEqual(t, "bad selector "+body, postJSON(t, ctl+"grants/revoke", body).status, http.StatusBadRequest)
	}
	expectEqual(t, "no match", postJSON(t, ctl+"grants/revoke", `{"grant_id":"grant-99"}`).status, http.StatusNotFound)
	expectEqual(t, "revoke", postJSON(t, ctl+"grants/revoke", `{"grant_id":"grant-1"}`).body, `{"grants":1}`)
	expectEqual(t, "expire", postJSON(t, ctl+"grants/expire", `{"app_id":"`+testApp+`","user_id":"`+DefaultUserID+`"}`).body, `{"grants":2}`)
	g := s.Grants()
	expectEqual(t, "revoked status", g[0].Status, GrantRevoked)
	expectEqual(t, "expired status", g[1].Status, GrantExpired)

	fc.Advance(time.Hour)
	s.Reset()
	expectEqual(t, "grants after reset", get(t, ctl+"grants").body, `{"grants":[]}`)
}

func TestGrantStatusNoRefresh(t *testing.T) {
	s, _, fc := newFakeEmu(t, Options{})
	if _, err := s.MintGrant(MintRequest{AppID: testApp, Scopes: []string{"auth:user.id:read"}}); err != nil {
		t.Fatal(err)
	}
	expectEqual(t, "fresh", s.Grants()[0].Status, GrantActive)
	fc.Advance(2 * time.Hour)
	expectEqual(t, "access expired", s.Grants()[0].Status, GrantNoRefresh)
}

func TestResetKeepsConfiguration(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	_ = s.AddUser(User{UserID: "alice"})
	exchangeNew(t, ts, fullScope)
	tok := fetchToken(t, ts, PathTenantAccessToken).TenantAccessToken
	postJSON(t, sendURL(ts.URL, "user_id"), textBody(t, "alice", "x", ""), bearer(tok)...)
	_ = s.SetAuthorizeMode(AuthorizeDeny)
	s.Reset()
	expectEqual(t, "messages", len(s.Messages()), 0)
	expectEqual(t, "grants", len(s.Grants()), 0)
	expectEqual(t, "current user kept", s.CurrentUser().UserID, "alice")
	expectEqual(t, "apps kept", len(s.Apps()), 1)
	// Consent is forgotten too: a new authorization starts from just the requested scopes.
	expectEqual(t, "scope", exchangeNew(t, ts, "auth:user.id:read").Scope, "auth:user.id:read")
}

func TestControlMintBatch(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	ctl := ts.URL + ControlPrefix

	r := postJSON(t, ctl+"grants/batch", `{"app_id":"`+testApp+`","authorized_days_ago":1,"count":3}`)
	expectEqual(t, "batch status", r.status, 200)
	var out struct {
		Grants []MintedGrant `json:"grants"`
	}
	if err := json.Unmarshal([]byte(r.body), &out); err != nil {
		t.Fatal(err)
	}
	expectEqual(t, "grants minted", len(out.Grants), 3)
	seen := map[string]bool{}
	for _, g := range out.Grants {
		if g.RefreshToken == "" || seen[g.RefreshToken] {
			t.Fatalf("refresh tokens must be present and distinct: %+v", out.Grants)
		}
		seen[g.RefreshToken] = true
		expectEqual(t, "authorized_at", g.AuthorizedAt, epoch.Add(-24*time.Hour))
		// Each one is a real grant: its refresh token works once.
		okTokens(t, tokenV2(t, ts, refreshParams(g.RefreshToken)))
	}
	expectEqual(t, "grants held", len(s.Grants()), 3)

	for name, body := range map[string]string{
		"no count":      `{"app_id":"` + testApp + `"}`,
		"zero":          `{"app_id":"` + testApp + `","count":0}`,
		"too many":      `{"app_id":"` + testApp + `","count":1001}`,
		"unknown app":   `{"app_id":"cli_nobody","count":2}`,
		"negative days": `{"app_id":"` + testApp + `","count":2,"authorized_days_ago":-1}`,
		"unknown field": `{"app_id":"` + testApp + `","count":2,"n":2}`,
	} {
		expectEqual(t, name, postJSON(t, ctl+"grants/batch", body).status, http.StatusBadRequest)
	}
	expectEqual(t, "nothing minted by refused batches", len(s.Grants()), 3)
}
