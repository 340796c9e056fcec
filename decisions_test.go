package larksecrets

// Table tests for the pure decisions: when a refresh is due, when keep-alive is due, how long to
// back off, which level a grant is at.

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
)

var t0 = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

func baseGrant() *grantEntry {
	return &grantEntry{AppID: testAppID, Slot: "s", State: grantStateOK, AccessToken: "a", RefreshToken: "r",
		AccessExpiresAt: t0.Add(2 * time.Hour), LastRefreshAt: t0, RefreshExpiresAt: t0.Add(7 * 24 * time.Hour),
		AuthorizedAt: t0.Add(-100 * 24 * time.Hour), GrantExpiresAt: t0.Add(265 * 24 * time.Hour)}
}

// baseGrantWith is baseGrant changed by change (nil: unchanged), for the table tests below.
func baseGrantWith(change func(g *grantEntry)) *grantEntry {
	g := baseGrant()
	if change != nil {
		change(g)
	}
	return g
}

func TestRefreshDue(t *testing.T) {
	window := 25 * time.Minute
	tests := []struct {
		name   string
		change func(g *grantEntry)
		at     time.Time
		want   bool
	}{
		{"fresh", nil, t0, false},
		{"inside the window", nil, t0.Add(2*time.Hour - 20*time.Minute), true},
		{"expired", nil, t0.Add(3 * time.Hour), true},
		{"interrupted refresh", func(g *grantEntry) { g.InFlight = &refreshInFlight{StartedAt: t0} }, t0, true},
		{"identity to check", func(g *grantEntry) { g.IdentityPending = true }, t0, true},
		{"ended", func(g *grantEntry) { g.State = grantStateReauthRequired }, t0.Add(3 * time.Hour), false},
		{"backing off", func(g *grantEntry) { g.NextAttemptAt = t0.Add(4 * time.Hour) }, t0.Add(3 * time.Hour), false},
		{"backoff over", func(g *grantEntry) { g.NextAttemptAt = t0.Add(time.Hour) }, t0.Add(3 * time.Hour), true},
	}
	for _, tt := range tests {
		g := baseGrantWith(tt.change)
		require.Equal(t, tt.want, g.refreshDue(tt.at, window), tt.name)
	}
}

func TestKeepaliveDue(t *testing.T) {
	frac := keepaliveFraction(grantID{testAppID, "s"})
	require.True(t, frac >= 0.45 && frac < 0.55, "%v", frac)
	point := t0.Add(time.Duration(float64(7*24*time.Hour) * frac))
	tests := []struct {
		name   string
		change func(g *grantEntry)
		at     time.Time
		want   bool
	}{
		{"just refreshed", nil, t0, false},
		{"before its point", nil, point.Add(-time.Minute), false},
		{"at its point", nil, point, true},
		{"no refresh token", func(g *grantEntry) { g.RefreshToken = "" }, point, false},
		{"ended", func(g *grantEntry) { g.State = grantStateReauthRequired }, point, false},
		{"interrupted", func(g *grantEntry) { g.InFlight = &refreshInFlight{} }, t0, true},
		{"backing off", func(g *grantEntry) { g.NextAttemptAt = point.Add(time.Minute) }, point, false},
		{"unknown lifetime", func(g *grantEntry) { g.RefreshExpiresAt = time.Time{} }, point, false},
	}
	for _, tt := range tests {
		g := baseGrantWith(tt.change)
		require.Equal(t, tt.want, g.keepaliveDue(tt.at), tt.name)
	}
}

func TestRetryBackoff(t *testing.T) {
	want := []time.Duration{0, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 5 * time.Minute, 5 * time.Minute}
	for n, w := range want {
		require.Equal(t, w, retryBackoff(n), "n=%d", n)
	}
	require.Equal(t, 5*time.Minute, retryBackoff(1000))
}

// Levels follow how long the grant can still be refreshed; one failed refresh is weather, not an
// alarm (issue 12, defect 5).
func TestGrantLevels(t *testing.T) {
	grace := 6 * time.Hour
	failing := func(since time.Time, refreshLeft time.Duration) func(g *grantEntry) {
		return func(g *grantEntry) {
			g.recordFailure(since, lark.MeaningTransient, "Lark unreachable", false)
			g.RefreshExpiresAt = t0.Add(refreshLeft)
		}
	}
	tests := []struct {
		name    string
		change  func(g *grantEntry)
		at      time.Time
		level   string
		failing lark.Meaning
	}{
		{"healthy", nil, t0, levelOK, ""},
		{"365-day end in 6 days", func(g *grantEntry) { g.GrantExpiresAt = t0.Add(6 * 24 * time.Hour) }, t0, levelWarning, ""},
		{"365-day end in 2 days", func(g *grantEntry) { g.GrantExpiresAt = t0.Add(2 * 24 * time.Hour) }, t0, levelCritical, ""},
		{"365-day end passed", func(g *grantEntry) { g.GrantExpiresAt = t0.Add(-time.Hour) }, t0, levelExpired, ""},
		{"one failure, 3 days of refresh token left", failing(t0, 3*24*time.Hour), t0.Add(time.Minute), levelOK, ""},
		{"failing within the grace", failing(t0, 3*24*time.Hour), t0.Add(5 * time.Hour), levelOK, ""},
		{"failing past the grace", failing(t0, 3*24*time.Hour+7*time.Hour), t0.Add(7 * time.Hour), levelCritical, lark.MeaningTransient},
		{"failing past the grace, 5 days left", failing(t0, 5*24*time.Hour), t0.Add(7 * time.Hour), levelWarning, lark.MeaningTransient},
		{"refresh token ran out unrenewed", func(g *grantEntry) { g.RefreshExpiresAt = t0.Add(-time.Minute) }, t0, levelExpired, ""},
		{"no refresh token", func(g *grantEntry) { g.RefreshToken = "" }, t0.Add(3 * time.Hour), levelExpired, ""},
		{"reauth required", func(g *grantEntry) { g.markReauth(t0, 20064, lark.GrantEndRevoked, "revoked") }, t0, levelReauthRequired, ""},
	}
	for _, tt := range tests {
		g := baseGrantWith(tt.change)
		h := g.health(tt.at, levelThresholds{WarningDays: 7, CriticalDays: 3, FailureGrace: grace})
		require.Equal(t, tt.level, h.Level, tt.name)
		require.Equal(t, tt.failing, h.Failing, tt.name)
	}
}

// Everything user-controlled in a notice is neutralised for Lark's text format: no mention markup,
// no links, no line breaks that could forge a line, bounded length (issue 12, defect 2).
func TestNoticeTextNeutralisesUserControlledValues(t *testing.T) {
	app := &appEntry{AppID: testAppID, NotifyLocale: localeEnUS}
	g := baseGrant()
	g.Name = "Eve <at user_id=\"all\">everyone</at>\nWhat to do: run vault delete lark/apps/" + testAppID + " [click](https://evil.example)"
	no := &notice{AppID: testAppID, Slot: "s", Level: levelWarning, Deadline: t0, Reason: "revoked\r\nforged line " + strings.Repeat("x", 1000)}
	text := grantView(app, g, no, remedies{mount: "lark/"}, false, "", time.UTC, plainText).text(wordsEN)
	require.NotContains(t, text, "<at")
	require.NotContains(t, text, "](")
	require.Equal(t, 4, strings.Count(text, "\n")+1, "only the notice's own lines: %q", text)
	for _, line := range strings.Split(text, "\n") {
		require.False(t, strings.HasPrefix(line, "What to do: run vault delete"), line)
	}
	require.Less(t, len([]rune(text)), 1200)
	require.Equal(t, "a b c", plainText("a\u2028b\x00c", 64))
	require.Equal(t, "ab…", plainText("abc", 2))
}

// Paths that take no parameters, and the list paths, refuse unknown ones like every other path
// (issue 12, defect 4).
func TestUnknownParametersAreRefusedEverywhere(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	for _, c := range []struct {
		op   logical.Operation
		path string
	}{
		{logical.UpdateOperation, "sweep"},
		{logical.ReadOperation, "reauth"},
		{logical.ListOperation, "reauth/"},
		{logical.ReadOperation, "metrics"},
		{logical.ListOperation, "apps/"},
		{logical.ListOperation, "user-token/" + testAppID + "/"},
		{logical.ListOperation, "slots/" + testAppID + "/"},
		{logical.DeleteOperation, "user-token/" + testAppID + "/x"},
	} {
		resp, err := env.do(c.op, c.path, map[string]interface{}{"bogus": "1"})
		require.NoError(t, err, c.path)
		require.True(t, resp.IsError(), c.path)
		require.Contains(t, resp.Error().Error(), "unknown field(s) bogus", c.path)
	}
}

func TestTimezoneMustBeAnIANAName(t *testing.T) {
	env := newTestEnv(t)
	for _, tz := range []string{"Local", "", "/etc/localtime", "../../etc/passwd", "Mars/Olympus"} {
		resp, err := env.write("config", map[string]interface{}{"notify_timezone": tz})
		require.NoError(t, err)
		require.True(t, resp.IsError(), "%q", tz)
		require.Contains(t, resp.Error().Error(), "notify_timezone")
	}
	env.mustWrite("config", map[string]interface{}{"notify_timezone": "Asia/Shanghai"})
}

func TestSweepAt(t *testing.T) {
	grace := time.Hour
	cfg := &configEntry{WarningDays: 7, CriticalDays: 3, FailureGrace: &grace}
	th := cfg.thresholds()
	frac := keepaliveFraction(grantID{testAppID, "s"})
	point := t0.Add(time.Duration(float64(7*24*time.Hour) * frac)) // keep-alive of baseGrant falls due
	warnFrom := func(end time.Time) time.Time { return end.Add(-7 * 24 * time.Hour) }
	tests := []struct {
		name   string
		change func(g *grantEntry)
		at     time.Time
		want   time.Time
	}{
		{"just refreshed: the keep-alive point", nil, t0, point},
		{"keep-alive due: already due", nil, point, point},
		{"backing off past the keep-alive point", func(g *grantEntry) { g.NextAttemptAt = point.Add(10 * time.Minute) },
			point.Add(time.Minute), point.Add(10 * time.Minute)},
		{"failure streak about to outlast the grace", func(g *grantEntry) {
			g.FailuresInRow, g.FirstFailureAt, g.NextAttemptAt = 1, t0.Add(-50*time.Minute), t0.Add(time.Hour)
		}, t0, t0.Add(10 * time.Minute)},
		{"failing past the grace, refresh token near its warning point", func(g *grantEntry) {
			g.FailuresInRow, g.FirstFailureAt, g.NextAttemptAt = 2, t0.Add(-2*time.Hour), t0.Add(time.Hour)
			g.LastRefreshAt, g.RefreshExpiresAt = time.Time{}, t0.Add(7*24*time.Hour+15*time.Minute)
		}, t0, warnFrom(t0.Add(7*24*time.Hour + 15*time.Minute))},
		{"grant end near warning_days", func(g *grantEntry) { g.GrantExpiresAt = t0.Add(7*24*time.Hour + 25*time.Minute) },
			t0, t0.Add(25 * time.Minute)},
		{"at warning level, notice not queued: at once", func(g *grantEntry) { g.GrantExpiresAt = t0.Add(6 * 24 * time.Hour) }, t0, alreadyDue},
		{"at warning level, notice queued: the critical point", func(g *grantEntry) {
			g.GrantExpiresAt, g.NoticeQueued = t0.Add(6*24*time.Hour), levelWarning
		}, t0, t0.Add(3 * 24 * time.Hour)},
		{"at warning level, notice sent: the critical point", func(g *grantEntry) {
			g.GrantExpiresAt = t0.Add(6 * 24 * time.Hour)
			g.markNotified(levelWarning, t0)
		}, t0, t0.Add(3 * 24 * time.Hour)},
		{"needs re-authorization, not told: at once", func(g *grantEntry) { g.State = grantStateReauthRequired }, t0, alreadyDue},
		{"needs re-authorization, told: never", func(g *grantEntry) {
			g.State = grantStateReauthRequired
			g.markNotified(levelExpired, t0)
		}, t0, time.Time{}},
		{"refresh interrupted: at once", func(g *grantEntry) { g.InFlight = &refreshInFlight{} }, t0, alreadyDue},
		{"identity not yet known: at once", func(g *grantEntry) { g.IdentityPending = true }, t0, alreadyDue},
	}
	for _, tt := range tests {
		g := baseGrantWith(tt.change)
		require.Equal(t, tt.want, sweepAt(g, th, tt.at), tt.name)
	}
}

// Whatever the grant, nothing the sweep acts on changes before sweepAt: keep-alive is not due, the
// level stays what it is at every moment in between, and a level whose notice nobody queued is due
// at once. This is what lets the due index name a grant only when it needs the sweep.
func TestSweepAtNeverHidesAChange(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	grace := 2 * time.Hour
	cfg := &configEntry{WarningDays: 7, CriticalDays: 3, FailureGrace: &grace}
	th := cfg.thresholds()
	around := func(spread time.Duration) time.Time {
		if rng.Intn(8) == 0 {
			return time.Time{}
		}
		return t0.Add(time.Duration(rng.Int63n(int64(2*spread))) - spread)
	}
	later := 0
	for i := 0; i < 20000; i++ {
		g := baseGrant()
		g.Slot = fmt.Sprintf("s%d", i)
		g.LastRefreshAt = around(10 * 24 * time.Hour)
		g.RefreshExpiresAt = around(20 * 24 * time.Hour)
		g.GrantExpiresAt = t0.Add(time.Duration(rng.Int63n(int64(30 * 24 * time.Hour))))
		g.NextAttemptAt = around(3 * time.Hour)
		if rng.Intn(3) == 0 {
			g.FailuresInRow, g.FirstFailureAt = 1+rng.Intn(3), t0.Add(-time.Duration(rng.Int63n(int64(3*time.Hour))))
		}
		if rng.Intn(2) == 0 {
			g.NoticeQueued = noticeLevel(g.health(t0, th).Level)
		}
		level := g.health(t0, th).Level
		at := sweepAt(g, th, t0)
		if level != levelOK && g.NoticeQueued != noticeLevel(level) {
			require.Equal(t, alreadyDue, at, "grant %d at %s with no notice queued", i, level)
			continue
		}
		if at.IsZero() {
			at = t0.Add(400 * 24 * time.Hour) // never: check well past the grant's end
		}
		if !at.After(t0) {
			continue
		}
		later++
		for _, when := range []time.Time{t0, t0.Add(at.Sub(t0) / 2), at.Add(-time.Nanosecond), t0.Add(time.Duration(rng.Int63n(int64(at.Sub(t0)))))} {
			require.False(t, g.keepaliveDue(when), "grant %d: keep-alive due at %s, next look at %s", i, when, at)
			require.Equal(t, level, g.health(when, th).Level, "grant %d: level changes at %s, next look at %s", i, when, at)
		}
	}
	require.Greater(t, later, 1000, "the generator must produce grants due later for the check to mean anything")
}
