package larksecrets

import (
	"context"
	"fmt"
	"net/http"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark/larkevent"
)

// Acting on the events Lark pushes to events/<app_id> (docs/lark-api.md §3, §11). The path
// (path_events.go) has decoded and verified the event; this file decides what it changes. Every
// change goes through the owning store: tickets, tenants, tokens, and grants through withGrant.

// Outcomes of an event, which are also the "result" label of lark_events_total.
const (
	eventAnswered = "answered" // URL verification
	eventAccepted = "accepted"
	eventIgnored  = "ignored"  // a type the plugin does not act on, or nothing to change
	eventStale    = "stale"    // authentic, but older than what is held (a late app_ticket)
	eventReplayed = "replayed" // an id acted on before
	eventTooOld   = "too_old"
	eventBadInput = "malformed" // authentic, but a value the plugin cannot keep (a tenant key)
	eventFailed   = "failed"    // storage failed; Lark delivers it again
	eventNoApp    = "unknown_app"
)

// eventOutcome is what handling one event came to. refused events change nothing and get the one
// public refusal; failed ones (err) get a 503 so that Lark delivers them again.
type eventOutcome struct {
	result  string
	refused bool
}

// eventTypeLabel keeps metric labels to the types the plugin knows.
func eventTypeLabel(t string) string {
	switch t {
	case larkevent.TypeURLVerification, larkevent.TypeAppTicket, larkevent.TypeAppOpen, larkevent.TypeAppUninstalled,
		larkevent.TypeAppStatusChange, larkevent.TypeUserTokenRevoked:
		return t
	}
	return "other"
}

// receiveEvent acts on one verified event (not a challenge), once per event id.
func (b *backend) receiveEvent(ctx context.Context, s logical.Storage, sess *appSession, ev *larkevent.Event) (eventOutcome, error) {
	switch ev.Type {
	case larkevent.TypeAppTicket, larkevent.TypeAppOpen, larkevent.TypeAppUninstalled, larkevent.TypeUserTokenRevoked:
	default:
		// Every event of the app arrives at this one URL; answering 200 stops Lark redelivering
		// what the plugin has no use for.
		return eventOutcome{result: eventIgnored}, nil
	}
	now := b.clock.Now()
	if !ev.CreatedAt.IsZero() && now.Sub(ev.CreatedAt) > eventMaxAge {
		return eventOutcome{result: eventTooOld, refused: true}, nil
	}
	appID := sess.app.AppID
	unlock := b.seenEvents.lock(appID, ev.ID)
	defer unlock()
	dup, err := b.seenEvents.seen(ctx, s, appID, ev.ID)
	if err != nil {
		return eventOutcome{result: eventFailed}, err
	}
	if dup {
		return eventOutcome{result: eventReplayed, refused: true}, nil
	}

	var out eventOutcome
	switch ev.Type {
	case larkevent.TypeAppTicket:
		out, err = b.receiveTicket(ctx, s, sess, ev)
	case larkevent.TypeAppOpen:
		out, err = b.receiveAppOpen(ctx, s, sess, ev)
	case larkevent.TypeAppUninstalled:
		out, err = b.receiveUninstall(ctx, s, sess, ev)
	case larkevent.TypeUserTokenRevoked:
		out, err = b.receiveRevocation(ctx, s, sess, ev)
	}
	if err != nil || out.refused {
		return out, err
	}
	// Remembered only once acted on: if acting failed, Lark's redelivery must get through.
	if err := b.seenEvents.remember(ctx, s, appID, ev.ID); err != nil {
		b.Logger().Warn("could not remember a handled event's id; a redelivery would be handled again", "app_id", appID, "type", ev.Type, "error", err)
	}
	return out, nil
}

func (b *backend) receiveTicket(ctx context.Context, s logical.Storage, sess *appSession, ev *larkevent.Event) (eventOutcome, error) {
	if !sess.app.isStore() {
		b.Logger().Warn("app_ticket event for an app configured as self_built; set app_type=store to use it", "app_id", sess.app.AppID)
		return eventOutcome{result: eventIgnored}, nil
	}
	now := b.clock.Now().UTC()
	issued := ev.CreatedAt
	if issued.IsZero() {
		issued = now
	}
	stored, err := b.tickets.offer(ctx, s, sess.app.AppID, &ticketEntry{
		Ticket: ev.AppTicket.Ticket, IssuedAt: issued.UTC(), ReceivedAt: now, Source: ticketSourceEvent, EventID: ev.ID,
	})
	if err != nil {
		return eventOutcome{result: eventFailed}, err
	}
	if !stored {
		return eventOutcome{result: eventStale}, nil
	}
	b.Logger().Info("received app_ticket", "app_id", sess.app.AppID, "encrypted", ev.Encrypted)
	return eventOutcome{result: eventAccepted}, nil
}

func (b *backend) receiveAppOpen(ctx context.Context, s logical.Storage, sess *appSession, ev *larkevent.Event) (eventOutcome, error) {
	tk := ev.AppOpen.TenantKey
	if validateTenantKey(tk) != nil {
		return eventOutcome{result: eventBadInput, refused: true}, nil
	}
	at := ev.CreatedAt
	if at.IsZero() {
		at = b.clock.Now()
	}
	if err := b.tenants.installed(ctx, s, sess.app.AppID, tk, at, ev.AppOpen.InstallerOpenID); err != nil {
		return eventOutcome{result: eventFailed}, err
	}
	b.Logger().Info("a tenant installed the app", "app_id", sess.app.AppID, "tenant_key", tk)
	return eventOutcome{result: eventAccepted}, nil
}

func (b *backend) receiveUninstall(ctx context.Context, s logical.Storage, sess *appSession, ev *larkevent.Event) (eventOutcome, error) {
	tk := ev.AppUninstalled.TenantKey
	if validateTenantKey(tk) != nil {
		return eventOutcome{result: eventBadInput, refused: true}, nil
	}
	if err := b.tenants.removed(ctx, s, sess.app.AppID, tk); err != nil {
		return eventOutcome{result: eventFailed}, err
	}
	// Lark stops accepting the tenant's tokens; serving the cached one would only fail later.
	b.tokens.dropRef(ctx, s, tenantTokenRef(sess.app.AppID, tk))
	b.Logger().Info("a tenant removed the app", "app_id", sess.app.AppID, "tenant_key", tk)
	return eventOutcome{result: eventAccepted}, nil
}

// receiveRevocation applies auth.user_access_token.revoked_v4 to every grant of the app that
// belongs to the user it names. A revoked refresh token ends the grant at once: reads get the
// re-authorization error with Lark's reason, admins (and the user, if enabled) get the notice, and
// no refresh token is spent to find out. A revoked access token alone only stops that token being
// served. A revocation older than the grant (the user authorized again since) changes nothing.
func (b *backend) receiveRevocation(ctx context.Context, s logical.Storage, sess *appSession, ev *larkevent.Event) (eventOutcome, error) {
	rev := ev.TokenRevoked
	appID := sess.app.AppID
	if rev.OpenID == "" && rev.UnionID == "" {
		// Only user_id: grants do not record it, so there is nothing to match.
		return eventOutcome{result: eventIgnored}, nil
	}
	slots, err := b.grants.slotsOfUser(ctx, s, appID, rev.OpenID, rev.UnionID, b.sweeper.indexBuilt)
	if err != nil {
		return eventOutcome{result: eventFailed}, err
	}
	endsGrant := rev.RefreshTokenRevoked
	// An unknown revoke_token_type revokes neither as far as larkevent can tell: drop the access
	// token and let the next refresh find out about the refresh token.
	reason := rev.Reason.Text()
	matched := 0
	for _, slot := range slots {
		id := grantID{appID, slot}
		g, err := b.grants.peek(ctx, s, id)
		if err != nil {
			return eventOutcome{result: eventFailed}, err
		}
		if g == nil || !g.revokedBy(rev.OpenID, rev.UnionID) || g.needsReauth() {
			continue
		}
		var ended *grantEntry
		err = b.grants.withGrant(ctx, s, id, func(tx *grantTx) error {
			g := tx.grant()
			now := b.clock.Now()
			switch {
			case g == nil || !g.revokedBy(rev.OpenID, rev.UnionID) || g.needsReauth():
				return nil
			case !ev.CreatedAt.IsZero() && ev.CreatedAt.Before(g.AuthorizedAt):
				return nil
			case endsGrant:
				g.markRevoked(now, reason)
				ended = g.clone()
			default:
				g.dropAccessToken(now)
			}
			matched++
			return tx.save()
		})
		if err != nil {
			return eventOutcome{result: eventFailed}, err
		}
		if ended != nil {
			b.grantRevoked(ctx, s, sess, id, ended)
		}
	}
	if matched == 0 {
		return eventOutcome{result: eventIgnored}, nil
	}
	return eventOutcome{result: eventAccepted}, nil
}

// grantRevoked tells everyone who should know that a revocation ended a grant: the metrics gauge,
// Vault's event bus, the log, and the notice queue (sent on the notify schedule).
func (b *backend) grantRevoked(ctx context.Context, s logical.Storage, sess *appSession, id grantID, g *grantEntry) {
	h := g.healthNow(b.clock.Now(), sess.cfg)
	b.sendEvent(ctx, "lark/reauth-required", id, "revocation_event")
	b.Logger().Warn("Lark revoked a user grant; it needs re-authorization", "grant", id.String(), "reason", g.ReauthReason)
	if _, err := b.notifier.queue(ctx, s, g, h); err != nil {
		b.Logger().Warn("could not queue the notice about a revoked grant; the next sweep queues it", "grant", id.String(), "error", err)
	}
}

// eventRefusedText is the one answer every refused event gets, whatever the reason: which check
// failed is for the operator's log and metrics, not for whoever sent the request.
const eventRefusedText = "event refused"

// eventRefusal is the raw refusal response: one status and one body for every cause, so that
// neither the check that failed nor whether the app id is configured can be read from it.
func eventRefusal() *logical.Response {
	return rawJSONResponse(http.StatusBadRequest, []byte(fmt.Sprintf(`{"error":%q}`, eventRefusedText)))
}

// rawJSONResponse answers with exactly this body and status (docs: Vault's raw responses).
func rawJSONResponse(status int, body []byte) *logical.Response {
	return &logical.Response{Data: map[string]interface{}{
		logical.HTTPStatusCode:  status,
		logical.HTTPContentType: "application/json",
		logical.HTTPRawBody:     body,
	}}
}
