package lark

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lark-vault/vault-plugin-secrets-lark/larkemu"
)

func TestUserInfoErrors(t *testing.T) {
	tests := []struct {
		name    string
		token   func(t *testing.T, emu *larkemu.Server, c *Client, access string) string
		code    int
		kind    ErrorKind
		status  int
		attempt int
	}{
		{"expired", func(t *testing.T, emu *larkemu.Server, _ *Client, access string) string {
			require.NoError(t, emu.Advance(larkemu.DefaultUserTokenTTL+time.Second))
			return access
		}, 99991677, KindUserTokenInvalid, 400, 1},
		{"unknown", func(*testing.T, *larkemu.Server, *Client, string) string {
			return "eyJunknown.token.value"
		}, 99991668, KindUserTokenInvalid, 400, 1},
		{"revoked grant", func(t *testing.T, emu *larkemu.Server, _ *Client, access string) string {
			_, err := emu.RevokeGrants(larkemu.GrantSelector{AppID: emuApp})
			require.NoError(t, err)
			return access
		}, 20005, KindUserTokenInvalid, 200, 1},
		{"a tenant token", func(t *testing.T, _ *larkemu.Server, c *Client, _ string) string {
			tok, err := c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret}).TenantAccessToken(t.Context())
			require.NoError(t, err)
			return tok.TenantAccessToken
		}, 99991663, KindUserTokenInvalid, 400, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			emu, _, c := newEmu(t)
			m, err := emu.MintGrant(larkemu.MintRequest{AppID: emuApp})
			require.NoError(t, err)
			info, err := c.UserInfo(t.Context(), tt.token(t, emu, c, m.AccessToken))
			assert.Nil(t, info)
			e := asError(t, err)
			assert.Equal(t, tt.kind, e.Kind, e.Error())
			assert.Equal(t, tt.code, e.Code)
			assert.Equal(t, tt.status, e.HTTPStatus)
			assert.Equal(t, EndpointUserInfo, e.Endpoint)
			assert.Equal(t, tt.attempt, emu.Calls(larkemu.EndpointUserInfo))
			assert.False(t, e.Retryable())
		})
	}
}

func TestUserInfoIsRetried(t *testing.T) {
	emu, _, c := newEmu(t)
	m, err := emu.MintGrant(larkemu.MintRequest{AppID: emuApp})
	require.NoError(t, err)
	require.NoError(t, emu.InjectFailure(larkemu.Failure{Endpoint: larkemu.EndpointUserInfo, Mode: larkemu.Fail5xx}))
	info, err := c.UserInfo(t.Context(), m.AccessToken)
	require.NoError(t, err)
	assert.Equal(t, m.OpenID, info.OpenID)
	assert.Equal(t, 2, emu.Calls(larkemu.EndpointUserInfo))
}

func TestUserInfoRejectsMalformedTokenLocally(t *testing.T) {
	fake := newFake(t, reply(200, `{}`))
	c := newClient(t, fake.srv.URL)
	for _, tok := range []string{"", "has space", "line\r\nX-Injected: 1"} {
		_, err := c.UserInfo(t.Context(), tok)
		e := asError(t, err)
		assert.Equal(t, KindInvalidRequest, e.Kind)
		assert.False(t, e.ConsumedMaybe())
	}
	assert.Zero(t, fake.hits())
}

func TestUserInfoRequestAndMissingOpenID(t *testing.T) {
	fake := newFake(t, reply(200, `{"code":0,"msg":"success","data":{"name":"Zhang San"}}`))
	_, err := newClient(t, fake.srv.URL).UserInfo(t.Context(), "eyJuser.access.token")
	e := asError(t, err)
	assert.Equal(t, KindBadResponse, e.Kind)
	assert.Contains(t, e.Error(), "missing data.open_id")
	r := fake.requests()[0]
	assert.Equal(t, "GET", r.Method)
	assert.Equal(t, "/open-apis/authen/v1/user_info", r.Path)
	assert.Equal(t, "Bearer eyJuser.access.token", r.Header.Get("Authorization"))
}
