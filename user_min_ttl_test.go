package larksecrets

// min_ttl on user-token reads (issue 18, item 3): a token that would end sooner is refreshed first,
// once, under the grant's lock; a grant whose fresh tokens never last that long is refused without
// spending its refresh token.

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/lark-vault/vault-plugin-secrets-lark/larkemu"
)

func (e *testEnv) readUserTokenMinTTL(slot, minTTL string) (*logical.Response, error) {
	return e.do(logical.ReadOperation, "user-token/"+testAppID+"/"+slot, map[string]interface{}{"min_ttl": minTTL})
}

func TestUserTokenMinTTLRefreshesFirstOnceForConcurrentReaders(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	env.grantUser("ada")
	env.clock.Advance(time.Hour) // an hour left: not due for refresh, too short for 90m
	before := env.onDisk("ada")
	calls := env.emu.Calls(larkemu.EndpointRefresh)

	// Without min_ttl the cached token is served as it is.
	resp, err := env.read("user-token/" + testAppID + "/ada")
	require.NoError(t, err)
	require.Less(t, resp.Secret.TTL, 90*time.Minute)
	require.Equal(t, calls, env.emu.Calls(larkemu.EndpointRefresh))

	const readers = 200
	var wg sync.WaitGroup
	ttls := make([]time.Duration, readers)
	errs := make([]error, readers)
	for i := 0; i < readers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := env.readUserTokenMinTTL("ada", "90m")
			errs[i] = err
			if err == nil && r != nil && r.Secret != nil {
				ttls[i] = r.Secret.TTL
			}
		}()
	}
	wg.Wait()
	for i := range errs {
		require.NoError(t, errs[i])
		require.GreaterOrEqual(t, ttls[i], 90*time.Minute, "reader %d", i)
	}
	require.Equal(t, calls+1, env.emu.Calls(larkemu.EndpointRefresh), "exactly one refresh for 200 readers")
	require.Zero(t, env.emu.Calls(larkemu.EndpointRefreshReuse))
	require.NotEqual(t, before.RefreshToken, env.onDisk("ada").RefreshToken)
}

// Across an expiry: the token has run out when 200 readers ask for an hour; one refresh serves all.
func TestUserTokenMinTTLAcrossAnExpiry(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	env.grantUser("eve")
	env.clock.Advance(2*time.Hour + time.Minute)
	calls := env.emu.Calls(larkemu.EndpointRefresh)
	var wg sync.WaitGroup
	errs := make([]error, 200)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := env.readUserTokenMinTTL("eve", "1h")
			if err == nil && (r == nil || r.Secret == nil || r.Secret.TTL < time.Hour) {
				err = fmt.Errorf("reader %d got %v", i, r)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, calls+1, env.emu.Calls(larkemu.EndpointRefresh), "exactly one refresh")
	require.Zero(t, env.emu.Calls(larkemu.EndpointRefreshReuse))
}

func TestUserTokenMinTTLRefusals(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	env.grantUser("bob")
	before := env.storageSnapshot()

	// More than a user token ever gives: 400, nothing asked of Lark.
	for _, v := range []string{"3h", "2h", "-5m", "soon"} {
		resp, err := env.readUserTokenMinTTL("bob", v)
		require.NoError(t, err, v)
		require.True(t, resp.IsError(), v)
		require.Contains(t, resp.Error().Error(), "min_ttl", v)
	}
	resp, err := env.write("user-token/"+testAppID+"/bob", map[string]interface{}{"refresh_token": "abcdefghijklmnopqrstuvwxyz", "min_ttl": "30m"})
	require.NoError(t, err)
	require.True(t, resp.IsError())
	require.Contains(t, resp.Error().Error(), "only accepted when reading")
	require.Equal(t, before, env.storageSnapshot())

	// This app's user tokens live 80 minutes: a 100-minute lease can never be had, and the refresh
	// token is not spent trying.
	require.NoError(t, env.emu.RegisterApp(larkemu.App{ID: testAppID, Secret: testSecret, UserTokenTTL: 80 * time.Minute}))
	env.grantUser("carol")
	env.clock.Advance(30 * time.Minute)
	calls := env.emu.Calls(larkemu.EndpointRefresh)
	_, err = env.readUserTokenMinTTL("carol", "100m")
	require.Error(t, err)
	require.Equal(t, http.StatusConflict, codedStatus(t, err))
	require.ErrorContains(t, err, "min_ttl cannot be met")
	require.Equal(t, calls, env.emu.Calls(larkemu.EndpointRefresh), "no refresh spent on a token that would be too short anyway")
	// What the tokens can give is served.
	resp, err = env.readUserTokenMinTTL("carol", "40m")
	require.NoError(t, err)
	require.GreaterOrEqual(t, resp.Secret.TTL, 40*time.Minute)
}
