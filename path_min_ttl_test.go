package larksecrets

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/lark-vault/vault-plugin-secrets-lark/larkemu"
)

func (e *testEnv) readWith(path string, data map[string]interface{}) (*logical.Response, error) {
	return e.do(logical.ReadOperation, path, data)
}

// concurrentReads runs n reads of path with data at once and returns the tokens (or fails).
func concurrentReads(t *testing.T, env *testEnv, n int, path string, data map[string]interface{}) ([]string, []time.Duration) {
	t.Helper()
	var wg sync.WaitGroup
	tokens := make([]string, n)
	ttls := make([]time.Duration, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			resp, err := env.readWith(path, data)
			errs[i] = err
			if err == nil {
				tokens[i] = resp.Data["access_token"].(string)
				ttls[i] = resp.Secret.TTL
			}
		}(i)
	}
	close(start)
	wg.Wait()
	for i := range errs {
		require.NoError(t, errs[i])
	}
	return tokens, ttls
}

// TestMinTTLRefreshesEarlyOnceForConcurrentReaders: a cached token with 27 minutes left is fresh for
// plain reads (the refresh window is 25 minutes), but not for readers asking min_ttl=30m. Lark
// re-issues in a token's last 30 minutes, so 200 such readers together cost exactly one call.
func TestMinTTLRefreshesEarlyOnceForConcurrentReaders(t *testing.T) {
	for kind, endpoint := range map[tokenKind]string{kindApp: larkemu.EndpointAppAccessToken, kindTenant: larkemu.EndpointTenantAccessToken} {
		t.Run(string(kind), func(t *testing.T) {
			env := newTestEnv(t)
			env.addApp()
			path := string(kind) + "-token/" + testAppID
			first, err := env.read(path)
			require.NoError(t, err)
			old := first.Data["access_token"].(string)

			env.clock.Advance(93 * time.Minute)
			plain, err := env.read(path)
			require.NoError(t, err)
			require.Equal(t, old, plain.Data["access_token"], "without min_ttl the cache answers")
			require.Equal(t, 1, env.emu.Calls(endpoint))

			tokens, ttls := concurrentReads(t, env, 200, path, map[string]interface{}{"min_ttl": "30m"})
			require.Equal(t, 2, env.emu.Calls(endpoint), "one upstream call for all 200 readers")
			for i := range tokens {
				require.Equal(t, tokens[0], tokens[i])
				require.GreaterOrEqual(t, ttls[i], 30*time.Minute)
			}
			require.NotEqual(t, old, tokens[0])
			require.Equal(t, 2*time.Hour-defaultLeaseMargin, ttls[0])

			// The new token is what plain reads get from now on, from memory and from storage.
			again, err := env.read(path)
			require.NoError(t, err)
			require.Equal(t, tokens[0], again.Data["access_token"])
			env.b = env.newBackend(nil)
			again, err = env.read(path)
			require.NoError(t, err)
			require.Equal(t, tokens[0], again.Data["access_token"])
			require.Equal(t, 2, env.emu.Calls(endpoint))
		})
	}
}

// TestMinTTLAcrossExpiry: readers asking min_ttl after the cached token expired share the ordinary
// refresh: one call.
func TestMinTTLAcrossExpiry(t *testing.T) {
	env := newTestEnv(t)
	env.addApp()
	path := "tenant-token/" + testAppID
	_, err := env.read(path)
	require.NoError(t, err)
	env.clock.Advance(2*time.Hour + time.Minute)
	tokens, ttls := concurrentReads(t, env, 200, path, map[string]interface{}{"min_ttl": "1h"})
	require.Equal(t, 2, env.emu.Calls(larkemu.EndpointTenantAccessToken))
	for i := range tokens {
		require.Equal(t, tokens[0], tokens[i])
		require.GreaterOrEqual(t, ttls[i], time.Hour)
	}
}

// TestMinTTLRefusedWhileLarkReusesTheToken: with 30 minutes or more left, Lark would hand back the
// same token, so a min_ttl beyond the current lease is refused with 409 without asking Lark, and
// the message says what is possible and when.
func TestMinTTLRefusedWhileLarkReusesTheToken(t *testing.T) {
	env := newTestEnv(t)
	env.addApp()
	path := "app-token/" + testAppID
	first, err := env.read(path)
	require.NoError(t, err)
	env.clock.Advance(time.Hour) // 60 minutes left: lease 55 minutes
	before := env.storageSnapshot()

	_, err = env.readWith(path, map[string]interface{}{"min_ttl": "1h"})
	require.Error(t, err)
	require.Equal(t, http.StatusConflict, codedStatus(t, err))
	msg := err.Error()
	for _, want := range []string{"min_ttl 1h0m0s", "last 30 minutes", "at most 54m59s", "2026-11-27T10:30:00Z"} {
		require.Contains(t, msg, want)
	}
	require.NotContains(t, msg, first.Data["access_token"].(string))
	require.Equal(t, 1, env.emu.Calls(larkemu.EndpointAppAccessToken), "Lark is not asked")

	// Many such readers still ask Lark nothing.
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = env.readWith(path, map[string]interface{}{"min_ttl": "1h"})
		}()
	}
	wg.Wait()
	require.Equal(t, 1, env.emu.Calls(larkemu.EndpointAppAccessToken))
	require.Equal(t, before, env.storageSnapshot(), "a refused read changes nothing")

	// What the current token can give is served.
	ok, err := env.readWith(path, map[string]interface{}{"min_ttl": "50m"})
	require.NoError(t, err)
	require.Equal(t, first.Data["access_token"], ok.Data["access_token"])
	require.Equal(t, 55*time.Minute, ok.Secret.TTL)

	// After the time named in the message, the same read succeeds with a fresh token.
	env.clock.Advance(30*time.Minute + time.Second)
	fresh, err := env.readWith(path, map[string]interface{}{"min_ttl": "1h"})
	require.NoError(t, err)
	require.NotEqual(t, first.Data["access_token"], fresh.Data["access_token"])
	require.Equal(t, 2, env.emu.Calls(larkemu.EndpointAppAccessToken))
}

// TestMinTTLLimit: the largest min_ttl is what a fresh token gives (2 h minus the lease margin minus
// a minute); more is a 400 before anything happens.
func TestMinTTLLimit(t *testing.T) {
	env := newTestEnv(t)
	env.addApp()
	for _, kind := range allTokenKinds {
		path := string(kind) + "-token/" + testAppID
		resp, err := env.readWith(path, map[string]interface{}{"min_ttl": "1h54m"})
		require.NoError(t, err)
		require.GreaterOrEqual(t, resp.Secret.TTL, 114*time.Minute)
		resp, err = env.readWith(path, map[string]interface{}{"min_ttl": 114*60 + 1})
		require.NoError(t, err)
		require.True(t, resp.IsError())
		require.Contains(t, resp.Error().Error(), "more than Lark can ever give")
		require.Contains(t, resp.Error().Error(), "at most 1h54m0s")
	}
	require.Equal(t, 1, env.emu.Calls(larkemu.EndpointAppAccessToken))
	require.Equal(t, 1, env.emu.Calls(larkemu.EndpointTenantAccessToken))
	// A wider margin lowers the limit.
	env.mustWrite("config", map[string]interface{}{"lease_safety_margin": "10m", "token_refresh_window": "25m"})
	resp, err := env.readWith("app-token/"+testAppID, map[string]interface{}{"min_ttl": "1h54m"})
	require.NoError(t, err)
	require.True(t, resp.IsError())
	require.Contains(t, resp.Error().Error(), "at most 1h49m0s")
	// 0 means no requirement.
	resp, err = env.readWith("app-token/"+testAppID, map[string]interface{}{"min_ttl": "0"})
	require.NoError(t, err)
	require.False(t, resp.IsError())
}

// TestMinTTLStoreTenantToken: a store app's tenant token honours min_ttl like the others.
func TestMinTTLStoreTenantToken(t *testing.T) {
	env := newStoreTestEnv(t)
	env.addStoreApp(storeEncrypt, tenantA)
	env.giveTicket(storeAppID)
	path := "tenant-token/" + storeAppID + "/" + tenantA
	first, err := env.read(path)
	require.NoError(t, err)
	calls := func() int { return env.emu.Tenants(storeAppID)[0].TenantAccessTokenCalls }

	env.clock.Advance(time.Hour)
	_, err = env.readWith(path, map[string]interface{}{"min_ttl": "1h"})
	require.Equal(t, http.StatusConflict, codedStatus(t, err))
	require.Equal(t, 1, calls())

	env.clock.Advance(33 * time.Minute) // 27 minutes left
	tokens, _ := concurrentReads(t, env, 200, path, map[string]interface{}{"min_ttl": "30m"})
	require.NotEqual(t, first.Data["access_token"], tokens[0])
	for i := range tokens {
		require.Equal(t, tokens[0], tokens[i])
	}
	require.Equal(t, 2, calls())
}

// TestMinTTLV3TenantTokenAlwaysReissued: the v3 endpoint is not known to follow the 30-minute rule
// (the emulator mints a new token on every call), so there min_ttl fetches a new token at once.
func TestMinTTLV3TenantTokenAlwaysReissued(t *testing.T) {
	env := newTestEnv(t)
	env.mustWrite("apps/"+testAppID, map[string]interface{}{
		"app_secret": testSecret, "base_url": env.emuURL, "accounts_base_url": env.emuURL, "tenant_token_endpoint": "v3",
	})
	path := "tenant-token/" + testAppID
	first, err := env.read(path)
	require.NoError(t, err)
	env.clock.Advance(time.Hour)
	tokens, ttls := concurrentReads(t, env, 50, path, map[string]interface{}{"min_ttl": "1h"})
	require.NotEqual(t, first.Data["access_token"], tokens[0])
	require.GreaterOrEqual(t, ttls[0], time.Hour)
	require.Equal(t, 2, env.emu.Calls(larkemu.EndpointClientCredentials))
}

func TestMinTTLHelp(t *testing.T) {
	env := newTestEnv(t)
	for _, path := range []string{"app-token/" + testAppID, "tenant-token/" + testAppID, "tenant-token/" + testAppID + "/t1"} {
		resp, err := env.do(logical.HelpOperation, path, nil)
		require.NoError(t, err)
		help := resp.Data["help"].(string)
		require.True(t, strings.Contains(help, "min_ttl"), "%s help: %s", path, help)
	}
}

// TestMinTTLBelowReuseWindowAlwaysMet: a min_ttl up to 30 minutes minus the lease margin (minus a
// second) is met at every moment of a token's life, as the docs promise, with one Lark call per
// token lifetime at most.
func TestMinTTLBelowReuseWindowAlwaysMet(t *testing.T) {
	env := newTestEnv(t)
	env.addApp()
	path := "tenant-token/" + testAppID
	for i := 0; i < 6*60; i++ { // six hours in 1-minute steps
		resp, err := env.readWith(path, map[string]interface{}{"min_ttl": "24m59s"})
		require.NoError(t, err, "after %d minutes", i)
		require.GreaterOrEqual(t, resp.Secret.TTL, 24*time.Minute+59*time.Second, "after %d minutes", i)
		env.clock.Advance(time.Minute)
	}
	require.LessOrEqual(t, env.emu.Calls(larkemu.EndpointTenantAccessToken), 6*60/90+1)
}
