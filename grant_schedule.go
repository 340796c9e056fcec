package larksecrets

import (
	"crypto/sha256"
	"time"
)

// When is a grant next due? This file is the one answer. A reader, the sweep and the due index all
// ask scheduleOf, so "when does anything about this grant change" is stated once: refreshDue and
// keepaliveDue (below) and sweepAt, the time of the grant's due-index entry, derive from it, and
// its level-change time bounds how long the level grant_health.go computes stays the same.

// alreadyDue stands for "due from the start": a time before any the plugin handles.
var alreadyDue = time.Unix(1, 0).UTC()

// grantSchedule is when each thing the plugin acts on falls due for a grant; a zero time: never.
type grantSchedule struct {
	// RefreshAt: from then a reader refreshes before serving (the access token is inside the refresh
	// window, or an interrupted refresh or a pending identity check waits), a failure's backoff
	// honoured.
	RefreshAt time.Time
	// KeepaliveAt: from then the sweep refreshes the grant nobody reads (about half of the refresh
	// token's life after the last refresh), the backoff honoured.
	KeepaliveAt time.Time
	// LevelAt: the next moment after now at which the grant's level can change (ok → warning →
	// critical → expired, or a refresh token that expires or whose failures outlast the grace).
	LevelAt time.Time
}

// next is the earliest of the three; zero when nothing is ever due again.
func (s grantSchedule) next() time.Time {
	var out time.Time
	for _, t := range []time.Time{s.RefreshAt, s.KeepaliveAt, s.LevelAt} {
		if !t.IsZero() && (out.IsZero() || t.Before(out)) {
			out = t
		}
	}
	return out
}

// scheduleOf is a pure function of the grant, the mount's refresh window and level thresholds, and
// the time.
func scheduleOf(g *grantEntry, window time.Duration, th levelThresholds, now time.Time) grantSchedule {
	if g.needsReauth() {
		return grantSchedule{} // nothing refreshes it, and its level stays reauth_required
	}
	return grantSchedule{RefreshAt: g.refreshAt(window), KeepaliveAt: g.keepaliveAt(), LevelAt: g.levelChangeAfter(now, th)}
}

// refreshAt is scheduleOf's RefreshAt, alone: a read asks it on every call.
func (g *grantEntry) refreshAt(window time.Duration) time.Time {
	switch {
	case g.needsReauth():
		return time.Time{}
	case g.InFlight != nil || g.IdentityPending || g.AccessExpiresAt.IsZero():
		return laterOf(alreadyDue, g.NextAttemptAt)
	}
	return laterOf(g.AccessExpiresAt.Add(-window), g.NextAttemptAt)
}

// keepaliveAt is scheduleOf's KeepaliveAt, alone.
func (g *grantEntry) keepaliveAt() time.Time {
	if g.needsReauth() || g.RefreshToken == "" {
		return time.Time{}
	}
	if g.InFlight != nil || g.IdentityPending {
		return laterOf(alreadyDue, g.NextAttemptAt)
	}
	if point, known := g.keepalivePoint(); known {
		return laterOf(point, g.NextAttemptAt)
	}
	return time.Time{}
}

// levelChangeAfter is the first moment after now at which health can give another level. health
// picks a deadline — the 365-day end, the refresh token's expiry once it has passed or once failures
// outlast the grace, the access token's expiry without a refresh token — and a level from how far the
// deadline is; every moment where either can change is one of the points below, so the earliest of
// them after now is where the level may next change (perhaps to the same level: never later).
func (g *grantEntry) levelChangeAfter(now time.Time, th levelThresholds) time.Time {
	warning := time.Duration(th.WarningDays) * 24 * time.Hour
	critical := time.Duration(th.CriticalDays) * 24 * time.Hour
	if g.needsReauth() {
		return time.Time{}
	}
	var points []time.Time
	deadlines := []time.Time{g.GrantExpiresAt}
	if g.RefreshToken == "" {
		deadlines = append(deadlines, g.AccessExpiresAt)
	}
	if !g.RefreshExpiresAt.IsZero() {
		deadlines = append(deadlines, g.RefreshExpiresAt)
		points = append(points, g.RefreshExpiresAt)
		if g.FailuresInRow > 0 {
			points = append(points, g.FirstFailureAt.Add(th.FailureGrace))
		}
	}
	for _, d := range deadlines {
		if !d.IsZero() {
			points = append(points, d.Add(-warning), d.Add(-critical), d)
		}
	}
	var next time.Time
	for _, p := range points {
		if p.After(now) && (next.IsZero() || p.Before(next)) {
			next = p
		}
	}
	return next
}

// sweepAt is when the sweep must next look at the grant, the time of its entry in the due index
// (grant_index.go): keep-alive due or the level changing, whichever is first; at once when the
// grant is at a level whose notice was neither sent nor queued; zero when nothing will ever be due
// (a grant that needs re-authorization, its notice queued). Readers' refresh times are left out:
// a reader refreshes for itself, and a grant nobody reads is kept alive by keep-alive.
func sweepAt(g *grantEntry, th levelThresholds, now time.Time) time.Time {
	if level := noticeLevel(g.health(now, th).Level); level != levelOK && !g.notified(level) && g.NoticeQueued != level {
		return alreadyDue
	}
	s := scheduleOf(g, 0, th, now)
	s.RefreshAt = time.Time{}
	return s.next()
}

// laterOf is the later of two times.
func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// refreshDue: a reader must refresh before serving.
func (g *grantEntry) refreshDue(now time.Time, window time.Duration) bool {
	at := g.refreshAt(window)
	return !at.IsZero() && !now.Before(at)
}

// keepaliveDue: the sweep must refresh the grant nobody reads: about half of the refresh token's
// lifetime has passed, so the grant lives to its 365-day end without anyone reading it
// .
func (g *grantEntry) keepaliveDue(now time.Time) bool {
	at := g.keepaliveAt()
	return !at.IsZero() && !now.Before(at)
}

// keepalivePoint is when keep-alive falls due by the refresh token's lifetime alone; known is false
// when Lark's answer did not say how long the refresh token lives.
func (g *grantEntry) keepalivePoint() (point time.Time, known bool) {
	if g.RefreshExpiresAt.IsZero() || g.LastRefreshAt.IsZero() {
		return time.Time{}, false
	}
	lifetime := g.RefreshExpiresAt.Sub(g.LastRefreshAt)
	return g.LastRefreshAt.Add(time.Duration(float64(lifetime) * keepaliveFraction(g.id()))), true
}

// keepaliveFraction spreads grants over 45–55 % of the refresh token's life by a hash of their id.
func keepaliveFraction(id grantID) float64 {
	sum := sha256.Sum256([]byte(id.String()))
	return 0.45 + float64((uint16(sum[0])<<8|uint16(sum[1]))%1000)/10000
}
