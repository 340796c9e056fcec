package larksecrets

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

func TestMetricsCountCallsRefreshesAndLevels(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	env.grantUser("m")
	_, err := env.read("tenant-token/" + testAppID)
	require.NoError(t, err)
	env.clock.Advance(2 * time.Hour)
	_, err = env.read("user-token/" + testAppID + "/m")
	require.NoError(t, err)

	resp, err := env.read("metrics")
	require.NoError(t, err)
	require.Equal(t, "text/plain; version=0.0.4; charset=utf-8", resp.Data[logical.HTTPContentType])
	body := string(resp.Data[logical.HTTPRawBody].([]byte))
	for _, want := range []string{
		`lark_api_calls_total{endpoint="tenant_access_token",status="ok"} 1`,
		`lark_api_calls_total{endpoint="oauth_refresh",status="ok"} 1`,
		`lark_api_calls_total{endpoint="oauth_token",status="ok"} 1`,
		`lark_user_token_refreshes_total{result="ok",reason=""} 1`,
		`lark_api_call_duration_seconds_count{endpoint="user_info"} 1`,
		`lark_user_grants{level="ok"} 1`,
	} {
		require.Contains(t, body, want)
	}
	// Low cardinality: no app or user in any label.
	require.NotContains(t, body, testAppID)
	require.NotContains(t, body, `"m"`)
	require.False(t, strings.Contains(body, "ou_"))
}
