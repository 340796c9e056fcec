package lark

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const tokenOK = `{"code":0,"access_token":"eyJaccess.x.y","expires_in":7200,"refresh_token":"eyJrefresh.x.y",` +
	`"refresh_token_expires_in":604800,"token_type":"Bearer","scope":"auth:user.id:read offline_access"}`

func TestParseTokenEndpoint(t *testing.T) {
	for in, want := range map[string]TokenEndpoint{"v3": TokenEndpointV3, "v2": TokenEndpointV2} {
		got, err := ParseTokenEndpoint(in)
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
	for _, in := range []string{"", "V3", "v1", "3"} {
		_, err := ParseTokenEndpoint(in)
		assert.Error(t, err, in)
	}
}

// TestTokenRequestShapes pins the wire format: JSON bodies with client credentials inside for both
// grants on both generations, a form for revoke, never an Authorization header.
func TestTokenRequestShapes(t *testing.T) {
	fake := newFake(t, reply(200, tokenOK))
	accounts := newFake(t, reply(200, tokenOK))
	c := newClient(t, fake.srv.URL, func(cfg *Config) { cfg.AccountsBaseURL = accounts.srv.URL })
	ctx := t.Context()
	verifier := strings.Repeat("v", 43)

	for _, ep := range []TokenEndpoint{TokenEndpointV2, TokenEndpointV3} {
		tok, err := c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret, UserTokenEndpoint: ep}).ExchangeCode(ctx, "the-code", emuRedirect, verifier)
		require.NoError(t, err)
		assert.Equal(t, &UserToken{
			AccessToken: "eyJaccess.x.y", ExpiresIn: 2 * time.Hour, RefreshToken: "eyJrefresh.x.y", RefreshExpiresIn: 7 * 24 * time.Hour,
			Scope: []string{"auth:user.id:read", "offline_access"}, TokenType: "Bearer",
		}, tok)
		_, err = c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret, UserTokenEndpoint: ep}).RefreshUserToken(ctx, "the-refresh")
		require.NoError(t, err)
	}
	require.NoError(t, c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret}).RevokeToken(ctx, "the-token", TokenTypeHintRefreshToken))

	open, acc := fake.requests(), accounts.requests()
	require.Len(t, open, 2)
	require.Len(t, acc, 3)
	exchange := map[string]any{
		"grant_type": "authorization_code", "client_id": emuApp, "client_secret": emuSecret,
		"code": "the-code", "redirect_uri": emuRedirect, "code_verifier": verifier,
	}
	refresh := map[string]any{"grant_type": "refresh_token", "client_id": emuApp, "client_secret": emuSecret, "refresh_token": "the-refresh"}
	for i, r := range []recorded{open[0], open[1], acc[0], acc[1]} {
		wantPath, wantBody := "/open-apis/authen/v2/oauth/token", exchange
		if i >= 2 {
			wantPath = "/oauth/v3/token"
		}
		if i%2 == 1 {
			wantBody = refresh
		}
		assert.Equal(t, http.MethodPost, r.Method)
		assert.Equal(t, wantPath, r.Path)
		assert.Equal(t, "application/json; charset=utf-8", r.Header.Get("Content-Type"))
		assert.Empty(t, r.Header.Get("Authorization"), "client authentication travels in the body only")
		var body map[string]any
		require.NoError(t, json.Unmarshal(r.Body, &body))
		assert.Equal(t, wantBody, body)
	}
	rev := acc[2]
	assert.Equal(t, "/oauth/v1/revoke", rev.Path)
	assert.Equal(t, "application/x-www-form-urlencoded", rev.Header.Get("Content-Type"))
	assert.Empty(t, rev.Header.Get("Authorization"))
	form, err := url.ParseQuery(string(rev.Body))
	require.NoError(t, err)
	assert.Equal(t, url.Values{"client_id": {emuApp}, "client_secret": {emuSecret}, "token": {"the-token"}, "token_type_hint": {"refresh_token"}}, form)
}

// TestGrantCallsUseBrandHosts checks the real hosts without network access.
func TestGrantCallsUseBrandHosts(t *testing.T) {
	fake := newFake(t, reply(200, tokenOK))
	target, _ := url.Parse(fake.srv.URL)
	rt := &rewriteTransport{target: target}
	c, err := New(Config{Brand: BrandLark, HTTPClient: &http.Client{Transport: rt}})
	require.NoError(t, err)
	ctx := t.Context()
	_, err = c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret, UserTokenEndpoint: TokenEndpointV3}).ExchangeCode(ctx, "c", "", "")
	require.NoError(t, err)
	_, err = c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret, UserTokenEndpoint: TokenEndpointV2}).RefreshUserToken(ctx, "r")
	require.NoError(t, err)
	require.NoError(t, c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret}).RevokeToken(ctx, "t", ""))
	_, _ = c.UserInfo(ctx, "u-token")
	_, _ = c.SendText(ctx, "t-token", "ou_1", "hi", "u")
	assert.Equal(t, []string{
		"https://accounts.larksuite.com/oauth/v3/token",
		"https://open.larksuite.com/open-apis/authen/v2/oauth/token",
		"https://accounts.larksuite.com/oauth/v1/revoke",
		"https://open.larksuite.com/open-apis/authen/v1/user_info",
		"https://open.larksuite.com/open-apis/im/v1/messages?receive_id_type=open_id",
	}, rt.asked)
}

func TestAccountsBaseURLValidation(t *testing.T) {
	_, err := New(Config{Brand: BrandFeishu, AccountsBaseURL: "https://accounts.feishu.cn/oauth"})
	require.Error(t, err)
	assert.Equal(t, "lark: accounts base URL must not have a path; give scheme://host[:port] only", err.Error())
	_, err = New(Config{Brand: BrandFeishu, AccountsBaseURL: "ftp://x"})
	assert.ErrorContains(t, err, "lark: accounts base URL scheme")
	_, err = New(Config{Brand: BrandFeishu, AccountsBaseURL: "http://127.0.0.1:8787"})
	assert.NoError(t, err)
}

func TestUserTokenCallsRejectBadInputLocally(t *testing.T) {
	fake := newFake(t, reply(200, tokenOK))
	c := newClient(t, fake.srv.URL, func(cfg *Config) { cfg.AccountsBaseURL = fake.srv.URL })
	ctx := t.Context()
	check := func(err error, want string) {
		t.Helper()
		e := asError(t, err)
		assert.Equal(t, KindInvalidRequest, e.Kind)
		assert.Contains(t, e.Error(), want)
		assert.False(t, e.ConsumedMaybe())
	}
	_, err := c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret, UserTokenEndpoint: TokenEndpointV3}).ExchangeCode(ctx, "", emuRedirect, "")
	check(err, "authorization code is empty")
	_, err = c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret, UserTokenEndpoint: TokenEndpointV3}).ExchangeCode(ctx, "c", emuRedirect, "short")
	check(err, "code_verifier")
	_, err = c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret, UserTokenEndpoint: "v9"}).ExchangeCode(ctx, "c", emuRedirect, "")
	check(err, "token endpoint")
	_, err = c.App(AppCredentials{AppID: "", AppSecret: emuSecret, UserTokenEndpoint: TokenEndpointV3}).RefreshUserToken(ctx, "r")
	check(err, "app_id is empty")
	_, err = c.App(AppCredentials{AppID: emuApp, AppSecret: "", UserTokenEndpoint: TokenEndpointV3}).RefreshUserToken(ctx, "r")
	check(err, "app_secret is empty")
	_, err = c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret, UserTokenEndpoint: TokenEndpointV3}).RefreshUserToken(ctx, "")
	check(err, "refresh token is empty")
	check(c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret}).RevokeToken(ctx, "", ""), "token is empty")
	check(c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret}).RevokeToken(ctx, "t", "id_token"), "token_type_hint")
	check(c.App(AppCredentials{AppID: emuApp, AppSecret: ""}).RevokeToken(ctx, "t", ""), "app_secret is empty")
	assert.Zero(t, fake.hits())
}

// TestUserTokenValidation: a success answer the backend cannot store is a bad response, and since
// Lark did act on it, the credential counts as possibly spent.
func TestUserTokenValidation(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"missing access token", `{"code":0,"expires_in":7200}`, "missing access_token"},
		{"expires_in zero", `{"code":0,"access_token":"eyJa","expires_in":0}`, "expires_in is missing or not positive"},
		{"expires_in missing", `{"code":0,"access_token":"eyJa"}`, "expires_in is missing"},
		{"expires_in absurd", `{"code":0,"access_token":"eyJa","expires_in":9223372036854775807}`, "expires_in is out of range"},
		{"expires_in as string", `{"code":0,"access_token":"eyJa","expires_in":"7200"}`, "unexpected JSON shape"},
		{"access token with space", `{"code":0,"access_token":"eyJa b","expires_in":7200}`, "access_token contains characters"},
		{"access token too long", `{"code":0,"access_token":"` + strings.Repeat("a", 8<<10+1) + `","expires_in":7200}`, "access_token is implausibly long"},
		{"refresh without lifetime", `{"code":0,"access_token":"eyJa","expires_in":7200,"refresh_token":"eyJr"}`, "refresh_token_expires_in is missing"},
		{"refresh with newline", `{"code":0,"access_token":"eyJa","expires_in":7200,"refresh_token":"eyJr\n","refresh_token_expires_in":5}`, "refresh_token contains characters"},
		{"HTML", `<html>hi</html>`, "HTML page instead of JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake(t, reply(200, tt.body))
			c := newClient(t, fake.srv.URL, func(cfg *Config) { cfg.AccountsBaseURL = fake.srv.URL })
			tok, err := c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret, UserTokenEndpoint: TokenEndpointV3}).RefreshUserToken(t.Context(), "some-refresh-token")
			assert.Nil(t, tok)
			e := asError(t, err)
			assert.Equal(t, KindBadResponse, e.Kind)
			assert.Contains(t, e.Error(), tt.want)
			assert.True(t, e.ConsumedMaybe())
			assert.Equal(t, 1, fake.hits())
		})
	}
}
