package larksecrets

import (
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The one next-change computation (grant_schedule.go), one row per situation.
func TestScheduleOf(t *testing.T) {
	window := 25 * time.Minute
	th := levelThresholds{WarningDays: 7, CriticalDays: 3, FailureGrace: time.Hour}
	day := 24 * time.Hour
	point := t0.Add(time.Duration(float64(7*day) * keepaliveFraction(grantID{testAppID, "s"})))
	tests := []struct {
		name   string
		change func(g *grantEntry)
		want   grantSchedule
	}{
		{"fresh grant: refresh window, keep-alive point, refresh token's critical point",
			nil, grantSchedule{RefreshAt: t0.Add(2*time.Hour - window), KeepaliveAt: point, LevelAt: t0.Add(4 * day)}},
		{"backing off: both wait for the next attempt",
			func(g *grantEntry) { g.NextAttemptAt = t0.Add(5 * day) },
			grantSchedule{RefreshAt: t0.Add(5 * day), KeepaliveAt: t0.Add(5 * day), LevelAt: t0.Add(4 * day)}},
		{"interrupted refresh: due at once",
			func(g *grantEntry) { g.InFlight = &refreshInFlight{} },
			grantSchedule{RefreshAt: alreadyDue, KeepaliveAt: alreadyDue, LevelAt: t0.Add(4 * day)}},
		{"identity pending, backing off",
			func(g *grantEntry) { g.IdentityPending, g.NextAttemptAt = true, t0.Add(time.Minute) },
			grantSchedule{RefreshAt: t0.Add(time.Minute), KeepaliveAt: t0.Add(time.Minute), LevelAt: t0.Add(4 * day)}},
		{"failing: the grace's end is the next level change",
			func(g *grantEntry) { g.FailuresInRow, g.FirstFailureAt = 1, t0.Add(-30*time.Minute) },
			grantSchedule{RefreshAt: t0.Add(2*time.Hour - window), KeepaliveAt: point, LevelAt: t0.Add(30 * time.Minute)}},
		{"grant end near: its warning point",
			func(g *grantEntry) { g.GrantExpiresAt = t0.Add(7*day + time.Hour) },
			grantSchedule{RefreshAt: t0.Add(2*time.Hour - window), KeepaliveAt: point, LevelAt: t0.Add(time.Hour)}},
		{"no refresh token: the access token's end is the grant's",
			func(g *grantEntry) { g.RefreshToken, g.RefreshExpiresAt = "", time.Time{} },
			grantSchedule{RefreshAt: t0.Add(2*time.Hour - window), LevelAt: t0.Add(2 * time.Hour)}},
		{"needs re-authorization: never",
			func(g *grantEntry) { g.State = grantStateReauthRequired }, grantSchedule{}},
	}
	for _, tt := range tests {
		got := scheduleOf(baseGrantWith(tt.change), window, th, t0)
		require.Equal(t, tt.want, got, tt.name)
	}
	require.Equal(t, t0.Add(2*time.Hour-window), scheduleOf(baseGrant(), window, th, t0).next())
	require.True(t, grantSchedule{}.next().IsZero())
}

// Whatever the grant, nothing changes before the schedule's next time: a read would not refresh,
// keep-alive is not due, and the level stays what it is at every moment in between; and at its times
// the things it names are due. This is what lets the sweep pass a grant by (quietUntil derives from
// it), and what a persisted due index can rely on.
func TestScheduleNeverHidesAChange(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	window := 25 * time.Minute
	th := levelThresholds{WarningDays: 7, CriticalDays: 3, FailureGrace: 2 * time.Hour}
	around := func(spread time.Duration) time.Time {
		if rng.Intn(8) == 0 {
			return time.Time{}
		}
		return t0.Add(time.Duration(rng.Int63n(int64(2*spread))) - spread)
	}
	checked := 0
	for i := 0; i < 20000; i++ {
		g := baseGrant()
		g.Slot = fmt.Sprintf("s%d", i)
		g.LastRefreshAt = around(10 * 24 * time.Hour)
		g.AccessExpiresAt = around(3 * time.Hour)
		g.RefreshExpiresAt = around(20 * 24 * time.Hour)
		g.GrantExpiresAt = t0.Add(time.Duration(rng.Int63n(int64(30 * 24 * time.Hour))))
		g.NextAttemptAt = around(3 * time.Hour)
		if rng.Intn(3) == 0 {
			g.FailuresInRow, g.FirstFailureAt = 1+rng.Intn(3), t0.Add(-time.Duration(rng.Int63n(int64(3*time.Hour))))
		}
		if rng.Intn(10) == 0 {
			g.RefreshToken = ""
		}
		s := scheduleOf(g, window, th, t0)
		refresh, keepalive, level := g.refreshDue(t0, window), g.keepaliveDue(t0), g.health(t0, th).Level
		if at := s.RefreshAt; !at.IsZero() {
			require.True(t, g.refreshDue(laterOf(at, t0), window), "grant %d: refresh not due at its time %s", i, at)
		}
		if at := s.KeepaliveAt; !at.IsZero() {
			require.True(t, g.keepaliveDue(laterOf(at, t0)), "grant %d: keep-alive not due at its time %s", i, at)
		}
		next := s.next()
		if next.IsZero() || !next.After(t0) {
			continue
		}
		checked++
		for _, at := range []time.Time{t0.Add(next.Sub(t0) / 2), next.Add(-time.Nanosecond), t0.Add(time.Duration(rng.Int63n(int64(next.Sub(t0)))))} {
			require.Equal(t, refresh, g.refreshDue(at, window), "grant %d: refresh changes at %s, next %s", i, at, next)
			require.Equal(t, keepalive, g.keepaliveDue(at), "grant %d: keep-alive changes at %s, next %s", i, at, next)
			if l := g.health(at, th).Level; s.LevelAt.IsZero() || at.Before(s.LevelAt) {
				require.Equal(t, level, l, "grant %d: level changes at %s before %s", i, at, s.LevelAt)
			}
		}
	}
	require.Greater(t, checked, 5000, "the generator must produce grants with something ahead for the check to mean anything")
}
