package larksecrets

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
)

const (
	grantEntryVersion = 1

	// Lark ends every user grant 365 days after the user authorized; refresh fails with 20037 then
	// (docs/lark-api.md §5).
	grantMaxAge = 365 * 24 * time.Hour

	grantStateOK             = "ok"
	grantStateReauthRequired = "reauth_required"
)

// Why a grant ended when the reason is the plugin's own finding rather than a Lark answer.
const (
	endNoRefreshToken lark.GrantEnd = "no_refresh_token"
	endYearLimit      lark.GrantEnd = "year_limit"
	endInterrupted    lark.GrantEnd = "interrupted"
	endLostAnswer     lark.GrantEnd = "lost_answer"
	endIdentity       lark.GrantEnd = "other_user"
	// endRolledBack: Lark says the stored refresh token was already used, and nothing here ever
	// sent it without storing the answer. The stored grant is older than Lark's: storage was
	// rolled back (rollback.go).
	endRolledBack lark.GrantEnd = "storage_rollback"
)

// rolledBackReason is the reason a grant carries when its stored refresh token turns out to be one
// Lark already rotated with no interrupted or lost refresh here to explain it.
const rolledBackReason = "Lark says the stored refresh token was already used, and no refresh of it was interrupted or lost here: " +
	"the refresh token Vault holds is older than one Lark already rotated, most likely because Vault's storage was restored from an older snapshot or backup " +
	"(or the same refresh token was imported somewhere else too)"

// grantEntry is one Lark user's grant to one app. The refresh token is single use: every refresh
// replaces it, and the entry is written before the new access token is handed to anyone. Its fields
// change only through the methods below, called while the grant store holds the grant's lock.
type grantEntry struct {
	Version int    `json:"version"`
	AppID   string `json:"app_id"`
	Slot    string `json:"slot"`

	OpenID  string   `json:"open_id"`
	UnionID string   `json:"union_id,omitempty"`
	Name    string   `json:"name,omitempty"`
	Scopes  []string `json:"scopes,omitempty"`
	// TenantKey is the user's organisation as user_info names it; a store app reaches the user
	// only with that tenant's token.
	TenantKey string `json:"tenant_key,omitempty"`
	// IdentityPending: the grant was imported while Lark could not say whose it is; the next
	// refresh asks and checks it against the slot's binding.
	IdentityPending bool `json:"identity_pending,omitempty"`

	AccessToken      string    `json:"access_token"`
	AccessExpiresAt  time.Time `json:"access_expires_at"`
	RefreshToken     string    `json:"refresh_token"`
	RefreshExpiresAt time.Time `json:"refresh_expires_at"`

	AuthorizedAt   time.Time `json:"authorized_at"`
	AuthorizedBy   string    `json:"authorized_by,omitempty"` // Vault entity that started it
	LastRefreshAt  time.Time `json:"last_refresh_at,omitempty"`
	RefreshCount   int       `json:"refresh_count"`
	GrantExpiresAt time.Time `json:"grant_expires_at"`

	// InFlight is set, and stored, before a refresh token is sent to Lark and cleared when the
	// outcome is stored. Found set by a later refresh (which holds the grant's lock, so no refresh of
	// this process is running), it means an earlier refresh was interrupted.
	InFlight *refreshInFlight `json:"in_flight,omitempty"`

	State        string    `json:"state"`
	ReauthReason string    `json:"reauth_reason,omitempty"`
	ReauthCode   int       `json:"reauth_code,omitempty"`
	ReauthEnd    string    `json:"reauth_end,omitempty"`
	ReauthSince  time.Time `json:"reauth_since,omitempty"`

	// Notified records when each level's notice was sent, so each is sent once per grant, across
	// restarts and leader changes.
	Notified map[string]time.Time `json:"notified,omitempty"`

	// The last failed refresh that left the grant intact. FailureMeaning is a lark.Meaning.
	LastError      string    `json:"last_error,omitempty"`
	LastErrorAt    time.Time `json:"last_error_at,omitempty"`
	FailuresInRow  int       `json:"failures_in_row,omitempty"`
	FirstFailureAt time.Time `json:"first_failure_at,omitempty"`
	FailureMeaning string    `json:"failure_meaning,omitempty"`
	// NextAttemptAt spaces out refreshes after failures, so an outage is not answered with a storm
	// of calls by every reader and every sweep.
	NextAttemptAt time.Time `json:"next_attempt_at,omitempty"`
	// ChallengeURL is the link Lark asked the user to open (a security challenge), if any.
	ChallengeURL string `json:"challenge_url,omitempty"`

	// What the grant indexes hold for it (grant_index.go), written with it by grantTx.put: the time
	// of its due entry (zero: none), the level it is counted at, and the notice level the sweep has
	// queued for it (so a grant waiting for the notice schedule is not looked at again meanwhile).
	DueAt        time.Time `json:"due_at,omitempty"`
	Level        string    `json:"level,omitempty"`
	NoticeQueued string    `json:"notice_queued,omitempty"`
}

type refreshInFlight struct {
	StartedAt        time.Time `json:"started_at"`
	RefreshTokenHash string    `json:"refresh_token_hash"`
}

func tokenHash(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:8])
}

func (g *grantEntry) id() grantID { return grantID{g.AppID, g.Slot} }

func (g *grantEntry) identity() larkIdentity {
	return larkIdentity{OpenID: g.OpenID, UnionID: g.UnionID}
}

// clone returns a copy that shares nothing mutable with g.
func (g *grantEntry) clone() *grantEntry {
	c := *g
	c.Scopes = append([]string(nil), g.Scopes...)
	if g.InFlight != nil {
		f := *g.InFlight
		c.InFlight = &f
	}
	if g.Notified != nil {
		c.Notified = make(map[string]time.Time, len(g.Notified))
		for k, v := range g.Notified {
			c.Notified[k] = v
		}
	}
	return &c
}

// newGrant builds a fresh grant from a token answer and the user's identity.
func newGrant(id grantID, authorizedAt time.Time, entityID string, tok *lark.UserToken, info *lark.UserInfo, now time.Time) *grantEntry {
	g := &grantEntry{
		AppID:          id.App,
		Slot:           id.Slot,
		OpenID:         info.OpenID,
		UnionID:        info.UnionID,
		Name:           info.Name,
		TenantKey:      info.TenantKey,
		AuthorizedAt:   authorizedAt.UTC(),
		AuthorizedBy:   entityID,
		GrantExpiresAt: authorizedAt.UTC().Add(grantMaxAge),
		State:          grantStateOK,
	}
	g.takeTokens(tok, now)
	return g
}

// takeTokens records a token answer: the access token, and the refresh token that replaces the one
// just spent (capped at the grant's 365-day end, past which Lark refuses it anyway).
func (g *grantEntry) takeTokens(tok *lark.UserToken, now time.Time) {
	g.AccessToken = tok.AccessToken
	g.AccessExpiresAt = now.Add(tok.ExpiresIn)
	g.RefreshToken = tok.RefreshToken
	g.RefreshExpiresAt = time.Time{}
	if tok.RefreshToken != "" {
		g.RefreshExpiresAt = now.Add(tok.RefreshExpiresIn)
		if !g.GrantExpiresAt.IsZero() && g.RefreshExpiresAt.After(g.GrantExpiresAt) {
			g.RefreshExpiresAt = g.GrantExpiresAt
		}
	}
	if len(tok.Scope) > 0 {
		g.Scopes = tok.Scope
	}
	g.LastRefreshAt = now
}

func (g *grantEntry) needsReauth() bool { return g.State == grantStateReauthRequired }

// startRefresh marks the refresh token as sent; the mark is stored before the token leaves Vault.
func (g *grantEntry) startRefresh(now time.Time) {
	g.InFlight = &refreshInFlight{StartedAt: now, RefreshTokenHash: tokenHash(g.RefreshToken)}
}

// applyRefresh records a successful refresh: the new pair replaces the spent one and every trace of
// earlier trouble goes.
func (g *grantEntry) applyRefresh(tok *lark.UserToken, now time.Time) {
	g.takeTokens(tok, now)
	g.InFlight = nil
	g.RefreshCount++
	g.clearFailure()
}

func (g *grantEntry) clearFailure() {
	g.LastError, g.LastErrorAt, g.FailuresInRow, g.FirstFailureAt = "", time.Time{}, 0, time.Time{}
	g.FailureMeaning, g.NextAttemptAt, g.ChallengeURL = "", time.Time{}, ""
}

// recordFailure records a refresh that failed without ending the grant. keepInFlight leaves the
// in-flight mark when Lark may have spent the token without its answer arriving, so a later "already
// used" can be explained.
func (g *grantEntry) recordFailure(now time.Time, meaning lark.Meaning, msg string, keepInFlight bool) {
	if !keepInFlight {
		g.InFlight = nil
	}
	g.LastError = msg
	g.LastErrorAt = now
	if g.FailuresInRow == 0 {
		g.FirstFailureAt = now
	}
	g.FailuresInRow++
	g.FailureMeaning = string(meaning)
	g.NextAttemptAt = now.Add(retryBackoff(g.FailuresInRow))
}

// recordChallenge records that Lark wants the user to pass a security check before it refreshes.
func (g *grantEntry) recordChallenge(now time.Time, msg, url string) {
	g.recordFailure(now, lark.MeaningUserAction, msg, false)
	g.ChallengeURL = url
}

// markReauth ends the grant: only the user authorizing again helps. The tokens stay stored (the
// access token may still work for minutes), but nothing serves them any more.
func (g *grantEntry) markReauth(now time.Time, code int, end lark.GrantEnd, reason string) {
	g.State = grantStateReauthRequired
	g.ReauthCode = code
	g.ReauthEnd = string(end)
	g.ReauthReason = reason
	g.ReauthSince = now
	g.InFlight = nil
	g.NextAttemptAt = time.Time{}
}

// markRevoked ends the grant because Lark announced that its refresh token was revoked (the
// auth.user_access_token.revoked_v4 event, docs/lark-api.md §11). Nothing is sent to Lark: the
// refresh token is dead, and presenting it would only confirm that.
func (g *grantEntry) markRevoked(now time.Time, reason string) {
	g.markReauth(now, 0, lark.GrantEndRevoked, reason)
}

// dropAccessToken forgets an access token Lark revoked while the refresh token lives on: the next
// read refreshes instead of serving a token Lark refuses.
func (g *grantEntry) dropAccessToken(now time.Time) {
	g.AccessToken = ""
	if g.AccessExpiresAt.After(now) {
		g.AccessExpiresAt = now
	}
}

// revokedBy reports whether a revocation naming openID or unionID is about this grant. Open ids are
// per app and union ids per developer, so either identifies the user within the app.
func (g *grantEntry) revokedBy(openID, unionID string) bool {
	return (openID != "" && g.OpenID == openID) || (unionID != "" && g.UnionID == unionID)
}

// markQueued records that the sweep queued the notice for level, so that the grant is not due for
// it again while it waits for the notice schedule.
func (g *grantEntry) markQueued(level string) { g.NoticeQueued = level }

// markNotified records that the notice for level went out.
func (g *grantEntry) markNotified(level string, now time.Time) {
	if g.Notified == nil {
		g.Notified = map[string]time.Time{}
	}
	g.Notified[level] = now
}

func (g *grantEntry) notified(level string) bool { return !g.Notified[level].IsZero() }

// confirmIdentity settles a pending identity check with Lark's answer.
func (g *grantEntry) confirmIdentity(info *lark.UserInfo) {
	g.OpenID, g.UnionID, g.IdentityPending = info.OpenID, info.UnionID, false
	if info.Name != "" {
		g.Name = info.Name
	}
	if info.TenantKey != "" {
		g.TenantKey = info.TenantKey
	}
}

// retryBackoff is the wait before the next refresh attempt after n failures in a row: 10 s, doubling,
// at most 5 minutes. Short enough that a grant recovers within minutes of Lark recovering, long
// enough that readers of a failing grant do not call Lark on every read.
func retryBackoff(n int) time.Duration {
	const first, most = 10 * time.Second, 5 * time.Minute
	if n <= 0 {
		return 0
	}
	d := first
	for i := 1; i < n && d < most; i++ {
		d *= 2
	}
	return min(d, most)
}

// accessServable reports whether the stored access token can still be handed out with a lease of
// at least a second that ends margin before the token does.
func (g *grantEntry) accessServable(now time.Time, margin time.Duration) bool {
	return g.AccessToken != "" && g.AccessExpiresAt.Sub(now)-margin >= time.Second
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// reauthError says a grant can no longer be refreshed: only the user authorizing again helps.
type reauthError struct {
	id     grantID
	code   int
	reason string
	since  time.Time
}

func (e *reauthError) Error() string {
	msg := fmt.Sprintf("the Lark grant of user %q for app %s needs re-authorization: %s", e.id.Slot, e.id.App, e.reason)
	if e.code != 0 {
		msg += fmt.Sprintf(" (Lark code %d)", e.code)
	}
	if !e.since.IsZero() {
		msg += " since " + formatTime(e.since)
	}
	return msg
}

func newReauthError(g *grantEntry) *reauthError {
	return &reauthError{id: g.id(), code: g.ReauthCode, reason: g.ReauthReason, since: g.ReauthSince}
}
