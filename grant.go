package larksecrets

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

const (
	grantStoragePrefix = "users/"
	grantEntryVersion  = 1

	// Lark ends every user grant 365 days after the user authorized; refresh fails with 20037 then.
	grantMaxAge = 365 * 24 * time.Hour

	grantStateOK             = "ok"
	grantStateReauthRequired = "reauth_required"
)

func grantStorageKey(appID, slot string) string { return grantStoragePrefix + appID + "/" + slot }

// grantEntry is one Lark user's grant to one app. The refresh token is single use: every refresh
// replaces it, and the entry is written before the new access token is handed to anyone.
type grantEntry struct {
	Version int    `json:"version"`
	AppID   string `json:"app_id"`
	Slot    string `json:"slot"`

	OpenID  string   `json:"open_id"`
	UnionID string   `json:"union_id,omitempty"`
	Name    string   `json:"name,omitempty"`
	Scopes  []string `json:"scopes,omitempty"`

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
	ReauthSince  time.Time `json:"reauth_since,omitempty"`

	// Notified records when each level's notice was sent, so each is sent once per grant, across
	// restarts and leader changes.
	Notified map[string]time.Time `json:"notified,omitempty"`

	LastError     string    `json:"last_error,omitempty"`
	LastErrorAt   time.Time `json:"last_error_at,omitempty"`
	FailuresInRow int       `json:"failures_in_row,omitempty"`
}

type refreshInFlight struct {
	StartedAt        time.Time `json:"started_at"`
	RefreshTokenHash string    `json:"refresh_token_hash"`
}

func tokenHash(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:8])
}

func (g *grantEntry) needsReauth() bool { return g.State == grantStateReauthRequired }

func (g *grantEntry) markReauth(now time.Time, code int, reason string) {
	g.State = grantStateReauthRequired
	g.ReauthCode = code
	g.ReauthReason = reason
	g.ReauthSince = now
	g.InFlight = nil
}

// accessServable reports whether the stored access token can still be handed out with a lease of
// at least a second that ends margin before the token does.
func (g *grantEntry) accessServable(now time.Time, margin time.Duration) bool {
	return g.AccessToken != "" && g.AccessExpiresAt.Sub(now)-margin >= time.Second
}

// status is what lists and reads show about a grant; it never includes a token.
func (g *grantEntry) status() map[string]interface{} {
	s := map[string]interface{}{
		"open_id":            g.OpenID,
		"name":               g.Name,
		"state":              g.State,
		"authorized_at":      formatTime(g.AuthorizedAt),
		"grant_expires_at":   formatTime(g.GrantExpiresAt),
		"refresh_expires_at": formatTime(g.RefreshExpiresAt),
		"access_expires_at":  formatTime(g.AccessExpiresAt),
		"last_refresh_at":    formatTime(g.LastRefreshAt),
		"refresh_count":      g.RefreshCount,
		"reauth_required":    g.needsReauth(),
	}
	if g.needsReauth() {
		s["reauth_reason"] = g.ReauthReason
		s["reauth_code"] = g.ReauthCode
		s["reauth_since"] = formatTime(g.ReauthSince)
	}
	if g.LastError != "" {
		s["last_error"] = g.LastError
		s["last_error_at"] = formatTime(g.LastErrorAt)
	}
	return s
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func (b *backend) loadGrant(ctx context.Context, s logical.Storage, appID, slot string) (*grantEntry, error) {
	raw, err := s.Get(ctx, grantStorageKey(appID, slot))
	if err != nil {
		return nil, fmt.Errorf("reading grant %s/%s: %w", appID, slot, err)
	}
	if raw == nil {
		return nil, nil
	}
	var g grantEntry
	if err := raw.DecodeJSON(&g); err != nil {
		return nil, fmt.Errorf("decoding grant %s/%s: %w", appID, slot, err)
	}
	return &g, nil
}

// storeGrant writes a grant, retrying: after a refresh the stored entry holds the only copy of
// the new single-use refresh token, so one failed write must not lose it.
func (b *backend) storeGrant(ctx context.Context, s logical.Storage, g *grantEntry) error {
	g.Version = grantEntryVersion
	entry, err := logical.StorageEntryJSON(grantStorageKey(g.AppID, g.Slot), g)
	if err != nil {
		return err
	}
	var lastErr error
	delay := 50 * time.Millisecond
	for attempt := 1; attempt <= 5; attempt++ {
		if lastErr = s.Put(ctx, entry); lastErr == nil {
			return nil
		}
		b.Logger().Warn("storing grant failed; retrying", "app_id", g.AppID, "user", g.Slot, "attempt", attempt, "error", lastErr)
		select {
		case <-ctx.Done():
			return fmt.Errorf("storing grant %s/%s: %w (last error: %v)", g.AppID, g.Slot, ctx.Err(), lastErr)
		case <-time.After(delay):
		}
		delay *= 2
	}
	return fmt.Errorf("storing grant %s/%s failed 5 times: %w", g.AppID, g.Slot, lastErr)
}
