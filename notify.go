package larksecrets

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/lark-vault/vault-plugin-secrets-lark/clock"
	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
)

const (
	notifyStateKey = "sweep/notify"
	noticeLinkTTL  = 24 * time.Hour
)

// notifyState remembers where the schedule stands. Pending is set when a scheduled time passes and
// cleared only once every queued notice has been tried, so a sweep that runs out of time leaves the
// rest for the next sweep instead of the next scheduled time.
type notifyState struct {
	LastCheck time.Time `json:"last_check"`
	Pending   bool      `json:"pending,omitempty"`
}

// notifier queues notices and sends them as Lark messages on the schedule.
type notifier struct {
	clock    clock.Clock
	logger   func() hclog.Logger
	sessions *sessions
	tokens   *tokenService
	grants   *grantStore
	states   *stateStore
	apps     *appStatusStore
	metrics  *metrics
	// rollbacks holds the grants found after a storage rollback (rollback.go).
	rollbacks *rollbackStore
	remedies  func() remedies
}

// queue records that a grant reached a level whose notice was not sent yet. It returns true when a
// notice is (now) waiting.
func (n *notifier) queue(ctx context.Context, s logical.Storage, g *grantEntry, h grantHealth) (bool, error) {
	level := noticeLevel(h.Level)
	if g.notified(level) {
		return false, nil
	}
	return n.put(ctx, s, &notice{AppID: g.AppID, Slot: g.Slot, Level: level, Deadline: h.Deadline, Reason: h.Reason, Failing: h.Failing, QueuedAt: n.clock.Now()})
}

func (n *notifier) put(ctx context.Context, s logical.Storage, no *notice) (bool, error) {
	key := noticeKey(no.AppID, no.Slot, no.Level)
	if existing, err := s.Get(ctx, key); err != nil {
		return false, err
	} else if existing != nil {
		return true, nil
	}
	e, err := logical.StorageEntryJSON(key, no)
	if err != nil {
		return false, err
	}
	return true, s.Put(ctx, e)
}

// queueAppProblems queues one notice per app whose setup problem nobody was told about yet.
func (n *notifier) queueAppProblems(ctx context.Context, s logical.Storage) error {
	problems, err := n.apps.listProblems(ctx, s)
	if err != nil {
		return err
	}
	for appID, p := range problems {
		if !p.Notified.IsZero() {
			continue
		}
		if _, err := n.put(ctx, s, &notice{AppID: appID, Slot: appNoticeSlot, Level: levelAppSetup, Deadline: p.Since,
			Reason: fmt.Sprintf("%s (Lark code %d)", p.Reason, p.Code), QueuedAt: n.clock.Now()}); err != nil {
			return err
		}
	}
	return nil
}

// queueRollbackAlerts queues one storage-rollback alert per app where several grants were found
// holding refresh tokens Lark had already rotated (rollback.go).
func (n *notifier) queueRollbackAlerts(ctx context.Context, s logical.Storage) error {
	due, err := n.rollbacks.due(ctx, s)
	if err != nil {
		return err
	}
	for appID, rec := range due {
		if _, err := n.put(ctx, s, &notice{AppID: appID, Slot: appNoticeSlot, Level: levelRollback, Deadline: rec.FirstAt,
			Reason: rollbackSummary(rec), QueuedAt: n.clock.Now(),
			Rollback: &rollbackFacts{Count: rec.Count, Slots: rec.Slots, FirstAt: rec.FirstAt}}); err != nil {
			return err
		}
	}
	return nil
}

// send runs the notification pass: when the schedule has fired since the last check (or an earlier
// pass was cut short), every queued notice is tried until deadline. A notice Lark refuses stays
// queued for the next scheduled time.
func (n *notifier) send(ctx context.Context, s logical.Storage, cfg *configEntry, deadline time.Time, r *sweepReport) error {
	sched, err := parseSchedule(cfg.NotifySchedule, cfg.NotifyTimezone)
	if err != nil {
		return err
	}
	var st notifyState
	if raw, err := s.Get(ctx, notifyStateKey); err != nil {
		return err
	} else if raw != nil {
		if err := raw.DecodeJSON(&st); err != nil {
			return err
		}
	}
	now := n.clock.Now()
	if st.LastCheck.IsZero() {
		// First run: only scheduled times from now on count.
		st.LastCheck = now.Add(-time.Minute)
	}
	if _, fired := sched.firedBetween(st.LastCheck, now); fired {
		st.Pending = true
	}
	st.LastCheck = now
	if err := putJSON(ctx, s, notifyStateKey, &st); err != nil {
		return err
	}
	if !st.Pending {
		return nil
	}
	r.NoticePassRan = true
	if err := n.queueAppProblems(ctx, s); err != nil {
		n.logger().Warn("queueing app setup notices", "error", err)
	}
	if err := n.queueRollbackAlerts(ctx, s); err != nil {
		n.logger().Warn("queueing storage rollback alerts", "error", err)
	}
	keys, err := listRecursive(ctx, s, noticePrefix)
	if err != nil {
		return err
	}
	for _, key := range keys {
		if time.Now().After(deadline) {
			r.NoticesLeft = true
			return nil // still pending: the next sweep goes on
		}
		n.sendOne(ctx, s, noticePrefix+key, r)
	}
	st.Pending = false
	return putJSON(ctx, s, notifyStateKey, &st)
}

func (n *notifier) sendOne(ctx context.Context, s logical.Storage, key string, r *sweepReport) {
	raw, err := s.Get(ctx, key)
	if err != nil || raw == nil {
		return
	}
	var no notice
	if err := raw.DecodeJSON(&no); err != nil {
		_ = s.Delete(ctx, key)
		return
	}
	label := no.AppID + "/" + no.Slot + "/" + no.Level
	sess, err := n.sessions.open(ctx, s, no.AppID)
	if errors.Is(err, errAppNotConfigured) {
		_ = s.Delete(ctx, key) // the app is gone
		return
	} else if err != nil {
		return
	}
	fail := func(err error) {
		no.Attempts++
		no.LastError = err.Error()
		_ = putJSON(ctx, s, key, &no)
		n.metrics.notification("failed", no.Level)
		r.NotifyFailed = append(r.NotifyFailed, label)
		r.NotifyLastError = no.LastError
		n.logger().Warn("notice not sent; it stays queued for the next scheduled time",
			"app_id", no.AppID, "user", no.Slot, "level", no.Level, "attempts", no.Attempts, "error", err)
	}

	var messages []outgoing
	if no.Level == levelAppSetup || no.Level == levelRollback {
		messages = n.appMessages(sess, &no)
	} else {
		g, err := n.grants.get(ctx, s, grantID{no.AppID, no.Slot})
		if err != nil {
			return
		}
		if g == nil || g.notified(no.Level) {
			_ = s.Delete(ctx, key) // the grant is gone, or the notice went out already
			return
		}
		// A grant that moved past this level before the scheduled time gets only the newer notice:
		// "ends in 3 days" next to "has ended" is noise. The older one counts as sent.
		if now := n.clock.Now(); levelRank[noticeLevel(g.healthNow(now, sess.cfg).Level)] > levelRank[no.Level] {
			n.logger().Debug("notice superseded by a later level", "app_id", no.AppID, "user", no.Slot, "level", no.Level)
			if err := n.markSent(ctx, s, &no); err == nil {
				_ = s.Delete(ctx, key)
			}
			return
		}
		messages = n.grantMessages(ctx, s, sess, g, &no)
	}

	if len(messages) > 0 {
		if no.SentTo == nil {
			no.SentTo = map[string]bool{}
		}
		for _, m := range messages {
			if no.SentTo[m.to] {
				continue
			}
			// Lark keeps at most one message per uuid per hour: a retry after a lost answer cannot
			// deliver the notice twice.
			if err := n.sendNotice(ctx, s, sess, m, noticeUUID(key, m.to)); err != nil {
				fail(err)
				return
			}
			no.SentTo[m.to] = true
		}
	}

	// Record it first: a crash before the delete leaves a queued notice that the next run drops as
	// already sent, never a second message.
	if no.Level == levelRollback {
		if err := n.rollbacks.markAlerted(ctx, s, no.AppID, n.clock.Now()); err != nil {
			fail(err)
			return
		}
	} else if no.Level == levelAppSetup {
		if p, err := n.apps.load(ctx, s, no.AppID); err == nil && p != nil {
			err = n.apps.markNotified(ctx, s, no.AppID, p)
			if err != nil {
				fail(err)
				return
			}
		}
	} else if err = n.markSent(ctx, s, &no); err != nil {
		fail(err)
		return
	}
	_ = s.Delete(ctx, key)
	n.metrics.notification("sent", no.Level)
	r.Notified = append(r.Notified, label)
	n.logger().Info("notice sent", "app_id", no.AppID, "user", no.Slot, "level", no.Level, "recipients", len(messages))
}

// markSent records on the grant that a level's notice went out.
func (n *notifier) markSent(ctx context.Context, s logical.Storage, no *notice) error {
	return n.grants.withGrant(ctx, s, grantID{no.AppID, no.Slot}, func(tx *grantTx) error {
		if g := tx.grant(); g != nil {
			g.markNotified(no.Level, n.clock.Now())
			return tx.save()
		}
		return nil
	})
}

// outgoing is one notice to one reader: to an open_id, and for a store app within that person's
// tenant; as a card, and as the text sent where Lark refuses the card.
type outgoing struct {
	to, tenant string
	card       []byte
	text       string
}

// render builds the card and the text of one notice; view builds the notice with an escaper, once
// for card markdown and once for plain text. A card that cannot be encoded is left out: the text
// goes instead.
func render(to, tenant, locale string, view func(escaper) *noticeView) outgoing {
	w := wordsFor(locale)
	card, err := view(cardText).card(w)
	if err != nil {
		card = nil
	}
	return outgoing{to: to, tenant: tenant, card: card, text: view(plainText).text(w)}
}

// noticeLocation is where a notice's times are shown: the mount's notify_timezone.
func noticeLocation(cfg *configEntry) *time.Location {
	if cfg != nil {
		if loc, err := time.LoadLocation(cfg.NotifyTimezone); err == nil {
			return loc
		}
	}
	return time.UTC
}

func (n *notifier) grantMessages(ctx context.Context, s logical.Storage, sess *appSession, g *grantEntry, no *notice) []outgoing {
	var out []outgoing
	app, r, loc := sess.app, n.remedies(), noticeLocation(sess.cfg)
	for _, to := range app.NotifyOpenIDs {
		out = append(out, render(to, app.NotifyTenantKey, app.notifyLocale(), func(esc escaper) *noticeView {
			return grantView(app, g, no, r, false, "", loc, esc)
		}))
	}
	if app.NotifyUsers && g.OpenID != "" {
		link := n.userLink(ctx, s, sess, g)
		out = append(out, render(g.OpenID, g.TenantKey, app.notifyLocale(), func(esc escaper) *noticeView {
			return grantView(app, g, no, r, true, link, loc, esc)
		}))
	}
	return out
}

// appMessages are the app-wide notices to the app's admins: a setup Lark refuses, or a storage
// rollback (rollback.go).
func (n *notifier) appMessages(sess *appSession, no *notice) []outgoing {
	app, r, loc := sess.app, n.remedies(), noticeLocation(sess.cfg)
	view := func(esc escaper) *noticeView { return appView(app, no, r, loc, esc) }
	out := make([]outgoing, 0, len(app.NotifyOpenIDs))
	for _, to := range app.NotifyOpenIDs {
		out = append(out, render(to, app.NotifyTenantKey, app.notifyLocale(), view))
	}
	return out
}

// sendNotice sends one notice as a card, or as text where Lark refuses the card (a card it cannot
// build, or a tenant that takes none; lark-api.md §8a). The text has a uuid of its own, derived from
// the card's, so that a retry after a lost answer delivers neither twice.
func (n *notifier) sendNotice(ctx context.Context, s logical.Storage, sess *appSession, m outgoing, uuid string) error {
	if m.card != nil {
		err := n.sendWith(ctx, s, sess, m, func(tok string) error {
			_, err := sess.lark.SendCard(ctx, tok, m.to, m.card, uuid)
			return err
		})
		if !lark.IsKind(err, lark.KindCardRefused) {
			return err
		}
		n.logger().Warn("Lark refused the notice card; sending it as plain text", "app_id", sess.app.AppID, "error", err)
	}
	return n.sendWith(ctx, s, sess, m, func(tok string) error {
		_, err := sess.lark.SendText(ctx, tok, m.to, m.text, textUUID(uuid))
		return err
	})
}

// textUUID is the uuid of a notice's plain-text fallback, derived from the card's.
func textUUID(cardUUID string) string {
	sum := sha256.Sum256([]byte("text\x00" + cardUUID))
	return hex.EncodeToString(sum[:])[:40]
}

// sendWith makes one send with the tenant token of the recipient's organisation: a self-built
// app's one tenant token, or for a store app the token of the tenant m names. A token Lark rejects
// (expired early, revoked) is dropped and fetched again, once.
func (n *notifier) sendWith(ctx context.Context, s logical.Storage, sess *appSession, m outgoing, send func(tok string) error) error {
	ref := tokenRef{App: sess.app.AppID, Kind: kindTenant}
	if sess.app.isStore() {
		if m.tenant == "" {
			return errNoRecipientTenant
		}
		ref = tenantTokenRef(sess.app.AppID, m.tenant)
	}
	for attempt := 1; ; attempt++ {
		tok, _, err := n.tokens.getRef(ctx, s, ref)
		if err != nil {
			return err
		}
		err = send(tok.Token)
		if attempt == 1 && lark.IsKind(err, lark.KindTenantTokenInvalid) {
			n.logger().Warn("Lark rejected the cached tenant token; fetching a new one", "app_id", sess.app.AppID)
			n.tokens.rejectedRef(ctx, s, ref, tok.Token)
			continue
		}
		return err
	}
}

// errNoRecipientTenant: a store app's message needs the recipient's tenant, and Vault does not know
// it (admins without notify_tenant_key, or a grant whose user Lark has not yet named).
var errNoRecipientTenant = errors.New("this is a store app and Vault does not know the recipient's tenant: set notify_tenant_key on the app for notify_open_ids; a user's tenant is learned from Lark at the grant's next refresh")

func noticeUUID(key, openID string) string {
	sum := sha256.Sum256([]byte(key + "\x00" + openID))
	return hex.EncodeToString(sum[:])[:40]
}

// userLink starts an authorization for the user's own slot, pinned to their identity, so only they
// can use it; it is valid for a day because a message may be read hours later.
func (n *notifier) userLink(ctx context.Context, s logical.Storage, sess *appSession, g *grantEntry) string {
	link, _, err := n.states.begin(ctx, s, sess, pendingAuth{slot: g.Slot, scopes: g.Scopes, expected: g.identity(), ttl: noticeLinkTTL})
	if err != nil {
		return ""
	}
	return link
}

// listRecursive lists every key under prefix (relative to it), descending into "folders".
func listRecursive(ctx context.Context, s logical.Storage, prefix string) ([]string, error) {
	entries, err := s.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if strings.HasSuffix(e, "/") {
			sub, err := listRecursive(ctx, s, prefix+e)
			if err != nil {
				return nil, err
			}
			for _, k := range sub {
				out = append(out, e+k)
			}
			continue
		}
		out = append(out, e)
	}
	return out, nil
}
