package larkemu

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Real Lark follows RFC 6749 on the v2 token endpoint too: a form body works like JSON, for
// both grants, with the same errors.
func TestOAuthTokenV2AcceptsForm(t *testing.T) {
	_, ts, _ := newFakeEmu(t, Options{})
	v2 := ts.URL + PathOAuthTokenV2

	p := codeParams(getCode(t, ts, fullScope))
	first := okTokens(t, postForm(t, v2, p))
	if first.RefreshToken == "" || first.Scope != fullScope {
		t.Fatalf("form code exchange: %+v", first)
	}
	wantOAuthError(t, postForm(t, v2, p), 20065) // the code is single-use, whatever the encoding

	second := okTokens(t, postForm(t, v2, refreshParams(first.RefreshToken)))
	wantOAuthError(t, postForm(t, v2, refreshParams(first.RefreshToken)), 20073)

	// A charset parameter is fine; a repeated field is ambiguous and malformed.
	form := url.Values{}
	for k, v := range refreshParams(second.RefreshToken) {
		form.Set(k, v)
	}
	form.Add("grant_type", "authorization_code")
	wantOAuthError(t, do(t, http.MethodPost, v2, "application/x-www-form-urlencoded", strings.NewReader(form.Encode())), 20063)
	form.Set("grant_type", "refresh_token")
	okTokens(t, do(t, http.MethodPost, v2, "application/x-www-form-urlencoded; charset=utf-8", strings.NewReader(form.Encode())))

	// Client authentication rules hold for forms as well: Basic plus a body secret is 20070.
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(testApp+":"+testSecret))
	wantOAuthError(t, postForm(t, v2, codeParams(getCode(t, ts, fullScope)), "Authorization", basic), 20070)
	wantOAuthError(t, postForm(t, v2, withKV(codeParams(getCode(t, ts, fullScope)), "client_secret", "wrong")), 20002)
}
