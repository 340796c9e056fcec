package lark

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lark-vault/vault-plugin-secrets-lark/larkemu"
)

// TestUserGrantFlow walks a grant through its whole life against the emulator, without a browser:
// authorize link, code exchange with PKCE, user_info, two rotations, reuse of a spent refresh token,
// revocation.
func TestUserGrantFlow(t *testing.T) {
	for _, ep := range []TokenEndpoint{TokenEndpointV3, TokenEndpointV2} {
		t.Run(string(ep), func(t *testing.T) {
			obs := &observer{}
			emu, _, c := newEmu(t, func(cfg *Config) { cfg.Observe = obs.observe })
			ctx := t.Context()

			code, verifier := authorizeCode(t, c, emuApp, grantScopes...)
			t1, err := c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret, UserTokenEndpoint: ep}).ExchangeCode(ctx, code, emuRedirect, verifier)
			require.NoError(t, err)
			assert.NotEmpty(t, t1.AccessToken)
			assert.NotEmpty(t, t1.RefreshToken)
			assert.Equal(t, larkemu.DefaultUserTokenTTL, t1.ExpiresIn)
			assert.Equal(t, larkemu.DefaultRefreshTokenTTL, t1.RefreshExpiresIn)
			assert.Equal(t, grantScopes, t1.Scope)
			assert.Equal(t, "Bearer", t1.TokenType)

			_, err = c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret, UserTokenEndpoint: ep}).ExchangeCode(ctx, code, emuRedirect, verifier)
			e := asError(t, err)
			assert.Equal(t, KindCodeInvalid, e.Kind, "a code works once")
			assert.Equal(t, 20065, e.Code)
			assert.False(t, e.ConsumedMaybe())

			info, err := c.UserInfo(ctx, t1.AccessToken)
			require.NoError(t, err)
			user := emu.CurrentUser()
			assert.Equal(t, &UserInfo{
				OpenID: emu.OpenID(emuApp, user.UserID), UnionID: emu.UnionID(user.UserID),
				Name: user.Name, EnName: user.EnName, TenantKey: larkemu.DefaultTenantKey,
			}, info)

			t2, err := c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret, UserTokenEndpoint: ep}).RefreshUserToken(ctx, t1.RefreshToken)
			require.NoError(t, err)
			t3, err := c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret, UserTokenEndpoint: ep}).RefreshUserToken(ctx, t2.RefreshToken)
			require.NoError(t, err)
			assert.NotEqual(t, t1.RefreshToken, t2.RefreshToken)
			assert.NotEqual(t, t2.RefreshToken, t3.RefreshToken)
			assert.NotEqual(t, t2.AccessToken, t3.AccessToken)
			_, err = c.UserInfo(ctx, t1.AccessToken)
			assert.NoError(t, err, "a refresh does not revoke the old access token")

			_, err = c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret, UserTokenEndpoint: ep}).RefreshUserToken(ctx, t1.RefreshToken)
			e = asError(t, err)
			assert.Equal(t, KindReauthRequired, e.Kind)
			assert.Equal(t, 20073, e.Code)
			assert.Equal(t, "refresh token already used", e.Reason())
			assert.False(t, e.ConsumedMaybe(), "Lark answered")
			assert.Contains(t, e.Error(), "lark: oauth_refresh: the user must authorize again: refresh token already used (HTTP 400, code 20073: ")
			assert.Equal(t, 1, emu.Calls(larkemu.EndpointRefreshReuse))

			require.NoError(t, c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret}).RevokeToken(ctx, t3.RefreshToken, TokenTypeHintRefreshToken))
			_, err = c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret, UserTokenEndpoint: ep}).RefreshUserToken(ctx, t3.RefreshToken)
			e = asError(t, err)
			assert.Equal(t, KindReauthRequired, e.Kind)
			assert.Equal(t, 20064, e.Code)
			assert.Contains(t, e.Reason(), "revoked")

			require.NoError(t, c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret}).RevokeToken(ctx, t3.AccessToken, TokenTypeHintAccessToken))
			_, err = c.UserInfo(ctx, t3.AccessToken)
			assert.True(t, IsKind(err, KindUserTokenInvalid), "got %v", err)

			want := map[string]int{
				larkemu.EndpointAuthorize: 1, larkemu.EndpointOAuthToken: 6, larkemu.EndpointCodeExchange: 2,
				larkemu.EndpointRefresh: 4, larkemu.EndpointRefreshReuse: 1, larkemu.EndpointRevoke: 2,
				larkemu.EndpointUserInfo: 3,
			}
			for endpoint, n := range emu.Counters() {
				assert.Equal(t, want[endpoint], n, "exactly one HTTP request per call: %s", endpoint)
			}
			var endpoints []string
			for _, call := range obs.calls {
				endpoints = append(endpoints, call.Endpoint)
			}
			assert.Equal(t, []string{
				EndpointOAuthToken, EndpointOAuthToken, EndpointUserInfo, EndpointOAuthRefresh, EndpointOAuthRefresh,
				EndpointUserInfo, EndpointOAuthRefresh, EndpointOAuthRevoke, EndpointOAuthRefresh, EndpointOAuthRevoke, EndpointUserInfo,
			}, endpoints)
		})
	}
}

func TestGrantWithoutOfflineAccessHasNoRefreshToken(t *testing.T) {
	_, _, c := newEmu(t)
	code, verifier := authorizeCode(t, c, emuApp, "auth:user.id:read")
	tok, err := c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret, UserTokenEndpoint: TokenEndpointV3}).ExchangeCode(t.Context(), code, emuRedirect, verifier)
	require.NoError(t, err)
	assert.NotEmpty(t, tok.AccessToken)
	assert.Empty(t, tok.RefreshToken)
	assert.Zero(t, tok.RefreshExpiresIn)
}

// TestGrantNearItsEnd checks that the client passes Lark's shrinking refresh lifetime through, which
// is what the backend's reauth warnings are computed from.
func TestGrantNearItsEnd(t *testing.T) {
	emu, _, c := newEmu(t)
	m, err := emu.MintGrant(larkemu.MintRequest{AppID: emuApp, AuthorizedAgo: larkemu.DefaultGrantMaxAge - 48*time.Hour})
	require.NoError(t, err)
	tok, err := c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret, UserTokenEndpoint: TokenEndpointV3}).RefreshUserToken(t.Context(), m.RefreshToken)
	require.NoError(t, err)
	assert.InDelta(t, (48 * time.Hour).Seconds(), tok.RefreshExpiresIn.Seconds(), 5)
	require.NoError(t, emu.Advance(49*time.Hour))
	_, err = c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret, UserTokenEndpoint: TokenEndpointV3}).RefreshUserToken(t.Context(), tok.RefreshToken)
	e := asError(t, err)
	assert.Equal(t, KindReauthRequired, e.Kind)
	assert.Equal(t, 20037, e.Code)
	assert.Contains(t, e.Reason(), "365-day")
}
