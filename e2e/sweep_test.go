//go:build e2e

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Issue 4, "keep grants alive and announce their end", in a real Vault against the emulator
// process, in real time. The three tests run in parallel with each other (each on its own mount,
// with its own apps), so the keep-alive test's minutes of waiting cover the others.

const (
	kaMount      = "sweep-ka/lark"
	kaApp        = "cli_e2esweepka"
	kaGrants     = 3
	kaRefreshTTL = 3 * time.Minute // what the emulator reports as refresh_token_expires_in for this app
	kaRotations  = 2               // each grant must be rotated at least this often by Vault's own sweep
	kaMaxWait    = 7 * time.Minute
	// The plugin refreshes a grant once 45–55 % of its refresh token's life has passed.
	kaEarliest = time.Duration(0.45 * float64(kaRefreshTTL))
)

// TestKeepaliveSweepRotatesUnreadGrants: grants nobody reads are kept alive by Vault's own
// once-a-minute sweep, at about half of the refresh token's life as Lark reports it, and never by
// spending a refresh token twice.
func TestKeepaliveSweepRotatesUnreadGrants(t *testing.T) {
	t.Parallel()
	swMount(t, kaMount, pluginName)
	swApp(t, kaMount, kaApp, map[string]any{"refresh_token_ttl_seconds": kaRefreshTTL.Seconds()})

	type kaGrant struct {
		slot, grantID string
		rotations     []time.Duration // when the test saw each rotation, after start
	}
	var grants []*kaGrant
	for i := 1; i <= kaGrants; i++ {
		user, slot := fmt.Sprintf("sw_ka%d", i), fmt.Sprintf("ka%d", i)
		swUser(t, user, fmt.Sprintf("Keepalive User %d", i), "")
		m := swMint(t, kaApp, user, 30)
		data, _ := swImport(t, kaMount, kaApp, slot, m, m.AuthorizedAt)["data"].(map[string]any)
		// The plugin takes the lifetime Lark reports, not a fixed 7 days.
		life := swTime(t, "refresh_expires_at", data["refresh_expires_at"]).Sub(swTime(t, "last_refresh_at", data["last_refresh_at"]))
		if life < kaRefreshTTL-5*time.Second || life > kaRefreshTTL+time.Second {
			t.Fatalf("imported grant %s: refresh token lives %s by the plugin's record, want about %s", slot, life, kaRefreshTTL)
		}
		grants = append(grants, &kaGrant{slot: slot, grantID: m.GrantID})
	}
	start := time.Now()
	base := swAppCounters(t, kaApp)
	if base["refresh"] != kaGrants || base["user_info"] != kaGrants || base["refresh_reuse"] != 0 {
		t.Fatalf("after %d imports the app's counters are %v, want %d refreshes and user_info calls", kaGrants, base, kaGrants)
	}

	// No reads from here on: only Vault's periodic sweep may refresh these grants.
	t.Logf("waiting for Vault's periodic sweep to rotate each of %d unread grants %d times (refresh tokens live %s)", kaGrants, kaRotations, kaRefreshTTL)
	for {
		time.Sleep(10 * time.Second)
		elapsed := time.Since(start).Round(time.Second)
		lark := swLarkGrants(t, kaApp)
		done := true
		for _, g := range grants {
			info := lark[g.grantID]
			if info == nil {
				t.Fatalf("grant %s is gone at the emulator", g.grantID)
			}
			if info["status"] != "active" || info["reuse_attempts"] != float64(0) {
				t.Fatalf("after %s grant %s is %v with %v reuse attempts at Lark (rotations seen at %v)",
					elapsed, g.slot, info["status"], info["reuse_attempts"], g.rotations)
			}
			n := int(info["refreshes"].(float64)) - 1 // the import spent the minted token once
			if n > 0 && elapsed < kaEarliest-2*time.Second {
				t.Fatalf("grant %s was refreshed %d time(s) within %s of its import, before 45%% of its %s refresh token's life",
					g.slot, n, elapsed, kaRefreshTTL)
			}
			for len(g.rotations) < n {
				g.rotations = append(g.rotations, elapsed)
			}
			if n < kaRotations {
				done = false
			}
		}
		if done || time.Since(start) > kaMaxWait {
			break
		}
	}
	rotated := 0
	for _, g := range grants {
		t.Logf("grant %s: rotated by the sweep, seen at %v after import", g.slot, g.rotations)
		if len(g.rotations) < kaRotations {
			t.Errorf("grant %s was rotated %d time(s) in %s, want at least %d", g.slot, len(g.rotations), time.Since(start).Round(time.Second), kaRotations)
		}
		rotated += len(g.rotations)
	}
	after := swAppCounters(t, kaApp)
	if after["refresh_reuse"] != 0 || after["code_exchange"] != 0 || after["user_info"] != base["user_info"] || after["messages"] != 0 {
		t.Errorf("app counters after the wait: %v (before: %v); want no reuse, no code exchange, no user_info, no message", after, base)
	}
	if got := after["refresh"] - base["refresh"]; got != rotated {
		t.Errorf("the app made %d refresh requests while the grants were rotated %d times", got, rotated)
	}

	// Every grant still works, and the plugin counted the same rotations.
	for _, g := range grants {
		out := vaultJSON(t, rootToken, "read", kaMount+"/user-token/"+kaApp+"/"+g.slot)
		data, _ := out["data"].(map[string]any)
		tok, _ := data["access_token"].(string)
		remember(tok, "user_access_token of "+kaApp+"/"+g.slot)
		if tok == "" || data["days_left"].(float64) < 300 || out["warnings"] != nil {
			t.Errorf("read of %s after the wait: token=%t days_left=%v warnings=%v", g.slot, tok != "", data["days_left"], out["warnings"])
		}
	}
	_, list := vaultHTTP(t, rootToken, "LIST", kaMount+"/user-token/"+kaApp+"/", nil)
	info, _ := list["data"].(map[string]any)["grants"].(map[string]any)
	for _, g := range grants {
		st, _ := info[g.slot].(map[string]any)
		if n, _ := st["refresh_count"].(float64); int(n) < len(g.rotations) || st["state"] != "ok" {
			t.Errorf("slot %s: refresh_count=%v state=%v, want at least %d and ok", g.slot, st["refresh_count"], st["state"], len(g.rotations))
		}
	}
	if c := swAppCounters(t, kaApp); c["refresh_reuse"] != 0 {
		t.Errorf("refresh_reuse = %d at the end, want 0", c["refresh_reuse"])
	}
}

const (
	ntMount   = "sweep-nt/lark"
	ntApp     = "cli_e2esweepnotice"    // grants at warning, critical and ended; notices work
	ntBadApp  = "cli_e2esweepbadsecret" // a critical grant, but the app's secret was reset at Lark
	ntIdleApp = "cli_e2esweepidle"      // app tokens only, read once
	ntAdmin   = "ou_e2esweepadmin0001"  // the admin every notice goes to
	ntPlugin  = "vault-plugin-secrets-lark-sweep-restart"
)

// TestReauthLevelsAndNoticesSentOnce: grants near and past the 365-day cap are announced on every
// read and on reauth (and so in the audit log), and each notice reaches Lark exactly once across
// manual and periodic sweeps and a plugin restart; an app whose secret Lark no longer accepts sends
// nothing and keeps its notice queued; app tokens never cause a notice.
func TestReauthLevelsAndNoticesSentOnce(t *testing.T) {
	t.Parallel()
	// This mount runs in a plugin process of its own, which the test restarts.
	swPrivatePlugin(t, ntPlugin)
	// A schedule that does not fire during the test (1 January, midnight) until it is opened below.
	swMount(t, ntMount, ntPlugin, "notify_schedule=0 0 1 1 *")
	swApp(t, ntMount, ntApp, nil)
	swApp(t, ntMount, ntBadApp, nil)
	swApp(t, ntMount, ntIdleApp, nil)
	swUser(t, "sw_admin", "Sweep Admin", ntAdmin)
	for _, u := range [][2]string{{"sw_wang", "Wang Wu"}, {"sw_li", "Li Lei"}, {"sw_zhao", "Zhao Liu"}, {"sw_fine", "Fang Fine"}, {"sw_bai", "Bai Bo"}} {
		swUser(t, u[0], u[1], "")
	}

	// authorized_at is taken from the real clock, which the plugin uses: the emulator's clock may
	// run ahead (other tests move it), and then its own authorized_at would leave a few more minutes.
	daysAgo := func(d float64) time.Time {
		return time.Now().Add(-time.Duration(d * float64(24*time.Hour))).Truncate(time.Second)
	}
	swImport(t, ntMount, ntApp, "wang", swMint(t, ntApp, "sw_wang", 358), daysAgo(358))
	swImport(t, ntMount, ntApp, "li", swMint(t, ntApp, "sw_li", 362), daysAgo(362))
	swImport(t, ntMount, ntApp, "fine", swMint(t, ntApp, "sw_fine", 30), daysAgo(30))
	swImport(t, ntMount, ntBadApp, "bai", swMint(t, ntBadApp, "sw_bai", 362), daysAgo(362))

	// A grant whose authorized_at is more than 365 days ago is refused before its token is spent ...
	old := swMint(t, ntApp, "sw_zhao", 364)
	spentBefore := swAppCounters(t, ntApp)["refresh"]
	status, body, err := swImportErr(ntMount, ntApp, "zhao", old.RefreshToken, daysAgo(366))
	if err != nil || status != http.StatusBadRequest || !strings.Contains(fmt.Sprint(body["errors"]), "more than 365 days ago") {
		t.Fatalf("import of a 366-day-old grant: HTTP %d %v %v; want 400 saying it is more than 365 days old", status, body["errors"], err)
	}
	if got := swAppCounters(t, ntApp)["refresh"]; got != spentBefore {
		t.Fatalf("the refused import spent the refresh token at Lark (%d refresh calls)", got-spentBefore)
	}
	// ... so the ended grant is one that reaches its 365-day end 80 seconds from now: by the time the
	// levels are read below, the plugin's own 365-day cap has ended it.
	zhaoEnds := time.Now().Add(80 * time.Second).Truncate(time.Second)
	imp := swImport(t, ntMount, ntApp, "zhao", old, zhaoEnds.Add(-365*24*time.Hour))
	if !swAnyContains(swStrings(imp["warnings"]), "365 days after the user authorized") {
		t.Errorf("importing a grant at the end of its year did not warn: %v", imp["warnings"])
	}

	for _, app := range []string{ntApp, ntBadApp, ntIdleApp} {
		mustVault(t, rootToken, "write", ntMount+"/apps/"+app, "notify_open_ids="+ntAdmin)
	}
	// The idle app's tokens are read once; the sweep keeps them warm from then on.
	for _, kind := range []string{"app-token", "tenant-token"} {
		out := vaultJSON(t, rootToken, "read", ntMount+"/"+kind+"/"+ntIdleApp)
		remember(out["data"].(map[string]any)["access_token"].(string), kind+" of "+ntIdleApp)
	}
	// The bad app's secret is reset in Lark's console; Vault still has the old one.
	rotated := "e2eSweepRotatedInConsole" + fmt.Sprint(time.Now().UnixNano())
	remember(rotated, "new app_secret of "+ntBadApp)
	if err := swEmulatorApp(ntBadApp, rotated, nil); err != nil {
		t.Fatal(err)
	}

	if wait := time.Until(zhaoEnds) + 2*time.Second; wait > 0 {
		t.Logf("waiting %s for zhao's grant to reach its 365-day end", wait.Round(time.Second))
		time.Sleep(wait)
	}

	// Levels on reads and on reauth, before any sweep.
	readLevel := func(slot, level string, daysLeft float64) {
		t.Helper()
		out := vaultJSON(t, rootToken, "read", ntMount+"/user-token/"+ntApp+"/"+slot)
		data, _ := out["data"].(map[string]any)
		remember(data["access_token"].(string), "user_access_token of "+ntApp+"/"+slot)
		warnings := swStrings(out["warnings"])
		if level == "ok" {
			if len(warnings) != 0 || data["days_left"].(float64) < 300 {
				t.Errorf("read of %s: warnings %v, days_left %v; want none and > 300", slot, warnings, data["days_left"])
			}
			return
		}
		if !swAnyContains(warnings, "Lark grant "+ntApp+"/"+slot+" is at level "+level, "authorize user="+slot) ||
			data["days_left"] != daysLeft || data["reauth_required"] != false {
			t.Errorf("read of %s: warnings %v, days_left %v, reauth_required %v; want level %s, %v, false",
				slot, warnings, data["days_left"], data["reauth_required"], level, daysLeft)
		}
	}
	readLevel("wang", "warning", 6.9)
	readLevel("li", "critical", 2.9)
	readLevel("fine", "ok", 0)

	// The ended grant, if Vault's periodic sweep has not visited it yet (it has then marked it, and the
	// read answers 409 as below): its access token is still served, with a warning that it ended.
	status, body = vaultHTTP(t, rootToken, http.MethodGet, ntMount+"/user-token/"+ntApp+"/zhao", nil)
	if status == http.StatusOK {
		data, _ := body["data"].(map[string]any)
		remember(data["access_token"].(string), "user_access_token of "+ntApp+"/zhao")
		if !swAnyContains(swStrings(body["warnings"]), "Lark grant "+ntApp+"/zhao has ended", "authorize user=zhao") || data["days_left"] != float64(0) {
			t.Errorf("read of the ended grant: warnings %v days_left %v", body["warnings"], data["days_left"])
		}
		// PLUGIN BUG: pathUserTokenRead (path_user_token.go:162) sets reauth_required=false on every
		// read, while reauth and sweep report this grant (level expired) with reauth_required=true. Fix:
		// resp.Data["reauth_required"] = h.Level == levelExpired || h.Level == levelReauthRequired.
		if data["reauth_required"] != true {
			t.Errorf("read of a grant past its 365-day cap: reauth_required=%v with warning %q; reauth says true for the same grant",
				data["reauth_required"], swStrings(body["warnings"]))
		}
	} else {
		t.Logf("the periodic sweep marked the ended grant before the first read (HTTP %d)", status)
	}

	reauth := func() (map[string]any, []string) {
		t.Helper()
		out := vaultJSON(t, rootToken, "read", ntMount+"/reauth")
		return out["data"].(map[string]any), swStrings(out["warnings"])
	}
	data, warnings := reauth()
	grantsInfo, _ := data["grants"].(map[string]any)
	if data["count"] != float64(4) || data["count_warning"] != float64(1) || data["count_critical"] != float64(2) ||
		data["count_expired"].(float64)+data["count_reauth_required"].(float64) != 1 || len(warnings) != 4 {
		t.Fatalf("reauth: %v\nwarnings %v", data, warnings)
	}
	for key, want := range map[string]struct {
		days   float64
		reauth bool
	}{ntApp + "/wang": {6.9, false}, ntApp + "/li": {2.9, false}, ntBadApp + "/bai": {2.9, false}, ntApp + "/zhao": {0, true}} {
		g, _ := grantsInfo[key].(map[string]any)
		if g["days_left"] != want.days || g["reauth_required"] != want.reauth {
			t.Errorf("reauth %s: %v; want days_left %v, reauth_required %v", key, g, want.days, want.reauth)
		}
	}
	for _, w := range []string{ntApp + "/li is at level critical: it ends in 2.9 days", ntBadApp + "/bai is at level critical",
		ntApp + "/wang is at level warning: it ends in 6.9 days"} {
		if !swAnyContains(warnings, "Lark grant "+w) {
			t.Errorf("reauth warnings lack %q: %v", w, warnings)
		}
	}
	if !swAnyContains(warnings, "Lark grant "+ntApp+"/zhao ") {
		t.Errorf("reauth warnings lack the ended grant: %v", warnings)
	}

	// A sweep with the schedule still closed: the ended grant is marked, nothing is sent.
	first := swSweep(t, ntMount)
	if len(first.list("notified")) != 0 || len(first.list("notify_failed")) != 0 || len(swMessages(t, ntApp)) != 0 {
		t.Fatalf("a sweep outside the schedule sent notices: %v", first.Data)
	}
	status, body = vaultHTTP(t, rootToken, http.MethodGet, ntMount+"/user-token/"+ntApp+"/zhao", nil)
	if msg := fmt.Sprint(body["errors"]); status != http.StatusConflict || !strings.Contains(msg, "365-day") ||
		!strings.Contains(msg, "oauth/"+ntApp+"/authorize user=zhao") {
		t.Errorf("read of the ended grant after a sweep: HTTP %d %s; want 409 naming the 365-day limit and the command", status, msg)
	}
	data, warnings = reauth()
	if g, _ := data["grants"].(map[string]any)[ntApp+"/zhao"].(map[string]any); g["level"] != "reauth_required" || g["reauth_required"] != true ||
		!swAnyContains(warnings, "Lark grant "+ntApp+"/zhao needs re-authorization", "365-day") {
		t.Errorf("reauth of the ended grant after a sweep: %v\nwarnings %v", g, warnings)
	}

	// Open the schedule: every minute. Each scheduled minute is taken by whichever sweep runs first
	// after it, the test's or Vault's periodic one. Vault's rollback manager runs the periodic sweep
	// at a fixed phase within the minute, which can fall before the test's sweep every time, so a
	// retry of the failed notice is counted from the plugin's own log line (written by any sweep, with
	// the attempts stored in the queued notice) rather than only from the test's sweep reports.
	mustVault(t, rootToken, "write", ntMount+"/config", "notify_schedule=* * * * *")
	// The notices are cards in Chinese (brand feishu, notify_locale left at its default).
	wantNotices := map[string]string{"wang/warning": "飞书授权即将到期（预警）", "li/critical": "飞书授权即将到期（紧急）", "zhao/expired": "飞书授权已失效"}
	badLabel := ntBadApp + "/bai/critical"
	var sweeps []swSweepResult
	scheduledRound := func(when string) {
		t.Helper()
		for try := 0; try < 4; try++ {
			before := len(swFailedNoticeAttempts(t, ntPlugin, ntBadApp))
			swSleepPastNextMinute(t)
			r := swSweep(t, ntMount)
			sweeps = append(sweeps, r)
			if swContains(r.list("notify_failed"), badLabel) {
				return
			}
			if n := len(swFailedNoticeAttempts(t, ntPlugin, ntBadApp)); n > before {
				t.Logf("%s: Vault's periodic sweep took the scheduled minute first and retried the failed notice", when)
				return
			}
			t.Logf("%s: no retry of the failed notice in this minute (test's sweep notified %v); next minute", when, r.Data["notified"])
		}
		t.Fatalf("%s: no sweep retried the failed notice in 4 scheduled minutes", when)
	}
	scheduledRound("first scheduled minute")
	if n := len(swMessages(t, ntApp)); n < len(wantNotices) {
		t.Fatalf("after the first scheduled minute: %d notices from %s, want %d", n, ntApp, len(wantNotices))
	}
	// More sweeps, Vault's own periodic ones among them, then a restart of the mount's plugin
	// backend, then more sweeps: nothing is sent again, and the failed notice stays queued.
	sweeps = append(sweeps, swSweep(t, ntMount))
	scheduledRound("second scheduled minute")
	// The plugin process of this mount (and only this mount) is killed and started again.
	reloaded := "path=" + ntMount + "/ version=" + pluginVersion
	before := len(grepLines(t, env.serverLog, reloaded))
	mustVault(t, rootToken, "plugin", "reload", "-type=secret", "-plugin="+ntPlugin)
	if lines := grepLines(t, env.serverLog, reloaded); len(lines) != before+1 || !strings.Contains(lines[len(lines)-1], "successfully reloaded plugin") {
		t.Fatalf("the server log does not show %s reloaded: %v", ntMount, lines)
	}
	if m := vaultJSON(t, rootToken, "read", "sys/mounts/"+ntMount)["data"].(map[string]any); m["running_plugin_version"] != pluginVersion {
		t.Fatalf("after reload: running_plugin_version=%v", m["running_plugin_version"])
	}
	attemptsBeforeRestart := swFailedNoticeAttempts(t, ntPlugin, ntBadApp)
	sweeps = append(sweeps, swSweep(t, ntMount))
	scheduledRound("after the restart")
	sweeps = append(sweeps, swSweep(t, ntMount))

	msgs := swMessages(t, ntApp)
	seen := map[string]int{}
	for _, m := range msgs {
		content, _ := m["content"].(string)
		text, _ := m["text"].(string) // what the reader sees of the card
		if m["receive_id"] != ntAdmin || m["receive_id_type"] != "open_id" || m["sender_type"] != "app" {
			t.Errorf("notice went to %v (%v) as %v, want the admin %s as the app", m["receive_id"], m["receive_id_type"], m["sender_type"], ntAdmin)
		}
		if m["msg_type"] != "interactive" || m["card"] == nil {
			t.Errorf("notice is not a card: %v %s", m["msg_type"], content)
		}
		for key, word := range wantNotices {
			slot := strings.Split(key, "/")[0]
			if strings.Contains(text, "**槽位：** "+slot+"\n") && strings.Contains(text, word) {
				seen[key]++
				if slot == "li" {
					t.Logf("the critical notice as Lark received it (msg_type interactive):\n%s", content)
				}
			}
		}
		if !strings.Contains(text, "这不是 app_secret 的问题") || strings.Contains(content, "eyJ") || strings.Contains(text, "**槽位：** fine") {
			t.Errorf("unexpected notice: %s", text)
		}
	}
	for key := range wantNotices {
		if seen[key] != 1 {
			t.Errorf("notice %s reached Lark %d times, want exactly once (messages: %v)", key, seen[key], msgs)
		}
	}
	if len(msgs) != len(wantNotices) {
		t.Errorf("%d messages from %s, want %d", len(msgs), ntApp, len(wantNotices))
	}
	// Requests, not just recorded messages: Lark drops a repeated uuid within an hour, which would
	// hide a second send from the message log.
	if c := swAppCounters(t, ntApp); c["messages"] != len(wantNotices) {
		t.Errorf("%s sent %d message requests, want %d", ntApp, c["messages"], len(wantNotices))
	}
	if c := swAppCounters(t, ntBadApp); c["messages"] != 0 || len(swMessages(t, ntBadApp)) != 0 || c["tenant_access_token"] < 2 {
		t.Errorf("the app with a reset secret: counters %v, %d messages; want no message and repeated token attempts", c, len(swMessages(t, ntBadApp)))
	}
	if c := swAppCounters(t, ntIdleApp); c["messages"] != 0 || len(swMessages(t, ntIdleApp)) != 0 {
		t.Errorf("the idle app sent messages: counters %v", c)
	}
	notified := map[string]int{}
	for i, r := range sweeps {
		for _, n := range r.list("notified") {
			notified[n]++
		}
		for _, f := range r.list("notify_failed") {
			if f != badLabel {
				t.Errorf("sweep %d: unexpected notify_failed %q", i, f)
			}
		}
	}
	// The queued notice's attempts, as each failed retry logged them: one per scheduled minute
	// (manual or periodic sweep), counting on across the restart because the count is stored with the
	// notice, never reset, never skipped.
	attempts := swFailedNoticeAttempts(t, ntPlugin, ntBadApp)
	for i, a := range attempts {
		if a != i+1 {
			t.Errorf("failed notice attempts as logged: %v; want 1, 2, 3, ... (one per scheduled minute, kept across the restart)", attempts)
			break
		}
	}
	if len(attempts) < 3 || len(attempts) <= len(attemptsBeforeRestart) {
		t.Errorf("the failed notice was retried %d times (%d before the restart); want one per scheduled round and still queued after the restart",
			len(attempts), len(attemptsBeforeRestart))
	}
	for label, n := range notified {
		if n > 1 || strings.HasPrefix(label, ntBadApp) || strings.Contains(label, "/fine/") {
			t.Errorf("sweeps reported %q as notified %d times", label, n)
		}
	}
	t.Logf("%d manual sweeps; notified in them: %v (the rest by Vault's periodic sweep); %s retried %d times, %d after the restart",
		len(sweeps), notified, badLabel, len(attempts), len(attempts)-len(attemptsBeforeRestart))

	// After the restart the levels are what they were.
	data, _ = reauth()
	if data["count"] != float64(4) || data["count_reauth_required"] != float64(1) {
		t.Errorf("reauth after the restart: %v", data)
	}
	readLevel("li", "critical", 2.9)

	t.Run("metrics", func(t *testing.T) {
		policy := `path "` + ntMount + `/metrics" { capabilities = ["read"] }`
		if out, err := runVaultStdin(rootToken, policy, "policy", "write", "sweep-metrics", "-"); err != nil {
			t.Fatalf("policy write: %v\n%s", err, out)
		}
		t.Cleanup(func() { _, _ = runVault(rootToken, "policy", "delete", "sweep-metrics") })
		tok := vaultJSON(t, rootToken, "token", "create", "-policy=sweep-metrics", "-ttl=10m")["auth"].(map[string]any)["client_token"].(string)
		remember(tok, "metrics scraper's Vault token")
		text, ctype, status := swScrape(t, ntMount+"/metrics", tok)
		if status != http.StatusOK || !strings.HasPrefix(ctype, "text/plain") {
			t.Fatalf("GET %s/metrics: HTTP %d %s\n%s", ntMount, status, ctype, text)
		}
		for _, line := range []string{`lark_user_grants{level="ok"} 1`, `lark_user_grants{level="warning"} 1`,
			`lark_user_grants{level="critical"} 2`, `lark_user_grants{level="reauth_required"} 1`, `lark_user_grants{level="expired"} 0`,
			`lark_notifications_total{level="critical",result="failed"}`, `lark_sweeps_total{result="complete"}`} {
			if !strings.Contains(text, line) {
				t.Errorf("metrics lack %q:\n%s", line, text)
			}
		}
		identities := []string{ntApp, ntBadApp, ntIdleApp, ntAdmin, "wang", "li", "zhao", "fine", "bai", "Wang Wu", "Li Lei", "Zhao Liu", "Bai Bo", "ou_", "cli_"}
		for _, m := range regexp.MustCompile(`([a-z_]+)="([^"]*)"`).FindAllStringSubmatch(text, -1) {
			for _, id := range identities {
				if strings.Contains(m[2], id) {
					t.Errorf("metric label %s=%q names an app or a user", m[1], m[2])
				}
			}
		}
		if strings.Contains(text, "cli_") || strings.Contains(text, "ou_") {
			t.Errorf("metrics name an app or a user:\n%s", text)
		}
		if _, _, status := swScrape(t, ntMount+"/metrics", ""); status != http.StatusForbidden {
			t.Errorf("metrics without a token: HTTP %d, want 403", status)
		}
		if _, _, status := swScrape(t, ntMount+"/reauth", tok); status != http.StatusForbidden {
			t.Errorf("the scraper's token reads reauth: HTTP %d, want 403", status)
		}
	})

	t.Run("audit log", func(t *testing.T) {
		// Vault audits the reads, reauth and manual sweeps: their warnings in plain text, days_left as
		// numbers, while every string value (tokens included) is HMAC'd.
		reauthLines := grepLines(t, env.auditLog, `"path":"`+ntMount+`/reauth"`)
		readLines := grepLines(t, env.auditLog, `"path":"`+ntMount+`/user-token/`+ntApp+`/li"`)
		sweepLines := grepLines(t, env.auditLog, `"path":"`+ntMount+`/sweep"`)
		for what, want := range map[string]struct {
			lines []string
			parts []string
		}{
			"reauth":     {reauthLines, []string{"Lark grant " + ntApp + "/li is at level critical", `"days_left":2.9`, `"reauth_required":true`, "needs re-authorization"}},
			"read of li": {readLines, []string{"is at level critical", `"days_left":2.9`, `"reauth_required":false`}},
			// A sweep flags a grant in the run its time comes (often Vault's own, unaudited run);
			// lark/reauth lists every grant that is not ok, audited.
			"reauth of wang": {reauthLines, []string{"Lark grant " + ntApp + "/wang is at level warning", `"days_left":6.9`}},
			"sweep":          {sweepLines, []string{`"grants_due":`, `"full_pass":true`}},
			"reauth warning": {reauthLines, []string{ntBadApp + "/bai is at level critical: it ends in 2.9 days"}},
		} {
			if !swAnyContains(want.lines, want.parts...) {
				t.Errorf("no audit entry for %s contains %q (%d entries)", what, want.parts, len(want.lines))
			}
		}
		for _, line := range append(append(reauthLines, readLines...), sweepLines...) {
			if strings.Contains(line, "eyJ") {
				t.Fatalf("an audit entry of %s holds a token in plain text", ntMount)
			}
		}
	})
}

// swScrape GETs a path the way Prometheus scrapes: raw text, token in X-Vault-Token.
func swScrape(t *testing.T, path, token string) (text, contentType string, status int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, env.vaultAddr+"/v1/"+path, nil)
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := env.httpClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return string(raw), resp.Header.Get("Content-Type"), resp.StatusCode
}

const (
	scMount   = "sweep-scale/lark"
	scApp     = "cli_e2esweepscale"
	scGrants  = 10000 // imported through Vault
	scDue     = 100   // imported last with short refresh tokens: due for keep-alive together
	scWorkers = 16    // concurrent imports
	scBudget  = 2 * time.Second
	scRate    = 10 // keepalive_rate: refreshes per second per app
	// The due grants' refresh tokens live 90 s: due 40–50 s after import, dead at 90 s.
	scDueRefreshTTL = 90 * time.Second
	// How far past sweep_budget one sweep may run: the grant being visited when the budget runs out,
	// then the notices and expired states, each bounded too.
	scSlack = 750 * time.Millisecond
)

// TestScaleSweepOfTenThousandGrants: one mount with 10,000 grants. A sweep stays within its budget,
// the stored cursor covers every grant over a few runs, and keep-alive refreshes never exceed the
// per-app rate limit at Lark.
func TestScaleSweepOfTenThousandGrants(t *testing.T) {
	t.Parallel()
	swMount(t, scMount, pluginName, fmt.Sprintf("sweep_budget=%ds", int(scBudget.Seconds())), fmt.Sprintf("keepalive_rate=%d", scRate))
	secret := swApp(t, scMount, scApp, nil)
	swUser(t, "sw_scale", "Scale User", "")

	importAll := func(prefix string, n int) {
		t.Helper()
		var next atomic.Int64
		var failed atomic.Int64
		var firstErr sync.Once
		var wg sync.WaitGroup
		for w := 0; w < scWorkers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= n {
						return
					}
					err := func() error {
						m, err := swMintErr(scApp, "sw_scale", 10)
						if err != nil {
							return err
						}
						if i%500 == 0 { // a sample for the leak check: scanning the logs for all would take minutes
							remember(m.RefreshToken, "minted refresh_token of "+scApp)
							remember(m.AccessToken, "minted user_access_token of "+scApp)
						}
						status, body, err := swImportErr(scMount, scApp, fmt.Sprintf("%s%05d", prefix, i), m.RefreshToken, m.AuthorizedAt)
						if err == nil && status != http.StatusOK {
							err = fmt.Errorf("HTTP %d %v", status, body["errors"])
						}
						return err
					}()
					if err != nil {
						failed.Add(1)
						firstErr.Do(func() { t.Errorf("importing %s%05d: %v", prefix, i, err) })
					}
				}
			}()
		}
		wg.Wait()
		if failed.Load() > 0 {
			t.Fatalf("%d of %d imports failed", failed.Load(), n)
		}
	}

	start := time.Now()
	importAll("s", scGrants)
	took := time.Since(start)
	t.Logf("imported %d grants through Vault (mint at the emulator, then import: a refresh and a user_info call each) in %s: %.0f grants/s with %d concurrent requests",
		scGrants, took.Round(time.Millisecond), float64(scGrants)/took.Seconds(), scWorkers)

	// The last ones get 90-second refresh tokens from Lark, so they fall due together.
	if err := swEmulatorApp(scApp, secret, map[string]any{"refresh_token_ttl_seconds": scDueRefreshTTL.Seconds()}); err != nil {
		t.Fatal(err)
	}
	importAll("d", scDue)
	dueImported := time.Now()
	if err := swEmulatorApp(scApp, secret, nil); err != nil { // keep-alive refreshes get 7-day tokens again
		t.Fatal(err)
	}
	emulator(t, http.MethodDelete, "/_emulator/apps/"+scApp+"/counters", nil) // the imports' refreshes are not keep-alive
	total := scGrants + scDue

	var (
		visited, runs, fullPasses, refreshedInRuns int
		maxTook                                    time.Duration
		tooks                                      []string
	)
	for {
		r := swSweep(t, scMount)
		runs++
		took := time.Duration(r.number("took_ms")) * time.Millisecond
		tooks = append(tooks, fmt.Sprintf("%dms/%d", took.Milliseconds(), int(r.number("grants_visited"))))
		maxTook = max(maxTook, took)
		// Visiting grants gets 60 % of the budget (notices and cleanup keep the rest), so a sweep
		// that ran out of its grant share took at least that long, and never longer than the budget.
		if took > scBudget+scSlack || r.Data["budget_exhausted"] == true && took < scBudget*6/10-scSlack {
			t.Errorf("sweep %d took %s with a %s budget (budget_exhausted=%v)", runs, took, scBudget, r.Data["budget_exhausted"])
		}
		if got := int(r.number("grants_total")); got != total {
			t.Fatalf("grants_total = %d, want %d", got, total)
		}
		if f := r.list("refresh_failed"); len(f) > 0 {
			t.Fatalf("sweep %d: keep-alive failed for %v", runs, f)
		}
		if len(r.list("flagged")) > 0 || len(r.Warnings) > 0 {
			t.Fatalf("sweep %d flagged fresh grants: %v %v", runs, r.Data["flagged"], r.Warnings)
		}
		visited += int(r.number("grants_visited"))
		refreshedInRuns += len(r.list("refreshed"))
		if r.Data["full_pass"] == true {
			fullPasses++
		}
		c := swAppCounters(t, scApp)
		if c["refresh"] >= scDue && r.Data["full_pass"] == true {
			break
		}
		if time.Since(dueImported) > scDueRefreshTTL-5*time.Second {
			t.Fatalf("after %d sweeps in %s: %d keep-alive refreshes of %d due grants, %d grants visited; counters %v",
				runs, time.Since(dueImported).Round(time.Second), c["refresh"], scDue, visited, c)
		}
		time.Sleep(time.Second) // leave the CPU to the other tests between runs
	}
	c := swAppCounters(t, scApp)
	t.Logf("%d sweeps (took_ms/grants_visited: %s); max took %s with sweep_budget %s; %d grants visited in total (%d full passes); "+
		"%d keep-alive refreshes (%d reported by these runs, the rest by Vault's periodic sweep); max %d refreshes of the app in one second (keepalive_rate %d)",
		runs, strings.Join(tooks, " "), maxTook, scBudget, visited, fullPasses, c["refresh"], refreshedInRuns, c["max_refresh_per_second"], scRate)
	if c["refresh"] != scDue || c["refresh_reuse"] != 0 || c["user_info"] != 0 || c["code_exchange"] != 0 {
		t.Errorf("app counters after the sweeps: %v; want exactly %d refreshes (each due grant once), no reuse, no user_info", c, scDue)
	}
	// The limiter allows a burst of one on top of the rate.
	if c["max_refresh_per_second"] > scRate+1 {
		t.Errorf("Lark saw %d refreshes of the app within one second; keepalive_rate is %d", c["max_refresh_per_second"], scRate)
	}
	if c["max_refresh_per_second"] < scRate/2 {
		t.Errorf("at most %d refreshes per second: the rate limit was not exercised", c["max_refresh_per_second"])
	}
	if fullPasses == 0 {
		t.Errorf("no sweep got through every due grant")
	}

	// Nothing is due any more: the due index names no grant until the next keep-alive, days away, so
	// a pass reads no grant but the walk's share (due every 15 minutes).
	r := swSweep(t, scMount)
	if r.Data["full_pass"] != true || int(r.number("grants_due")) != 0 || r.number("grants_visited") != r.number("repair_visited") {
		t.Errorf("a pass with nothing due: full_pass=%v grants_due=%v grants_visited=%v repair_visited=%v; want no grant read but the walk's",
			r.Data["full_pass"], r.Data["grants_due"], r.Data["grants_visited"], r.Data["repair_visited"])
	}

	// Every due grant is alive at Lark and was rotated once by the sweep (the import was the other).
	rotatedOnce := 0
	for _, g := range swLarkGrants(t, scApp) {
		if g["status"] != "active" || g["reuse_attempts"] != float64(0) {
			t.Fatalf("grant %v at Lark: %v, %v reuse attempts", g["grant_id"], g["status"], g["reuse_attempts"])
		}
		if g["refreshes"] == float64(2) {
			rotatedOnce++
		}
	}
	if rotatedOnce != scDue {
		t.Errorf("%d grants were rotated by the sweep, want the %d due ones", rotatedOnce, scDue)
	}
}
