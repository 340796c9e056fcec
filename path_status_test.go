package larksecrets

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
	"github.com/lark-vault/vault-plugin-secrets-lark/larkemu"
)

func (e *testEnv) status() *logical.Response {
	e.t.Helper()
	resp, err := e.read("status")
	require.NoError(e.t, err)
	require.False(e.t, resp.IsError(), "%v", resp.Error())
	return resp
}

func statusApp(t *testing.T, resp *logical.Response, appID string) map[string]interface{} {
	t.Helper()
	a, ok := resp.Data["apps"].(map[string]interface{})[appID].(map[string]interface{})
	require.True(t, ok, "app %s in %v", appID, resp.Data["apps"])
	return a
}

// okGrant is a grant with nothing due for days, written behind the plugin's back.
func (e *testEnv) okGrant(appID, slot string) *grantEntry {
	now := e.clock.Now()
	return &grantEntry{AppID: appID, Slot: slot, State: grantStateOK, AccessToken: "x", AccessExpiresAt: now.Add(2 * time.Hour),
		RefreshToken: "unused", LastRefreshAt: now, RefreshExpiresAt: now.Add(7 * 24 * time.Hour),
		AuthorizedAt: now, GrantExpiresAt: now.Add(grantMaxAge)}
}

func TestStatusOfAHealthyMount(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	env.grantUser("alice")
	_, err := env.read("tenant-token/" + testAppID)
	require.NoError(t, err)
	env.sweep()

	resp := env.status()
	require.Equal(t, true, resp.Data["healthy"], "reasons: %v", resp.Data["reasons"])
	require.Empty(t, resp.Data["reasons"])
	require.Empty(t, resp.Warnings)
	require.Equal(t, 1, resp.Data["grants_total"])
	require.Equal(t, 1, resp.Data["grants_ok"])
	require.Equal(t, 0, resp.Data["grants_unclassified"])
	require.Equal(t, true, resp.Data["grant_levels_complete"])
	require.Equal(t, 1, resp.Data["sweep_runs"])
	require.Equal(t, true, resp.Data["sweep_last_full_pass"])
	require.Equal(t, "20s", resp.Data["sweep_budget"])
	require.Equal(t, "2026-11-27T21:00:00Z", resp.Data["notice_next_at"], "0 9,21 * * * after 09:00")

	app := statusApp(t, resp, testAppID)
	require.Equal(t, "self_built", app["app_type"])
	require.Equal(t, true, app["healthy"])
	require.Equal(t, 1, app["grants"])
	require.Equal(t, "accepted", app["secret"])
	require.Equal(t, formatTime(env.clock.Now()), app["secret_accepted_at"])
	require.Equal(t, "reachable", app["lark"])
	tenant := app["tokens"].(map[string]interface{})["tenant"].(map[string]interface{})
	require.Equal(t, formatTime(env.clock.Now().Add(2*time.Hour)), tenant["expires_at"])

	// No token or secret anywhere in the answer.
	body, err := json.Marshal(resp)
	require.NoError(t, err)
	require.NotContains(t, string(body), testSecret)
	require.NotContains(t, string(body), env.storedGrant("alice").AccessToken)
	require.NotContains(t, string(body), env.storedGrant("alice").RefreshToken)

	// Every field of the answer is described in path-help.
	for k := range resp.Data {
		require.Contains(t, statusFields, k)
	}
	for k := range statusFields {
		require.Contains(t, resp.Data, k, "described but never returned")
	}
	help, err := env.do(logical.HelpOperation, "status", nil)
	require.NoError(t, err)
	require.Contains(t, help.Data["help"], "grants_unclassified:")
}

func TestStatusRefusesUnknownFields(t *testing.T) {
	env := newTestEnv(t)
	resp, err := env.do(logical.ReadOperation, "status", map[string]interface{}{"verbose": true})
	require.NoError(t, err)
	require.True(t, resp.IsError())
	require.Contains(t, resp.Error().Error(), "unknown field(s) verbose; this path takes no parameters")
}

// Each way the mount can be unhealthy gives a reason that says what to do.
func TestStatusReasons(t *testing.T) {
	for _, tt := range []struct {
		name    string
		arrange func(t *testing.T, env *testEnv)
		want    string // in one of the reasons
		check   func(t *testing.T, resp *logical.Response)
	}{{
		name: "app secret rejected",
		arrange: func(t *testing.T, env *testEnv) {
			env.sweep()
			require.NoError(t, env.emu.AddApp(testAppID, "rotatedInConsole"))
			_, err := env.read("tenant-token/" + testAppID)
			require.Error(t, err)
		},
		want: "App " + testAppID + ": Lark rejects its app secret (since 2026-11-27T09:00:00Z). Check the App Secret in the developer console and store it with: vault write lark/apps/" + testAppID + " app_secret=...",
		check: func(t *testing.T, resp *logical.Response) {
			require.Equal(t, "rejected", statusApp(t, resp, testAppID)["secret"])
			require.Equal(t, 1, resp.Data["apps_unhealthy"])
		},
	}, {
		name: "app secret rejected by a refresh",
		arrange: func(t *testing.T, env *testEnv) {
			env.sweep()
			env.b.appStatus.flag(context.Background(), env.storage, testAppID, &lark.Error{Kind: lark.KindAppSecretRejected, Code: 20002})
		},
		want: "Lark rejects its app secret (since 2026-11-27T09:00:00Z)",
	}, {
		name: "app setup refused",
		arrange: func(t *testing.T, env *testEnv) {
			env.sweep()
			env.b.appStatus.flag(context.Background(), env.storage, testAppID, &lark.Error{Kind: lark.KindAppSetup, Code: 20063})
		},
		want: "Lark refuses the app's setup since 2026-11-27T09:00:00Z",
		check: func(t *testing.T, resp *logical.Response) {
			p := statusApp(t, resp, testAppID)["setup_problem"].(map[string]interface{})
			require.Equal(t, 20063, p["code"])
		},
	}, {
		name: "Lark unreachable",
		arrange: func(t *testing.T, env *testEnv) {
			env.mustWrite("config", map[string]interface{}{"lark_max_attempts": 1})
			env.sweep()
			require.NoError(t, env.emu.InjectFailure(larkemu.Failure{Endpoint: larkemu.EndpointAll, Mode: larkemu.Fail5xx, Count: -1}))
			_, err := env.read("tenant-token/" + testAppID)
			require.Error(t, err)
		},
		want: "App " + testAppID + ": Lark could not be reached since 2026-11-27T09:00:00Z",
		check: func(t *testing.T, resp *logical.Response) {
			app := statusApp(t, resp, testAppID)
			require.Equal(t, "unreachable", app["lark"])
			require.Contains(t, app["lark_last_error"], "503")
		},
	}, {
		name: "grant critical",
		arrange: func(t *testing.T, env *testEnv) {
			require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "u362"}))
			env.importGrant("c", "u362", 362)
			env.sweep()
		},
		want: "App " + testAppID + ": 1 grant(s) end within critical_days (critical). Each user must authorize again; see them with: vault list lark/reauth",
		check: func(t *testing.T, resp *logical.Response) {
			require.Equal(t, 1, resp.Data["grants_critical"])
		},
	}, {
		name: "grant expired",
		arrange: func(t *testing.T, env *testEnv) {
			g := env.okGrant(testAppID, "old")
			g.AuthorizedAt = env.clock.Now().Add(-grantMaxAge - time.Hour)
			g.GrantExpiresAt = env.clock.Now().Add(-time.Hour)
			env.writeGrant(g)
			env.sweep()
		},
		want: "1 grant(s) have ended (expired)",
		check: func(t *testing.T, resp *logical.Response) {
			require.Equal(t, 1, resp.Data["grants_expired"])
		},
	}, {
		name: "grant needs re-authorization",
		arrange: func(t *testing.T, env *testEnv) {
			g := env.okGrant(testAppID, "gone")
			g.markReauth(env.clock.Now(), 20064, lark.GrantEndRevoked, "the user revoked it")
			env.writeGrant(g)
			env.sweep()
		},
		want: "1 grant(s) need re-authorization (reauth_required)",
		check: func(t *testing.T, resp *logical.Response) {
			require.Equal(t, 1, resp.Data["grants_reauth_required"])
		},
	}, {
		name:    "no sweep since the start",
		arrange: func(t *testing.T, env *testEnv) { env.clock.Advance(6 * time.Minute) },
		want:    "No sweep has run on this node since it started at 2026-11-27T09:00:00Z; Vault runs it about once a minute on the active node. Check Vault's log, or run it now: vault write lark/sweep",
	}, {
		name: "no sweep recently",
		arrange: func(t *testing.T, env *testEnv) {
			env.sweep()
			env.clock.Advance(6 * time.Minute)
		},
		want: "The last sweep started at 2026-11-27T09:00:00Z, more than 5m0s ago",
	}, {
		name: "sweep failed",
		arrange: func(t *testing.T, env *testEnv) {
			_, err := env.b.sweeper.run(context.Background(), &failGetStorage{Storage: env.storage, key: sweepStateKey})
			require.Error(t, err)
		},
		want: "The last sweep, at 2026-11-27T09:00:00Z, failed: reading broke. Check Vault's storage and log",
	}, {
		name: "building the indexes takes over an hour",
		arrange: func(t *testing.T, env *testEnv) {
			// Runs that each stop at their budget while the indexes are built, for over an hour.
			cfg, start := defaultConfig(), env.clock.Now()
			for i := 0; i <= 61; i++ {
				env.b.sweeper.history.record(&sweepReport{StartedAt: env.clock.Now(), GrantsTotal: 100000, GrantsVisited: 10, BudgetExhausted: true,
					Walk: walkState{Rebuild: true, CycleStart: start}}, cfg, nil, env.clock.Now())
				env.clock.Advance(time.Minute)
			}
		},
		want: "The sweep has been building the grant indexes (reading every grant once) since 2026-11-27T09:00:00Z: each run stops at sweep_budget (20s). Raise it (vault write lark/config sweep_budget=40s) or keepalive_rate.",
	}, {
		name: "sweep run far over its budget",
		arrange: func(t *testing.T, env *testEnv) {
			env.b.sweeper.history.record(&sweepReport{StartedAt: env.clock.Now(), Took: 50 * time.Second, FullPass: true}, defaultConfig(), nil, env.clock.Now())
		},
		want: "The last sweep took 50s against a sweep_budget of 20s",
	}, {
		name: "notices failing",
		arrange: func(t *testing.T, env *testEnv) {
			require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "admin"}))
			require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "u362"}))
			env.mustWrite("apps/"+testAppID, map[string]interface{}{"notify_open_ids": env.emu.OpenID(testAppID, "admin")})
			env.mustWrite("config", map[string]interface{}{"notify_schedule": "* * * * *"})
			env.importGrant("c", "u362", 362)
			require.NoError(t, env.emu.InjectFailure(larkemu.Failure{Endpoint: larkemu.EndpointMessages, Mode: larkemu.FailError, Code: 230013, Count: -1}))
			require.Len(t, env.sweep().NotifyFailed, 1)
		},
		want: "1 notice(s) could not be sent at 2026-11-27T09:00:00Z (last error: ",
		check: func(t *testing.T, resp *logical.Response) {
			require.Equal(t, 1, resp.Data["notice_last_pass_failed"])
			require.Contains(t, strings.Join(resp.Data["reasons"].([]string), "\n"), "they are retried at 2026-11-27T09:01:00Z")
		},
	}, {
		name: "rotated refresh token not stored",
		arrange: func(t *testing.T, env *testEnv) {
			env.grantUser("frank")
			env.sweep()
			env.clock.Advance(2 * time.Hour)
			env.storage = &failAfterStorage{Storage: env.storage, okPuts: 1}
			_, err := env.read("user-token/" + testAppID + "/frank")
			require.ErrorContains(t, err, "kept in memory")
			env.sweep()
		},
		want: "1 grant(s) hold rotated refresh tokens that Vault's storage refused",
		check: func(t *testing.T, resp *logical.Response) {
			require.Equal(t, 1, resp.Data["unsaved_grants"])
		},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t)
			env.addOAuthApp()
			tt.arrange(t, env)
			resp := env.status()
			require.Equal(t, false, resp.Data["healthy"])
			reasons := resp.Data["reasons"].([]string)
			require.Equal(t, reasons, resp.Warnings, "each reason is also a warning")
			found := false
			for _, r := range reasons {
				found = found || strings.Contains(r, tt.want)
			}
			require.True(t, found, "want a reason containing %q, got %q", tt.want, reasons)
			if tt.check != nil {
				tt.check(t, resp)
			}
		})
	}
}

// The answer stays small and reads no grant and lists no app's grants, however many grants and
// apps there are.
func TestStatusStaysBoundedWithTenThousandGrants(t *testing.T) {
	env := newTestEnv(t)
	counting := &countingStorage{Storage: env.storage}
	env.storage = counting
	env.addOAuthApp()
	env.mustWrite("config", map[string]interface{}{"sweep_budget": 60})
	for i := 0; i < 10000; i++ {
		g := env.okGrant(testAppID, "s"+strings.Repeat("0", 5-len(itoa(i)))+itoa(i))
		if i%100 == 0 {
			g.AuthorizedAt = env.clock.Now().Add(-362 * 24 * time.Hour)
			g.GrantExpiresAt = env.clock.Now().Add(2 * 24 * time.Hour)
		}
		env.writeGrant(g)
	}
	// 40 more apps, each with a few grants, so that apps too are past the limit.
	for i := 0; i < 40; i++ {
		appID := "cli_app" + itoa(i)
		env.mustWrite("apps/"+appID, map[string]interface{}{"app_secret": testSecret, "base_url": env.emuURL})
		for j := 0; j < 3; j++ {
			env.writeGrant(env.okGrant(appID, "u"+itoa(j)))
		}
	}
	require.True(t, env.sweep().FullPass)

	counting.reset()
	resp := env.status()
	calls := counting.reset()
	require.Zero(t, calls["get:grant"], "no grant is read")
	require.Zero(t, calls["list:grant"], "no app's grant keys are listed: the level counts give the number")
	require.LessOrEqual(t, calls["get"], 41*4, "at most a few reads per app")
	require.LessOrEqual(t, calls["list"], 2, "the apps and the level counts")

	require.Equal(t, 10120, resp.Data["grants_total"])
	require.Equal(t, 100, resp.Data["grants_critical"])
	require.Equal(t, 41, resp.Data["apps_total"])
	require.Equal(t, 21, resp.Data["apps_omitted"])
	require.Len(t, resp.Data["apps"], statusMaxApps)
	require.Contains(t, resp.Data["apps"], testAppID, "the unhealthy app comes first")
	body, err := json.Marshal(resp)
	require.NoError(t, err)
	require.Less(t, len(body), 16<<10, "the answer's size does not grow with grants or apps")
}

// Past 20 reasons, the rest are counted.
func TestStatusReasonsAreBounded(t *testing.T) {
	env := newTestEnv(t)
	for i := 0; i < 30; i++ {
		appID := "cli_app" + itoa(i)
		env.mustWrite("apps/"+appID, map[string]interface{}{"app_secret": testSecret, "base_url": env.emuURL})
		env.b.appStatus.flag(context.Background(), env.storage, appID, &lark.Error{Kind: lark.KindAppSetup, Code: 20063})
	}
	env.sweep()
	resp := env.status()
	require.Len(t, resp.Data["reasons"], statusMaxReasons)
	require.Equal(t, 10, resp.Data["reasons_omitted"])
	require.Equal(t, 30, resp.Data["apps_unhealthy"])
}

func TestAppsListShowsTypeGrantsAndHealth(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	env.mustWrite("apps/cli_other", map[string]interface{}{"app_secret": testSecret, "base_url": env.emuURL})
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "u362"}))
	env.importGrant("c", "u362", 362)
	env.grantUser("alice")
	env.sweep()

	resp, err := env.do(logical.ListOperation, "apps/", nil)
	require.NoError(t, err)
	require.Equal(t, []string{testAppID, "cli_other"}, resp.Data["keys"])
	info := resp.Data["key_info"].(map[string]interface{})
	require.Equal(t, map[string]interface{}{"app_type": "self_built", "grants": 2, "health": "unhealthy", "problems": 1}, info[testAppID])
	require.Equal(t, map[string]interface{}{"app_type": "self_built", "grants": 0, "health": "ok", "problems": 0}, info["cli_other"])
}

// The grants list's key_info (what vault list -detailed prints, a column per field) fits 120
// columns; every field is in grants (what -detailed -format=json adds).
func TestGrantsListFitsAHundredTwentyColumns(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	g := env.okGrant(testAppID, "svc-release-bot-eu-west-1")
	g.Name = "Alexandrina Victoria of Saxe-Coburg and Gotha"
	g.markReauth(env.clock.Now(), 20064, lark.GrantEndRevoked, "the user revoked it")
	env.writeGrant(g)
	env.writeGrant(env.okGrant(testAppID, "ada"))

	resp, err := env.do(logical.ListOperation, "user-token/"+testAppID+"/", nil)
	require.NoError(t, err)
	info := resp.Data["key_info"].(map[string]interface{})
	full := resp.Data["grants"].(map[string]interface{})
	require.Equal(t, map[string]interface{}{"name": "Alexandrina Victoria of…", "level": levelReauthRequired, "days_left": 0.0,
		"grant_expires_at": formatTime(g.GrantExpiresAt)}, info[g.Slot])
	st := full[g.Slot].(map[string]interface{})
	require.Equal(t, g.Name, st["name"])
	require.Equal(t, "the user revoked it", st["reauth_reason"])
	require.Contains(t, st, "refresh_expires_at")

	// The CLI's table: a column per key_info field (sorted) after Keys, each as wide as its
	// widest cell, joined by four spaces.
	headers := []string{"Keys"}
	for k := range info[g.Slot].(map[string]interface{}) {
		headers = append(headers, k)
	}
	sort.Strings(headers[1:])
	width := 4 * (len(headers) - 1)
	for i, h := range headers {
		w := utf8.RuneCountInString(h)
		for slot, raw := range info {
			cell := slot
			if i > 0 {
				cell = fmt.Sprintf("%v", raw.(map[string]interface{})[h])
			}
			w = max(w, utf8.RuneCountInString(cell))
		}
		width += w
	}
	require.LessOrEqual(t, width, 120)
}

// The level counts are kept in storage with every grant write, so a restart (or a new active node)
// knows them at once. Grants stored past the indexes (by a version before them) are unclassified
// until the sweep's first run has built the indexes.
func TestStatusCountsLevelsAcrossARestart(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	for _, slot := range []string{"a", "b", "c"} {
		env.writeGrant(env.okGrant(testAppID, slot))
	}
	env.sweep()
	require.Equal(t, 3, env.status().Data["grants_ok"])

	env.b = env.newBackend(nil) // a new process, as after a reload
	resp := env.status()
	require.Equal(t, 3, resp.Data["grants_total"])
	require.Equal(t, 0, resp.Data["grants_unclassified"])
	require.Equal(t, 3, resp.Data["grants_ok"])
	require.Equal(t, true, resp.Data["grant_levels_complete"])
	require.Equal(t, 0, resp.Data["sweep_runs"])
	require.Equal(t, true, resp.Data["healthy"], "a fresh start is not a problem by itself")

	// Grants a version before the indexes stored: not counted until the indexes are built.
	env = newTestEnv(t)
	env.addOAuthApp()
	for _, slot := range []string{"a", "b", "c"} {
		env.writeGrantRaw(env.okGrant(testAppID, slot))
	}
	resp = env.status()
	require.Equal(t, 3, resp.Data["grants_unclassified"])
	require.Equal(t, false, resp.Data["grant_levels_complete"])
	r := env.sweep()
	require.True(t, r.FullPass)
	require.Equal(t, 3, r.RepairVisited)
	resp = env.status()
	require.Equal(t, 0, resp.Data["grants_unclassified"])
	require.Equal(t, 3, resp.Data["grants_ok"])
	require.Equal(t, true, resp.Data["grant_levels_complete"])
}
