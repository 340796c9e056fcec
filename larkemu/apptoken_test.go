package larkemu

import (
	"bytes"
	"fmt"
	"log"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestLegacyTokenReuseRule(t *testing.T) {
	s, ts, fc := newFakeEmu(t, Options{})

	first := fetchToken(t, ts, PathTenantAccessToken)
	if !strings.HasPrefix(first.TenantAccessToken, "t-") {
		t.Fatalf("tenant token %q lacks the t- prefix", first.TenantAccessToken)
	}
	expectEqual(t, "first expire", first.Expire, int64(7200))

	steps := []struct {
		advance    time.Duration
		wantSame   bool
		wantExpire int64
	}{
		{0, true, 7200},
		{100 * time.Second, true, 7100},
		// Exactly 30 minutes left still counts as "at least 30 minutes".
		{5300 * time.Second, true, 1800},
		// A nanosecond less and Lark mints a new token.
		{time.Nanosecond, false, 7200},
	}
	for i, st := range steps {
		fc.Advance(st.advance)
		got := fetchToken(t, ts, PathTenantAccessToken)
		if same := got.TenantAccessToken == first.TenantAccessToken; same != st.wantSame {
			t.Fatalf("step %d: same token = %v, want %v", i, same, st.wantSame)
		}
		expectEqual(t, fmt.Sprintf("step %d expire", i), got.Expire, st.wantExpire)
	}
	second := fetchToken(t, ts, PathAppAccessToken)
	if second.AppAccessToken == first.TenantAccessToken {
		t.Fatal("the app endpoint returned the old token after a new one was minted")
	}
	// Both tokens are valid until the first one's own expiry.
	if !s.TenantTokenValid(first.TenantAccessToken) || !s.TenantTokenValid(second.TenantAccessToken) {
		t.Fatal("old and new token must both be valid inside the reuse window")
	}
	fc.Advance(30*time.Minute - time.Nanosecond) // first token now ends this very instant
	if s.TenantTokenValid(first.TenantAccessToken) {
		t.Fatal("the old token outlived its expiry")
	}
	if !s.TenantTokenValid(second.TenantAccessToken) {
		t.Fatal("the new token expired early")
	}
	again := fetchToken(t, ts, PathTenantAccessToken)
	expectEqual(t, "token after old expiry", again.TenantAccessToken, second.TenantAccessToken)
	expectEqual(t, "expire after old expiry", again.Expire, int64(5400))
	if s.TenantTokenValid("t-unknown") || s.TenantTokenValid("") {
		t.Fatal("unknown token reported valid")
	}
}

func TestLegacyTokenSharedBetweenEndpoints(t *testing.T) {
	_, ts, _ := newFakeEmu(t, Options{})
	app := fetchToken(t, ts, PathAppAccessToken)
	tenant := fetchToken(t, ts, PathTenantAccessToken)
	expectEqual(t, "app endpoint: app == tenant token", app.AppAccessToken, app.TenantAccessToken)
	expectEqual(t, "tenant endpoint returns the same token", tenant.TenantAccessToken, app.TenantAccessToken)
}

func TestLegacyTokenConfigurableLifetimes(t *testing.T) {
	s, ts, fc := newFakeEmu(t, Options{AppTokenTTL: 10 * time.Minute, ReuseWindow: 2 * time.Minute})
	first := fetchToken(t, ts, PathTenantAccessToken)
	expectEqual(t, "expire", first.Expire, int64(600))
	fc.Advance(8 * time.Minute)
	expectEqual(t, "at window edge", fetchToken(t, ts, PathTenantAccessToken).TenantAccessToken, first.TenantAccessToken)
	fc.Advance(time.Second)
	next := fetchToken(t, ts, PathTenantAccessToken)
	if next.TenantAccessToken == first.TenantAccessToken || next.Expire != 600 {
		t.Fatalf("want a fresh 600 s token, got same=%v expire=%d", next.TenantAccessToken == first.TenantAccessToken, next.Expire)
	}
	fc.Advance(2 * time.Minute)
	if s.TenantTokenValid(first.TenantAccessToken) {
		t.Fatal("old token valid past its 10 minutes")
	}
}

func TestLegacyTokenExactBodies(t *testing.T) {
	_, ts, _ := newFakeEmu(t, Options{})
	for _, path := range []string{PathAppAccessToken, PathTenantAccessToken} {
		r := postJSON(t, ts.URL+path, credentials(testApp, testSecret))
		tok := decode(t, r.body)["tenant_access_token"].(string)
		want := `{"code":0,"msg":"ok","tenant_access_token":"` + tok + `","expire":7200}`
		if path == PathAppAccessToken {
			want = `{"code":0,"msg":"ok","app_access_token":"` + tok + `","tenant_access_token":"` + tok + `","expire":7200}`
		}
		expectEqual(t, path+" body", r.body, want)
		expectEqual(t, path+" content type", r.header.Get("Content-Type"), "application/json; charset=utf-8")
		if r.header.Get("X-Tt-Logid") == "" {
			t.Errorf("%s: no X-Tt-Logid header", path)
		}
	}
}

func TestLegacyTokenErrors(t *testing.T) {
	const (
		invalid   = `{"code":10003,"data":{},"msg":"invalid param"}`
		notExists = `{"code":10014,"msg":"app id not exists"}`
		badSecret = `{"code":10014,"msg":"app secret invalid"}`
	)
	big := `{"app_id":"` + testApp + `","app_secret":"` + testSecret + `","pad":"` + strings.Repeat("x", 64<<10) + `"}`
	cases := []struct {
		name, body, want string
	}{
		{"empty body", "", invalid},
		{"not JSON", "app_id=" + testApp, invalid},
		{"JSON array", "[]", invalid},
		{"JSON null", "null", invalid},
		{"empty object", "{}", invalid},
		{"empty app_id", `{"app_id":"","app_secret":"x"}`, invalid},
		{"numeric app_id", `{"app_id":123,"app_secret":"x"}`, invalid},
		{"malformed app_id", `{"app_id":"not an app","app_secret":"x"}`, invalid},
		{"missing secret", `{"app_id":"` + testApp + `"}`, invalid},
		{"empty secret", `{"app_id":"` + testApp + `","app_secret":""}`, invalid},
		{"trailing garbage", credentials(testApp, testSecret) + "}", invalid},
		{"body over 64 KiB", big, invalid},
		{"unknown app", credentials("cli_0000000000000000", "x"), notExists},
		{"wrong secret", credentials(testApp, "wrong"), badSecret},
		{"secret prefix", credentials(testApp, testSecret[:5]), badSecret},
	}
	_, ts, _ := newFakeEmu(t, Options{})
	for _, path := range []string{PathAppAccessToken, PathTenantAccessToken} {
		for _, c := range cases {
			t.Run(path+"/"+c.name, func(t *testing.T) {
				r := postJSON(t, ts.URL+path, c.body)
				expectEqual(t, "status", r.status, http.StatusOK)
				expectEqual(t, "body", r.body, c.want)
			})
		}
	}
}

func TestRoutingErrors(t *testing.T) {
	_, ts, _ := newFakeEmu(t, Options{})
	r := get(t, ts.URL+PathTenantAccessToken)
	expectEqual(t, "GET token status", r.status, http.StatusMethodNotAllowed)
	expectEqual(t, "Allow", r.header.Get("Allow"), "POST")

	for _, path := range []string{"/open-apis/nope", "/open-apis/auth/v3/tenant_access_token/internal/", "/elsewhere"} {
		r := postJSON(t, ts.URL+path, "{}")
		expectEqual(t, path+" status", r.status, http.StatusNotFound)
		expectEqual(t, path+" body", r.body, `{"code":404,"msg":"404 page not found"}`)
	}
}

func TestRemoveAppInvalidatesTokens(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	tok := fetchToken(t, ts, PathTenantAccessToken).TenantAccessToken
	if !s.RemoveApp(testApp) {
		t.Fatal("RemoveApp reported the app missing")
	}
	if s.RemoveApp(testApp) {
		t.Fatal("RemoveApp removed the app twice")
	}
	if s.TenantTokenValid(tok) {
		t.Fatal("token of a removed app is still valid")
	}
	r := postJSON(t, ts.URL+PathTenantAccessToken, credentials(testApp, testSecret))
	expectEqual(t, "body", r.body, `{"code":10014,"msg":"app id not exists"}`)
}

func TestReplacingSecret(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	tok := fetchToken(t, ts, PathTenantAccessToken).TenantAccessToken
	if err := s.AddApp(testApp, "new-secret"); err != nil {
		t.Fatal(err)
	}
	r := postJSON(t, ts.URL+PathTenantAccessToken, credentials(testApp, testSecret))
	expectEqual(t, "old secret", r.body, `{"code":10014,"msg":"app secret invalid"}`)
	r = postJSON(t, ts.URL+PathTenantAccessToken, credentials(testApp, "new-secret"))
	expectEqual(t, "new secret gets the same token", decode(t, r.body)["tenant_access_token"], any(tok))
}

func TestAddAppValidation(t *testing.T) {
	s := New(Options{})
	for _, c := range []struct{ id, secret string }{{"", "x"}, {"app", "x"}, {"cli_", "x"}, {"cli_ok", ""}, {"cli_a b", "x"}} {
		if err := s.AddApp(c.id, c.secret); err == nil {
			t.Errorf("AddApp(%q, %q) accepted", c.id, c.secret)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("New accepted a malformed app id in Options.Apps")
		}
	}()
	New(Options{Apps: map[string]string{"bogus": "x"}})
}

func TestLogsNeverContainSecretsOrTokens(t *testing.T) {
	var buf bytes.Buffer
	_, ts, _ := newFakeEmu(t, Options{Logger: log.New(&buf, "", 0)})
	tok := fetchToken(t, ts, PathAppAccessToken).AppAccessToken
	postJSON(t, ts.URL+PathTenantAccessToken, credentials(testApp, "wrong-secret-value"))
	postJSON(t, ts.URL+PathTenantAccessToken, credentials("malformed-"+testSecret, testSecret))
	logs := buf.String()
	for _, secret := range []string{testSecret, "wrong-secret-value", tok} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains a secret or token:\n%s", logs)
		}
	}
	if !strings.Contains(logs, testApp) {
		t.Errorf("log does not name the app:\n%s", logs)
	}
}
