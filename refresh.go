package larksecrets

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
)

// This file is the refresh protocol for user grants. A refresh token works exactly once, so:
//   - every refresh of a grant runs under the grant's lock (grantStore.withGrant) and re-reads it;
//   - only a node that may write refreshes; others serve a still-valid token or forward;
//   - the in-flight mark is stored before the token leaves Vault, so a refresh interrupted by a
//     crash is recognised and explained later;
//   - Lark's call and the storing of its outcome run on contexts of their own: once Lark has acted,
//     the outcome is stored even if the reader, the request or the sweep is gone;
//   - an answer that may have been lost is settled by asking once more with the same token (success:
//     it was not spent; "already used": the answer was lost).
// See docs/lark-api.md §5 for Lark's rotation rules.

// refreshCallBudget bounds one refresh at Lark: the call and, after a lost answer, the one probe.
func refreshCallBudget(cfg *configEntry) time.Duration {
	return 2*cfg.LarkRequestTimeout + 5*time.Second
}

// readUserToken returns the grant with an access token that is good for a lease, refreshing it first
// when it is due. Warnings tell the reader about trouble that did not stop the read.
func (b *backend) readUserToken(ctx context.Context, s logical.Storage, id grantID) (*grantEntry, []string, error) {
	cfg, err := b.config.get(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	g, err := b.grants.get(ctx, s, id)
	if err != nil {
		return nil, nil, err
	}
	if g == nil {
		return nil, nil, errGrantNotFound
	}
	now := b.clock.Now()
	if !g.refreshDue(now, cfg.TokenRefreshWindow) {
		return serveGrant(g, now, cfg)
	}
	// Refreshing spends the single-use refresh token and must store its successor: a node that may
	// not write hands the request to one that may, unless the current token is still good.
	if !b.WriteSafeReplicationState() {
		if !g.needsReauth() && g.accessServable(now, cfg.LeaseSafetyMargin) {
			return g, nil, nil
		}
		return nil, nil, logical.ErrReadOnly
	}
	sess, err := b.sessions.open(ctx, s, id.App)
	if err != nil {
		return nil, nil, err
	}
	var (
		out      *grantEntry
		warnings []string
	)
	err = b.grants.withGrant(ctx, s, id, func(tx *grantTx) error {
		g := tx.grant()
		if g == nil {
			return errGrantNotFound
		}
		if g.refreshDue(b.clock.Now(), sess.cfg.TokenRefreshWindow) {
			if rerr := b.refreshLocked(tx, sess, "read"); rerr != nil {
				var (
					late *lateError
					ns   *notStoredError
					re   *reauthError
				)
				if errors.As(rerr, &late) || errors.As(rerr, &ns) || errors.As(rerr, &re) {
					return rerr
				}
				// The grant is intact: a token that is still valid is served, with the failure as
				// a warning; without one, the reader gets the failure itself.
				served, w, serr := serveGrant(tx.grant(), b.clock.Now(), sess.cfg)
				if serr != nil {
					return rerr
				}
				out, warnings = served, w
				return nil
			}
		}
		var serr error
		out, warnings, serr = serveGrant(tx.grant(), b.clock.Now(), sess.cfg)
		return serr
	})
	return out, warnings, err
}

// serveGrant decides what a reader gets from a grant that is not being refreshed now.
func serveGrant(g *grantEntry, now time.Time, cfg *configEntry) (*grantEntry, []string, error) {
	if g.needsReauth() {
		return nil, nil, newReauthError(g)
	}
	if !g.accessServable(now, cfg.LeaseSafetyMargin) {
		if g.LastError != "" {
			return nil, nil, &failedRefreshError{id: g.id(), meaning: lark.Meaning(g.FailureMeaning), msg: g.LastError,
				retryAt: formatTime(g.NextAttemptAt), url: g.ChallengeURL}
		}
		return nil, nil, fmt.Errorf("the user token of %s has no time left and could not be refreshed yet; read again", g.id())
	}
	if g.LastError == "" {
		return g, nil, nil
	}
	return g, []string{failureWarning(g)}, nil
}

// failureWarning tells a reader that the token served is fine but its grant has trouble.
func failureWarning(g *grantEntry) string {
	served := fmt.Sprintf("serving the current token, valid until %s", formatTime(g.AccessExpiresAt))
	switch lark.Meaning(g.FailureMeaning) {
	case lark.MeaningUserAction:
		w := fmt.Sprintf("Lark asks user %q to complete a verification before their token can be refreshed (%s)", g.Slot, g.LastError)
		if g.ChallengeURL != "" {
			w += "; they should open " + g.ChallengeURL
		}
		return w + "; " + served
	case lark.MeaningAppSetup:
		return fmt.Sprintf("Lark refuses to refresh user tokens of app %s (%s); fix the app's settings in the Lark developer console, the grant is kept; %s",
			g.AppID, g.LastError, served)
	}
	return fmt.Sprintf("refreshing the user token failed %d time(s) (%s); %s; next attempt at %s",
		g.FailuresInRow, g.LastError, served, formatTime(g.NextAttemptAt))
}

// refreshLocked spends the grant's refresh token once and stores the outcome. The caller holds the
// grant through tx. It returns nil when the new pair is stored; otherwise the failure, after
// recording it on the grant.
func (b *backend) refreshLocked(tx *grantTx, sess *appSession, cause string) error {
	g := tx.grant()
	now := b.clock.Now()
	if g.RefreshToken == "" {
		g.markReauth(now, 0, endNoRefreshToken, "Lark issued no refresh token (offline_access was not granted or the app may not refresh tokens)")
		return b.grantEnded(tx, cause)
	}
	if !g.GrantExpiresAt.IsZero() && !now.Before(g.GrantExpiresAt) {
		g.markReauth(now, 0, endYearLimit, "the grant reached Lark's 365-day limit after authorization")
		return b.grantEnded(tx, cause)
	}

	interrupted := g.InFlight
	// Record the attempt before the token leaves Vault: if this process dies before storing the
	// answer, the next refresh finds the mark and can say what happened.
	g.startRefresh(now)
	if err := tx.saveMark(); err != nil {
		g.InFlight = interrupted
		return fmt.Errorf("not refreshing %s: could not record the refresh first: %w", tx.id, err)
	}

	callCtx, cancel := context.WithTimeout(context.WithoutCancel(tx.ctx), refreshCallBudget(sess.cfg))
	defer cancel()
	tok, err := sess.lark.RefreshUserToken(callCtx, g.RefreshToken)
	lostAnswer := false
	if maybeSpent(err) {
		// Lark may or may not have used the token. Asking once more with the same token settles
		// it: success means it had not; "already used" means its answer was lost.
		lostAnswer = true
		b.Logger().Warn("refresh answer lost; asking Lark once more with the same refresh token", "grant", tx.id.String(), "error", err)
		tok, err = sess.lark.RefreshUserToken(callCtx, g.RefreshToken)
	}
	if err != nil {
		return b.refreshFailed(tx, sess, err, interrupted, lostAnswer, cause)
	}
	g.applyRefresh(tok, b.clock.Now())
	// A store app's notices to the user need the user's tenant; ask Lark for it when the grant
	// lacks it, as for an identity still unknown.
	if g.IdentityPending || (sess.app.isStore() && g.TenantKey == "") {
		b.settleIdentity(callCtx, tx, sess)
	}
	if err := tx.save(); err != nil {
		b.metrics.refresh("not_stored", "storage")
		return err
	}
	b.appStatus.clear(tx.ctx, tx.s, tx.id.App)
	b.metrics.refresh("ok", "")
	b.Logger().Debug("refreshed user token", "grant", tx.id.String(), "refresh_count", g.RefreshCount, "cause", cause)
	if err := tx.ctx.Err(); err != nil {
		return &lateError{id: tx.id, cause: err}
	}
	return nil
}

func maybeSpent(err error) bool {
	var le *lark.Error
	return errors.As(err, &le) && le.ConsumedMaybe()
}

// refreshFailed records a failed refresh on the grant by what the failure means.
func (b *backend) refreshFailed(tx *grantTx, sess *appSession, err error, interrupted *refreshInFlight, lostAnswer bool, cause string) error {
	g := tx.grant()
	now := b.clock.Now()
	var le *lark.Error
	errors.As(err, &le)
	meaning := meaningOf(err)
	if meaning == lark.MeaningGrantOver {
		end, reason := le.GrantEnd(), le.Reason()
		switch {
		case end == lark.GrantEndUsed && interrupted != nil:
			end = endInterrupted
			reason = fmt.Sprintf("an earlier refresh started at %s was interrupted after Lark had used the refresh token, so the new one never reached Vault", formatTime(interrupted.StartedAt))
		case end == lark.GrantEndUsed && lostAnswer:
			end = endLostAnswer
			reason = "Lark's answer to a refresh was lost in transit after Lark had used the refresh token"
		}
		g.markReauth(now, le.Code, end, reason)
		b.metrics.refresh("reauth_required", string(end))
		b.Logger().Error("user grant needs re-authorization", "grant", tx.id.String(), "code", le.Code, "reason", reason)
		return b.grantEnded(tx, cause)
	}

	// The grant stays. The in-flight mark stays too when Lark may have spent the token without
	// its answer reaching us (even if a later probe failed before reaching Lark): a later "already
	// used" is then explained instead of looking like a stranger's reuse.
	keepMark := lostAnswer || maybeSpent(err)
	switch meaning {
	case lark.MeaningUserAction:
		g.recordChallenge(now, err.Error(), le.ChallengeURL)
	case lark.MeaningAppSetup:
		g.recordFailure(now, meaning, err.Error(), keepMark)
		b.appStatus.flag(tx.ctx, tx.s, tx.id.App, le)
	default:
		g.recordFailure(now, meaning, err.Error(), keepMark)
	}
	b.metrics.refresh("failed", string(meaning))
	if serr := tx.save(); serr != nil {
		b.Logger().Warn("could not record a failed refresh", "grant", tx.id.String(), "error", serr)
	}
	b.Logger().Warn("refreshing user token failed", "grant", tx.id.String(), "meaning", meaning, "cause", cause, "error", err)
	return err
}

// grantEnded stores a grant that just became reauth_required and says so.
func (b *backend) grantEnded(tx *grantTx, cause string) error {
	g := tx.grant()
	b.sendEvent(tx.ctx, "lark/reauth-required", tx.id, cause)
	if err := tx.save(); err != nil {
		return fmt.Errorf("%s; recording that failed too: %w", newReauthError(g).Error(), err)
	}
	return newReauthError(g)
}

// settleIdentity asks Lark whose an imported grant is, now that a fresh access token exists. A grant
// that belongs to someone other than the slot's user ends here (and is revoked at Lark), so a slot
// never serves another person's token.
func (b *backend) settleIdentity(ctx context.Context, tx *grantTx, sess *appSession) {
	g := tx.grant()
	info, err := sess.lark.UserInfo(ctx, g.AccessToken)
	if err != nil {
		b.Logger().Warn("identity of an imported grant still unknown; asking again at its next refresh", "grant", tx.id.String(), "error", err)
		return
	}
	owner := g.identity()
	if binding, err := b.slots.get(ctx, tx.s, tx.id); err == nil && binding != nil {
		if merged, ok := owner.merge(binding.Identity); ok {
			owner = merged
		}
	}
	if owner.known() && !owner.matches(info) {
		g.markReauth(b.clock.Now(), 0, endIdentity, fmt.Sprintf("the imported token belongs to Lark user %s, not to the slot's user %s", info.OpenID, owner))
		b.revokeTokens(sess, g.RefreshToken, g.AccessToken)
		return
	}
	g.confirmIdentity(info)
}

// revokeTokens revokes user tokens at Lark, best effort: they belong to no grant any more. It runs
// on its own short context, since it often follows a request that is over.
func (b *backend) revokeTokens(sess *appSession, refreshToken, accessToken string) []error {
	var errs []error
	for _, t := range []struct{ tok, hint string }{{refreshToken, lark.TokenTypeHintRefreshToken}, {accessToken, lark.TokenTypeHintAccessToken}} {
		if t.tok == "" {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := sess.lark.RevokeToken(ctx, t.tok, t.hint)
		cancel()
		if err != nil {
			b.Logger().Warn("revoking a user token at Lark failed", "app_id", sess.app.AppID, "hint", t.hint, "error", err)
			errs = append(errs, fmt.Errorf("%s: %w", t.hint, err))
		}
	}
	return errs
}
