package larksecrets

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
)

var errGrantNotFound = errors.New("no grant")

// reauthError says a grant can no longer be refreshed: only the user authorizing again helps.
type reauthError struct {
	appID, slot string
	code        int
	reason      string
	since       time.Time
}

func (e *reauthError) Error() string {
	msg := fmt.Sprintf("the Lark grant of user %q for app %s needs re-authorization: %s", e.slot, e.appID, e.reason)
	if e.code != 0 {
		msg += fmt.Sprintf(" (Lark code %d)", e.code)
	}
	if !e.since.IsZero() {
		msg += " since " + formatTime(e.since)
	}
	return msg
}

func newReauthError(g *grantEntry) *reauthError {
	return &reauthError{appID: g.AppID, slot: g.Slot, code: g.ReauthCode, reason: g.ReauthReason, since: g.ReauthSince}
}

// grantLocks serializes every refresh of one grant within this process; only the active node
// refreshes, so in-process locks are enough. unsaved keeps a rotated grant whose storage write failed
// even after retries, so its single-use refresh token is not lost with the request.
type grantLocks struct {
	locks []*locksutil.LockEntry

	mu      sync.Mutex
	unsaved map[string]*grantEntry
}

func newGrantLocks() *grantLocks {
	return &grantLocks{locks: locksutil.CreateLocks(), unsaved: map[string]*grantEntry{}}
}

func (l *grantLocks) lock(appID, slot string) func() {
	e := locksutil.LockForKey(l.locks, grantStorageKey(appID, slot))
	e.Lock()
	return e.Unlock
}

// userToken returns the grant with an access token that is good for a lease, refreshing it first
// when it is due. Warnings tell the reader about trouble that did not stop the read.
func (b *backend) userToken(ctx context.Context, s logical.Storage, appID, slot string) (*grantEntry, []string, error) {
	cfg, err := b.getConfig(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	g, err := b.loadGrant(ctx, s, appID, slot)
	if err != nil {
		return nil, nil, err
	}
	if g == nil && b.grants.peekUnsaved(appID, slot) == nil {
		return nil, nil, errGrantNotFound
	}
	now := b.clock.Now()
	if g != nil && !refreshDue(g, now, cfg) {
		if g.needsReauth() {
			return nil, nil, newReauthError(g)
		}
		return g, nil, nil
	}
	// Refreshing spends the single-use refresh token and must store its successor: a node that may
	// not write hands the request to one that may, unless the current token is still good.
	if !b.WriteSafeReplicationState() {
		if g != nil && !g.needsReauth() && g.accessServable(now, cfg.LeaseSafetyMargin) {
			return g, nil, nil
		}
		return nil, nil, logical.ErrReadOnly
	}

	unlock := b.grants.lock(appID, slot)
	defer unlock()
	if g, err = b.reloadGrantLocked(ctx, s, appID, slot); err != nil {
		return nil, nil, err
	}
	if g == nil {
		return nil, nil, errGrantNotFound
	}
	now = b.clock.Now()
	if !refreshDue(g, now, cfg) {
		if g.needsReauth() {
			return nil, nil, newReauthError(g)
		}
		return g, nil, nil // another reader refreshed it while we waited for the lock
	}
	return b.refreshGrantLocked(ctx, s, g, cfg)
}

// refreshDue: the access token is inside the refresh window, or an earlier refresh was
// interrupted and must be resolved before anything else.
func refreshDue(g *grantEntry, now time.Time, cfg *configEntry) bool {
	if g.needsReauth() {
		return false
	}
	return g.InFlight != nil || !now.Before(g.AccessExpiresAt.Add(-cfg.TokenRefreshWindow))
}

func (l *grantLocks) peekUnsaved(appID, slot string) *grantEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.unsaved[grantStorageKey(appID, slot)]
}

// reloadGrantLocked re-reads the grant under its lock, first storing any rotated grant that an
// earlier request could not store.
func (b *backend) reloadGrantLocked(ctx context.Context, s logical.Storage, appID, slot string) (*grantEntry, error) {
	key := grantStorageKey(appID, slot)
	b.grants.mu.Lock()
	pending := b.grants.unsaved[key]
	b.grants.mu.Unlock()
	if pending != nil {
		if err := b.storeGrant(ctx, s, pending); err != nil {
			return nil, fmt.Errorf("a rotated refresh token of %s/%s is still only in memory: %w", appID, slot, err)
		}
		b.grants.mu.Lock()
		delete(b.grants.unsaved, key)
		b.grants.mu.Unlock()
		b.Logger().Info("stored a rotated grant that an earlier write had failed to store", "app_id", appID, "user", slot)
		return pending, nil
	}
	return b.loadGrant(ctx, s, appID, slot)
}

// refreshGrantLocked spends the grant's refresh token once and stores the new pair before
// returning. The caller holds the grant's lock.
func (b *backend) refreshGrantLocked(ctx context.Context, s logical.Storage, g *grantEntry, cfg *configEntry) (*grantEntry, []string, error) {
	now := b.clock.Now()
	app, err := b.getApp(ctx, s, g.AppID)
	if err != nil {
		return nil, nil, err
	}
	if app == nil {
		return nil, nil, errAppNotConfigured
	}
	if g.RefreshToken == "" {
		g.markReauth(now, 0, "Lark issued no refresh token (offline_access was not granted or the app may not refresh tokens)")
		return nil, nil, b.storeReauth(ctx, s, g)
	}
	if !g.GrantExpiresAt.IsZero() && !now.Before(g.GrantExpiresAt) {
		g.markReauth(now, 20037, "the grant reached Lark's 365-day limit after authorization")
		return nil, nil, b.storeReauth(ctx, s, g)
	}
	client, err := b.larkClient(app, cfg)
	if err != nil {
		return nil, nil, err
	}

	interrupted := g.InFlight
	// Record the attempt before the token leaves Vault: if this process dies before storing the
	// answer, the next refresh finds the mark and can say what happened.
	g.InFlight = &refreshInFlight{StartedAt: now, RefreshTokenHash: tokenHash(g.RefreshToken)}
	if err := b.storeGrant(ctx, s, g); err != nil {
		return nil, nil, fmt.Errorf("not refreshing %s/%s: could not record the refresh first: %w", g.AppID, g.Slot, err)
	}

	callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*cfg.LarkRequestTimeout+5*time.Second)
	defer cancel()
	tok, err := client.RefreshUserToken(callCtx, g.RefreshToken)
	lostAnswer := false
	var le *lark.Error
	if errors.As(err, &le) && le.ConsumedMaybe() {
		// Lark may or may not have used the token. Asking once more with the same token settles
		// it: success means it had not; "already used" means its answer was lost.
		lostAnswer = true
		b.Logger().Warn("refresh answer lost; asking Lark once more with the same refresh token", "app_id", g.AppID, "user", g.Slot, "error", err)
		tok, err = client.RefreshUserToken(callCtx, g.RefreshToken)
	}
	now = b.clock.Now()
	if err != nil {
		return b.refreshFailed(ctx, s, g, cfg, err, interrupted, lostAnswer, now)
	}

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
	g.InFlight = nil
	g.LastRefreshAt = now
	g.RefreshCount++
	g.LastError, g.LastErrorAt, g.FailuresInRow = "", time.Time{}, 0
	if err := b.storeGrant(ctx, s, g); err != nil {
		b.grants.mu.Lock()
		b.grants.unsaved[grantStorageKey(g.AppID, g.Slot)] = g
		b.grants.mu.Unlock()
		b.Logger().Error("Lark rotated a refresh token but Vault could not store it; kept in memory until a write succeeds",
			"app_id", g.AppID, "user", g.Slot, "error", err)
		return nil, nil, fmt.Errorf("Lark rotated the refresh token of %s/%s but Vault could not store it (kept in memory, stored on the next read): %w", g.AppID, g.Slot, err)
	}
	b.metrics.refresh("ok", "")
	b.Logger().Debug("refreshed user token", "app_id", g.AppID, "user", g.Slot, "refresh_count", g.RefreshCount)
	return g, nil, nil
}

func (b *backend) refreshFailed(ctx context.Context, s logical.Storage, g *grantEntry, cfg *configEntry, err error, interrupted *refreshInFlight, lostAnswer bool, now time.Time) (*grantEntry, []string, error) {
	var le *lark.Error
	if errors.As(err, &le) && le.Kind == lark.KindReauthRequired {
		reason := le.Reason()
		switch {
		case le.Code == 20073 && interrupted != nil:
			reason = fmt.Sprintf("an earlier refresh started at %s was interrupted after Lark had used the refresh token, so the new one never reached Vault", formatTime(interrupted.StartedAt))
		case le.Code == 20073 && lostAnswer:
			reason = "Lark's answer to a refresh was lost in transit after Lark had used the refresh token"
		}
		g.markReauth(now, le.Code, reason)
		b.metrics.refresh("reauth_required", fmt.Sprint(le.Code))
		b.sendEvent(ctx, "lark/reauth-required", g.AppID, g.Slot, "refresh")
		b.Logger().Error("user grant needs re-authorization", "app_id", g.AppID, "user", g.Slot, "code", le.Code, "reason", reason)
		return nil, nil, b.storeReauth(ctx, s, g)
	}

	kind := "error"
	if le != nil {
		kind = string(le.Kind)
	}
	b.metrics.refresh("failed", kind)
	// Lark certainly did not take the token (or we do not know yet): keep the grant as it is.
	if le == nil || !le.ConsumedMaybe() {
		g.InFlight = nil
	}
	g.LastError = err.Error()
	g.LastErrorAt = now
	g.FailuresInRow++
	if serr := b.storeGrant(ctx, s, g); serr != nil {
		b.Logger().Warn("could not record a failed refresh", "app_id", g.AppID, "user", g.Slot, "error", serr)
	}
	b.Logger().Warn("refreshing user token failed", "app_id", g.AppID, "user", g.Slot, "error", err)
	if g.accessServable(now, cfg.LeaseSafetyMargin) {
		return g, []string{fmt.Sprintf("refreshing the user token failed (%v); serving the current token, valid until %s", err, formatTime(g.AccessExpiresAt))}, nil
	}
	return nil, nil, err
}

func (b *backend) storeReauth(ctx context.Context, s logical.Storage, g *grantEntry) error {
	if err := b.storeGrant(ctx, s, g); err != nil {
		return fmt.Errorf("%s; recording that failed too: %w", newReauthError(g).Error(), err)
	}
	return newReauthError(g)
}

// userTokenError maps user-token failures to statuses: 400 for a missing grant or app, 409 when
// only the user re-authorizing helps, the Lark mapping for upstream failures.
func (b *backend) userTokenError(req *logical.Request, appID, slot string, err error) error {
	var re *reauthError
	switch {
	case errors.Is(err, errGrantNotFound):
		return logical.CodedError(http.StatusBadRequest, fmt.Sprintf(
			"no Lark grant for user %q of app %s; start one with: vault write %soauth/%s/authorize user=%s", slot, appID, mountOf(req), appID, slot))
	case errors.As(err, &re):
		return logical.CodedError(http.StatusConflict, fmt.Sprintf(
			"%s. Ask the user to authorize again: vault write %soauth/%s/authorize user=%s", re.Error(), mountOf(req), appID, slot))
	case errors.Is(err, logical.ErrReadOnly):
		return err
	}
	return b.operatorError(req, appID, err)
}

func mountOf(req *logical.Request) string {
	if req.MountPoint == "" {
		return "lark/"
	}
	return req.MountPoint
}
