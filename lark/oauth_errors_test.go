package lark

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lark-vault/vault-plugin-secrets-lark/larkemu"
)

const otherApp, otherSecret = "cli_someoneelse0002", "other-secret-0002"

// TestExchangeErrorsFromEmulator provokes each code-exchange failure the way it happens for real.
func TestExchangeErrorsFromEmulator(t *testing.T) {
	tests := []struct {
		name string
		// prepare returns the arguments to exchange with, starting from a valid code and verifier.
		prepare func(t *testing.T, emu *larkemu.Server, c *Client, code, verifier string) (appID, secret, outCode, redirect, outVerifier string)
		kind    ErrorKind
		code    int
	}{
		{"PKCE mismatch", func(t *testing.T, _ *larkemu.Server, _ *Client, code, _ string) (string, string, string, string, string) {
			other, err := NewPKCEVerifier()
			require.NoError(t, err)
			return emuApp, emuSecret, code, emuRedirect, other
		}, KindCodeInvalid, 20049},
		{"code not found", func(*testing.T, *larkemu.Server, *Client, string, string) (string, string, string, string, string) {
			return emuApp, emuSecret, "no-such-code", emuRedirect, ""
		}, KindCodeInvalid, 20003},
		{"code expired", func(t *testing.T, emu *larkemu.Server, _ *Client, code, verifier string) (string, string, string, string, string) {
			require.NoError(t, emu.Advance(larkemu.DefaultCodeTTL+time.Second))
			return emuApp, emuSecret, code, emuRedirect, verifier
		}, KindCodeInvalid, 20004},
		{"redirect mismatch", func(_ *testing.T, _ *larkemu.Server, _ *Client, code, verifier string) (string, string, string, string, string) {
			return emuApp, emuSecret, code, "https://elsewhere.example/cb", verifier
		}, KindCodeInvalid, 20071},
		{"code of another app", func(t *testing.T, emu *larkemu.Server, c *Client, _, _ string) (string, string, string, string, string) {
			require.NoError(t, emu.AddApp(otherApp, otherSecret))
			code, verifier := authorizeCode(t, c, otherApp, grantScopes...)
			return emuApp, emuSecret, code, emuRedirect, verifier
		}, KindCodeInvalid, 20024},
		{"wrong secret", func(_ *testing.T, _ *larkemu.Server, _ *Client, code, verifier string) (string, string, string, string, string) {
			return emuApp, "wrong-secret", code, emuRedirect, verifier
		}, KindAppSecretRejected, 20002},
		{"unknown app", func(_ *testing.T, _ *larkemu.Server, _ *Client, code, verifier string) (string, string, string, string, string) {
			return "cli_doesnotexist0003", emuSecret, code, emuRedirect, verifier
		}, KindAppNotFound, 20048},
	}
	for _, tt := range tests {
		for _, ep := range []TokenEndpoint{TokenEndpointV3, TokenEndpointV2} {
			t.Run(tt.name+"/"+string(ep), func(t *testing.T) {
				emu, _, c := newEmu(t)
				code, verifier := authorizeCode(t, c, emuApp, grantScopes...)
				appID, secret, code, redirect, verifier := tt.prepare(t, emu, c, code, verifier)
				tok, err := c.App(AppCredentials{AppID: appID, AppSecret: secret, UserTokenEndpoint: ep}).ExchangeCode(t.Context(), code, redirect, verifier)
				assert.Nil(t, tok)
				e := asError(t, err)
				assert.Equal(t, tt.kind, e.Kind, e.Error())
				assert.Equal(t, tt.code, e.Code)
				assert.Equal(t, EndpointOAuthToken, e.Endpoint)
				assert.False(t, e.ConsumedMaybe(), "Lark refused outright")
				assert.Equal(t, 1, e.Attempts)
				assert.Empty(t, e.Reason())
			})
		}
	}
}

// TestRefreshErrorsFromEmulator provokes each refresh failure the way it happens for real.
func TestRefreshErrorsFromEmulator(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, emu *larkemu.Server, refresh string) (appID, secret, outRefresh string)
		kind    ErrorKind
		code    int
		reason  string
	}{
		{"expired grant", func(t *testing.T, emu *larkemu.Server, rt string) (string, string, string) {
			_, err := emu.ExpireGrants(larkemu.GrantSelector{AppID: emuApp})
			require.NoError(t, err)
			return emuApp, emuSecret, rt
		}, KindReauthRequired, 20037, "expired"},
		{"refresh token ran out", func(t *testing.T, emu *larkemu.Server, rt string) (string, string, string) {
			require.NoError(t, emu.Advance(larkemu.DefaultRefreshTokenTTL+time.Second))
			return emuApp, emuSecret, rt
		}, KindReauthRequired, 20037, "expired"},
		{"revoked by the user", func(t *testing.T, emu *larkemu.Server, rt string) (string, string, string) {
			_, err := emu.RevokeGrants(larkemu.GrantSelector{AppID: emuApp})
			require.NoError(t, err)
			return emuApp, emuSecret, rt
		}, KindReauthRequired, 20064, "revoked"},
		{"garbage token", func(*testing.T, *larkemu.Server, string) (string, string, string) {
			return emuApp, emuSecret, "not-a-refresh-token"
		}, KindReauthRequired, 20026, "invalid"},
		{"token of another app", func(t *testing.T, emu *larkemu.Server, rt string) (string, string, string) {
			require.NoError(t, emu.AddApp(otherApp, otherSecret))
			return otherApp, otherSecret, rt
		}, KindReauthRequired, 20024, "different app"},
		{"refresh disabled for the app", func(t *testing.T, emu *larkemu.Server, rt string) (string, string, string) {
			require.NoError(t, emu.RegisterApp(larkemu.App{ID: emuApp, Secret: emuSecret, RefreshDisabled: true}))
			return emuApp, emuSecret, rt
		}, KindAppSetup, 20074, "app's security settings"},
		{"wrong secret", func(_ *testing.T, _ *larkemu.Server, rt string) (string, string, string) {
			return emuApp, "wrong-secret", rt
		}, KindAppSecretRejected, 20002, ""},
		{"unknown app", func(_ *testing.T, _ *larkemu.Server, rt string) (string, string, string) {
			return "cli_doesnotexist0003", emuSecret, rt
		}, KindAppNotFound, 20048, ""},
	}
	for _, tt := range tests {
		for _, ep := range []TokenEndpoint{TokenEndpointV3, TokenEndpointV2} {
			t.Run(tt.name+"/"+string(ep), func(t *testing.T) {
				emu, _, c := newEmu(t)
				m, err := emu.MintGrant(larkemu.MintRequest{AppID: emuApp})
				require.NoError(t, err)
				appID, secret, rt := tt.prepare(t, emu, m.RefreshToken)
				tok, err := c.App(AppCredentials{AppID: appID, AppSecret: secret, UserTokenEndpoint: ep}).RefreshUserToken(t.Context(), rt)
				assert.Nil(t, tok)
				e := asError(t, err)
				assert.Equal(t, tt.kind, e.Kind, e.Error())
				assert.Equal(t, tt.code, e.Code)
				assert.Equal(t, EndpointOAuthRefresh, e.Endpoint)
				assert.False(t, e.ConsumedMaybe())
				assert.Equal(t, 1, e.Attempts)
				assert.Equal(t, 1, emu.Calls(larkemu.EndpointRefresh))
				if tt.reason != "" {
					assert.Contains(t, e.Reason(), tt.reason)
					assert.Contains(t, e.Error(), e.Reason())
				} else {
					assert.Empty(t, e.Reason())
				}
			})
		}
	}
}

// TestOAuthCodeTable runs every code of the brief through the emulator's exact error rendering.
func TestOAuthCodeTable(t *testing.T) {
	refresh := map[int]ErrorKind{
		20037: KindReauthRequired, 20064: KindReauthRequired, 20073: KindReauthRequired, 20026: KindReauthRequired,
		20024: KindReauthRequired, 20008: KindReauthRequired, 20010: KindReauthRequired, 20066: KindReauthRequired,
		20074: KindAppSetup, 20069: KindAppSetup, 20009: KindAppSetup,
		20002: KindAppSecretRejected, 20048: KindAppNotFound, 20050: KindUnavailable, 20072: KindUnavailable,
		20001: KindInvalidRequest, 20063: KindInvalidRequest, 20070: KindInvalidRequest,
		21000: KindUserChallenge, 21001: KindUserChallenge,
		20099: KindLarkError, 99991400: KindRateLimited,
	}
	exchange := map[int]ErrorKind{
		20003: KindCodeInvalid, 20004: KindCodeInvalid, 20065: KindCodeInvalid, 20049: KindCodeInvalid,
		20071: KindCodeInvalid, 20024: KindCodeInvalid,
		20002: KindAppSecretRejected, 20048: KindAppNotFound, 20050: KindUnavailable, 20072: KindUnavailable,
		20073: KindLarkError, 20008: KindUserRefused, 20010: KindUserRefused, 20066: KindUserRefused,
		20069: KindAppSetup,
	}
	run := func(t *testing.T, target string, code int, want ErrorKind) {
		emu, _, c := newEmu(t)
		require.NoError(t, emu.InjectFailure(larkemu.Failure{Endpoint: target, Mode: larkemu.FailError, Code: code}))
		var err error
		if target == larkemu.EndpointRefresh {
			_, err = c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret, UserTokenEndpoint: TokenEndpointV3}).RefreshUserToken(t.Context(), "some-refresh-token")
		} else {
			_, err = c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret, UserTokenEndpoint: TokenEndpointV2}).ExchangeCode(t.Context(), "some-code", emuRedirect, "")
		}
		e := asError(t, err)
		assert.Equal(t, want, e.Kind, e.Error())
		assert.Equal(t, code, e.Code)
		assert.NotEmpty(t, e.Msg)
		assert.Equal(t, 1, e.Attempts, "single use: never retried here, even when retryable")
		assert.Equal(t, 1, emu.Calls(larkemu.EndpointOAuthToken))
		assert.False(t, e.ConsumedMaybe())
		assert.Equal(t, want == KindUnavailable || want == KindRateLimited, e.Retryable())
		if want == KindReauthRequired || want == KindUserRefused || want == KindAppSetup || want == KindUserChallenge {
			assert.NotEmpty(t, e.Reason())
			assert.Contains(t, e.Error(), e.Reason())
		}
	}
	for code, want := range refresh {
		t.Run(fmt.Sprintf("refresh/%d", code), func(t *testing.T) { run(t, larkemu.EndpointRefresh, code, want) })
	}
	for code, want := range exchange {
		t.Run(fmt.Sprintf("exchange/%d", code), func(t *testing.T) { run(t, larkemu.EndpointCodeExchange, code, want) })
	}
}

// TestFailureMeaning is the one table of what each refresh answer means to the plugin: whose move
// it is, and why the grant ended when it did.
func TestFailureMeaning(t *testing.T) {
	tests := []struct {
		code    int
		errName string
		meaning Meaning
		end     GrantEnd
	}{
		{20037, "invalid_grant", MeaningGrantOver, GrantEndExpired},
		{20064, "invalid_grant", MeaningGrantOver, GrantEndRevoked},
		{20073, "invalid_grant", MeaningGrantOver, GrantEndUsed},
		{20026, "invalid_grant", MeaningGrantOver, GrantEndInvalid},
		{20024, "invalid_grant", MeaningGrantOver, GrantEndOtherApp},
		{20008, "", MeaningGrantOver, GrantEndUserGone},
		{20010, "", MeaningGrantOver, GrantEndNoPermission},
		{20066, "", MeaningGrantOver, GrantEndUserInactive},
		{0, "invalid_grant", MeaningGrantOver, GrantEndInvalidGrant},
		{20074, "", MeaningAppSetup, ""},
		{20069, "invalid_client", MeaningAppSetup, ""},
		{20009, "", MeaningAppSetup, ""},
		{20002, "invalid_client", MeaningAppSetup, ""},
		{20048, "invalid_client", MeaningAppSetup, ""},
		{0, "invalid_client", MeaningAppSetup, ""},
		{21000, "", MeaningUserAction, ""},
		{21001, "", MeaningUserAction, ""},
		{20050, "server_error", MeaningTransient, ""},
		{20072, "temporarily_unavailable", MeaningTransient, ""},
		{20099, "", MeaningUnknown, ""},
		{20001, "invalid_request", MeaningUnknown, ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d/%s", tt.code, tt.errName), func(t *testing.T) {
			e := &Error{Endpoint: EndpointOAuthRefresh, Kind: classifyRefresh(tt.code, tt.errName), Code: tt.code}
			if e.Kind == "" {
				e.Kind = classifyCode(tt.code, "")
			}
			assert.Equal(t, tt.meaning, e.Meaning(), e.Error())
			assert.Equal(t, tt.end, e.GrantEnd())
			if tt.end != "" {
				assert.Equal(t, tt.end.Text(), e.Reason())
			}
		})
	}
	// 10014 names three different problems; only its message tells them apart.
	assert.Equal(t, KindAppNotFound, classifyCode(10014, "app id not exists"))
	assert.Equal(t, KindAppSecretRejected, classifyCode(10014, "app secret invalid"))
	assert.Equal(t, KindAppSetup, classifyCode(10014, "app unauthorized"))
	assert.Contains(t, (&Error{Kind: KindAppSetup, Code: 10014}).Reason(), "not authorized")
	assert.Contains(t, (&Error{Kind: KindAppSetup, Code: 20074}).Error(), "token refresh is disabled")
	assert.Empty(t, (&Error{Kind: KindLarkError, Code: 20073}).Reason(), "a code means nothing outside its kind")
	// Network and garbage are transient; the caller's own deadline too (Kind unavailable).
	assert.Equal(t, MeaningTransient, (&Error{Kind: KindBadResponse}).Meaning())
	assert.Equal(t, MeaningTransient, (&Error{Kind: KindUnavailable}).Meaning())
}

func TestChallengeURLIsKeptOnlyWhenSafe(t *testing.T) {
	tests := []struct{ body, want string }{
		{`{"code":21000,"error":"access_denied","error_description":"verify","challenge_url":"https://accounts.feishu.cn/challenge?t=1"}`, "https://accounts.feishu.cn/challenge?t=1"},
		{`{"code":21000,"msg":"verify","data":{"challenge_url":"https://accounts.feishu.cn/c2"}}`, "https://accounts.feishu.cn/c2"},
		{`{"code":21000,"challenge_url":"javascript:alert(1)"}`, ""},
		{`{"code":21000,"challenge_url":"http://plain.example/c"}`, ""},
		{`{"code":21000,"challenge_url":"https://x.example/a b"}`, ""},
	}
	for _, tt := range tests {
		fake := newFake(t, reply(400, tt.body))
		c := newClient(t, fake.srv.URL, func(cfg *Config) { cfg.AccountsBaseURL = fake.srv.URL })
		_, err := c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret}).RefreshUserToken(t.Context(), "rt")
		e := asError(t, err)
		assert.Equal(t, KindUserChallenge, e.Kind)
		assert.Equal(t, tt.want, e.ChallengeURL, tt.body)
		assert.Equal(t, MeaningUserAction, e.Meaning())
	}
}

func TestRevokeAcceptsAnEmpty200(t *testing.T) {
	fake := newFake(t, replyType(200, "", ""))
	c := newClient(t, fake.srv.URL, func(cfg *Config) { cfg.AccountsBaseURL = fake.srv.URL })
	require.NoError(t, c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret}).RevokeToken(t.Context(), "tok", ""))
	// A token endpoint, which must return something, still calls an empty 200 a bad answer.
	_, err := c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret}).RefreshUserToken(t.Context(), "rt")
	assert.Equal(t, KindBadResponse, asError(t, err).Kind)
}

// TestOAuthErrorShapesWithoutEmulator covers answers the emulator never gives: an OAuth error name
// without a code, and the legacy {code,msg} shape on revoke.
func TestOAuthErrorShapesWithoutEmulator(t *testing.T) {
	tests := []struct {
		name string
		body string
		kind ErrorKind
	}{
		{"invalid_client without code", `{"error":"invalid_client","error_description":"The client secret is invalid."}`, KindAppSecretRejected},
		{"other error name without code", `{"error":"unauthorized_client"}`, KindLarkError},
		{"code and msg", `{"code":20002,"msg":"invalid client"}`, KindAppSecretRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake(t, reply(401, tt.body))
			c := newClient(t, fake.srv.URL, func(cfg *Config) { cfg.AccountsBaseURL = fake.srv.URL })
			err := c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret}).RevokeToken(t.Context(), "tok", "")
			e := asError(t, err)
			assert.Equal(t, tt.kind, e.Kind, e.Error())
			assert.False(t, e.ConsumedMaybe())
			_, err = c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret, UserTokenEndpoint: TokenEndpointV3}).RefreshUserToken(context.Background(), "rt")
			assert.Equal(t, tt.kind, asError(t, err).Kind)
		})
	}
}
