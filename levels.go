package larksecrets

import (
	"fmt"
	"math"
	"time"
)

// Grant levels, from fine to gone. App and tenant tokens have none: they renew themselves.
const (
	levelOK             = "ok"
	levelWarning        = "warning"
	levelCritical       = "critical"
	levelExpired        = "expired"
	levelReauthRequired = "reauth_required"
)

var levelRank = map[string]int{levelOK: 0, levelWarning: 1, levelCritical: 2, levelExpired: 3, levelReauthRequired: 3}

// grantHealth is what the sweep, reads and reauth say about one grant.
type grantHealth struct {
	Level    string
	Deadline time.Time
	DaysLeft float64
	Reason   string
}

// health classifies a grant. The deadline is the 365-day cap, or the refresh token's own expiry if
// keep-alive keeps failing (then the token is not being renewed and that expiry is what ends it).
func (g *grantEntry) health(now time.Time, cfg *configEntry) grantHealth {
	if g.needsReauth() {
		return grantHealth{Level: levelReauthRequired, Deadline: g.ReauthSince, Reason: g.ReauthReason}
	}
	deadline := g.GrantExpiresAt
	reason := "the grant ends 365 days after the user authorized"
	if g.FailuresInRow > 0 && !g.RefreshExpiresAt.IsZero() && g.RefreshExpiresAt.Before(deadline) {
		deadline = g.RefreshExpiresAt
		reason = fmt.Sprintf("keep-alive refreshes are failing (%s) and the refresh token expires then", g.LastError)
	}
	left := deadline.Sub(now)
	h := grantHealth{Deadline: deadline, DaysLeft: math.Floor(left.Hours()/24*10) / 10, Reason: reason}
	switch {
	case left <= 0:
		h.Level, h.DaysLeft = levelExpired, 0
	case left <= time.Duration(cfg.CriticalDays)*24*time.Hour:
		h.Level = levelCritical
	case left <= time.Duration(cfg.WarningDays)*24*time.Hour:
		h.Level = levelWarning
	default:
		h.Level = levelOK
	}
	return h
}

// warning is the response warning for a grant at warning level or worse; empty when ok.
func (h grantHealth) warning(appID, slot, mount string) string {
	switch h.Level {
	case levelOK:
		return ""
	case levelReauthRequired:
		return fmt.Sprintf("Lark grant %s/%s needs re-authorization: %s. The user must authorize again: vault write %soauth/%s/authorize user=%s",
			appID, slot, h.Reason, mount, appID, slot)
	case levelExpired:
		return fmt.Sprintf("Lark grant %s/%s has ended (%s, at %s). The user must authorize again: vault write %soauth/%s/authorize user=%s",
			appID, slot, h.Reason, formatTime(h.Deadline), mount, appID, slot)
	}
	return fmt.Sprintf("Lark grant %s/%s is at level %s: it ends in %.1f days, at %s (%s). The user should authorize again before then: vault write %soauth/%s/authorize user=%s",
		appID, slot, h.Level, h.DaysLeft, formatTime(h.Deadline), h.Reason, mount, appID, slot)
}
