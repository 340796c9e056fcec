package larksecrets

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark/larkevent"
)

// eventsPath is the unauthenticated receiver of Lark's event subscription: exactly one segment
// after events/, so no other path becomes reachable without a token.
const eventsPath = "events/+"

// eventWorkTimeout bounds acting on one event, well inside Vault's request limit.
const eventWorkTimeout = 60 * time.Second

const eventsHelp = `Lark's event subscription posts here: set the app's "Request URL" in the
developer console (Events & Callbacks) to

    https://<vault address>/v1/<mount>/events/<app_id>

and store the console's Verification Token and Encrypt Key in apps/<app_id>
(verification_token, encrypt_key). The path needs no Vault token: Lark has none. What
authenticates an event is what only Lark and Vault know: with an Encrypt Key, the body
must decrypt under it (AES-256-CBC); the Verification Token inside must match; the event
must be for this app. The X-Lark-Signature header is not checked, because Vault hands a
plugin the parsed JSON body, never the bytes the signature covers.

What the plugin acts on:
  url_verification                     answered with the challenge (plain or encrypted)
  app_ticket                           stored for the store app's app token
  app_open / app_uninstalled           the store app's tenant list (tenants/<app_id>/)
  auth.user_access_token.revoked_v4    the user's grants become reauth_required at once
Any other event type is answered with 200 and ignored.

Refused with one answer, HTTP 400 {"error":"event refused"}, changing nothing, whatever
the cause and whether or not the app is configured here: an app id that is unknown or has
no verification_token, a body over 512 KiB, a wrong token, a body that does not decrypt,
another app's event, a malformed event, an event id already handled (de-duplicated for
Lark's whole 7-hour redelivery period, even across a delete of the app), an event older
than that. Vault's log and lark_events_total say which. Expose only this path to the internet
(see the README's reverse-proxy example).`

func pathEvents(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern:      "events/(?P<app_id>.+)",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "event"},
		Fields: map[string]*framework.FieldSchema{
			"app_id": {
				Type:        framework.TypeString,
				Description: "The app whose event subscription posts here; it must be configured under apps/ with a verification_token. The request body is Lark's event itself.",
				Required:    true,
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{
				Callback: b.pathEventReceive,
				Summary:  "Receive one event from Lark (unauthenticated; Lark posts here).",
			},
		},
		HelpSynopsis:    "Where Lark posts an app's events: app_ticket, app_open, token revocations, URL verification.",
		HelpDescription: eventsHelp,
	}}
}

// pathEventReceive answers Lark. Every answer is a raw HTTP response: Lark counts only HTTP 200 as
// delivered (a Vault response without data would be 204), and refusals must all look alike.
func (b *backend) pathEventReceive(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	appID := d.Get("app_id").(string)
	if validateAppID(appID) != nil {
		b.metrics.event("unknown", eventNoApp)
		return eventRefusal(), nil
	}
	sess, err := b.sessions.open(ctx, req.Storage, appID)
	switch {
	case errors.Is(err, errAppNotConfigured):
		b.metrics.event("unknown", eventNoApp)
		b.Logger().Debug("event for an app that is not configured", "app_id", appID)
		return eventRefusal(), nil
	case err != nil:
		b.Logger().Error("event not processed: reading the app failed", "app_id", appID, "error", err)
		return nil, logical.CodedError(http.StatusServiceUnavailable, "event not processed; Lark delivers it again later")
	case sess.events == nil:
		b.metrics.event("unknown", eventNoApp)
		b.Logger().Warn("event refused: the app has no verification_token; store the console's Verification Token in apps/"+appID, "app_id", appID)
		return eventRefusal(), nil
	}

	ev, err := sess.events.DecodeMap(req.Data)
	if err != nil {
		// Not le.HTTPStatus(): an app that is not configured never gets this far, so a 413 for an
		// oversized body would tell a stranger which app ids are configured.
		reason := string(larkevent.ReasonMalformed)
		var le *larkevent.Error
		if errors.As(err, &le) {
			reason = string(le.Reason)
		}
		b.metrics.event("unknown", reason)
		b.Logger().Warn("event refused", "app_id", appID, "reason", reason)
		return eventRefusal(), nil
	}
	typ := eventTypeLabel(ev.Type)
	if ev.IsChallenge() {
		// Lark gives the URL check one second: answered from the decoded body, nothing stored.
		b.metrics.event(typ, eventAnswered)
		return rawJSONResponse(http.StatusOK, ev.ChallengeResponse()), nil
	}
	// Acting on an event writes storage: a standby hands it to the active node.
	if !b.WriteSafeReplicationState() {
		return nil, logical.ErrReadOnly
	}
	// Lark hangs up after 3 s and delivers again later. Acting on the event finishes regardless
	// (a revocation visits every grant of the app), so that the redelivery finds it done.
	workCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), eventWorkTimeout)
	defer cancel()
	out, err := b.receiveEvent(workCtx, req.Storage, sess, ev)
	b.metrics.event(typ, out.result)
	switch {
	case err != nil:
		b.Logger().Error("event not processed; Lark delivers it again", "app_id", appID, "type", typ, "error", err)
		return nil, logical.CodedError(http.StatusServiceUnavailable, "event not processed; Lark delivers it again later")
	case out.refused:
		b.Logger().Warn("event refused", "app_id", appID, "type", typ, "reason", out.result)
		return eventRefusal(), nil
	}
	return rawJSONResponse(http.StatusOK, []byte(`{"ok":true}`)), nil
}
