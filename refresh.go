package larksecrets

import (
	"context"
	"errors"
	"fmt"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/lark-vault/vault-plugin-secrets-lark/clock"
	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
)

// This file is the refresher: the one owner of every Lark call that can spend a single-use
// credential of a user grant (a refresh, a code exchange, an import; grant_intake.go has the last
// two). A refresh token works exactly once, so:
//   - every refresh of a grant runs under the grant's lock (grantStore.withGrant) and re-reads it;
//   - only a node that may write refreshes; others serve a still-valid token or forward;
//   - the in-flight mark is stored before the token leaves Vault, so a refresh interrupted by a
//     crash is recognised and explained later;
//   - Lark's call and the storing of its outcome run on contexts of their own: once Lark has acted,
//     the outcome is stored even if the reader, the request or the sweep is gone;
//   - every such call is admitted by the refresher's tracker, and a stop (reload, unmount, shutdown,
//     step-down) waits for the calls in flight before the process may end (stop, below);
//   - an answer that may have been lost is settled by asking once more with the same token (success:
//     it was not spent; "already used": the answer was lost);
//   - "already used" with no trace of an earlier attempt means the stored token is older than one
//     Lark rotated: storage was rolled back (rollback.go).
// See docs/lark-api.md §5 for Lark's rotation rules.

// refresher owns the refresh protocol and the calls in flight. The sweep, the token reads, the
// callback, the exchange and the import all go through it.
type refresher struct {
	clock     clock.Clock
	logger    func() hclog.Logger
	writable  func() bool // may this node write now (never a cached answer)
	config    *configStore
	sessions  *sessions
	grants    *grantStore
	slots     *slotStore
	appStatus *appStatusStore
	rollbacks *rollbackStore
	metrics   *metrics
	// events publishes on Vault's event bus (events.go); nothing depends on it.
	events func(ctx context.Context, eventType string, id grantID, operation string)

	calls callTracker
}

// stop is Cleanup's part: admit no new call, wait for the calls in flight to answer and be stored,
// then give the grants that storage refused a last chance. What Lark issued that still cannot be
// stored is revoked at Lark (nobody could ever use it again) and logged by grant.
func (rf *refresher) stop(ctx context.Context, s logical.Storage) {
	left := rf.calls.stop(ctx, rf.logger(), 5*time.Second)
	for _, c := range left {
		rf.logger().Error("stopping while Lark still holds the answer to a call; if Lark spent the credential, that grant must be authorized again",
			"call", c.what, "grant", c.id.String(), "waiting_since", time.Since(c.started).Round(time.Second).String())
	}
	if s == nil || rf.grants.unsavedCount() == 0 {
		return
	}
	stored, lost := rf.grants.flushUnsaved(ctx, s)
	for _, g := range lost {
		errs := []error{errAppNotConfigured}
		if sess, err := rf.sessions.open(ctx, s, g.AppID); err == nil {
			errs = rf.revoke(sess, g.RefreshToken, g.AccessToken)
		}
		rf.logger().Error("stopping with a grant whose newest tokens Vault could not store; they were revoked at Lark and the user must authorize again",
			"grant", g.id().String(), "revoked", len(errs) == 0)
	}
	if len(lost) > 0 || stored > 0 {
		rf.logger().Warn("grants left unsaved by storage failures at stop", "stored_now", stored, "lost", len(lost))
	}
}

// refreshCallBudget bounds one refresh at Lark: the call and, after a lost answer, the one probe.
func refreshCallBudget(cfg *configEntry) time.Duration {
	return 2*cfg.LarkRequestTimeout + 5*time.Second
}

// read returns the grant with an access token that is good for a lease, refreshing it first
// when it is due. Warnings tell the reader about trouble that did not stop the read.
//
// minTTL > 0 asks for a token whose lease lasts at least that long: a token that would end sooner is
// refreshed first, under the grant's lock like any refresh, so concurrent readers cause one refresh;
// a grant whose fresh tokens never last that long is refused (*shortUserTokenError), never
// refreshed again and again.
func (rf *refresher) read(ctx context.Context, s logical.Storage, id grantID, minTTL time.Duration) (*grantEntry, []string, error) {
	cfg, err := rf.config.get(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	g, err := rf.grants.get(ctx, s, id)
	if err != nil {
		return nil, nil, err
	}
	if g == nil {
		return nil, nil, errGrantNotFound
	}
	var need time.Duration
	if minTTL > 0 {
		// The lease ends lease_safety_margin before the token; a second more keeps the whole-second
		// TTL from falling short of min_ttl by the time the answer is built.
		need = minTTL + cfg.LeaseSafetyMargin + time.Second
	}
	now := rf.clock.Now()
	if !g.refreshDue(now, cfg.TokenRefreshWindow) && !needsLonger(g, now, need) {
		return serveLasting(g, now, cfg, need)
	}
	// Refreshing spends the single-use refresh token and must store its successor: a node that may
	// not write hands the request to one that may, unless the current token is still good.
	if !rf.writable() {
		if !g.needsReauth() && g.accessServable(now, cfg.LeaseSafetyMargin) && g.AccessExpiresAt.Sub(now) >= need {
			return g, nil, nil
		}
		return nil, nil, logical.ErrReadOnly
	}
	sess, err := rf.sessions.open(ctx, s, id.App)
	if err != nil {
		return nil, nil, err
	}
	end, err := rf.calls.begin("refresh", id, refreshCallBudget(sess.cfg))
	if err != nil {
		// Stopping: no new refresh. A token that is still good is served; the next plugin refreshes.
		if !g.needsReauth() && g.accessServable(now, cfg.LeaseSafetyMargin) && g.AccessExpiresAt.Sub(now) >= need {
			return g, []string{"the plugin is stopping, so the token was not refreshed now; the next read refreshes it"}, nil
		}
		return nil, nil, err
	}
	defer end()
	var (
		out      *grantEntry
		warnings []string
	)
	err = rf.grants.withGrant(ctx, s, id, func(tx *grantTx) error {
		g := tx.grant()
		if g == nil {
			return errGrantNotFound
		}
		if now := rf.clock.Now(); g.refreshDue(now, sess.cfg.TokenRefreshWindow) || needsLonger(g, now, need) {
			if rerr := rf.refreshHeld(tx, sess, "read"); rerr != nil {
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
				served, w, serr := serveGrant(tx.grant(), rf.clock.Now(), sess.cfg)
				if serr != nil {
					return rerr
				}
				out, warnings = served, w
				return nil
			}
		}
		var serr error
		out, warnings, serr = serveLasting(tx.grant(), rf.clock.Now(), sess.cfg, need)
		return serr
	})
	return out, warnings, err
}

// needsLonger: the reader asks for more life than the stored token has left, and a fresh token of
// this grant would have enough (Lark's last answer says how long its tokens live). A grant whose
// fresh tokens are too short is never refreshed for it: every reader would spend a refresh token.
func needsLonger(g *grantEntry, now time.Time, need time.Duration) bool {
	if need <= 0 || g.needsReauth() || now.Before(g.NextAttemptAt) || g.AccessExpiresAt.Sub(now) >= need {
		return false
	}
	life := g.AccessExpiresAt.Sub(g.LastRefreshAt)
	return g.LastRefreshAt.IsZero() || life >= need
}

// shortUserTokenError: the token served cannot last as long as the reader asked.
type shortUserTokenError struct {
	id        grantID
	expiresAt time.Time
	life      time.Duration // how long this grant's fresh tokens live
}

func (e *shortUserTokenError) Error() string {
	return fmt.Sprintf("min_ttl cannot be met for %s: its user token expires at %s, and Lark's user tokens for it live %s", e.id,
		formatTime(e.expiresAt), e.life.Round(time.Second))
}

// serveLasting is serveGrant for a reader who asked for need of remaining life.
func serveLasting(g *grantEntry, now time.Time, cfg *configEntry, need time.Duration) (*grantEntry, []string, error) {
	out, warnings, err := serveGrant(g, now, cfg)
	if err != nil || need <= 0 || g.AccessExpiresAt.Sub(now) >= need {
		return out, warnings, err
	}
	return nil, nil, &shortUserTokenError{id: g.id(), expiresAt: g.AccessExpiresAt, life: g.AccessExpiresAt.Sub(g.LastRefreshAt)}
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

// keepAlive refreshes a grant nobody read whose keep-alive point has come (the sweep's part). It
// reports whether the grant was refreshed; errStopping when the plugin is stopping.
func (rf *refresher) keepAlive(ctx context.Context, s logical.Storage, sess *appSession, id grantID) (bool, error) {
	end, err := rf.calls.begin("keep-alive refresh", id, refreshCallBudget(sess.cfg))
	if err != nil {
		return false, err
	}
	defer end()
	refreshed := false
	err = rf.grants.withGrant(ctx, s, id, func(tx *grantTx) error {
		g := tx.grant()
		if g == nil || !g.keepaliveDue(rf.clock.Now()) {
			return nil // a reader refreshed it meanwhile, or it was deleted
		}
		if err := rf.refreshHeld(tx, sess, "sweep"); err != nil {
			return err
		}
		refreshed = true
		return nil
	})
	return refreshed, err
}

// refreshHeld spends the grant's refresh token once and stores the outcome. The caller holds the
// grant through tx. It returns nil when the new pair is stored; otherwise the failure, after
// recording it on the grant.
func (rf *refresher) refreshHeld(tx *grantTx, sess *appSession, cause string) error {
	g := tx.grant()
	now := rf.clock.Now()
	if g.RefreshToken == "" {
		g.markReauth(now, 0, endNoRefreshToken, "Lark issued no refresh token (offline_access was not granted or the app may not refresh tokens)")
		return rf.grantEnded(tx, cause)
	}
	if !g.GrantExpiresAt.IsZero() && !now.Before(g.GrantExpiresAt) {
		g.markReauth(now, 0, endYearLimit, "the grant reached Lark's 365-day limit after authorization")
		return rf.grantEnded(tx, cause)
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
		rf.logger().Warn("refresh answer lost; asking Lark once more with the same refresh token", "grant", tx.id.String(), "error", err)
		tok, err = sess.lark.RefreshUserToken(callCtx, g.RefreshToken)
	}
	if err != nil {
		return rf.refreshFailed(tx, sess, err, interrupted, lostAnswer, cause)
	}
	g.applyRefresh(tok, rf.clock.Now())
	// A store app's notices to the user need the user's tenant; ask Lark for it when the grant
	// lacks it, as for an identity still unknown.
	if g.IdentityPending || (sess.app.isStore() && g.TenantKey == "") {
		rf.settleIdentity(callCtx, tx, sess)
	}
	if err := tx.save(); err != nil {
		rf.metrics.refresh("not_stored", "storage")
		return err
	}
	rf.appStatus.clear(tx.ctx, tx.s, tx.id.App)
	rf.metrics.refresh("ok", "")
	rf.logger().Debug("refreshed user token", "grant", tx.id.String(), "refresh_count", g.RefreshCount, "cause", cause)
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
func (rf *refresher) refreshFailed(tx *grantTx, sess *appSession, err error, interrupted *refreshInFlight, lostAnswer bool, cause string) error {
	g := tx.grant()
	now := rf.clock.Now()
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
		case end == lark.GrantEndUsed:
			// No refresh of this token was interrupted or lost here: the stored token is older than
			// one Lark has already rotated.
			end = endRolledBack
			reason = rolledBackReason
		}
		g.markReauth(now, le.Code, end, reason)
		if end == endRolledBack {
			rf.rollbacks.record(tx.ctx, tx.s, tx.id, now)
		}
		rf.metrics.refresh("reauth_required", string(end))
		rf.logger().Error("user grant needs re-authorization", "grant", tx.id.String(), "code", le.Code, "reason", reason)
		return rf.grantEnded(tx, cause)
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
		rf.appStatus.flag(tx.ctx, tx.s, tx.id.App, le)
	default:
		g.recordFailure(now, meaning, err.Error(), keepMark)
	}
	rf.metrics.refresh("failed", string(meaning))
	if serr := tx.save(); serr != nil {
		rf.logger().Warn("could not record a failed refresh", "grant", tx.id.String(), "error", serr)
	}
	rf.logger().Warn("refreshing user token failed", "grant", tx.id.String(), "meaning", meaning, "cause", cause, "error", err)
	return err
}

// grantEnded stores a grant that just became reauth_required and says so.
func (rf *refresher) grantEnded(tx *grantTx, cause string) error {
	g := tx.grant()
	rf.events(tx.ctx, "lark/reauth-required", tx.id, cause)
	if err := tx.save(); err != nil {
		return fmt.Errorf("%s; recording that failed too: %w", newReauthError(g).Error(), err)
	}
	return newReauthError(g)
}

// settleIdentity asks Lark whose an imported grant is, now that a fresh access token exists, and
// puts the answer to the slot admission policy (admission.go). A grant that belongs to someone other
// than the slot's user ends here (and is revoked at Lark), so a slot never serves another person's
// token.
func (rf *refresher) settleIdentity(ctx context.Context, tx *grantTx, sess *appSession) {
	g := tx.grant()
	info, err := sess.lark.UserInfo(ctx, g.AccessToken)
	if err != nil {
		rf.logger().Warn("identity of an imported grant still unknown; asking again at its next refresh", "grant", tx.id.String(), "error", err)
		return
	}
	claim := slotClaim{Holder: g.identity(), Incoming: info}
	if binding, err := rf.slots.get(ctx, tx.s, tx.id); err == nil && binding != nil {
		claim.Binding = binding.Identity
	}
	if d := decideSlot(claim); d.Refusal != admitted {
		g.markReauth(rf.clock.Now(), 0, endIdentity, fmt.Sprintf("the imported token belongs to Lark user %s, not to the slot's user %s", info.OpenID, d.Owner))
		rf.revoke(sess, g.RefreshToken, g.AccessToken)
		return
	}
	g.confirmIdentity(info)
}

// revoke revokes user tokens at Lark, best effort: they belong to no grant any more. It runs
// on its own short context, since it often follows a request that is over.
func (rf *refresher) revoke(sess *appSession, refreshToken, accessToken string) []error {
	var errs []error
	for _, t := range []struct{ tok, hint string }{{refreshToken, lark.TokenTypeHintRefreshToken}, {accessToken, lark.TokenTypeHintAccessToken}} {
		if t.tok == "" {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := sess.lark.RevokeToken(ctx, t.tok, t.hint)
		cancel()
		if err != nil {
			rf.logger().Warn("revoking a user token at Lark failed", "app_id", sess.app.AppID, "hint", t.hint, "error", err)
			errs = append(errs, fmt.Errorf("%s: %w", t.hint, err))
		}
	}
	return errs
}
