package larksecrets

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
)

const (
	noticePrefix   = "notify/"
	notifyStateKey = "sweep/notify"
	noticeLinkTTL  = 24 * time.Hour
)

// noticeLevel maps a grant level to the notice sent for it: warning, critical, and one "expired"
// notice whether the grant ran out or was revoked.
func noticeLevel(level string) string {
	if level == levelReauthRequired {
		return levelExpired
	}
	return level
}

// notice is a queued message about one grant reaching one level. The queue lives in storage, so a
// notice survives restarts and leader changes until it is sent.
type notice struct {
	AppID     string          `json:"app_id"`
	Slot      string          `json:"slot"`
	Level     string          `json:"level"`
	Deadline  time.Time       `json:"deadline"`
	Reason    string          `json:"reason"`
	QueuedAt  time.Time       `json:"queued_at"`
	Attempts  int             `json:"attempts"`
	LastError string          `json:"last_error,omitempty"`
	SentTo    map[string]bool `json:"sent_to,omitempty"`
}

func noticeKey(appID, slot, level string) string {
	return noticePrefix + appID + "/" + slot + "/" + level
}

// queueNotice records that a grant reached a level whose notice was not sent yet. It returns true
// when a notice is (now) waiting.
func (b *backend) queueNotice(ctx context.Context, s logical.Storage, g *grantEntry, h grantHealth) (bool, error) {
	level := noticeLevel(h.Level)
	if !g.Notified[level].IsZero() {
		return false, nil
	}
	key := noticeKey(g.AppID, g.Slot, level)
	if existing, err := s.Get(ctx, key); err != nil {
		return false, err
	} else if existing != nil {
		return true, nil
	}
	e, err := logical.StorageEntryJSON(key, &notice{AppID: g.AppID, Slot: g.Slot, Level: level, Deadline: h.Deadline,
		Reason: h.Reason, QueuedAt: b.clock.Now()})
	if err != nil {
		return false, err
	}
	return true, s.Put(ctx, e)
}

type notifyState struct {
	LastCheck time.Time `json:"last_check"`
}

// sendNotifications sends queued notices when the schedule has fired since the last check. A
// notice that fails stays queued and is tried again at the next scheduled time.
func (b *backend) sendNotifications(ctx context.Context, s logical.Storage, cfg *configEntry, deadline time.Time, r *sweepReport) error {
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
	now := b.clock.Now()
	if st.LastCheck.IsZero() {
		// First run: only scheduled times from now on count.
		st.LastCheck = now.Add(-time.Minute)
	}
	_, fired := sched.firedBetween(st.LastCheck, now)
	st.LastCheck = now
	if e, err := logical.StorageEntryJSON(notifyStateKey, &st); err != nil {
		return err
	} else if err := s.Put(ctx, e); err != nil {
		return err
	}
	if !fired {
		return nil
	}

	keys, err := listRecursive(ctx, s, noticePrefix)
	if err != nil {
		return err
	}
	for _, key := range keys {
		if time.Now().After(deadline) {
			break
		}
		b.sendNotice(ctx, s, cfg, noticePrefix+key, r)
	}
	return nil
}

func (b *backend) sendNotice(ctx context.Context, s logical.Storage, cfg *configEntry, key string, r *sweepReport) {
	raw, err := s.Get(ctx, key)
	if err != nil || raw == nil {
		return
	}
	var n notice
	if err := raw.DecodeJSON(&n); err != nil {
		_ = s.Delete(ctx, key)
		return
	}
	label := n.AppID + "/" + n.Slot + "/" + n.Level
	g, err := b.loadGrant(ctx, s, n.AppID, n.Slot)
	if err != nil {
		return
	}
	app, err := b.getApp(ctx, s, n.AppID)
	if err != nil {
		return
	}
	if g == nil || app == nil || !g.Notified[n.Level].IsZero() {
		_ = s.Delete(ctx, key) // the grant or app is gone, or the notice went out already
		return
	}

	recipients := append([]string(nil), app.NotifyOpenIDs...)
	if app.NotifyUsers && g.OpenID != "" {
		recipients = append(recipients, g.OpenID)
	}
	fail := func(err error) {
		n.Attempts++
		n.LastError = err.Error()
		if e, perr := logical.StorageEntryJSON(key, &n); perr == nil {
			_ = s.Put(ctx, e)
		}
		b.metrics.notification("failed", n.Level)
		r.NotifyFailed = append(r.NotifyFailed, label)
		b.Logger().Warn("re-authorization notice not sent; it stays queued for the next scheduled time",
			"app_id", n.AppID, "user", n.Slot, "level", n.Level, "attempts", n.Attempts, "error", err)
	}
	if len(recipients) > 0 {
		tok, _, err := b.accessToken(ctx, s, n.AppID, kindTenant)
		if err != nil {
			fail(err)
			return
		}
		client, err := b.larkClient(app, cfg)
		if err != nil {
			fail(err)
			return
		}
		if n.SentTo == nil {
			n.SentTo = map[string]bool{}
		}
		for _, openID := range recipients {
			if n.SentTo[openID] {
				continue
			}
			text := noticeText(app, g, &n, b.mountName(), openID == g.OpenID, b.userLink(ctx, s, app, g, openID))
			// Lark keeps at most one message per uuid per hour: a retry after a lost answer cannot
			// deliver the notice twice.
			if _, err := client.SendText(ctx, tok.Token, openID, text, noticeUUID(key, openID)); err != nil {
				fail(err)
				return
			}
			n.SentTo[openID] = true
		}
	}

	// Record it on the grant first: a crash before the delete leaves a queued notice that the
	// next run drops as already sent, never a second message.
	unlock := b.grants.lock(n.AppID, n.Slot)
	g, err = b.reloadGrantLocked(ctx, s, n.AppID, n.Slot)
	if err == nil && g != nil {
		if g.Notified == nil {
			g.Notified = map[string]time.Time{}
		}
		g.Notified[n.Level] = b.clock.Now()
		err = b.storeGrant(ctx, s, g)
	}
	unlock()
	if err != nil {
		fail(err)
		return
	}
	_ = s.Delete(ctx, key)
	b.metrics.notification("sent", n.Level)
	r.Notified = append(r.Notified, label)
	b.Logger().Info("re-authorization notice sent", "app_id", n.AppID, "user", n.Slot, "level", n.Level, "recipients", len(recipients))
}

func noticeUUID(key, openID string) string {
	sum := sha256.Sum256([]byte(key + "\x00" + openID))
	return hex.EncodeToString(sum[:])[:40]
}

// userLink starts an authorization for the user's own slot, pinned to their open_id, so only they
// can use it; it is valid for a day because a message may be read hours later.
func (b *backend) userLink(ctx context.Context, s logical.Storage, app *appEntry, g *grantEntry, recipient string) string {
	if recipient != g.OpenID || app.RedirectURI == "" {
		return ""
	}
	cfg, err := b.getConfig(ctx, s)
	if err != nil {
		return ""
	}
	client, err := b.larkClient(app, cfg)
	if err != nil {
		return ""
	}
	state, err := newStateValue()
	if err != nil {
		return ""
	}
	verifier, err := lark.NewPKCEVerifier()
	if err != nil {
		return ""
	}
	scopes, err := normalizeScopes(app.Scopes, g.Scopes, []string{offlineAccessScope})
	if err != nil {
		return ""
	}
	link, err := client.AuthorizeURL(lark.AuthorizeRequest{RedirectURI: app.RedirectURI, State: state,
		CodeChallenge: lark.PKCEChallengeS256(verifier), Scopes: scopes})
	if err != nil {
		return ""
	}
	now := b.clock.Now()
	if err := b.putOAuthState(ctx, s, state, &oauthState{AppID: app.AppID, Slot: g.Slot, Verifier: verifier,
		RedirectURI: app.RedirectURI, Scopes: scopes, ExpectedOpenID: g.OpenID, CreatedAt: now, ExpiresAt: now.Add(noticeLinkTTL)}); err != nil {
		return ""
	}
	return link
}

func noticeText(app *appEntry, g *grantEntry, n *notice, mount string, toUser bool, link string) string {
	who := g.Name
	if who == "" {
		who = g.OpenID
	}
	var b strings.Builder
	switch n.Level {
	case levelExpired:
		fmt.Fprintf(&b, "[Vault] The Lark authorization of %s (slot %q) for app %s has ended: %s.\n", who, g.Slot, app.AppID, n.Reason)
		b.WriteString("What it means: services that read this user's token from Vault now get an error.\n")
	default:
		fmt.Fprintf(&b, "[Vault] The Lark authorization of %s (slot %q) for app %s ends on %s (%s): %s.\n",
			who, g.Slot, app.AppID, n.Deadline.UTC().Format("2006-01-02 15:04 MST"), n.Level, n.Reason)
		b.WriteString("What it means: after that, services that read this user's token from Vault get an error until the user authorizes again.\n")
	}
	if toUser && link != "" {
		fmt.Fprintf(&b, "What to do: open this link and approve (valid for 24 hours, only for you): %s\n", link)
	} else {
		fmt.Fprintf(&b, "What to do: the user authorizes again; start it with: vault write %soauth/%s/authorize user=%s\n", mount, app.AppID, g.Slot)
	}
	b.WriteString("This is not an app_secret problem: the app's secret works; only this user's grant needs renewing.")
	return b.String()
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
