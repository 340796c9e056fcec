package larksecrets

import (
	"fmt"
	"math"
	"time"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
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
	// Failing is set (a lark.Meaning) when the deadline is the refresh token's expiry because
	// refreshes keep failing: what to do then depends on why they fail.
	Failing lark.Meaning
}

func (h grantHealth) reauthRequired() bool {
	return h.Level == levelExpired || h.Level == levelReauthRequired
}

// health classifies a grant by how long it can still be refreshed. Normally that is until the
// 365-day cap: keep-alive renews the refresh token long before it expires. While refreshes keep
// failing, the refresh token's own expiry is what really ends the grant, but a short failure streak
// is ordinary weather (a Lark hiccup) and must not page anyone: it counts only once it has lasted
// failureGrace.
func (g *grantEntry) health(now time.Time, th levelThresholds) grantHealth {
	if g.needsReauth() {
		return grantHealth{Level: levelReauthRequired, Deadline: g.ReauthSince, Reason: g.ReauthReason}
	}
	deadline := g.GrantExpiresAt
	reason := "the grant ends 365 days after the user authorized"
	var failing lark.Meaning
	switch {
	case g.RefreshToken == "":
		deadline, reason = g.AccessExpiresAt, "Lark issued no refresh token, so the grant ends with its access token"
	case !g.RefreshExpiresAt.IsZero() && !now.Before(g.RefreshExpiresAt) && g.RefreshExpiresAt.Before(deadline):
		deadline, reason = g.RefreshExpiresAt, "the refresh token expired before it could be renewed"
	case g.FailuresInRow > 0 && now.Sub(g.FirstFailureAt) >= th.FailureGrace &&
		!g.RefreshExpiresAt.IsZero() && g.RefreshExpiresAt.Before(deadline):
		deadline = g.RefreshExpiresAt
		reason = fmt.Sprintf("refreshes have failed since %s (%s) and the refresh token expires then", formatTime(g.FirstFailureAt), failureSummary(g))
		failing = lark.Meaning(g.FailureMeaning)
	}
	left := deadline.Sub(now)
	h := grantHealth{Deadline: deadline, DaysLeft: math.Floor(left.Hours()/24*10) / 10, Reason: reason, Failing: failing}
	switch {
	case left <= 0:
		h.Level, h.DaysLeft = levelExpired, 0
	case left <= time.Duration(th.CriticalDays)*24*time.Hour:
		h.Level = levelCritical
	case left <= time.Duration(th.WarningDays)*24*time.Hour:
		h.Level = levelWarning
	default:
		h.Level = levelOK
	}
	return h
}

// healthNow is health with the mount's thresholds.
func (g *grantEntry) healthNow(now time.Time, cfg *configEntry) grantHealth {
	return g.health(now, cfg.thresholds())
}

// warning is the response warning for a grant at warning level or worse; empty when ok.
func (h grantHealth) warning(id grantID, r remedies) string {
	switch h.Level {
	case levelOK:
		return ""
	case levelReauthRequired:
		return fmt.Sprintf("Lark grant %s needs re-authorization: %s. %s", id, h.Reason, r.reauthorize(id))
	case levelExpired:
		return fmt.Sprintf("Lark grant %s has ended (%s, at %s). %s", id, h.Reason, formatTime(h.Deadline), r.reauthorize(id))
	}
	return fmt.Sprintf("Lark grant %s is at level %s: it ends in %.1f days, at %s (%s). The user should authorize again before then: %s",
		id, h.Level, h.DaysLeft, formatTime(h.Deadline), h.Reason, r.authorizeCommand(id))
}

// failureSummary says in a few words why a grant's refreshes fail.
func failureSummary(g *grantEntry) string {
	switch lark.Meaning(g.FailureMeaning) {
	case lark.MeaningAppSetup:
		return "Lark refuses the app's setup"
	case lark.MeaningUserAction:
		return "Lark waits for the user to complete a verification"
	case lark.MeaningTransient:
		return "Lark could not be reached"
	}
	return "Lark refused the refresh"
}

// status is what lists and reads show about a grant; it never includes a token.
func (g *grantEntry) status(h grantHealth) map[string]interface{} {
	s := map[string]interface{}{
		"open_id":            g.OpenID,
		"union_id":           g.UnionID,
		"name":               g.Name,
		"state":              g.State,
		"level":              h.Level,
		"days_left":          h.DaysLeft,
		"authorized_at":      formatTime(g.AuthorizedAt),
		"grant_expires_at":   formatTime(g.GrantExpiresAt),
		"refresh_expires_at": formatTime(g.RefreshExpiresAt),
		"access_expires_at":  formatTime(g.AccessExpiresAt),
		"last_refresh_at":    formatTime(g.LastRefreshAt),
		"refresh_count":      g.RefreshCount,
		"reauth_required":    h.reauthRequired(),
	}
	if g.needsReauth() {
		s["reauth_reason"] = g.ReauthReason
		s["reauth_code"] = g.ReauthCode
		s["reauth_end"] = g.ReauthEnd
		s["reauth_since"] = formatTime(g.ReauthSince)
	}
	if g.LastError != "" {
		s["last_error"] = g.LastError
		s["last_error_at"] = formatTime(g.LastErrorAt)
		s["failures_in_row"] = g.FailuresInRow
		s["next_attempt_at"] = formatTime(g.NextAttemptAt)
	}
	if g.ChallengeURL != "" {
		s["challenge_url"] = g.ChallengeURL
	}
	if g.IdentityPending {
		s["identity_pending"] = true
	}
	return s
}
