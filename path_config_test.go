package larksecrets

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestConfigDefaultsAndPartialUpdates(t *testing.T) {
	env := newTestEnv(t)
	resp, err := env.read("config")
	require.NoError(t, err)
	require.Equal(t, map[string]interface{}{
		"lease_safety_margin":  int64(300),
		"token_refresh_window": int64(1500),
		"lark_request_timeout": int64(10),
		"lark_max_attempts":    3,
		"lease_mode":           "lease",
		"warning_days":         7,
		"critical_days":        3,
		"notify_schedule":      "0 9,21 * * *",
		"notify_timezone":      "UTC",
		"keepalive_rate":       5,
		"sweep_budget":         int64(20),
		"failure_grace":        int64(21600),
	}, resp.Data)

	env.mustWrite("config", map[string]interface{}{"lease_safety_margin": "1m"})
	resp, err = env.read("config")
	require.NoError(t, err)
	require.Equal(t, int64(60), resp.Data["lease_safety_margin"])
	require.Equal(t, int64(1500), resp.Data["token_refresh_window"], "a field left out must keep its value")

	// A restarted backend reads the stored settings.
	env.b = env.newBackend(nil)
	resp, err = env.read("config")
	require.NoError(t, err)
	require.Equal(t, int64(60), resp.Data["lease_safety_margin"])
}

func TestConfigValidation(t *testing.T) {
	cases := map[string]map[string]interface{}{
		"margin too small":                 {"lease_safety_margin": "1s"},
		"margin too large":                 {"lease_safety_margin": "1h"},
		"window above lark's 30m":          {"token_refresh_window": "31m"},
		"window not above margin":          {"lease_safety_margin": "10m", "token_refresh_window": "10m"},
		"timeout zero":                     {"lark_request_timeout": 0},
		"attempts zero":                    {"lark_max_attempts": 0},
		"attempts too many":                {"lark_max_attempts": 11},
		"not a duration":                   {"lease_safety_margin": "soon"},
		"unknown field":                    {"lease_margin": "1m"},
		"negative refresh window":          {"token_refresh_window": "-5m"},
		"timeout above one minute":         {"lark_request_timeout": "2m"},
		"attempts not a number":            {"lark_max_attempts": "many"},
		"window less than 1m above margin": {"lease_safety_margin": "20m", "token_refresh_window": "20m30s"},
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			env := newTestEnv(t)
			resp, err := env.write("config", data)
			if err == nil {
				require.NotNil(t, resp)
				require.True(t, resp.IsError(), "want an error response")
			}
			stored, err := env.read("config")
			require.NoError(t, err)
			require.Equal(t, int64(300), stored.Data["lease_safety_margin"], "a refused write changed the config")
			require.Equal(t, int64(1500), stored.Data["token_refresh_window"])
		})
	}
}
