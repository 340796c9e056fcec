package larksecrets

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/time/rate"

	"github.com/lark-vault/vault-plugin-secrets-lark/clock"
	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
)

// Device login (RFC 8628, docs/lark-api.md §14): a slot is filled without any redirect. The person
// (or the bot's, CLI's or agent's operator) opens Lark's verification page on any device and approves
// a short user code; the plugin itself polls Lark on the active node until the answer comes, so
// nothing has to stay connected. The pending login lives in storage (device/<app>/<slot>, seal-
// wrapped: it holds the device code, a credential) and survives reloads and failovers. An approval
// ends in the same slot admission policy and grant intake as the browser flow (grant_intake.go).

const (
	devicePrefix       = "device/"
	deviceEntryVersion = 1
	// deviceKeepFinished: a finished login (approved, denied, expired, refused) stays readable this
	// long, so whoever started it can see how it ended; a new start replaces it at once.
	deviceKeepFinished = 24 * time.Hour
	// deviceFallbackExpiry and the interval fallback are what the official CLI assumes when Lark
	// names none (docs/lark-api.md §14).
	deviceFallbackExpiry = 240 * time.Second
	// deviceMaxBackoff bounds the wait after failed polls (Lark unreachable).
	deviceMaxBackoff = time.Minute
)

// Device login states.
const (
	deviceStatusPending   = "pending"
	deviceStatusApproved  = "approved"
	deviceStatusDenied    = "denied"
	deviceStatusExpired   = "expired"
	deviceStatusRefused   = "refused"   // approved by someone the slot does not belong to; revoked at Lark
	deviceStatusFailed    = "failed"    // Lark no longer accepts the device code, or issued an unusable grant
	deviceStatusCancelled = "cancelled" // deleted before anyone decided
)

// deviceLogin is one device login for a slot.
type deviceLogin struct {
	Version int    `json:"version"`
	AppID   string `json:"app_id"`
	Slot    string `json:"slot"`
	// DeviceCode redeems the approval: a credential, removed as soon as the login is over.
	DeviceCode              string       `json:"device_code,omitempty"`
	UserCode                string       `json:"user_code"`
	VerificationURI         string       `json:"verification_uri"`
	VerificationURIComplete string       `json:"verification_uri_complete,omitempty"`
	Scopes                  []string     `json:"scopes"`
	Expected                larkIdentity `json:"expected"`
	EntityID                string       `json:"entity_id,omitempty"`
	TokenAccessor           string       `json:"token_accessor,omitempty"`
	StartedAt               time.Time    `json:"started_at"`
	ExpiresAt               time.Time    `json:"expires_at"`
	IntervalSeconds         int          `json:"interval_seconds"`
	NextPollAt              time.Time    `json:"next_poll_at"`
	Polls                   int          `json:"polls"`
	FailuresInRow           int          `json:"failures_in_row,omitempty"`
	LastError               string       `json:"last_error,omitempty"`
	Status                  string       `json:"status"`
	Reason                  string       `json:"reason,omitempty"`
	FinishedAt              time.Time    `json:"finished_at,omitempty"`
}

func (dl *deviceLogin) id() grantID { return grantID{dl.AppID, dl.Slot} }

func (dl *deviceLogin) interval() time.Duration {
	return time.Duration(dl.IntervalSeconds) * time.Second
}

// finish ends the login: the device code goes, the outcome stays readable for a day.
func (dl *deviceLogin) finish(now time.Time, status, reason string) {
	dl.Status, dl.Reason, dl.FinishedAt = status, reason, now
	dl.DeviceCode = ""
	dl.NextPollAt = time.Time{}
}

func deviceKey(id grantID) string { return devicePrefix + id.App + "/" + id.Slot }

// deviceLogins owns the device logins: their storage, their locks, and the polling of Lark on the
// active node (by a loop of its own every second, and by Vault's periodic call as a fallback).
type deviceLogins struct {
	clock     clock.Clock
	logger    func() hclog.Logger
	writable  func() bool
	sessions  *sessions
	refresher *refresher
	limiter   func(appID string, perSecond int) *rate.Limiter

	locks []*locksutil.LockEntry

	mu sync.Mutex
	// due is when each pending login this node knows of is next polled (by the backend's clock).
	due    map[grantID]time.Time
	listed bool // due was filled from storage since this backend started (or since an Invalidate)

	loopStop chan struct{}
	loopDone chan struct{}
}

func newDeviceLogins(clk clock.Clock, logger func() hclog.Logger, writable func() bool, sess *sessions, rf *refresher,
	limiter func(string, int) *rate.Limiter) *deviceLogins {
	return &deviceLogins{clock: clk, logger: logger, writable: writable, sessions: sess, refresher: rf, limiter: limiter,
		locks: locksutil.CreateLocks(), due: map[grantID]time.Time{}}
}

func (d *deviceLogins) lock(id grantID) func() {
	l := locksutil.LockForKey(d.locks, deviceKey(id))
	l.Lock()
	return l.Unlock
}

func (d *deviceLogins) load(ctx context.Context, s logical.Storage, id grantID) (*deviceLogin, error) {
	raw, err := s.Get(ctx, deviceKey(id))
	if err != nil || raw == nil {
		return nil, err
	}
	var dl deviceLogin
	if err := raw.DecodeJSON(&dl); err != nil {
		return nil, fmt.Errorf("decoding device login %s: %w", id, err)
	}
	return &dl, nil
}

// get is the login of a slot, for reads (nil when there is none).
func (d *deviceLogins) get(ctx context.Context, s logical.Storage, id grantID) (*deviceLogin, error) {
	return d.load(ctx, s, id)
}

func (d *deviceLogins) save(ctx context.Context, s logical.Storage, dl *deviceLogin) error {
	dl.Version = deviceEntryVersion
	ctx, cancel := detachedStore(ctx)
	defer cancel()
	if err := putJSON(ctx, s, deviceKey(dl.id()), dl); err != nil {
		return err
	}
	d.mu.Lock()
	if dl.Status == deviceStatusPending {
		d.due[dl.id()] = dl.NextPollAt
	} else {
		delete(d.due, dl.id())
	}
	d.mu.Unlock()
	return nil
}

// list names the slots of an app that have a device login.
func (d *deviceLogins) list(ctx context.Context, s logical.Storage, appID string) ([]string, error) {
	return s.List(ctx, devicePrefix+appID+"/")
}

// deviceStart is what a start asks for.
type deviceStart struct {
	id            grantID
	scopes        []string
	expected      larkIdentity
	entityID      string
	tokenAccessor string
}

// start asks Lark for a device code and a user code for the slot and stores the pending login,
// replacing any earlier login of the slot (an abandoned device code is simply never redeemed).
func (d *deviceLogins) start(ctx context.Context, s logical.Storage, sess *appSession, in deviceStart) (*deviceLogin, error) {
	if !d.refresher.calls.admitting() {
		return nil, errStopping
	}
	scopes, err := normalizeScopes(sess.app.Scopes, in.scopes, []string{offlineAccessScope})
	if err != nil {
		return nil, fmt.Errorf("scopes: %w", err)
	}
	unlock := d.lock(in.id)
	defer unlock()
	auth, err := sess.lark.StartDeviceAuthorization(ctx, scopes)
	if err != nil {
		return nil, err
	}
	now := d.clock.Now()
	expires := auth.ExpiresIn
	if expires <= 0 {
		expires = deviceFallbackExpiry
	}
	interval := auth.Interval
	if interval <= 0 {
		interval = lark.DefaultDeviceInterval
	}
	dl := &deviceLogin{
		AppID: in.id.App, Slot: in.id.Slot, DeviceCode: auth.DeviceCode, UserCode: auth.UserCode,
		VerificationURI: auth.VerificationURI, VerificationURIComplete: auth.VerificationURIComplete,
		Scopes: scopes, Expected: in.expected, EntityID: in.entityID, TokenAccessor: in.tokenAccessor,
		StartedAt: now, ExpiresAt: now.Add(expires), IntervalSeconds: int(interval / time.Second),
		NextPollAt: now.Add(interval), Status: deviceStatusPending,
	}
	if err := d.save(ctx, s, dl); err != nil {
		return nil, err
	}
	d.logger().Info("device login started", "grant", in.id.String(), "expires_at", formatTime(dl.ExpiresAt))
	return dl, nil
}

// cancel ends a pending login; a finished one is forgotten.
func (d *deviceLogins) cancel(ctx context.Context, s logical.Storage, id grantID) (bool, error) {
	unlock := d.lock(id)
	defer unlock()
	dl, err := d.load(ctx, s, id)
	if err != nil || dl == nil {
		return false, err
	}
	if dl.Status != deviceStatusPending {
		d.forget(id)
		return true, s.Delete(ctx, deviceKey(id))
	}
	dl.finish(d.clock.Now(), deviceStatusCancelled, "cancelled before anyone decided")
	return true, d.save(ctx, s, dl)
}

func (d *deviceLogins) forget(id grantID) {
	d.mu.Lock()
	delete(d.due, id)
	d.mu.Unlock()
}

// invalidate: another node changed a login; learn the pending ones from storage again.
func (d *deviceLogins) invalidate(id grantID) {
	d.mu.Lock()
	delete(d.due, id)
	d.listed = false
	d.mu.Unlock()
}

// fill learns the pending logins from storage: once per backend life (a new active node, a reload),
// after an Invalidate, and on every periodic call. Finished logins past deviceKeepFinished go.
func (d *deviceLogins) fill(ctx context.Context, s logical.Storage) error {
	keys, err := listRecursive(ctx, s, devicePrefix)
	if err != nil {
		return err
	}
	now := d.clock.Now()
	found := map[grantID]time.Time{}
	for _, k := range keys {
		id, ok := parseGrantID(k)
		if !ok {
			continue
		}
		dl, err := d.load(ctx, s, id)
		if err != nil || dl == nil {
			continue
		}
		switch {
		case dl.Status == deviceStatusPending:
			found[id] = dl.NextPollAt
		case now.Sub(dl.FinishedAt) > deviceKeepFinished && d.writable():
			unlock := d.lock(id)
			if cur, err := d.load(ctx, s, id); err == nil && cur != nil && cur.Status != deviceStatusPending {
				_ = s.Delete(ctx, deviceKey(id))
			}
			unlock()
		}
	}
	d.mu.Lock()
	d.due, d.listed = found, true
	d.mu.Unlock()
	return nil
}

// pollDue polls every pending login whose time has come. It returns how many it polled.
func (d *deviceLogins) pollDue(ctx context.Context, s logical.Storage) int {
	if !d.writable() {
		return 0
	}
	d.mu.Lock()
	listed := d.listed
	d.mu.Unlock()
	if !listed {
		if err := d.fill(ctx, s); err != nil {
			d.logger().Warn("device logins: listing pending logins failed", "error", err)
			return 0
		}
	}
	now := d.clock.Now()
	var ids []grantID
	d.mu.Lock()
	for id, at := range d.due {
		if !now.Before(at) {
			ids = append(ids, id)
		}
	}
	d.mu.Unlock()
	polled := 0
	for _, id := range ids {
		if d.pollOne(ctx, s, id) {
			polled++
		}
	}
	return polled
}

// pollOne polls one login once, if it is still pending and due, and records the outcome.
func (d *deviceLogins) pollOne(ctx context.Context, s logical.Storage, id grantID) bool {
	unlock := d.lock(id)
	defer unlock()
	dl, err := d.load(ctx, s, id)
	if err != nil {
		d.logger().Warn("device login: reading it failed", "grant", id.String(), "error", err)
		return false
	}
	if dl == nil || dl.Status != deviceStatusPending {
		d.forget(id)
		return false
	}
	now := d.clock.Now()
	if now.Before(dl.NextPollAt) {
		d.mu.Lock()
		d.due[id] = dl.NextPollAt
		d.mu.Unlock()
		return false
	}
	if !now.Before(dl.ExpiresAt) {
		dl.finish(now, deviceStatusExpired, "the user code expired before anyone approved it; start a new device login")
		d.record(ctx, s, dl)
		return false
	}
	sess, err := d.sessions.open(ctx, s, id.App)
	if err != nil {
		if errors.Is(err, errAppNotConfigured) {
			dl.finish(now, deviceStatusFailed, "the app is no longer configured in Vault")
			d.record(ctx, s, dl)
		}
		return false
	}
	if lim := d.limiter(id.App, sess.cfg.KeepaliveRate); lim != nil && !lim.AllowN(d.clock.Now(), 1) {
		return false // the app's Lark budget is spent for this second; the next round polls
	}
	// The answer that carries an approval spends the device code: the poll is a call of the
	// refresher, admitted and tracked until the grant and the login's new state are both stored,
	// so a stop waits for the whole outcome (a login left pending would be polled again by the
	// next plugin with a spent code, and end as "failed" although its grant is stored).
	end, err := d.refresher.calls.begin("device login poll", id, exchangeBudget(sess.cfg))
	if err != nil {
		return false // stopping: the next plugin polls
	}
	defer end()
	res, err := d.refresher.pollDevice(ctx, s, sess, dl)
	now = d.clock.Now()
	dl.Polls++
	switch {
	case err != nil && res == nil:
		// The poll did not settle anything: Lark unreachable, the app's setup refused. Back off;
		// the login's expiry ends it if this lasts.
		dl.FailuresInRow++
		dl.LastError = err.Error()
		dl.NextPollAt = now.Add(min(dl.interval()*time.Duration(1<<min(dl.FailuresInRow, 4)), deviceMaxBackoff))
	case res.poll != nil && !res.poll.Final():
		dl.FailuresInRow, dl.LastError = 0, ""
		dl.IntervalSeconds = int(res.poll.Interval / time.Second)
		dl.NextPollAt = now.Add(res.poll.Interval)
	default:
		dl.finish(now, res.status, res.reason)
		d.logger().Info("device login finished", "grant", id.String(), "status", res.status)
	}
	d.record(ctx, s, dl)
	return true
}

// record stores a login's new state; a failure is logged (the login's expiry bounds the harm).
func (d *deviceLogins) record(ctx context.Context, s logical.Storage, dl *deviceLogin) {
	if err := d.save(ctx, s, dl); err != nil {
		d.logger().Warn("device login: storing its state failed", "grant", dl.id().String(), "error", err)
	}
}

// startLoop polls pending logins every second on the active node, until stopLoop.
func (d *deviceLogins) startLoop(s logical.Storage) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.loopStop != nil || s == nil {
		return
	}
	d.loopStop, d.loopDone = make(chan struct{}), make(chan struct{})
	go func(stop <-chan struct{}, done chan<- struct{}) {
		defer close(done)
		ticker := time.NewTicker(time.Second)
		defer ticker.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ticker.C:
			}
			d.mu.Lock()
			idle := d.listed && len(d.due) == 0
			d.mu.Unlock()
			if !idle {
				d.pollDue(context.Background(), s)
			}
		}
	}(d.loopStop, d.loopDone)
}

// stopLoop ends the loop and waits for a poll under way.
func (d *deviceLogins) stopLoop() {
	d.mu.Lock()
	stop, done := d.loopStop, d.loopDone
	d.loopStop = nil
	d.mu.Unlock()
	if stop == nil {
		return
	}
	close(stop)
	<-done
}

// deviceResult is what one poll came to.
type deviceResult struct {
	poll   *lark.DevicePoll // Lark's outcome (nil when the poll failed)
	status string           // the login's final status when it is over
	reason string
	grant  *grantEntry
}

// pollDevice polls Lark once for a device login. The answer that carries an approval spends the
// device code, so the caller (pollOne) has admitted the poll as a call of the refresher, tracked
// until the login's new state is stored and waited for at stop. An approval goes through the grant
// intake: the slot admission policy decides, and what is not kept is revoked at Lark.
func (rf *refresher) pollDevice(ctx context.Context, s logical.Storage, sess *appSession, dl *deviceLogin) (*deviceResult, error) {
	id := dl.id()
	callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), exchangeBudget(sess.cfg))
	defer cancel()
	poll, err := sess.lark.PollDeviceToken(callCtx, dl.DeviceCode, dl.interval())
	if err != nil {
		if lark.IsKind(err, lark.KindCodeInvalid) {
			return &deviceResult{status: deviceStatusFailed, reason: fmt.Sprintf("Lark no longer accepts this login's device code (%v); start a new device login", err)}, nil
		}
		return nil, err
	}
	switch poll.Status {
	case lark.DevicePending, lark.DeviceSlowDown:
		return &deviceResult{poll: poll}, nil
	case lark.DeviceDenied:
		return &deviceResult{poll: poll, status: deviceStatusDenied, reason: "the user declined in Lark"}, nil
	case lark.DeviceExpired:
		return &deviceResult{poll: poll, status: deviceStatusExpired, reason: "Lark says the user code expired; start a new device login"}, nil
	}
	g, out, err := rf.intake(callCtx, s, sess, intakeRequest{id: id, tok: poll.Token, expected: dl.Expected, entityID: dl.EntityID})
	res := &deviceResult{poll: poll, grant: g}
	switch {
	case out == intakeStored:
		res.status, res.reason = deviceStatusApproved, fmt.Sprintf("approved by Lark user %s; the grant is stored", g.OpenID)
		rf.events(ctx, "lark/user-authorized", id, "device-login")
	case strings.HasPrefix(string(out), string(intakeRefused)):
		res.status = deviceStatusRefused
		res.reason = "approved by a Lark user the slot does not belong to; nothing was stored and the authorization was revoked at Lark"
	case out == intakeNoRefreshToken:
		res.status, res.reason = deviceStatusFailed, "Lark issued no refresh token: the app needs the offline_access scope and token refresh switched on in the developer console"
	case out == intakeWhoUnknown:
		res.status, res.reason = deviceStatusFailed, "Vault could not ask Lark who approved, so it stored nothing (the authorization was revoked); start a new device login"
	default:
		res.status = deviceStatusFailed
		res.reason = fmt.Sprintf("Vault could not store the approved grant (%v); start a new device login", err)
		var ns *notStoredError
		if errors.As(err, &ns) {
			res.status, res.reason = deviceStatusApproved, "approved; Vault's storage refused the grant for now, it is kept in memory and stored at its next access"
		}
	}
	return res, nil
}
