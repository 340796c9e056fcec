//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"testing"
	"time"
)

const (
	vsoMount = "vso/lark" // ends in /lark for TestMain's audit scan, like the sweep tests' mounts
	vsoApp   = "cli_e2evsostatic"
)

// vsoMeta is what Vault Secrets Operator takes from a lease-free answer (operator guide section 11;
// the rules are unit-tested in token_response_test.go).
type vsoMeta struct {
	token        string
	lastRotation time.Time
	period, ttl  int64
	expires      time.Time
}

// TestVSOStaticCredsThroughVault reads app and tenant tokens lease-free through the real Vault's
// HTTP API, decoded as Vault Secrets Operator's Vault client decodes them (numbers as json.Number),
// and follows the operator's schedule for a VaultDynamicSecret with allowStaticCreds: back after
// ttl + 0.5 s (+ jitter), where it must find a new token (a new last_vault_rotation and a ttl above
// 2 s, or the operator would wait for a rotation and fail the sync), while Lark still accepts the
// token it held. The emulator is this test's own, so no other test moves its clock; its app
// tokens live 90 s, the mount's safety margin is 10 s, so the operator comes back after ~80 s.
func TestVSOStaticCredsThroughVault(t *testing.T) {
	t.Parallel()
	emuURL := startOwnEmulator(t, "-app-token-ttl", "90s", "-reuse-window", "30s")
	secret := fmt.Sprintf("e2eVsoStatic%d", time.Now().UnixNano())
	remember(secret, "app_secret of "+vsoApp)
	emulatorAt(t, emuURL, http.MethodPost, "/_emulator/apps", map[string]any{"app_id": vsoApp, "app_secret": secret})
	swMount(t, vsoMount, pluginName, "lease_mode=none")
	mustVault(t, rootToken, "write", vsoMount+"/apps/"+vsoApp, "app_secret="+secret, "base_url="+emuURL)

	paths := []string{vsoMount + "/app-token/" + vsoApp, vsoMount + "/tenant-token/" + vsoApp}
	held := map[string]vsoMeta{}
	comeBack := map[string]time.Time{}
	for _, p := range paths {
		m := vsoRead(t, p)
		held[p] = m
		// The latest the operator comes back: ttl + 0.5 s + the largest jitter (5 % of 3 s).
		comeBack[p] = time.Now().Add(time.Duration(m.ttl)*time.Second + 650*time.Millisecond)
	}
	sort.Slice(paths, func(i, j int) bool { return comeBack[paths[i]].Before(comeBack[paths[j]]) })
	for _, p := range paths {
		old := held[p]
		time.Sleep(time.Until(comeBack[p]))
		if ok, code := larkAccepts(t, emuURL, old.token); !ok {
			t.Errorf("%s: when the operator comes back, Lark no longer accepts the token it holds (code %d)", p, code)
		}
		next := vsoRead(t, p)
		if next.lastRotation.Equal(old.lastRotation) || next.token == old.token {
			t.Errorf("%s: no new token at the operator's next sync (last_vault_rotation %s, then %s)", p, old.lastRotation, next.lastRotation)
		}
		if ok, code := larkAccepts(t, emuURL, next.token); !ok {
			t.Errorf("%s: Lark refuses the new token (code %d)", p, code)
		}
		t.Logf("%s: held token issued %s, operator back after %ds (+0.65 s), new token issued %s with ttl %ds",
			p, old.lastRotation.Format(time.RFC3339), old.ttl, next.lastRotation.Format(time.RFC3339), next.ttl)
	}
}

// vsoRead GETs a lease-free token and checks it the way the operator reads it.
func vsoRead(t *testing.T, path string) vsoMeta {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, env.vaultAddr+"/v1/"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", rootToken)
	resp, err := env.httpClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d", path, resp.StatusCode)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var body struct {
		LeaseID string         `json:"lease_id"`
		Data    map[string]any `json:"data"`
	}
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	token, _ := body.Data["access_token"].(string)
	remember(token, "lease-free token of "+path)
	if body.LeaseID != "" {
		t.Fatalf("GET %s: a lease-free read created lease %s", path, body.LeaseID)
	}
	integer := func(key string) int64 {
		n, ok := body.Data[key].(json.Number)
		if !ok {
			t.Fatalf("GET %s: %s is %T, not a JSON number", path, key, body.Data[key])
		}
		v, err := n.Int64()
		if err != nil {
			t.Fatalf("GET %s: %s = %s is not an integer", path, key, n)
		}
		return v
	}
	m := vsoMeta{token: token, period: integer("rotation_period"), ttl: integer("ttl")}
	s, _ := body.Data["last_vault_rotation"].(string)
	if m.lastRotation, err = time.Parse(time.RFC3339Nano, s); err != nil || m.lastRotation.Unix() <= 0 {
		t.Fatalf("GET %s: last_vault_rotation %q is not an RFC 3339 time after 1970", path, s)
	}
	if m.period < 1 || m.ttl <= 2 {
		t.Fatalf("GET %s: rotation_period %d, ttl %d: the operator would not treat it as rotating, or would wait", path, m.period, m.ttl)
	}
	if m.expires, err = time.Parse(time.RFC3339, fmt.Sprint(body.Data["expires_at"])); err != nil {
		t.Fatal(err)
	}
	if !m.lastRotation.Add(time.Duration(m.period) * time.Second).Equal(m.expires) {
		t.Errorf("GET %s: last_vault_rotation %s + rotation_period %ds != expires_at %s", path, s, m.period, m.expires.Format(time.RFC3339))
	}
	// The mount's lease_safety_margin is 10 s; allow 2 s for the request and rounding.
	if d := time.Now().Add(time.Duration(m.ttl)*time.Second + 10*time.Second).Sub(m.expires); d < -2*time.Second || d > 2*time.Second {
		t.Errorf("GET %s: now + ttl %ds + 10s margin is %s off expires_at", path, m.ttl, d)
	}
	return m
}
