package lark

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lark-vault/vault-plugin-secrets-lark/larkemu"
)

// TestLostRefreshIsConsumedMaybe is the case the whole flag exists for: Lark spends the refresh
// token, the answer never arrives, and a second try proves the token is gone.
func TestLostRefreshIsConsumedMaybe(t *testing.T) {
	for _, ep := range []TokenEndpoint{TokenEndpointV3, TokenEndpointV2} {
		t.Run(string(ep), func(t *testing.T) {
			emu, _, c := newEmu(t)
			m, err := emu.MintGrant(larkemu.MintRequest{AppID: emuApp})
			require.NoError(t, err)
			require.NoError(t, emu.InjectFailure(larkemu.Failure{Endpoint: larkemu.EndpointRefresh, Mode: larkemu.FailLostResponse}))

			_, err = c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret, UserTokenEndpoint: ep}).RefreshUserToken(t.Context(), m.RefreshToken)
			e := asError(t, err)
			assert.Equal(t, KindUnavailable, e.Kind, e.Error())
			assert.True(t, e.ConsumedMaybe())
			assert.Equal(t, 1, e.Attempts)
			assert.Equal(t, 1, emu.Calls(larkemu.EndpointRefresh), "no silent retry of a single-use token")

			_, err = c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret, UserTokenEndpoint: ep}).RefreshUserToken(t.Context(), m.RefreshToken)
			e = asError(t, err)
			assert.Equal(t, 20073, e.Code, "the lost refresh did spend the token")
			assert.False(t, e.ConsumedMaybe())
			assert.Equal(t, 1, emu.Calls(larkemu.EndpointRefreshReuse))
		})
	}
}

// TestConsumedMaybe runs single-use calls into every kind of failure and checks the flag and that
// exactly one request went out, however retryable the failure looks.
func TestConsumedMaybe(t *testing.T) {
	tests := []struct {
		name  string
		fail  larkemu.Failure
		kind  ErrorKind
		maybe bool
		// exchangeKind, when set, is the kind on a code exchange.
		exchangeKind ErrorKind
	}{
		{"lost response", larkemu.Failure{Mode: larkemu.FailLostResponse}, KindUnavailable, true, ""},
		{"plain 503 from a proxy", larkemu.Failure{Mode: larkemu.Fail5xx}, KindUnavailable, true, ""},
		{"plain 502 from a proxy", larkemu.Failure{Mode: larkemu.Fail5xx, Status: 502}, KindUnavailable, true, ""},
		{"timeout after sending", larkemu.Failure{Mode: larkemu.FailTimeout}, KindUnavailable, true, ""},
		{"truncated answer", larkemu.Failure{Mode: larkemu.FailTruncated}, KindBadResponse, true, ""},
		{"HTML on 200", larkemu.Failure{Mode: larkemu.FailGarbage}, KindBadResponse, true, ""},
		{"huge answer", larkemu.Failure{Mode: larkemu.FailHuge}, KindBadResponse, true, ""},
		{"Lark's 20050", larkemu.Failure{Mode: larkemu.FailError, Code: 20050}, KindUnavailable, false, ""},
		{"Lark's 20072", larkemu.Failure{Mode: larkemu.FailError, Code: 20072}, KindUnavailable, false, ""},
		{"Lark's 20024", larkemu.Failure{Mode: larkemu.FailError, Code: 20024}, KindReauthRequired, false, KindCodeInvalid},
		{"rate limited", larkemu.Failure{Mode: larkemu.Fail429}, KindRateLimited, false, ""},
	}
	for _, tt := range tests {
		for _, target := range []string{larkemu.EndpointRefresh, larkemu.EndpointCodeExchange} {
			t.Run(tt.name+"/"+target, func(t *testing.T) {
				emu, _, c := newEmu(t, func(cfg *Config) {
					cfg.Timeout = 300 * time.Millisecond
					cfg.MaxBodyBytes = 64 << 10
				})
				m, err := emu.MintGrant(larkemu.MintRequest{AppID: emuApp})
				require.NoError(t, err)
				f := tt.fail
				f.Endpoint, f.Count = target, -1
				require.NoError(t, emu.InjectFailure(f))
				want := tt.kind
				if target == larkemu.EndpointRefresh {
					_, err = c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret, UserTokenEndpoint: TokenEndpointV3}).RefreshUserToken(t.Context(), m.RefreshToken)
				} else {
					if tt.exchangeKind != "" {
						want = tt.exchangeKind
					}
					code, verifier := authorizeCode(t, c, emuApp, grantScopes...)
					_, err = c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret, UserTokenEndpoint: TokenEndpointV3}).ExchangeCode(t.Context(), code, emuRedirect, verifier)
				}
				e := asError(t, err)
				assert.Equal(t, want, e.Kind, e.Error())
				assert.Equal(t, tt.maybe, e.ConsumedMaybe(), e.Error())
				assert.Equal(t, 1, e.Attempts)
				assert.Equal(t, 1, emu.Calls(larkemu.EndpointOAuthToken), "exactly one HTTP attempt")
			})
		}
	}
}

func TestNotSentIsNotConsumed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	c := newClient(t, addr, func(cfg *Config) { cfg.AccountsBaseURL = addr })

	_, err = c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret, UserTokenEndpoint: TokenEndpointV3}).RefreshUserToken(t.Context(), "rt")
	e := asError(t, err)
	assert.Equal(t, KindUnavailable, e.Kind)
	assert.Contains(t, e.Error(), "connection refused")
	assert.False(t, e.ConsumedMaybe(), "connection refused: nothing left")
	assert.Equal(t, 1, e.Attempts)

	_, err = c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret, UserTokenEndpoint: TokenEndpointV3}).RefreshUserToken(t.Context(), "")
	assert.False(t, asError(t, err).ConsumedMaybe(), "refused locally")

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret, UserTokenEndpoint: TokenEndpointV2}).ExchangeCode(ctx, "code", emuRedirect, "")
	e = asError(t, err)
	assert.False(t, e.ConsumedMaybe(), "the caller gave up before sending")
	assert.True(t, errors.Is(err, context.Canceled))
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestConsumedMaybeWithoutTrace covers a caller's transport that ignores httptrace: only a dial
// failure proves the request never left.
func TestConsumedMaybeWithoutTrace(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		maybe bool
	}{
		{"dial refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, false},
		{"proxy connect", &net.OpError{Op: "proxyconnect", Net: "tcp", Err: errors.New("no route")}, false},
		{"DNS", &net.DNSError{Err: "no such host", Name: "accounts.feishu.cn", IsNotFound: true}, false},
		{"reset while reading", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, true},
		{"EOF", io.ErrUnexpectedEOF, true},
		{"unknown", errors.New("something odd"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hc := &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, tt.err })}
			c := newClient(t, "http://127.0.0.1:1", func(cfg *Config) { cfg.HTTPClient = hc })
			_, err := c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret, UserTokenEndpoint: TokenEndpointV3}).RefreshUserToken(t.Context(), "rt")
			e := asError(t, err)
			assert.Equal(t, tt.maybe, e.ConsumedMaybe(), e.Error())
			assert.Equal(t, 1, e.Attempts)
		})
	}
}

// TestConsumedMaybeSticksAcrossRetries: for calls that do retry, one uncertain attempt taints the
// result even when the last attempt was a clean refusal.
func TestConsumedMaybeSticksAcrossRetries(t *testing.T) {
	fake := newFake(t, replyType(502, "text/plain", "bad gateway"), reply(400, `{"code":20002,"error":"invalid_client"}`))
	c := newClient(t, fake.srv.URL, func(cfg *Config) { cfg.AccountsBaseURL = fake.srv.URL })
	err := c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret}).RevokeToken(t.Context(), "tok", "")
	e := asError(t, err)
	assert.Equal(t, KindAppSecretRejected, e.Kind)
	assert.Equal(t, 2, e.Attempts)
	assert.True(t, e.ConsumedMaybe())
}
