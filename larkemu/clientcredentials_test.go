package larkemu

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func clientCredentialsParams() map[string]string {
	return map[string]string{"grant_type": "client_credentials", "client_id": testApp, "client_secret": testSecret}
}

func TestClientCredentialsJWTShape(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	lengths := map[int]bool{}
	for i := 0; i < 40; i++ {
		r := postForm(t, ts.URL+PathOAuthTokenV3, clientCredentialsParams())
		tok, _ := decode(t, r.body)["access_token"].(string)
		if len(tok) < 2048 || len(tok) > 4096 {
			t.Fatalf("v3 tenant token is %d characters, want 2-4 KB", len(tok))
		}
		lengths[len(tok)] = true
		parts := strings.Split(tok, ".")
		if len(parts) != 3 || !strings.HasPrefix(tok, "eyJ") {
			t.Fatalf("not a JWT: %.20s…", tok)
		}
		var claims map[string]any
		raw, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil || json.Unmarshal(raw, &claims) != nil {
			t.Fatalf("claims are not base64url JSON: %v", err)
		}
		expectEqual(t, "claims app_id", claims["app_id"], any(testApp))
		expectEqual(t, "claims exp", claims["exp"], any(float64(epoch.Add(2*time.Hour).Unix())))
		if !s.TenantTokenValid(tok) {
			t.Fatal("v3 token not valid")
		}
	}
	if len(lengths) < 5 {
		t.Fatalf("token lengths hardly vary (%d distinct in 40): a client could get away with a fixed size", len(lengths))
	}
	expectEqual(t, "counted", s.AppCounters(testApp)[EndpointClientCredentials], 40)
	expectEqual(t, "counted under oauth_token too", s.Calls(EndpointOAuthToken), 40)
}

func TestClientCredentialsAuthentication(t *testing.T) {
	_, ts, fc := newFakeEmu(t, Options{})
	target := ts.URL + PathOAuthTokenV3
	// Body credentials as a form and as JSON, and HTTP Basic alone, all work.
	okTok := func(r response) string {
		t.Helper()
		m := decode(t, r.body)
		if r.status != http.StatusOK || m["code"] != any(jsonNumber("0")) || m["token_type"] != "Bearer" || m["expires_in"] != any(jsonNumber("7200")) {
			t.Fatalf("want a token, got %d %s", r.status, r.body)
		}
		return m["access_token"].(string)
	}
	a := okTok(postForm(t, target, clientCredentialsParams()))
	b := okTok(postJSON(t, target, mustJSON(t, clientCredentialsParams())))
	req, _ := http.NewRequest(http.MethodPost, target, strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(testApp, testSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || m["access_token"] == nil {
		t.Fatalf("HTTP Basic alone: %d %v", resp.StatusCode, m)
	}
	if a == b {
		t.Fatal("every call mints a fresh token")
	}

	// Secret in the body and HTTP Basic: 20070.
	wantOAuthError(t, postForm(t, target, clientCredentialsParams(), "Authorization", "Basic "+
		base64.StdEncoding.EncodeToString([]byte(testApp+":"+testSecret))), oauthMultipleAuth)
	// The exact wrong-secret answer the official CLI reads.
	p := clientCredentialsParams()
	p["client_secret"] = "wrong"
	r := postForm(t, target, p)
	expectEqual(t, "wrong secret status", r.status, http.StatusBadRequest)
	expectEqual(t, "wrong secret body", r.body, `{"code":20002,"error":"invalid_client","error_description":"The client secret is invalid."}`)
	p["client_id"] = "cli_nobody"
	wantOAuthError(t, postForm(t, target, p), oauthNoSuchApp)
	// v2 has no client_credentials.
	wantOAuthError(t, tokenV2(t, ts, clientCredentialsParams()), oauthBadGrantType)

	// The token sends messages like a legacy tenant token, and expires after 2 h.
	r = postJSON(t, sendURL(ts.URL, "user_id"), textBody(t, DefaultUserID, "x", ""), bearer(a)...)
	expectEqual(t, "send", r.status, http.StatusOK)
	fc.Advance(2 * time.Hour)
	r = postJSON(t, sendURL(ts.URL, "user_id"), textBody(t, DefaultUserID, "x", ""), bearer(a)...)
	expectEqual(t, "expired", gatewayCode(t, r), 99991663)
}

func TestClientCredentialsStoreAppAndFailures(t *testing.T) {
	s, base, _ := newStoreEmu(t, storeAppConfig(nil, ""), Options{})
	p := map[string]string{"grant_type": "client_credentials", "client_id": storeApp, "client_secret": storeSecret}
	wantOAuthError(t, postForm(t, base+PathOAuthTokenV3, p), oauthBadGrantType)

	inject(t, s, Failure{Endpoint: EndpointClientCredentials, Mode: FailError, Code: 20050})
	r := postForm(t, base+PathOAuthTokenV3, clientCredentialsParams())
	expectEqual(t, "injected status", r.status, http.StatusInternalServerError)
	wantOAuthError(t, r, 20050)
	// The failure hit only client_credentials: a refresh on the same endpoint is unaffected.
	inject(t, s, Failure{Endpoint: EndpointClientCredentials, Mode: Fail5xx})
	wantOAuthError(t, postForm(t, base+PathOAuthTokenV3, map[string]string{
		"grant_type": "refresh_token", "client_id": testApp, "client_secret": testSecret, "refresh_token": "bogus"}), oauthRefreshInvalid)
	expectEqual(t, "then the 5xx", postForm(t, base+PathOAuthTokenV3, clientCredentialsParams()).status, http.StatusServiceUnavailable)
}

func TestStoreEndpointFailureInjection(t *testing.T) {
	s, base, _ := newStoreEmu(t, storeAppConfig(nil, ""), Options{})
	inject(t, s, Failure{Endpoint: EndpointStoreAppAccessToken, Mode: FailError, Code: 10012})
	expectEqual(t, "legacy dialect", storeAppToken(t, base, "x").body, `{"code":10012,"msg":"error"}`)
	inject(t, s, Failure{Endpoint: EndpointStoreTenantAccessToken, Mode: Fail429})
	expectEqual(t, "429", storeTenantToken(t, base, "a-x", tenantA).status, http.StatusTooManyRequests)
	inject(t, s, Failure{Endpoint: EndpointAppTicketResend, Mode: FailError, Code: 10003})
	expectEqual(t, "resend", postJSON(t, base+PathAppTicketResend, credentials(storeApp, storeSecret)).body, `{"code":10003,"data":{},"msg":"invalid param"}`)
	expectEqual(t, "nothing pushed by a failed resend", len(s.Tickets(storeApp)), 0)
	// Counted even when failed, per app too.
	expectEqual(t, "per-app resend", s.AppCounters(storeApp)[EndpointAppTicketResend], 1)
	if err := s.InjectFailure(Failure{Endpoint: EndpointEventDelivery, Mode: Fail5xx}); err == nil {
		t.Fatal("event_delivery is a counter, not a failure target")
	}
}
