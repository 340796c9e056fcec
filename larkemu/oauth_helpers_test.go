package larkemu

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

const (
	testRedirect = "https://vault.example/v1/lark/oauth/callback"
	testVerifier = "Zq8hT3nV0xYb5cKp2Lm9Qr4Ws7Ud1Fg6Hj0Ka3Zx5Cv"
)

func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// authorize loads the authorize page and returns the redirect target (or fails the test).
func authorize(t *testing.T, ts *httptest.Server, q url.Values) *url.URL {
	t.Helper()
	resp, err := noRedirects.Get(ts.URL + PathAuthorize + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize: status %d, want 302", resp.StatusCode)
	}
	u, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func authorizeQuery(scope string) url.Values {
	return url.Values{
		"client_id": {testApp}, "response_type": {"code"}, "redirect_uri": {testRedirect},
		"scope": {scope}, "state": {"st-123"}, "code_challenge": {s256(testVerifier)}, "code_challenge_method": {"S256"},
	}
}

// getCode runs the authorize page with PKCE S256 and returns the code.
func getCode(t *testing.T, ts *httptest.Server, scope string) string {
	t.Helper()
	u := authorize(t, ts, authorizeQuery(scope))
	code := u.Query().Get("code")
	if code == "" {
		t.Fatalf("no code in %s", u)
	}
	return code
}

func codeParams(code string) map[string]string {
	return map[string]string{
		"grant_type": "authorization_code", "client_id": testApp, "client_secret": testSecret,
		"code": code, "redirect_uri": testRedirect, "code_verifier": testVerifier,
	}
}

func refreshParams(rt string) map[string]string {
	return map[string]string{"grant_type": "refresh_token", "client_id": testApp, "client_secret": testSecret, "refresh_token": rt}
}

func tokenV2(t *testing.T, ts *httptest.Server, p map[string]string, header ...string) response {
	t.Helper()
	return postJSON(t, ts.URL+PathOAuthTokenV2, mustJSON(t, p), header...)
}

func postForm(t *testing.T, target string, p map[string]string, header ...string) response {
	t.Helper()
	v := url.Values{}
	for k, val := range p {
		v.Set(k, val)
	}
	return do(t, http.MethodPost, target, "application/x-www-form-urlencoded", strings.NewReader(v.Encode()), header...)
}

type tokenResult struct {
	Code                  int    `json:"code"`
	AccessToken           string `json:"access_token"`
	ExpiresIn             int64  `json:"expires_in"`
	RefreshToken          string `json:"refresh_token"`
	RefreshTokenExpiresIn int64  `json:"refresh_token_expires_in"`
	TokenType             string `json:"token_type"`
	Scope                 string `json:"scope"`
}

func okTokens(t *testing.T, r response) tokenResult {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var tr tokenResult
	if err := json.Unmarshal([]byte(r.body), &tr); err != nil || tr.Code != 0 {
		t.Fatalf("not a success: %s (%v)", r.body, err)
	}
	return tr
}

// wantOAuthError checks the exact error body and status of an OAuth failure.
func wantOAuthError(t *testing.T, r response, code int) {
	t.Helper()
	info := oauthErrors[code]
	if info.status == 0 {
		t.Fatalf("test bug: no table row for %d", code)
	}
	want := `{"code":` + itoa(code) + `,"error":"` + info.err + `","error_description":"` + info.description + `"}`
	if r.status != info.status || r.body != want {
		t.Errorf("got %d %s\nwant %d %s", r.status, r.body, info.status, want)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// exchangeNew authorizes with scope and exchanges the code.
func exchangeNew(t *testing.T, ts *httptest.Server, scope string) tokenResult {
	t.Helper()
	return okTokens(t, tokenV2(t, ts, codeParams(getCode(t, ts, scope))))
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

// gatewayCode returns the code of a gateway error and checks its shape.
func gatewayCode(t *testing.T, r response) int {
	t.Helper()
	var g struct {
		Code  int    `json:"code"`
		Msg   string `json:"msg"`
		Error struct {
			LogID string `json:"log_id"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.body), &g); err != nil || g.Msg == "" || g.Error.LogID == "" {
		t.Fatalf("not a gateway error: %s (%v)", r.body, err)
	}
	return g.Code
}

func ioCopy(b *strings.Builder, resp *http.Response) (int64, error) { return io.Copy(b, resp.Body) }
