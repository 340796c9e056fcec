package larksecrets

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/lark-vault/vault-plugin-secrets-lark/larkemu"
)

func TestAccessTokenReadIsANonRenewableLease(t *testing.T) {
	for _, kind := range allTokenKinds {
		t.Run(string(kind), func(t *testing.T) {
			env := newTestEnv(t)
			env.addApp()
			resp, err := env.read(string(kind) + "-token/" + testAppID)
			require.NoError(t, err)
			require.NotNil(t, resp.Secret)
			require.False(t, resp.Secret.Renewable)
			// 2 h token, 5 min default margin.
			require.Equal(t, 2*time.Hour-defaultLeaseMargin, resp.Secret.TTL)
			require.Equal(t, resp.Secret.TTL, resp.Secret.MaxTTL)
			require.Equal(t, kind.secretType(), resp.Secret.InternalData["secret_type"])
			require.Equal(t, kind.larkName(), resp.Data["token_type"])
			require.Equal(t, int64(7200), resp.Data["expires_in"])
			require.Equal(t, "2026-11-27T11:00:00Z", resp.Data["expires_at"])
			tok := resp.Data["access_token"].(string)
			require.True(t, strings.HasPrefix(tok, "t-"))
			require.True(t, env.emu.TenantTokenValid(tok))
		})
	}
}

func TestCachedTokenIsReusedUntilRefreshWindow(t *testing.T) {
	env := newTestEnv(t)
	env.addApp()
	first, err := env.read("app-token/" + testAppID)
	require.NoError(t, err)
	tok1 := first.Data["access_token"]

	// Just before the refresh point (2 h − 25 min): the cache answers and the lease shrinks.
	env.clock.Advance(95*time.Minute - time.Second)
	again, err := env.read("app-token/" + testAppID)
	require.NoError(t, err)
	require.Equal(t, tok1, again.Data["access_token"])
	require.Equal(t, 25*time.Minute+time.Second-defaultLeaseMargin, again.Secret.TTL)
	require.Equal(t, 1, env.emu.Calls(larkemu.EndpointAppAccessToken))

	// At the refresh point Lark is inside its 30-minute window and issues a new token; the old one
	// stays valid upstream until its own expiry.
	env.clock.Advance(time.Second)
	rotated, err := env.read("app-token/" + testAppID)
	require.NoError(t, err)
	require.NotEqual(t, tok1, rotated.Data["access_token"])
	require.Equal(t, 2*time.Hour-defaultLeaseMargin, rotated.Secret.TTL)
	require.Equal(t, 2, env.emu.Calls(larkemu.EndpointAppAccessToken))
	require.True(t, env.emu.TenantTokenValid(tok1.(string)))
}

func TestThousandConcurrentColdReadsShareOneUpstreamCall(t *testing.T) {
	env := newTestEnv(t)
	env.addApp()
	const readers = 1000
	var wg sync.WaitGroup
	tokens := make([]string, readers)
	errs := make([]error, readers)
	start := make(chan struct{})
	for i := 0; i < readers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			resp, err := env.read("tenant-token/" + testAppID)
			errs[i] = err
			if err == nil {
				tokens[i] = resp.Data["access_token"].(string)
			}
		}(i)
	}
	close(start)
	wg.Wait()
	for i := range errs {
		require.NoError(t, errs[i])
		require.Equal(t, tokens[0], tokens[i])
	}
	require.Equal(t, 1, env.emu.Calls(larkemu.EndpointTenantAccessToken))
}

func TestTokenSurvivesRestartThroughStorage(t *testing.T) {
	env := newTestEnv(t)
	env.addApp()
	first, err := env.read("tenant-token/" + testAppID)
	require.NoError(t, err)

	env.b = env.newBackend(nil) // a new process: empty memory, same storage, no route to Lark
	again, err := env.read("tenant-token/" + testAppID)
	require.NoError(t, err)
	require.Equal(t, first.Data["access_token"], again.Data["access_token"])
	require.Equal(t, 1, env.emu.Calls(larkemu.EndpointTenantAccessToken))
}

func TestStaleTokenIsServedWithWarningWhileLarkIsDown(t *testing.T) {
	env := newTestEnv(t)
	env.addApp()
	env.mustWrite("config", map[string]interface{}{"lark_max_attempts": 2})
	first, err := env.read("app-token/" + testAppID)
	require.NoError(t, err)

	env.clock.Advance(96 * time.Minute) // past the refresh point, 24 min of life left
	require.NoError(t, env.emu.InjectFailure(larkemu.Failure{Endpoint: larkemu.EndpointAppAccessToken, Mode: larkemu.Fail5xx, Count: -1}))
	stale, err := env.read("app-token/" + testAppID)
	require.NoError(t, err)
	require.Equal(t, first.Data["access_token"], stale.Data["access_token"])
	require.Equal(t, 24*time.Minute-defaultLeaseMargin, stale.Secret.TTL)
	require.Len(t, stale.Warnings, 1)
	require.Contains(t, stale.Warnings[0], "could not issue a new one")

	// Once the lease could not end before the token does, the read fails, naming Lark.
	env.clock.Advance(20 * time.Minute)
	_, err = env.read("app-token/" + testAppID)
	var coded logical.HTTPCodedError
	require.True(t, errors.As(err, &coded), "want a coded error, got %v", err)
	require.Equal(t, http.StatusServiceUnavailable, coded.Code())
	require.Contains(t, err.Error(), "Lark unreachable")

	// When Lark comes back, reads recover once the backoff after the last failure has passed.
	env.emu.ClearFailures()
	env.clock.Advance(30 * time.Second)
	fresh, err := env.read("app-token/" + testAppID)
	require.NoError(t, err)
	require.NotEqual(t, first.Data["access_token"], fresh.Data["access_token"])
}

func TestUpstreamErrorsAreClassifiedAndStoreNothing(t *testing.T) {
	cases := []struct {
		name       string
		secret     string
		failure    *larkemu.Failure
		wantStatus int
		wantText   []string
	}{
		{name: "wrong secret", secret: "wrongSecret", wantStatus: http.StatusBadGateway,
			wantText: []string{"rejected the app secret", "10014", "vault write lark/apps/" + testAppID}},
		{name: "html body", failure: &larkemu.Failure{Mode: larkemu.FailGarbage, Count: -1}, wantStatus: http.StatusBadGateway, wantText: []string{"Lark"}},
		{name: "truncated json", failure: &larkemu.Failure{Mode: larkemu.FailTruncated, Count: -1}, wantStatus: http.StatusBadGateway, wantText: []string{"Lark"}},
		{name: "huge body", failure: &larkemu.Failure{Mode: larkemu.FailHuge, Count: -1}, wantStatus: http.StatusBadGateway, wantText: []string{"Lark"}},
		{name: "5xx", failure: &larkemu.Failure{Mode: larkemu.Fail5xx, Count: -1}, wantStatus: http.StatusServiceUnavailable, wantText: []string{"Lark unreachable", "try again"}},
		{name: "rate limited", failure: &larkemu.Failure{Mode: larkemu.Fail429, Count: -1}, wantStatus: http.StatusServiceUnavailable, wantText: []string{"rate-limiting", "try again"}},
		{name: "timeout", failure: &larkemu.Failure{Mode: larkemu.FailTimeout, Count: -1, Delay: 3 * time.Second}, wantStatus: http.StatusServiceUnavailable, wantText: []string{"Lark unreachable"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t)
			secret := testSecret
			if tc.secret != "" {
				secret = tc.secret
			}
			env.mustWrite("apps/"+testAppID, map[string]interface{}{"app_secret": secret, "base_url": env.emuURL})
			env.mustWrite("config", map[string]interface{}{"lark_max_attempts": 2, "lark_request_timeout": 1})
			if tc.failure != nil {
				f := *tc.failure
				f.Endpoint = larkemu.EndpointAppAccessToken
				require.NoError(t, env.emu.InjectFailure(f))
			}
			appBefore, err := env.storage.Get(context.Background(), "apps/"+testAppID)
			require.NoError(t, err)

			_, err = env.read("app-token/" + testAppID)
			var coded logical.HTTPCodedError
			require.True(t, errors.As(err, &coded), "want a coded error, got %v", err)
			require.Equal(t, tc.wantStatus, coded.Code(), err.Error())
			for _, w := range tc.wantText {
				require.Contains(t, err.Error(), w)
			}
			require.NotContains(t, err.Error(), secret)

			keys, err := env.storage.List(context.Background(), tokenStoragePrefix+testAppID+"/")
			require.NoError(t, err)
			require.Empty(t, keys, "a failed fetch cached something")
			appAfter, err := env.storage.Get(context.Background(), "apps/"+testAppID)
			require.NoError(t, err)
			require.Equal(t, appBefore.Value, appAfter.Value)
		})
	}
}

func TestUnknownAppAndBadIDs(t *testing.T) {
	env := newTestEnv(t)
	_, err := env.read("app-token/cli_nothere")
	var coded logical.HTTPCodedError
	require.True(t, errors.As(err, &coded))
	require.Equal(t, http.StatusBadRequest, coded.Code())
	require.Contains(t, err.Error(), "vault write lark/apps/cli_nothere")
	require.Zero(t, env.emu.Calls(larkemu.EndpointAppAccessToken))

	for _, id := range []string{"nope", "cli_a/../b", "cli_ x", "cli_" + strings.Repeat("z", 300)} {
		resp, err := env.read("tenant-token/" + id)
		require.NoError(t, err)
		require.True(t, resp.IsError(), id)
	}
	resp, err := env.do(logical.ReadOperation, "tenant-token/"+testAppID, map[string]interface{}{"bogus": "1"})
	require.NoError(t, err)
	require.Contains(t, resp.Error().Error(), "unknown field")
}

func TestRevokeDoesNothingUpstream(t *testing.T) {
	env := newTestEnv(t)
	env.addApp()
	resp, err := env.read("app-token/" + testAppID)
	require.NoError(t, err)
	calls := env.emu.Counters()
	req := &logical.Request{
		Operation: logical.RevokeOperation,
		Storage:   env.storage,
		Secret:    resp.Secret,
	}
	revoked, err := env.b.HandleRequest(context.Background(), req)
	require.NoError(t, err)
	require.Nil(t, revoked)
	require.Equal(t, calls, env.emu.Counters())

	req.Operation = logical.RenewOperation
	_, err = env.b.HandleRequest(context.Background(), req)
	require.ErrorIs(t, err, logical.ErrUnsupportedOperation)
}

// Lark's x-ogw-ratelimit-reset is honoured across reads: nobody asks again before it passes, and a
// failure is not answered with one more call per reader (issue 12, Lark faults).
func TestRateLimitResetIsHonouredAcrossReads(t *testing.T) {
	env := newTestEnv(t)
	env.addApp()
	env.mustWrite("config", map[string]interface{}{"lark_max_attempts": 1})
	require.NoError(t, env.emu.InjectFailure(larkemu.Failure{Endpoint: larkemu.EndpointTenantAccessToken, Mode: larkemu.Fail429, ResetSeconds: 15, Count: 1}))
	_, err := env.read("tenant-token/" + testAppID)
	require.ErrorContains(t, err, "try again in 15s")
	calls := env.emu.Calls(larkemu.EndpointTenantAccessToken)
	for i := 0; i < 5; i++ {
		env.clock.Advance(2 * time.Second)
		_, err = env.read("tenant-token/" + testAppID)
		require.ErrorContains(t, err, "Vault asks again after")
	}
	require.Equal(t, calls, env.emu.Calls(larkemu.EndpointTenantAccessToken), "reads within the reset asked Lark again")
	env.clock.Advance(6 * time.Second)
	_, err = env.read("tenant-token/" + testAppID)
	require.NoError(t, err)
	require.Equal(t, calls+1, env.emu.Calls(larkemu.EndpointTenantAccessToken))
}
