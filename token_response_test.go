package larksecrets

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLeaseFreeModeCarriesTTLAndRotationPeriod(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	env.grantUser("lf")
	env.mustWrite("config", map[string]interface{}{"lease_mode": "none"})
	issued := env.clock.Now().UTC().Format(time.RFC3339)

	for _, path := range []string{"app-token/" + testAppID, "tenant-token/" + testAppID, "user-token/" + testAppID + "/lf"} {
		resp, err := env.read(path)
		require.NoError(t, err, path)
		require.Nil(t, resp.Secret, "%s: lease-free reads create no lease", path)
		// Numeric, so Vault Agent (which reads them as json.Number) re-reads at ttl+1s.
		require.Equal(t, int64((2*time.Hour - defaultLeaseMargin).Seconds()), resp.Data["ttl"], path)
		require.Equal(t, int64(7200), resp.Data["rotation_period"], path)
		require.Equal(t, issued, resp.Data["last_vault_rotation"], path)
		require.NotEmpty(t, resp.Data["access_token"], path)
	}

	// ttl follows the token's remaining life; the token and so its issue time stay the same.
	env.clock.Advance(time.Hour)
	resp, err := env.read("app-token/" + testAppID)
	require.NoError(t, err)
	require.Equal(t, int64((time.Hour - defaultLeaseMargin).Seconds()), resp.Data["ttl"])
	require.Equal(t, int64(7200), resp.Data["rotation_period"])
	require.Equal(t, issued, resp.Data["last_vault_rotation"])

	// An app can override the mount in either direction.
	env.mustWrite("apps/"+testAppID, map[string]interface{}{"lease_mode": "lease"})
	resp, err = env.read("app-token/" + testAppID)
	require.NoError(t, err)
	require.NotNil(t, resp.Secret)
	require.NotContains(t, resp.Data, "ttl")
	require.NotContains(t, resp.Data, "last_vault_rotation")
	env.mustWrite("config", map[string]interface{}{"lease_mode": "lease"})
	env.mustWrite("apps/"+testAppID, map[string]interface{}{"lease_mode": "none"})
	resp, err = env.read("tenant-token/" + testAppID)
	require.NoError(t, err)
	require.Nil(t, resp.Secret)

	resp, err = env.write("apps/"+testAppID, map[string]interface{}{"lease_mode": "maybe"})
	require.NoError(t, err)
	require.True(t, resp.IsError())
}

func TestRotationOfKeepsFieldsConsistent(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name               string
		issued, expires    time.Time
		ttl                time.Duration
		wantIssued         time.Time
		wantPeriod         time.Duration
		wantFractionsMatch bool
	}{
		{name: "whole seconds", issued: now.Add(-time.Hour), expires: now.Add(time.Hour), ttl: 55 * time.Minute,
			wantIssued: now.Add(-time.Hour), wantPeriod: 2 * time.Hour},
		{name: "fractions are cut as expires_at cuts them", issued: now.Add(-time.Hour + 700*time.Millisecond),
			expires: now.Add(time.Hour + 300*time.Millisecond), ttl: 55 * time.Minute,
			wantIssued: now.Add(-time.Hour), wantPeriod: 2 * time.Hour},
		{name: "unknown issue time counts as now", expires: now.Add(time.Hour), ttl: 55 * time.Minute,
			wantIssued: now, wantPeriod: time.Hour},
		{name: "issue time in the future counts as now", issued: now.Add(time.Minute), expires: now.Add(time.Hour),
			ttl: 55 * time.Minute, wantIssued: now, wantPeriod: time.Hour},
		{name: "never shorter than ttl", issued: now, expires: now.Add(500 * time.Millisecond), ttl: time.Second,
			wantIssued: now.Add(-time.Second), wantPeriod: time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			issued, period := rotationOf(tc.issued, tc.expires, tc.ttl, now)
			require.Equal(t, tc.wantIssued, issued)
			require.Equal(t, tc.wantPeriod, period)
			require.Equal(t, tc.expires.Truncate(time.Second), issued.Add(period))
		})
	}
}

// The rules below are Vault Secrets Operator's (v1.x, the VaultDynamicSecret controller), restated
// in our words from reading its source, so that a lease-free answer is checked against what the
// operator will do with it:
//
//   - With allowStaticCreds, an answer without a lease is a rotating credential only when it carries
//     last_vault_rotation, a string in RFC 3339 (fractions allowed) giving a time after 1970, and a
//     rotation_period of at least one second (or a rotation_schedule, which we do not use). ttl and
//     rotation_period must be JSON integers; anything else fails the sync. Otherwise the operator
//     logs that the secret "does not support static-creds semantics" and never re-syncs it on time.
//   - After a sync it comes back after ttl seconds plus half a second plus up to 5 % of 3 s of
//     random jitter.
//   - If the answer it then gets has the same last_vault_rotation as the last sync and a ttl of two
//     seconds or less, it treats the rotation as still under way: it polls for about ten seconds and
//     then fails the sync. The same last_vault_rotation with a larger ttl is taken as is, so the
//     Kubernetes secret keeps the old token until the next round.
//   - The secret's data is compared without ttl, rotation_period, rotation_schedule and
//     last_vault_rotation, so a change of those alone does not rewrite the Kubernetes secret.
//   - When a new operator pod takes over, it re-reads at once unless the time is still before
//     last_vault_rotation + the ttl of the last sync; then it waits until that time.
type vsoStaticMeta struct {
	lastRotation int64 // Unix seconds
	period, ttl  int64
}

// vsoParse reads the answer's data as the operator does, after Vault's HTTP layer has encoded it
// (the operator's Vault client decodes numbers as json.Number).
func vsoParse(data map[string]interface{}) (vsoStaticMeta, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return vsoStaticMeta{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var wire map[string]interface{}
	if err := dec.Decode(&wire); err != nil {
		return vsoStaticMeta{}, err
	}
	var m vsoStaticMeta
	if v, ok := wire["last_vault_rotation"]; ok && v != nil {
		s, ok := v.(string)
		if !ok {
			return m, errors.New("last_vault_rotation is not a string")
		}
		at, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return m, fmt.Errorf("last_vault_rotation: %w", err)
		}
		m.lastRotation = at.Unix()
	}
	integer := func(key string) (int64, error) {
		v, ok := wire[key]
		if !ok || v == nil {
			return 0, nil
		}
		n, ok := v.(json.Number)
		if !ok {
			return 0, fmt.Errorf("%s is not a number", key)
		}
		return n.Int64()
	}
	if m.period, err = integer("rotation_period"); err != nil {
		return m, err
	}
	if m.ttl, err = integer("ttl"); err != nil {
		return m, err
	}
	return m, nil
}

func (m vsoStaticMeta) isStatic() bool { return m.lastRotation > 0 && m.period >= 1 }

// nextSync is the latest the operator comes back after a sync that saw m.
func (m vsoStaticMeta) nextSync() time.Duration {
	return time.Duration(m.ttl)*time.Second + 500*time.Millisecond + 150*time.Millisecond
}

// acceptsAfter says whether the operator, having synced last, takes m without waiting.
func (m vsoStaticMeta) acceptsAfter(last vsoStaticMeta) bool {
	return m.lastRotation != last.lastRotation || m.ttl > 2
}

func TestVSOStaticCredsRulesRejectIncompleteAnswers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		data    map[string]interface{}
		static  bool
		parseOK bool
	}{
		{"complete", map[string]interface{}{"ttl": 10, "rotation_period": 20, "last_vault_rotation": "2026-12-06T10:00:00Z"}, true, true},
		{"no last_vault_rotation", map[string]interface{}{"ttl": 10, "rotation_period": 20}, false, true},
		{"no rotation_period", map[string]interface{}{"ttl": 10, "last_vault_rotation": "2026-12-06T10:00:00Z"}, false, true},
		{"zero time", map[string]interface{}{"ttl": 10, "rotation_period": 20, "last_vault_rotation": "0001-01-01T00:00:00Z"}, false, true},
		{"not RFC 3339", map[string]interface{}{"ttl": 10, "rotation_period": 20, "last_vault_rotation": "1765015200"}, false, false},
		{"ttl as a string", map[string]interface{}{"ttl": "10", "rotation_period": 20, "last_vault_rotation": "2026-12-06T10:00:00Z"}, false, false},
	} {
		m, err := vsoParse(tc.data)
		require.Equal(t, tc.parseOK, err == nil, tc.name)
		if err == nil {
			require.Equal(t, tc.static, m.isStatic(), tc.name)
		}
	}
}

// TestLeaseFreeAnswersFollowVSORules reads each token kind lease-free, applies the operator's rules
// to the answer, moves the clock to the operator's next sync and checks that it then finds a new
// token it accepts at once, while the token it holds has still not expired.
func TestLeaseFreeAnswersFollowVSORules(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) (*testEnv, string)
		// tick happens before each of the operator's syncs (Lark pushes a store app's ticket hourly).
		tick func(env *testEnv)
	}{
		{name: "app token", setup: func(t *testing.T) (*testEnv, string) {
			env := newTestEnv(t)
			env.mustWrite("apps/"+testAppID, map[string]interface{}{"app_secret": testSecret, "base_url": env.emuURL})
			return env, "app-token/" + testAppID
		}},
		{name: "tenant token", setup: func(t *testing.T) (*testEnv, string) {
			env := newTestEnv(t)
			env.mustWrite("apps/"+testAppID, map[string]interface{}{"app_secret": testSecret, "base_url": env.emuURL})
			return env, "tenant-token/" + testAppID
		}},
		{name: "user token", setup: func(t *testing.T) (*testEnv, string) {
			env := newTestEnv(t)
			env.addOAuthApp()
			env.grantUser("vso")
			return env, "user-token/" + testAppID + "/vso"
		}},
		{name: "store app tenant token", setup: func(t *testing.T) (*testEnv, string) {
			env := newStoreTestEnv(t)
			env.addStoreApp(storeEncrypt, tenantA)
			env.giveTicket(storeAppID)
			return env, "tenant-token/" + storeAppID + "/" + tenantA
		}, tick: func(env *testEnv) { env.giveTicket(storeAppID) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, path := tc.setup(t)
			env.mustWrite("config", map[string]interface{}{"lease_mode": "none"})
			// Start part-way into a token's life, as an operator joining late would.
			first, err := env.read(path)
			require.NoError(t, err)
			env.clock.Advance(17*time.Minute + 300*time.Millisecond)

			last := vsoReadStatic(t, env, path)
			for round := 0; round < 3; round++ {
				heldToken, heldExpiry := last.data["access_token"], last.expires
				// A new operator pod would come back no later than this either.
				takeover := time.Unix(last.meta.lastRotation+last.meta.ttl, 0)
				require.True(t, takeover.Before(heldExpiry), "round %d: after a takeover the operator would wait past the token's expiry", round)
				env.clock.Advance(last.meta.nextSync())
				if tc.tick != nil {
					tc.tick(env)
				}
				require.True(t, env.clock.Now().Before(heldExpiry),
					"round %d: the operator comes back only after the held token expired", round)

				next := vsoReadStatic(t, env, path)
				require.True(t, next.meta.acceptsAfter(last.meta),
					"round %d: the operator would wait for a rotation and fail the sync: %+v after %+v", round, next.meta, last.meta)
				require.NotEqual(t, last.meta.lastRotation, next.meta.lastRotation, "round %d: no new token at the operator's next sync", round)
				require.NotEqual(t, heldToken, next.data["access_token"], "round %d", round)
				last = next
			}
			require.NotEqual(t, first.Data["access_token"], last.data["access_token"])
		})
	}
}

type vsoRead struct {
	data    map[string]interface{}
	meta    vsoStaticMeta
	expires time.Time
}

// vsoReadStatic reads path and checks the answer against the operator's rules and against itself:
// issued + rotation_period = expires_at, and now + ttl + the safety margin = expires_at (to within a
// second, as both ttl and expires_at are rounded down).
func vsoReadStatic(t *testing.T, env *testEnv, path string) vsoRead {
	t.Helper()
	resp, err := env.read(path)
	require.NoError(t, err)
	require.Nil(t, resp.Secret)
	meta, err := vsoParse(resp.Data)
	require.NoError(t, err)
	require.True(t, meta.isStatic(), "VSO would not treat %v as static credentials", resp.Data)
	require.Greater(t, meta.ttl, int64(2), "VSO waits on a ttl of 2 s or less")

	expires, err := time.Parse(time.RFC3339, resp.Data["expires_at"].(string))
	require.NoError(t, err)
	require.Equal(t, expires.Unix(), meta.lastRotation+meta.period, "last_vault_rotation + rotation_period != expires_at")
	now := env.clock.Now()
	require.LessOrEqual(t, meta.lastRotation, now.Unix(), "issued in the future")
	// ttl and expires_at are both rounded down to whole seconds: they agree to within one.
	comeBack := now.Add(time.Duration(meta.ttl)*time.Second + defaultLeaseMargin)
	require.Less(t, expires.Sub(comeBack).Abs(), time.Second, "now + ttl + margin != expires_at")
	return vsoRead{data: resp.Data, meta: meta, expires: expires}
}
