package larksecrets

// Device login (issue 18, item 1) against the in-process emulator: start, the plugin's own polls,
// approval, denial, expiry, slow_down, a reload while pending, single use, and a bound slot approved
// by someone else.

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/lark-vault/vault-plugin-secrets-lark/larkemu"
)

// startDevice starts a device login for slot (bound to userID first) and returns the answer.
func (e *testEnv) startDevice(slot, userID string) map[string]interface{} {
	e.t.Helper()
	require.NoError(e.t, e.emu.AddUser(larkemu.User{UserID: userID}))
	e.bindSlot(slot, userID)
	resp, err := e.write("device/"+testAppID+"/"+slot, nil)
	require.NoError(e.t, err)
	require.False(e.t, resp.IsError(), "%v", resp.Error())
	return resp.Data
}

// pollDevices is what the loop does each second, on the test's clock.
func (e *testEnv) pollDevices() int {
	return e.b.devices.pollDue(context.Background(), e.storage)
}

func (e *testEnv) deviceStatus(slot string) map[string]interface{} {
	e.t.Helper()
	resp, err := e.read("device/" + testAppID + "/" + slot)
	require.NoError(e.t, err)
	return resp.Data
}

func TestDeviceLoginApprovedFillsTheSlot(t *testing.T) {
	env := newTestEnv(t)
	env.addApp() // no redirect_uri: device login needs none
	env.mustWrite("apps/"+testAppID, map[string]interface{}{"accounts_base_url": env.emuURL})
	data := env.startDevice("bot", "ada")
	code, _ := data["user_code"].(string)
	require.NotEmpty(t, code)
	require.NotEmpty(t, data["verification_uri"])
	require.Equal(t, "pending", data["status"])
	require.Equal(t, 5, data["interval"])
	require.NotZero(t, data["expires_in"])
	require.Contains(t, data["check_with"], "vault read lark/device/"+testAppID+"/bot")
	for k, v := range data {
		if s, ok := v.(string); ok {
			require.NotContains(t, s, "device_code", k)
		}
	}
	_, hasCode := data["device_code"]
	require.False(t, hasCode, "the device code never leaves Vault")

	// Not yet due: nothing is asked of Lark.
	require.Zero(t, env.pollDevices())
	env.clock.Advance(5 * time.Second)
	require.Equal(t, 1, env.pollDevices())
	require.Equal(t, "pending", env.deviceStatus("bot")["status"])

	require.NoError(t, env.emu.ApproveDevice(code, "ada"))
	env.clock.Advance(5 * time.Second)
	require.Equal(t, 1, env.pollDevices())
	st := env.deviceStatus("bot")
	require.Equal(t, "approved", st["status"], st["reason"])
	g := env.onDisk("bot")
	require.NotNil(t, g)
	require.Equal(t, env.emu.OpenID(testAppID, "ada"), g.OpenID)
	_, err := env.read("user-token/" + testAppID + "/bot")
	require.NoError(t, err)

	// The device code is gone from storage and never polled again.
	raw, err := env.storage.Get(context.Background(), deviceKey(grantID{testAppID, "bot"}))
	require.NoError(t, err)
	require.NotContains(t, string(raw.Value), `"device_code"`)
	env.clock.Advance(time.Minute)
	require.Zero(t, env.pollDevices())
	require.Equal(t, 1, env.emu.Calls(larkemu.EndpointDeviceToken)-1, "two polls in all")
}

func TestDeviceLoginDeniedExpiredAndSlowDown(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	code := env.startDevice("denied", "bob")["user_code"].(string)
	require.NoError(t, env.emu.DenyDevice(code, "bob"))
	env.clock.Advance(5 * time.Second)
	env.pollDevices()
	require.Equal(t, "denied", env.deviceStatus("denied")["status"])
	require.Nil(t, env.onDisk("denied"))

	env.startDevice("late", "carol")
	env.clock.Advance(11 * time.Minute) // past the emulator's 10-minute codes
	env.pollDevices()
	st := env.deviceStatus("late")
	require.Equal(t, "expired", st["status"])
	require.Nil(t, env.onDisk("late"))

	// Polled too fast (by a clock the emulator sees as too early): slow_down lengthens the interval.
	env.startDevice("fast", "dan")
	id := grantID{testAppID, "fast"}
	dl, err := env.b.devices.load(context.Background(), env.storage, id)
	require.NoError(t, err)
	dl.NextPollAt = env.clock.Now()
	require.NoError(t, env.b.devices.save(context.Background(), env.storage, dl))
	require.Equal(t, 1, env.pollDevices()) // the first poll may come at once
	env.clock.Advance(time.Second)
	dl, _ = env.b.devices.load(context.Background(), env.storage, id)
	dl.NextPollAt = env.clock.Now()
	require.NoError(t, env.b.devices.save(context.Background(), env.storage, dl))
	require.Equal(t, 1, env.pollDevices())
	st = env.deviceStatus("fast")
	require.Equal(t, "pending", st["status"])
	require.Equal(t, 10, st["interval"], "slow_down adds 5 s to the interval for good")
}

func TestDeviceLoginSurvivesAReloadAndIsUsedOnce(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	code := env.startDevice("agent", "erin")["user_code"].(string)
	env.b.Cleanup(context.Background())
	env.b = env.newBackend(nil) // the pending login is in storage

	require.NoError(t, env.emu.ApproveDevice(code, "erin"))
	env.clock.Advance(5 * time.Second)
	require.Equal(t, 1, env.pollDevices(), "the new plugin learns the pending login from storage")
	require.Equal(t, "approved", env.deviceStatus("agent")["status"])
	first := env.onDisk("agent")
	require.NotNil(t, first)

	// The emulator refuses a second redemption of the same device code (single use): the plugin
	// never tries, and a replay of the stored record cannot either, since the code is gone.
	env.clock.Advance(5 * time.Second)
	require.Zero(t, env.pollDevices())
	require.Equal(t, first.RefreshToken, env.onDisk("agent").RefreshToken)
}

func TestDeviceLoginApprovedByAnotherUserIsRefusedAndRevoked(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "mallory"}))
	code := env.startDevice("frank", "frank")["user_code"].(string)
	require.NoError(t, env.emu.ApproveDevice(code, "mallory"))
	env.clock.Advance(5 * time.Second)
	env.pollDevices()
	st := env.deviceStatus("frank")
	require.Equal(t, "refused", st["status"], st["reason"])
	require.Nil(t, env.onDisk("frank"), "nothing stored")
	revoked := false
	for _, g := range env.emu.Grants() {
		if g.OpenID == env.emu.OpenID(testAppID, "mallory") {
			revoked = g.Status == larkemu.GrantRevoked
		}
	}
	require.True(t, revoked, "the grant Lark issued to the wrong user is revoked at Lark")
}

func TestDeviceLoginBadInputChangesNothing(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	before := env.storageSnapshot()
	for _, tc := range []struct {
		path string
		data map[string]interface{}
		want string
	}{
		{"device/" + testAppID + "/ok", map[string]interface{}{"nope": "x"}, "unknown field"},
		{"device/" + testAppID + "/bad slot", nil, "user"},
		{"device/cli_unknownapp0000/ok", nil, "not configured"},
		{"device/" + testAppID + "/ok", map[string]interface{}{"expected_open_id": "on_x"}, "expected_open_id"},
		{"device/" + testAppID + "/unbound", nil, "not bound to a Lark user"},
	} {
		resp, err := env.write(tc.path, tc.data)
		if err == nil {
			require.True(t, resp.IsError(), "%s %v", tc.path, tc.data)
			require.Contains(t, resp.Error().Error(), tc.want)
		} else {
			require.Contains(t, err.Error(), tc.want)
			status := codedStatus(t, err)
			require.True(t, status >= 400 && status < 500, "%s: %d", tc.path, status)
		}
	}
	_, err := env.read("device/" + testAppID + "/never")
	require.Error(t, err)
	require.Equal(t, http.StatusNotFound, codedStatus(t, err))
	require.Equal(t, before, env.storageSnapshot())
	require.Zero(t, env.emu.Calls(larkemu.EndpointDeviceAuthorization))

	// Polling a finished login does nothing.
	resp, err := env.do(logical.ReadOperation, "device/"+testAppID+"/never", map[string]interface{}{"scopes": "x"})
	if err == nil {
		require.True(t, resp.IsError())
	}
}
