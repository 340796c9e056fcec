package lark

import (
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPKCE(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		v, err := NewPKCEVerifier()
		require.NoError(t, err)
		require.Len(t, v, 43)
		require.Regexp(t, `^[A-Za-z0-9_-]{43}$`, v)
		require.False(t, seen[v])
		seen[v] = true
		require.Regexp(t, `^[A-Za-z0-9_-]{43}$`, PKCEChallengeS256(v))
	}
	// RFC 7636 appendix B.
	assert.Equal(t, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", PKCEChallengeS256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"))
}

const testChallenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"

func TestAuthorizeURL(t *testing.T) {
	req := AuthorizeRequest{
		AppID: "cli_a1b2c3d4e5f6a7b8", RedirectURI: "https://vault.example/v1/lark/oauth/callback?x=1", State: "st+/=1",
		CodeChallenge: testChallenge, Scopes: []string{"auth:user.id:read", "offline_access"},
	}
	c := newClient(t, "http://127.0.0.1:1", func(cfg *Config) { cfg.BaseURL = "" })
	got, err := c.AuthorizeURL(req)
	require.NoError(t, err)
	assert.Equal(t, "https://accounts.feishu.cn/open-apis/authen/v1/authorize?client_id=cli_a1b2c3d4e5f6a7b8"+
		"&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"+
		"&redirect_uri=https%3A%2F%2Fvault.example%2Fv1%2Flark%2Foauth%2Fcallback%3Fx%3D1&response_type=code"+
		"&scope=auth%3Auser.id%3Aread%20offline_access&state=st%2B%2F%3D1", got)
	u, err := url.Parse(got)
	require.NoError(t, err)
	assert.Equal(t, "st+/=1", u.Query().Get("state"), "values survive the %20 rewrite")
	assert.Equal(t, "auth:user.id:read offline_access", u.Query().Get("scope"))
	assert.False(t, u.Query().Has("prompt"))

	req.Prompt = "consent"
	lark := newClient(t, "http://127.0.0.1:1", func(cfg *Config) { cfg.Brand, cfg.BaseURL = BrandLark, "" })
	got, err = lark.AuthorizeURL(req)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(got, "https://accounts.larksuite.com/open-apis/authen/v1/authorize?"), got)
	assert.Contains(t, got, "&prompt=consent&")

	over := newClient(t, "http://127.0.0.1:1", func(cfg *Config) { cfg.AccountsBaseURL = "http://127.0.0.1:8787/" })
	got, err = over.AuthorizeURL(req)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(got, "http://127.0.0.1:8787/open-apis/authen/v1/authorize?"), got)
}

func TestAuthorizeURLValidation(t *testing.T) {
	good := AuthorizeRequest{
		AppID: "cli_x", RedirectURI: "https://vault.example/cb", State: "s", CodeChallenge: testChallenge,
		Scopes: []string{"offline_access"},
	}
	many := make([]string, 51)
	for i := range many {
		many[i] = "scope" + strconv.Itoa(i)
	}
	tests := []struct {
		name string
		mod  func(*AuthorizeRequest)
		want string
	}{
		{"no app id", func(r *AuthorizeRequest) { r.AppID = " " }, "app_id is empty"},
		{"no state", func(r *AuthorizeRequest) { r.State = "" }, "state is empty"},
		{"state with newline", func(r *AuthorizeRequest) { r.State = "a\nb" }, "control characters"},
		{"no challenge", func(r *AuthorizeRequest) { r.CodeChallenge = "" }, "code_challenge"},
		{"short challenge", func(r *AuthorizeRequest) { r.CodeChallenge = "abc" }, "code_challenge"},
		{"bad prompt", func(r *AuthorizeRequest) { r.Prompt = "login" }, "prompt"},
		{"no redirect", func(r *AuthorizeRequest) { r.RedirectURI = "" }, "redirect_uri is empty"},
		{"relative redirect", func(r *AuthorizeRequest) { r.RedirectURI = "/cb" }, "absolute"},
		{"ftp redirect", func(r *AuthorizeRequest) { r.RedirectURI = "ftp://x/cb" }, "absolute"},
		{"redirect with fragment", func(r *AuthorizeRequest) { r.RedirectURI = "https://x/cb#frag" }, "fragment"},
		{"redirect with password", func(r *AuthorizeRequest) { r.RedirectURI = "https://u:p@x/cb" }, "user name"},
		{"empty scope", func(r *AuthorizeRequest) { r.Scopes = []string{"offline_access", ""} }, "scope 2 is empty"},
		{"scope with space", func(r *AuthorizeRequest) { r.Scopes = []string{"a b"} }, "scope 1 contains a space"},
		{"scope with tab", func(r *AuthorizeRequest) { r.Scopes = []string{"a\tb"} }, "scope 1 contains a space"},
		{"duplicate scope", func(r *AuthorizeRequest) { r.Scopes = []string{"offline_access", "offline_access"} }, `scope "offline_access" is listed twice`},
		{"too many scopes", func(r *AuthorizeRequest) { r.Scopes = many }, "51 scopes requested; Lark accepts at most 50"},
	}
	c := newClient(t, "http://127.0.0.1:1")
	_, err := c.AuthorizeURL(good)
	require.NoError(t, err)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := good
			tt.mod(&r)
			got, err := c.AuthorizeURL(r)
			assert.Empty(t, got)
			e := asError(t, err)
			assert.Equal(t, KindInvalidRequest, e.Kind)
			assert.Equal(t, EndpointAuthorize, e.Endpoint)
			assert.True(t, strings.HasPrefix(e.Error(), "lark: authorize: invalid request: "), e.Error())
			assert.Contains(t, e.Error(), tt.want)
		})
	}
	_, err = c.AuthorizeURL(AuthorizeRequest{AppID: "cli_x", RedirectURI: "https://x/cb", State: "s", CodeChallenge: testChallenge, Scopes: many[:50]})
	assert.NoError(t, err, "50 scopes are allowed")
}
