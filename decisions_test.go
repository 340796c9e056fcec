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

func TestQuietCapIsSpread(t *testing.T) {
	var early, late int
	for i := 0; i < 1000; i++ {
		c := quietCapFor(grantID{testAppID, fmt.Sprint(i)})
		require.True(t, c >= quietCap/2 && c < quietCap, "%s", c)
		if c < 3*quietCap/4 {
			early++
		} else {
			late++
		}
	}
	require.InDelta(t, 500, early, 100, "caps spread over 30-60 min (%d early, %d late)", early, late)
}

func TestQuietUntil(t *testing.T) {
	grace := time.Hour
	cfg := &configEntry{WarningDays: 7, CriticalDays: 3, FailureGrace: &grace}
	require.Equal(t, time.Hour, cfg.failureGrace())
	frac := keepaliveFraction(grantID{testAppID, "s"})
	point := t0.Add(time.Duration(float64(7*24*time.Hour) * frac)) // keep-alive of baseGrant falls due
	warnFrom := func(end time.Time) time.Time { return end.Add(-7 * 24 * time.Hour) }
	tests := []struct {
		name   string
		change func(g *grantEntry)
		at     time.Time
		want   time.Time
	}{
		{"just refreshed: the cap", nil, t0, t0.Add(quietCapFor(grantID{testAppID, "s"}))},
		{"keep-alive within the hour", nil, point.Add(-20 * time.Minute), point},
		{"keep-alive due: look every time", nil, point, point},
		{"backing off past the keep-alive point", func(g *grantEntry) { g.NextAttemptAt = point.Add(10 * time.Minute) },
			point.Add(time.Minute), point.Add(10 * time.Minute)},
		{"failure streak about to outlast the grace", func(g *grantEntry) {
			g.FailuresInRow, g.FirstFailureAt, g.NextAttemptAt = 1, t0.Add(-50*time.Minute), t0.Add(quietCap)
		}, t0, t0.Add(10 * time.Minute)},
		{"failing past the grace, refresh token near its warning point", func(g *grantEntry) {
			g.FailuresInRow, g.FirstFailureAt, g.NextAttemptAt = 2, t0.Add(-2*time.Hour), t0.Add(quietCap)
			g.LastRefreshAt, g.RefreshExpiresAt = time.Time{}, t0.Add(7*24*time.Hour+15*time.Minute)
		}, t0, warnFrom(t0.Add(7*24*time.Hour + 15*time.Minute))},
		{"healthy, refresh token within warning_days of expiry: keep-alive renews it", func(g *grantEntry) {
			g.LastRefreshAt, g.RefreshExpiresAt = t0.Add(-time.Hour), t0.Add(6*24*time.Hour)
		}, t0, t0.Add(quietCapFor(grantID{testAppID, "s"}))},
		{"grant end near warning_days", func(g *grantEntry) { g.GrantExpiresAt = t0.Add(7*24*time.Hour + 25*time.Minute) },
			t0, t0.Add(25 * time.Minute)},
		{"at warning level: look every time", func(g *grantEntry) { g.GrantExpiresAt = t0.Add(6 * 24 * time.Hour) }, t0, t0},
		{"needs re-authorization", func(g *grantEntry) { g.State = grantStateReauthRequired }, t0, t0},
		{"no refresh token", func(g *grantEntry) { g.RefreshToken = "" }, t0, t0},
		{"refresh interrupted", func(g *grantEntry) { g.InFlight = &refreshInFlight{} }, t0, t0},
		{"identity not yet known", func(g *grantEntry) { g.IdentityPending = true }, t0, t0},
	}
	for _, tt := range tests {
		g := baseGrantWith(tt.change)
		require.Equal(t, tt.want, g.quietUntil(tt.at, cfg), tt.name)
	}
}

// Whatever the grant, nothing the sweep acts on changes before quietUntil: keep-alive is not due
// and the level stays ok at every moment in between. This is what lets a pass skip the read.
func TestQuietUntilNeverHidesAChange(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	grace := 2 * time.Hour
	cfg := &configEntry{WarningDays: 7, CriticalDays: 3, FailureGrace: &grace}
	around := func(spread time.Duration) time.Time {
		if rng.Intn(8) == 0 {
			return time.Time{}
		}
		return t0.Add(time.Duration(rng.Int63n(int64(2*spread))) - spread)
	}
	quiet := 0
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
		until := g.quietUntil(t0, cfg)
		require.False(t, until.Before(t0))
		require.LessOrEqual(t, until.Sub(t0), quietCap)
		require.GreaterOrEqual(t, quietCapFor(g.id()), quietCap/2)
		if !until.After(t0) {
			continue
		}
		quiet++
		for _, at := range []time.Time{t0, t0.Add(until.Sub(t0) / 2), until.Add(-time.Nanosecond), t0.Add(time.Duration(rng.Int63n(int64(until.Sub(t0)))))} {
			require.False(t, g.keepaliveDue(at), "grant %d: keep-alive due at %s, quiet until %s", i, at, until)
			require.Equal(t, levelOK, g.healthNow(at, cfg).Level, "grant %d: level changes at %s, quiet until %s", i, at, until)
		}
	}
	require.Greater(t, quiet, 1000, "the generator must produce quiet grants for the check to mean anything")
}
