//go:build e2e

package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// Issue 18: device login through Vault's listener. The plugin polls Lark by itself (its loop, on the
// active node): start → approve at the emulator → the grant is stored → user-token reads work; and
// denial, expiry, a reload while pending, a second use of the device code, and a bound slot approved
// by another Lark user (refused, revoked at Lark), each with nothing else stored.
func TestDeviceLoginThroughVault(t *testing.T) {
	t.Parallel()
	const plugin = "lark-device"
	swPrivatePlugin(t, plugin)
	w := newFaultWorld(t, "device/lark", plugin)
	const app = "cli_fdevice"
	w.app(t, app, 0)

	user := func(t *testing.T, id, openID string) {
		t.Helper()
		emuControl(t, w.emuURL, http.MethodPost, "/_emulator/users", map[string]any{"user_id": id, "name": "Device " + id, "open_id": openID, "sign_in": false})
	}
	start := func(t *testing.T, slot, openID string) (userCode string) {
		t.Helper()
		w.must(t, "write", w.mount+"/slots/"+app+"/"+slot, "open_id="+openID)
		status, body, err := w.do(http.MethodPost, "device/"+app+"/"+slot, map[string]any{})
		if err != nil || status != http.StatusOK {
			t.Fatalf("starting a device login for %s: HTTP %d %v %v", slot, status, body["errors"], err)
		}
		data, _ := body["data"].(map[string]any)
		if strings.Contains(jsonString(body), "device_code") {
			t.Fatalf("the start answer names a device code: %s", jsonString(data))
		}
		userCode, _ = data["user_code"].(string)
		if userCode == "" || data["verification_uri"] == "" || data["status"] != "pending" || data["interval"] == nil || data["expires_in"] == nil {
			t.Fatalf("start answer: %s", jsonString(data))
		}
		return userCode
	}
	decide := func(t *testing.T, verb, userCode, userID string) {
		t.Helper()
		emuControl(t, w.emuURL, http.MethodPost, "/_emulator/device/"+verb, map[string]any{"user_code": userCode, "user_id": userID})
	}
	// waitStatus waits for the plugin's own polls (every interval, 5 s) to settle the login.
	waitStatus := func(t *testing.T, slot, want string) map[string]any {
		t.Helper()
		var data map[string]any
		waitFor(t, 45*time.Second, slot+"'s device login to be "+want, func() bool {
			status, body, err := w.do(http.MethodGet, "device/"+app+"/"+slot, nil)
			if err != nil || status != http.StatusOK {
				return false
			}
			data, _ = body["data"].(map[string]any)
			return data["status"] == want
		})
		return data
	}

	t.Run("approved", func(t *testing.T) {
		user(t, "dev_ada", "ou_devada")
		code := start(t, "ada", "ou_devada")
		decide(t, "approve", code, "dev_ada")
		waitStatus(t, "ada", "approved")
		r := w.readUntilOK(t, "user-token/"+app+"/ada", 10*time.Second)
		if ok, lc := larkAccepts(t, w.emuURL, r.token); !ok {
			t.Fatalf("Lark refuses the token of the device-login grant (code %d)", lc)
		}
	})

	t.Run("reload-while-pending-then-second-use", func(t *testing.T) {
		user(t, "dev_bob", "ou_devbob")
		code := start(t, "bob", "ou_devbob")
		w.must(t, "plugin", "reload", "-plugin="+plugin)
		decide(t, "approve", code, "dev_bob")
		waitStatus(t, "bob", "approved")
		w.readUntilOK(t, "user-token/"+app+"/bob", 10*time.Second)
		// Single use: a second approval of the same user code is refused by Lark, and the plugin
		// does not poll a finished login again.
		polls := w.calls(t, app, "device_token")
		time.Sleep(7 * time.Second)
		if n := w.calls(t, app, "device_token"); n != polls {
			t.Fatalf("the plugin polled a finished login again (%d → %d device_token calls)", polls, n)
		}
	})

	t.Run("denied", func(t *testing.T) {
		user(t, "dev_cy", "ou_devcy")
		code := start(t, "cy", "ou_devcy")
		decide(t, "deny", code, "dev_cy")
		waitStatus(t, "cy", "denied")
		if status, _, _ := w.do(http.MethodGet, "user-token/"+app+"/cy", nil); status != http.StatusNotFound {
			t.Fatalf("a denied device login left something in the slot: HTTP %d", status)
		}
	})

	t.Run("approved-by-another-user", func(t *testing.T) {
		user(t, "dev_dee", "ou_devdee")
		user(t, "dev_eve", "ou_deveve")
		code := start(t, "dee", "ou_devdee")
		decide(t, "approve", code, "dev_eve")
		data := waitStatus(t, "dee", "refused")
		if !strings.Contains(jsonString(data), "revoked at Lark") {
			t.Fatalf("refused login: %s", jsonString(data))
		}
		if status, _, _ := w.do(http.MethodGet, "user-token/"+app+"/dee", nil); status != http.StatusNotFound {
			t.Fatalf("a refused device login left something in the slot: HTTP %d", status)
		}
		grants, _ := emuControl(t, w.emuURL, http.MethodGet, "/_emulator/grants", nil)["grants"].([]any)
		for _, x := range grants {
			g, _ := x.(map[string]any)
			if g["user_id"] == "dev_eve" && g["status"] != "revoked" {
				t.Fatalf("the grant Lark issued to the wrong user is %v, want revoked", g["status"])
			}
		}
	})

	t.Run("bad-input", func(t *testing.T) {
		for _, tc := range []struct {
			path string
			body map[string]any
			want int
		}{
			{"device/" + app + "/ok", map[string]any{"nope": 1}, http.StatusBadRequest},
			{"device/cli_fnotthere/ok", map[string]any{}, http.StatusBadRequest},
			{"device/" + app + "/unbound", map[string]any{}, http.StatusForbidden},
		} {
			status, body, err := w.do(http.MethodPost, tc.path, tc.body)
			if err != nil || status != tc.want {
				t.Fatalf("POST %s %v: HTTP %d %v %v; want %d", tc.path, tc.body, status, body["errors"], err, tc.want)
			}
		}
		if status, _, _ := w.do(http.MethodGet, "device/"+app+"/never", nil); status != http.StatusNotFound {
			t.Fatalf("reading a device login never started: HTTP %d, want 404", status)
		}
	})
}

// TestDeviceLoginExpires: an emulator whose codes live 20 s; nobody approves.
func TestDeviceLoginExpires(t *testing.T) {
	t.Parallel()
	const plugin = "lark-device-expiry"
	swPrivatePlugin(t, plugin)
	w := newFaultWorld(t, "device-expiry/lark", plugin)
	w.emuURL = startOwnEmulator(t, "-device-code-ttl", "20s")
	const app = "cli_fdevexp"
	w.app(t, app, 0)
	emuControl(t, w.emuURL, http.MethodPost, "/_emulator/users", map[string]any{"user_id": "dev_fay", "open_id": "ou_devfay", "sign_in": false})
	w.must(t, "write", w.mount+"/slots/"+app+"/fay", "open_id=ou_devfay")
	if status, body, err := w.do(http.MethodPost, "device/"+app+"/fay", map[string]any{}); err != nil || status != http.StatusOK {
		t.Fatalf("start: HTTP %d %v %v", status, body["errors"], err)
	}
	waitFor(t, time.Minute, "the device login to expire", func() bool {
		_, body, _ := w.do(http.MethodGet, "device/"+app+"/fay", nil)
		data, _ := body["data"].(map[string]any)
		return data["status"] == "expired"
	})
	if status, _, _ := w.do(http.MethodGet, "user-token/"+app+"/fay", nil); status != http.StatusNotFound {
		t.Fatalf("an expired device login left something in the slot: HTTP %d", status)
	}
}
