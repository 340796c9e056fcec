package lark

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lark-vault/vault-plugin-secrets-lark/larkemu"
)

const (
	emuApp      = "cli_vaultlarktest01"
	emuSecret   = "emu-app-secret-0001"
	emuRedirect = "https://vault.example/v1/lark/oauth/callback"
)

var grantScopes = []string{"auth:user.id:read", "offline_access"}

// newEmu starts an emulator and a client that uses it for both Lark hosts.
func newEmu(t *testing.T, mods ...func(*Config)) (*larkemu.Server, *httptest.Server, *Client) {
	t.Helper()
	emu, ts := larkemu.NewTestServer(t, larkemu.Options{Apps: map[string]string{emuApp: emuSecret}})
	mods = append([]func(*Config){func(cfg *Config) { cfg.AccountsBaseURL = ts.URL }}, mods...)
	return emu, ts, newClient(t, ts.URL, mods...)
}

// browser plays the user's browser: it must not follow the redirect to the (unreachable) callback.
var browser = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// authorizeCode opens the authorize link like a user who approves, and returns the code and the
// verifier the exchange needs.
func authorizeCode(t *testing.T, c *Client, appID string, scopes ...string) (code, verifier string) {
	t.Helper()
	verifier, err := NewPKCEVerifier()
	require.NoError(t, err)
	state, err := NewPKCEVerifier() // any unguessable string will do
	require.NoError(t, err)
	link, err := c.AuthorizeURL(AuthorizeRequest{
		AppID: appID, RedirectURI: emuRedirect, State: state, CodeChallenge: PKCEChallengeS256(verifier), Scopes: scopes,
	})
	require.NoError(t, err)
	resp, err := browser.Get(link)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusFound, resp.StatusCode)
	back, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(back.String(), emuRedirect+"?"), "redirected to %s", back)
	require.Equal(t, state, back.Query().Get("state"))
	code = back.Query().Get("code")
	require.NotEmpty(t, code)
	return code, verifier
}

// grant runs authorize and exchange and returns a fresh token pair.
func grant(t *testing.T, c *Client, ep TokenEndpoint) *UserToken {
	t.Helper()
	code, verifier := authorizeCode(t, c, emuApp, grantScopes...)
	tok, err := c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret, UserTokenEndpoint: ep}).ExchangeCode(t.Context(), code, emuRedirect, verifier)
	require.NoError(t, err)
	require.NotEmpty(t, tok.RefreshToken)
	return tok
}
