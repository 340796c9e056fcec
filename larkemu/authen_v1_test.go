package larkemu

import (
	"bytes"
	"encoding/json"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// plainCode runs the authorize page without PKCE, as v1 clients do, and returns the code.
func plainCode(t *testing.T, ts *httptest.Server, appID, scope string) string {
	t.Helper()
	u := authorize(t, ts, url.Values{
		"client_id": {appID}, "response_type": {"code"}, "redirect_uri": {testRedirect}, "scope": {scope},
	})
	code := u.Query().Get("code")
	if code == "" {
		t.Fatalf("no code in %s", u)
	}
	return code
}

// v1Post calls a v1 endpoint with the app token as bearer ("" sends no Authorization header).
func v1Post(t *testing.T, ts *httptest.Server, path, appToken string, body map[string]string) response {
	t.Helper()
	var header []string
	if appToken != "" {
		header = bearer(appToken)
	}
	return postJSON(t, ts.URL+path, mustJSON(t, body), header...)
}

type v1Tokens struct {
	AccessToken      string `json:"access_token"`
	TokenType        string `json:"token_type"`
	ExpiresIn        int64  `json:"expires_in"`
	RefreshToken     string `json:"refresh_token"`
	RefreshExpiresIn int64  `json:"refresh_expires_in"`
	Scope            string `json:"scope"`
}

// okV1 checks a v1 success: HTTP 200, code 0, msg "success", and data with exactly wantKeys.
func okV1(t *testing.T, r response, wantKeys ...string) v1Tokens {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var env struct {
		Code int                        `json:"code"`
		Msg  string                     `json:"msg"`
		Data map[string]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(r.body), &env); err != nil || env.Code != 0 || env.Msg != "success" {
		t.Fatalf("not a v1 success: %s (%v)", r.body, err)
	}
	var keys []string
	for k := range env.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := slices.Sorted(slices.Values(wantKeys))
	if !slices.Equal(keys, want) {
		t.Errorf("data keys %v, want %v", keys, want)
	}
	var tok v1Tokens
	b, _ := json.Marshal(env.Data)
	if err := json.Unmarshal(b, &tok); err != nil {
		t.Fatal(err)
	}
	return tok
}

var oidcKeys = []string{"access_token", "token_type", "expires_in", "refresh_token", "refresh_expires_in", "scope"}

// wantV1Error checks the v1 error shape: {code,msg} on HTTP 200 (500 for 20050), nothing else.
func wantV1Error(t *testing.T, r response, code int) {
	t.Helper()
	status := http.StatusOK
	if code == v1ServerError {
		status = http.StatusInternalServerError
	}
	want := `{"code":` + itoa(code) + `,"msg":"` + v1ErrorText[code] + `"}`
	if r.status != status || r.body != want {
		t.Errorf("got %d %s\nwant %d %s", r.status, r.body, status, want)
	}
}

func codeBody(code string) map[string]string {
	return map[string]string{"grant_type": "authorization_code", "code": code}
}

func refreshBody(rt string) map[string]string {
	return map[string]string{"grant_type": "refresh_token", "refresh_token": rt}
}

func TestAuthenV1OIDCCodeExchange(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	appToken := fetchToken(t, ts, PathAppAccessToken).AppAccessToken

	tok := okV1(t, v1Post(t, ts, PathV1OIDCAccessToken, appToken, codeBody(plainCode(t, ts, testApp, "auth:user.id:read"))), oidcKeys...)
	if !strings.HasPrefix(tok.AccessToken, "u-") || !strings.HasPrefix(tok.RefreshToken, "ur-") {
		t.Errorf("v1 tokens are u-/ur-: %q %q", tok.AccessToken[:4], tok.RefreshToken[:4])
	}
	// v1 predates offline_access: a refresh token comes without it, living about 30 days.
	expectEqual(t, "token_type", tok.TokenType, "Bearer")
	expectEqual(t, "expires_in", tok.ExpiresIn, int64(DefaultUserTokenTTL/time.Second))
	expectEqual(t, "refresh_expires_in", tok.RefreshExpiresIn, int64(DefaultV1RefreshTokenTTL/time.Second))
	expectEqual(t, "scope", tok.Scope, "auth:user.id:read")

	// The u- token is a user access token like any other: user_info and messages accept it.
	expectEqual(t, "user_info", get(t, ts.URL+PathUserInfo, bearer(tok.AccessToken)...).status, http.StatusOK)
	r := postJSON(t, sendURL(ts.URL, "open_id"), textBody(t, s.OpenID(testApp, DefaultUserID), "hi", ""), bearer(tok.AccessToken)...)
	expectEqual(t, "send as user", r.status, http.StatusOK)

	grants := s.Grants()
	expectEqual(t, "grants", len(grants), 1)
	expectEqual(t, "grant status", grants[0].Status, GrantActive)
	expectEqual(t, "authen_v1 calls", s.Calls(EndpointAuthenV1), 1)
	expectEqual(t, "per-app authen_v1", s.AppCounters(testApp)[EndpointAuthenV1], 1)
	expectEqual(t, "not a v2 code exchange", s.Calls(EndpointCodeExchange), 0)
}

func TestAuthenV1CodeErrors(t *testing.T) {
	s, ts, fc := newFakeEmu(t, Options{})
	if err := s.AddApp("cli_other", "otherSecret"); err != nil {
		t.Fatal(err)
	}
	appToken := fetchToken(t, ts, PathAppAccessToken).AppAccessToken

	code := plainCode(t, ts, testApp, fullScope)
	okV1(t, v1Post(t, ts, PathV1OIDCAccessToken, appToken, codeBody(code)), oidcKeys...)
	wantV1Error(t, v1Post(t, ts, PathV1OIDCAccessToken, appToken, codeBody(code)), v1CodeInvalid) // single use
	wantOAuthError(t, tokenV2(t, ts, map[string]string{
		"grant_type": "authorization_code", "client_id": testApp, "client_secret": testSecret, "code": code,
	}), oauthCodeUsed) // one code, whichever generation redeemed it

	wantV1Error(t, v1Post(t, ts, PathV1OIDCAccessToken, appToken, codeBody("no-such-code")), v1CodeInvalid)
	wantV1Error(t, v1Post(t, ts, PathV1OIDCAccessToken, appToken, codeBody(plainCode(t, ts, "cli_other", ""))), v1AppMismatch)

	expired := plainCode(t, ts, testApp, fullScope)
	fc.Advance(DefaultCodeTTL)
	appToken = fetchToken(t, ts, PathAppAccessToken).AppAccessToken
	wantV1Error(t, v1Post(t, ts, PathV1OIDCAccessToken, appToken, codeBody(expired)), v1CodeExpired)

	// v1 has no code_verifier: a code bound to a PKCE challenge is refused there and stays good for v2.
	pkce := getCode(t, ts, fullScope)
	body := codeBody(pkce)
	body["code_verifier"] = testVerifier
	wantV1Error(t, v1Post(t, ts, PathV1OIDCAccessToken, appToken, body), v1CodeInvalid)
	okTokens(t, tokenV2(t, ts, codeParams(pkce)))

	// Grant type and body.
	good := plainCode(t, ts, testApp, fullScope)
	wantV1Error(t, v1Post(t, ts, PathV1OIDCAccessToken, appToken, map[string]string{"code": good}), v1InvalidRequest)
	wantV1Error(t, v1Post(t, ts, PathV1OIDCAccessToken, appToken, map[string]string{"grant_type": "refresh_token", "code": good}), v1GrantTypeNotAllowed)
	wantV1Error(t, v1Post(t, ts, PathV1OIDCAccessToken, appToken, map[string]string{"grant_type": "authorization_code"}), v1InvalidRequest)
	wantV1Error(t, postJSON(t, ts.URL+PathV1OIDCAccessToken, `{"grant_type":`, bearer(appToken)...), v1InvalidRequest)
	wantV1Error(t, postJSON(t, ts.URL+PathV1OIDCAccessToken, `{"grant_type":"authorization_code","code":7}`, bearer(appToken)...), v1InvalidRequest)
	wantV1Error(t, postForm(t, ts.URL+PathV1OIDCAccessToken, codeBody(good), bearer(appToken)...), v1InvalidRequest)
	okV1(t, v1Post(t, ts, PathV1OIDCAccessToken, appToken, codeBody(good)), oidcKeys...) // the code survived all of that
}

func TestAuthenV1AppTokenRequired(t *testing.T) {
	s, ts, fc := newFakeEmu(t, Options{})
	code := plainCode(t, ts, testApp, fullScope)

	r := v1Post(t, ts, PathV1OIDCAccessToken, "", codeBody(code))
	expectEqual(t, "no header: status", r.status, http.StatusBadRequest)
	expectEqual(t, "no header: code", gatewayCode(t, r), gwMissingToken)
	r = postJSON(t, ts.URL+PathV1OIDCAccessToken, mustJSON(t, codeBody(code)), "Authorization", "t-not-bearer")
	expectEqual(t, "no Bearer prefix", gatewayCode(t, r), gwMissingToken)

	wantV1Error(t, v1Post(t, ts, PathV1OIDCAccessToken, "t-g0000", codeBody(code)), v1AppTokenInvalid)
	user := exchangeNew(t, ts, fullScope)
	wantV1Error(t, v1Post(t, ts, PathV1OIDCAccessToken, user.AccessToken, codeBody(code)), v1AppTokenInvalid)

	appToken := fetchToken(t, ts, PathAppAccessToken).AppAccessToken
	fc.Advance(DefaultAppTokenTTL)
	wantV1Error(t, v1Post(t, ts, PathV1OIDCAccessToken, appToken, codeBody(code)), v1AppTokenInvalid)

	// The tenant token of a self-built app is its app token, and the SDKs send either.
	tenant := fetchToken(t, ts, PathTenantAccessToken).TenantAccessToken
	okV1(t, v1Post(t, ts, PathV1OIDCAccessToken, tenant, codeBody(plainCode(t, ts, testApp, fullScope))), oidcKeys...)
	if s.Calls(EndpointAuthenV1) != 6 {
		t.Errorf("authen_v1 calls = %d, want 6", s.Calls(EndpointAuthenV1))
	}
}

func TestAuthenV1RefreshRotation(t *testing.T) {
	s, ts, fc := newFakeEmu(t, Options{})
	appToken := fetchToken(t, ts, PathAppAccessToken).AppAccessToken
	first := okV1(t, v1Post(t, ts, PathV1OIDCAccessToken, appToken, codeBody(plainCode(t, ts, testApp, fullScope))), oidcKeys...)

	fc.Advance(time.Minute)
	second := okV1(t, v1Post(t, ts, PathV1OIDCRefreshAccessToken, appToken, refreshBody(first.RefreshToken)), oidcKeys...)
	if second.AccessToken == first.AccessToken || second.RefreshToken == first.RefreshToken {
		t.Fatal("refresh did not rotate both tokens")
	}
	expectEqual(t, "scope kept", second.Scope, fullScope)
	// Single use: the old refresh token is gone at once (20038), the old access token lives on.
	wantV1Error(t, v1Post(t, ts, PathV1OIDCRefreshAccessToken, appToken, refreshBody(first.RefreshToken)), v1RefreshNotFound)
	expectEqual(t, "old access token", get(t, ts.URL+PathUserInfo, bearer(first.AccessToken)...).status, http.StatusOK)
	g := s.Grants()[0]
	expectEqual(t, "refreshes", g.Refreshes, 1)
	expectEqual(t, "reuse attempts", g.ReuseAttempts, 1)

	// Generations do not mix: v2 refuses a ur- token, v1 a v2 refresh token.
	wantOAuthError(t, tokenV2(t, ts, refreshParams(second.RefreshToken)), oauthRefreshInvalid)
	v2 := exchangeNew(t, ts, fullScope)
	wantV1Error(t, v1Post(t, ts, PathV1OIDCRefreshAccessToken, appToken, refreshBody(v2.RefreshToken)), v1RefreshInvalid)
	wantV1Error(t, v1Post(t, ts, PathV1OIDCRefreshAccessToken, appToken, refreshBody("ur-garbage")), v1RefreshInvalid)
	wantV1Error(t, v1Post(t, ts, PathV1OIDCRefreshAccessToken, appToken, refreshBody(second.AccessToken)), v1RefreshInvalid)

	// Wrong grant type, missing token, another app's token.
	wantV1Error(t, v1Post(t, ts, PathV1OIDCRefreshAccessToken, appToken, codeBody(second.RefreshToken)), v1GrantTypeNotAllowed)
	wantV1Error(t, v1Post(t, ts, PathV1OIDCRefreshAccessToken, appToken, map[string]string{"grant_type": "refresh_token"}), v1InvalidRequest)
	if err := s.AddApp("cli_other", "otherSecret"); err != nil {
		t.Fatal(err)
	}
	r := postJSON(t, ts.URL+PathAppAccessToken, credentials("cli_other", "otherSecret"))
	var other legacyToken
	if err := json.Unmarshal([]byte(r.body), &other); err != nil {
		t.Fatal(err)
	}
	wantV1Error(t, v1Post(t, ts, PathV1OIDCRefreshAccessToken, other.AppAccessToken, refreshBody(second.RefreshToken)), v1AppMismatch)

	// The token chain survived every refused attempt.
	okV1(t, v1Post(t, ts, PathV1OIDCRefreshAccessToken, appToken, refreshBody(second.RefreshToken)), oidcKeys...)
}

func TestAuthenV1RefreshEnds(t *testing.T) {
	s, ts, fc := newFakeEmu(t, Options{})
	appToken := func() string { return fetchToken(t, ts, PathAppAccessToken).AppAccessToken }
	v1Grant := func() v1Tokens {
		return okV1(t, v1Post(t, ts, PathV1OIDCAccessToken, appToken(), codeBody(plainCode(t, ts, testApp, fullScope))), oidcKeys...)
	}

	expiring := v1Grant()
	revoked := v1Grant()
	ended := v1Grant()
	grants := s.Grants()
	if _, err := s.RevokeGrants(GrantSelector{GrantID: grants[1].GrantID}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ExpireGrants(GrantSelector{GrantID: grants[2].GrantID}); err != nil {
		t.Fatal(err)
	}
	wantV1Error(t, v1Post(t, ts, PathV1OIDCRefreshAccessToken, appToken(), refreshBody(revoked.RefreshToken)), v1RefreshNotFound)
	wantV1Error(t, v1Post(t, ts, PathV1OIDCRefreshAccessToken, appToken(), refreshBody(ended.RefreshToken)), v1RefreshExpired)

	fc.Advance(DefaultV1RefreshTokenTTL)
	wantV1Error(t, v1Post(t, ts, PathV1OIDCRefreshAccessToken, appToken(), refreshBody(expiring.RefreshToken)), v1RefreshExpired)

	// An app's own refresh token lifetime applies to v1 tokens too.
	if err := s.RegisterApp(App{ID: testApp, Secret: testSecret, RefreshTokenTTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	short := v1Grant()
	expectEqual(t, "refresh_expires_in", short.RefreshExpiresIn, int64(3600))
}

func TestAuthenV1ProfileEndpoints(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	if err := s.AddUser(User{UserID: "alice", Name: "Alice", EnName: "Alice L", Email: "alice@example.com"}); err != nil {
		t.Fatal(err)
	}
	appToken := fetchToken(t, ts, PathAppAccessToken).AppAccessToken
	profileKeys := append(slices.Clone(oidcKeys), "name", "en_name", "avatar_url", "avatar_thumb", "avatar_middle",
		"avatar_big", "open_id", "union_id", "tenant_key")

	r := v1Post(t, ts, PathV1AccessToken, appToken, codeBody(plainCode(t, ts, testApp, "")))
	first := okV1(t, r, profileKeys...)
	data := decode(t, r.body)["data"].(map[string]any)
	expectEqual(t, "name", data["name"], any("Alice"))
	expectEqual(t, "open_id", data["open_id"], any(s.OpenID(testApp, "alice")))
	expectEqual(t, "union_id", data["union_id"], any(s.UnionID("alice")))
	expectEqual(t, "tenant_key", data["tenant_key"], any(DefaultTenantKey))

	// The email comes only with its contact scope, as from user_info.
	r = v1Post(t, ts, PathV1RefreshAccessToken, appToken, refreshBody(first.RefreshToken))
	okV1(t, r, profileKeys...)
	r = v1Post(t, ts, PathV1AccessToken, appToken, codeBody(plainCode(t, ts, testApp, ScopeUserEmail)))
	okV1(t, r, append(profileKeys, "email")...)
	expectEqual(t, "email", decode(t, r.body)["data"].(map[string]any)["email"], any("alice@example.com"))

	// The OIDC and the older paths are one grant family: tokens from one refresh at the other.
	// (Grants are cumulative, so this code carries the email scope given above.)
	second := okV1(t, v1Post(t, ts, PathV1OIDCAccessToken, appToken, codeBody(plainCode(t, ts, testApp, ""))), oidcKeys...)
	okV1(t, v1Post(t, ts, PathV1RefreshAccessToken, appToken, refreshBody(second.RefreshToken)), append(profileKeys, "email")...)
}

func TestAuthenV1InjectedErrors(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	appToken := fetchToken(t, ts, PathAppAccessToken).AppAccessToken
	code := plainCode(t, ts, testApp, fullScope)
	inject(t, s, Failure{Endpoint: EndpointAuthenV1, Mode: FailError, Code: v1ServerError})
	inject(t, s, Failure{Endpoint: EndpointAuthenV1, Mode: FailError, Code: 20022})
	wantV1Error(t, v1Post(t, ts, PathV1OIDCAccessToken, appToken, codeBody(code)), v1ServerError)
	wantV1Error(t, v1Post(t, ts, PathV1OIDCAccessToken, appToken, codeBody(code)), 20022)
	okV1(t, v1Post(t, ts, PathV1OIDCAccessToken, appToken, codeBody(code)), oidcKeys...)
}

func TestAuthenV1LogsNoTokens(t *testing.T) {
	var logs bytes.Buffer
	_, ts, _ := newFakeEmu(t, Options{Logger: log.New(&logs, "", 0)})
	appToken := fetchToken(t, ts, PathAppAccessToken).AppAccessToken
	code := plainCode(t, ts, testApp, fullScope)
	tok := okV1(t, v1Post(t, ts, PathV1OIDCAccessToken, appToken, codeBody(code)), oidcKeys...)
	next := okV1(t, v1Post(t, ts, PathV1OIDCRefreshAccessToken, appToken, refreshBody(tok.RefreshToken)), oidcKeys...)
	wantV1Error(t, v1Post(t, ts, PathV1OIDCRefreshAccessToken, appToken, refreshBody(tok.RefreshToken)), v1RefreshNotFound)
	for _, secret := range []string{testSecret, appToken, code, tok.AccessToken, tok.RefreshToken, next.AccessToken, next.RefreshToken} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("log contains a secret or token:\n%s", logs.String())
		}
	}
	if !strings.Contains(logs.String(), EndpointAuthenV1+": app_id="+testApp+" code=20038") {
		t.Errorf("log lacks the refused refresh:\n%s", logs.String())
	}
}
