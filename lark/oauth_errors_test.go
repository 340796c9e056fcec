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
				tok, err := c.ExchangeCode(t.Context(), ep, appID, secret, code, redirect, verifier)
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
		}, KindReauthRequired, 20074, "app's security settings"},
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
				tok, err := c.RefreshUserToken(t.Context(), ep, appID, secret, rt)
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
					assert.Equal(t, ReauthReason(tt.code), e.Reason())
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
		20024: KindReauthRequired, 20074: KindReauthRequired,
		20002: KindAppSecretRejected, 20048: KindAppNotFound, 20050: KindUnavailable, 20072: KindUnavailable,
		20001: KindInvalidRequest, 20063: KindInvalidRequest, 20070: KindInvalidRequest,
		20066: KindLarkError, 20069: KindLarkError, 99991400: KindRateLimited,
	}
	exchange := map[int]ErrorKind{
		20003: KindCodeInvalid, 20004: KindCodeInvalid, 20065: KindCodeInvalid, 20049: KindCodeInvalid,
		20071: KindCodeInvalid, 20024: KindCodeInvalid,
		20002: KindAppSecretRejected, 20048: KindAppNotFound, 20050: KindUnavailable, 20072: KindUnavailable,
		20073: KindLarkError, 20008: KindLarkError,
	}
	run := func(t *testing.T, target string, code int, want ErrorKind) {
		emu, _, c := newEmu(t)
		require.NoError(t, emu.InjectFailure(larkemu.Failure{Endpoint: target, Mode: larkemu.FailError, Code: code}))
		var err error
		if target == larkemu.EndpointRefresh {
			_, err = c.RefreshUserToken(t.Context(), TokenEndpointV3, emuApp, emuSecret, "some-refresh-token")
		} else {
			_, err = c.ExchangeCode(t.Context(), TokenEndpointV2, emuApp, emuSecret, "some-code", emuRedirect, "")
		}
		e := asError(t, err)
		assert.Equal(t, want, e.Kind, e.Error())
		assert.Equal(t, code, e.Code)
		assert.NotEmpty(t, e.Msg)
		assert.Equal(t, 1, e.Attempts, "single use: never retried here, even when retryable")
		assert.Equal(t, 1, emu.Calls(larkemu.EndpointOAuthToken))
		assert.False(t, e.ConsumedMaybe())
		assert.Equal(t, want == KindUnavailable || want == KindRateLimited, e.Retryable())
		if want == KindReauthRequired {
			assert.NotEmpty(t, e.Reason())
		}
	}
	for code, want := range refresh {
		t.Run(fmt.Sprintf("refresh/%d", code), func(t *testing.T) { run(t, larkemu.EndpointRefresh, code, want) })
	}
	for code, want := range exchange {
		t.Run(fmt.Sprintf("exchange/%d", code), func(t *testing.T) { run(t, larkemu.EndpointCodeExchange, code, want) })
	}
}

func TestReauthReason(t *testing.T) {
	for _, code := range []int{20037, 20064, 20073, 20026, 20024, 20074} {
		assert.NotEmpty(t, ReauthReason(code), code)
	}
	assert.Contains(t, ReauthReason(20074), "app", "an app setting, not the user's doing")
	assert.Contains(t, (&Error{Endpoint: EndpointOAuthRefresh, Kind: KindReauthRequired, Code: 20074}).Error(), "cannot refresh the user token: token refresh is disabled")
	for _, code := range []int{0, 20002, 20050, 20003} {
		assert.Empty(t, ReauthReason(code), code)
	}
	assert.Empty(t, (&Error{Kind: KindLarkError, Code: 20073}).Reason(), "Reason belongs to KindReauthRequired only")
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
		{"other error name without code", `{"error":"invalid_grant"}`, KindLarkError},
		{"code and msg", `{"code":20002,"msg":"invalid client"}`, KindAppSecretRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake(t, reply(401, tt.body))
			c := newClient(t, fake.srv.URL, func(cfg *Config) { cfg.AccountsBaseURL = fake.srv.URL })
			err := c.RevokeToken(t.Context(), emuApp, emuSecret, "tok", "")
			e := asError(t, err)
			assert.Equal(t, tt.kind, e.Kind, e.Error())
			assert.False(t, e.ConsumedMaybe())
			_, err = c.RefreshUserToken(context.Background(), TokenEndpointV3, emuApp, emuSecret, "rt")
			assert.Equal(t, tt.kind, asError(t, err).Kind)
		})
	}
}
