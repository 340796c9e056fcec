package larksecrets

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLeaseFreeModeCarriesTTLAndRotationPeriod(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	env.grantUser("lf")
	env.mustWrite("config", map[string]interface{}{"lease_mode": "none"})

	for _, path := range []string{"app-token/" + testAppID, "tenant-token/" + testAppID, "user-token/" + testAppID + "/lf"} {
		resp, err := env.read(path)
		require.NoError(t, err, path)
		require.Nil(t, resp.Secret, "%s: lease-free reads create no lease", path)
		// Numeric, so Vault Agent (which reads them as json.Number) re-reads at ttl+1s.
		require.Equal(t, int64((2*time.Hour - defaultLeaseMargin).Seconds()), resp.Data["ttl"], path)
		require.Equal(t, int64(7200), resp.Data["rotation_period"], path)
		require.NotEmpty(t, resp.Data["access_token"], path)
	}

	// ttl follows the token's remaining life.
	env.clock.Advance(time.Hour)
	resp, err := env.read("app-token/" + testAppID)
	require.NoError(t, err)
	require.Equal(t, int64((time.Hour - defaultLeaseMargin).Seconds()), resp.Data["ttl"])

	// An app can override the mount in either direction.
	env.mustWrite("apps/"+testAppID, map[string]interface{}{"lease_mode": "lease"})
	resp, err = env.read("app-token/" + testAppID)
	require.NoError(t, err)
	require.NotNil(t, resp.Secret)
	require.NotContains(t, resp.Data, "ttl")
	env.mustWrite("config", map[string]interface{}{"lease_mode": "lease"})
	env.mustWrite("apps/"+testAppID, map[string]interface{}{"lease_mode": "none"})
	resp, err = env.read("tenant-token/" + testAppID)
	require.NoError(t, err)
	require.Nil(t, resp.Secret)

	resp, err = env.write("apps/"+testAppID, map[string]interface{}{"lease_mode": "maybe"})
	require.NoError(t, err)
	require.True(t, resp.IsError())
}
