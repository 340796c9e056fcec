package larksecrets

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
)

const callbackPath = "oauth/callback"

// Lark's codes are [A-Za-z0-9-_]; anything else is not a code Lark sent.
var codePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,512}$`)

func pathOAuth(b *backend) []*framework.Path {
	startFields := func() map[string]*framework.FieldSchema {
		f := map[string]*framework.FieldSchema{
			"app_id": appIDField,
			"user":   userSlotField,
			"scopes": {
				Type:        framework.TypeCommaStringSlice,
				Description: "Extra scopes for this authorization, on top of the app's scopes; offline_access is always requested.",
			},
			"expected_open_id": {
				Type:        framework.TypeString,
				Description: "The Lark user (open_id, ou_...) who must sign in. On authorize it may only repeat the slot's own user (from the slot's binding, its current grant or the requester's Vault identity); on replace, administrators may name anyone, or leave it empty to accept whoever signs in.",
			},
		}
		return f
	}
	start := func(replace bool) framework.OperationFunc {
		return func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
			return b.pathOAuthStart(ctx, req, d, replace)
		}
	}
	paths := []*framework.Path{
		{
			Pattern:      callbackPath + "$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "oauth-callback"},
			// No Fields: the framework would answer a repeated parameter (a list) with a JSON
			// validation error that quotes the values; the handler reads the query itself and
			// always answers the browser with a page. The parameters are described below.
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: b.pathOAuthCallback,
					Summary:  "Where Lark redirects the browser after authorization (unauthenticated). Answers with an HTML page.",
				},
			},
			HelpSynopsis: "The OAuth redirect target: exchanges the code and stores the user's grant.",
			HelpDescription: `Lark redirects the user's browser here with code and state. This path needs no Vault
token (the browser has none); the single-use state, created by an authenticated
oauth/<app_id>/authorize request within the last 10 minutes, is what authorizes it.
The answer is a small HTML page that never contains a token.

Query parameters (set by Lark, not by people):
    code               the authorization code (single use, 5 minutes)
    state              the state value from the authorize URL
    error              "access_denied" when the user declined, instead of code
    error_description  Lark's explanation when error is set`,
		},
		{
			Pattern:      "oauth/(?P<app_id>[^/]+)/exchange$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "oauth-exchange"},
			Fields: map[string]*framework.FieldSchema{
				"app_id": appIDField,
				// Both redeem a pending authorization once: credentials, never echoed.
				"code": {Type: framework.TypeString, Description: "The authorization code your redirect page received.", Required: true,
					DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
				"state": {Type: framework.TypeString, Description: "The state your redirect page received.", Required: true,
					DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback: b.pathOAuthExchange,
					Summary:  "Complete an authorization whose redirect landed in your own app.",
				},
			},
			HelpSynopsis: "Complete an authorization with a code and state received elsewhere.",
			HelpDescription: `For setups where redirect_uri points at the team's own app rather than at Vault: that
page writes code and state here. Only whoever started the
authorization may complete it: the same Vault entity, or, for a token without an
entity (root, "vault token create"), the same token. Returns the grant's status,
never a token.`,
		},
	}
	// Each start path exists with the slot in the body and with the slot in the path; the second
	// lets an identity-templated policy pin the slot. (One pattern with an optional group would
	// overwrite a body "user" with an empty capture.)
	for _, suffix := range []string{"$", "/(?P<user>[^/]+)$"} {
		paths = append(paths,
			&framework.Path{
				Pattern:      "oauth/(?P<app_id>[^/]+)/authorize" + suffix,
				DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "oauth-authorize"},
				Fields:       startFields(),
				Operations: map[logical.Operation]framework.OperationHandler{
					logical.UpdateOperation: &framework.PathOperation{
						Callback: start(false),
						Summary:  "Start an authorization for a user slot: returns the URL to open in a browser.",
					},
				},
				HelpSynopsis:    "Start an authorization for a user slot.",
				HelpDescription: authorizeHelp,
			},
			&framework.Path{
				Pattern:      "oauth/(?P<app_id>[^/]+)/replace" + suffix,
				DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "oauth-replace"},
				Fields:       startFields(),
				Operations: map[logical.Operation]framework.OperationHandler{
					logical.UpdateOperation: &framework.PathOperation{
						Callback: start(true),
						Summary:  "Like authorize, but the slot may end up holding a different Lark user (admins).",
					},
				},
				HelpSynopsis:    "Start an authorization that may give a slot to a different Lark user.",
				HelpDescription: "Like oauth/<app_id>/authorize, but for administrators: the slot may end up holding a different Lark user than today, expected_open_id may name anyone (or be left empty to accept whoever signs in), and a slot with no Lark identity bound can be authorized. Grant this path to administrators only.",
			})
	}
	return paths
}

const authorizeHelp = `Returns authorize_url, valid for 10 minutes and usable once. The person opens it,
signs in to Lark and approves; Lark then redirects to the app's redirect_uri.

The slot can be named in the path (oauth/<app_id>/authorize/<user>), which lets an
identity-templated policy allow each person to start an authorization only for their
own slot, or in the "user" field.

Only the slot's own Lark user can complete the authorization, so a link forwarded to
someone else is refused at the callback. Who that user is comes from, in order: the
slot's binding (slots/<app_id>/<user>, written by administrators), the Lark user whose
grant the slot already holds, and the requester's Vault identity if the app names where
to find it (identity_metadata_key or identity_alias_mount). A slot with none of these is
refused with instructions. Use oauth/<app_id>/replace (administrators) to hand a slot
to someone else.`

func (b *backend) pathOAuthStart(ctx context.Context, req *logical.Request, d *framework.FieldData, replace bool) (*logical.Response, error) {
	id, errResp := grantIDFrom(d)
	if errResp != nil {
		return errResp, nil
	}
	var asked larkIdentity
	if raw := d.Get("expected_open_id").(string); raw != "" {
		if !openIDPattern.MatchString(raw) {
			return logical.ErrorResponse("expected_open_id %q is not a Lark open_id (ou_...)", truncateForMessage(raw)), nil
		}
		asked = larkIdentity{OpenID: raw}
	}
	r := remediesFor(req)
	sess, err := b.sessions.open(ctx, req.Storage, id.App)
	if err != nil {
		return nil, r.httpError(id.App, err)
	}
	if sess.app.RedirectURI == "" {
		return logical.ErrorResponse("app %s has no redirect_uri; set it first: vault write %sapps/%s redirect_uri=https://<vault>/v1/%soauth/callback", id.App, r.mount, id.App, r.mount), nil
	}
	if _, err := normalizeScopes(sess.app.Scopes, d.Get("scopes").([]string), []string{offlineAccessScope}); err != nil {
		return logical.ErrorResponse("scopes: %s", err.Error()), nil
	}
	expected := asked
	if !replace {
		var refusal error
		expected, refusal = b.selfServiceIdentity(ctx, req, sess, id, asked)
		if refusal != nil {
			return nil, refusal
		}
	}
	link, st, err := b.states.begin(ctx, req.Storage, sess, pendingAuth{
		slot:          id.Slot,
		scopes:        d.Get("scopes").([]string),
		expected:      expected,
		entityID:      req.EntityID,
		tokenAccessor: req.ClientTokenAccessor,
		replace:       replace,
		ttl:           oauthStateTTL,
	})
	if err != nil {
		if strings.HasPrefix(err.Error(), "scopes: ") {
			return logical.ErrorResponse(err.Error()), nil
		}
		var le *lark.Error
		if errors.As(err, &le) {
			return logical.ErrorResponse(le.Error()), nil
		}
		return nil, err
	}
	return &logical.Response{Data: map[string]interface{}{
		"authorize_url":     link,
		"expires_at":        formatTime(st.ExpiresAt),
		"app_id":            id.App,
		"user":              id.Slot,
		"redirect_uri":      sess.app.RedirectURI,
		"scopes":            st.Scopes,
		"replaces_holder":   replace,
		"expected_open_id":  expected.OpenID,
		"expected_union_id": expected.UnionID,
	}}, nil
}

// selfServiceIdentity decides who may complete a self-service authorization of slot id: the slot's
// own Lark user, combined with the requester's Lark identity where the app says how to find it. A
// requester can never name someone else (a link forwarded to a colleague would otherwise capture
// the colleague's grant into the requester's slot).
func (b *backend) selfServiceIdentity(ctx context.Context, req *logical.Request, sess *appSession, id grantID, asked larkIdentity) (larkIdentity, error) {
	r := remediesFor(req)
	owner, err := slotOwner(ctx, req.Storage, &b.slots, b.grants, id)
	if err != nil {
		return larkIdentity{}, err
	}
	requester, source, rerr := requesterIdentity(b.System(), req, sess.app)
	if rerr != nil && !errors.Is(rerr, errNoEntity) {
		return larkIdentity{}, logical.CodedError(http.StatusBadRequest, fmt.Sprintf("your Vault identity names no usable Lark user: %v", rerr))
	}
	expected := owner
	if requester.known() {
		merged, ok := owner.merge(requester)
		if !ok {
			return larkIdentity{}, logical.CodedError(http.StatusForbidden, fmt.Sprintf(
				"slot %q of %s belongs to Lark user %s, but your Vault identity (%s) is Lark user %s; only the slot's user may authorize it. An administrator can hand the slot over with: %s",
				id.Slot, id.App, owner, source, requester, r.replaceCommand(id)))
		}
		expected = merged
	}
	if asked.known() {
		// A requester may repeat who the slot's user is, never add someone: an open_id Vault cannot
		// tie to the slot's user is refused even when it does not contradict a union_id.
		if asked.OpenID != expected.OpenID {
			return larkIdentity{}, logical.CodedError(http.StatusForbidden, fmt.Sprintf(
				"expected_open_id may only name the slot's own Lark user (%s); to hand slot %q to someone else an administrator uses: %s",
				orNone(expected), id.Slot, r.replaceCommand(id)))
		}
	}
	if !expected.known() {
		return larkIdentity{}, logical.CodedError(http.StatusForbidden, fmt.Sprintf(
			"slot %q of %s is not bound to a Lark user, and your Vault identity does not say which Lark user you are, so Vault cannot make sure only you complete this authorization. "+
				"An administrator can bind the slot (%s), or set the app's identity_metadata_key or identity_alias_mount so each person's Vault entity names their Lark user (see the README, \"Who may fill a slot\"), or start it for you with: %s",
			id.Slot, id.App, r.bindSlot(id), r.replaceCommand(id)))
	}
	return expected, nil
}

func orNone(i larkIdentity) string {
	if !i.known() {
		return "none is bound"
	}
	return i.String()
}

func (b *backend) pathOAuthCallback(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	params := map[string]string{}
	for k, v := range req.Data {
		s, ok := v.(string)
		if !ok {
			return callbackPage(http.StatusBadRequest, "This link is not valid",
				fmt.Sprintf("The link's %s parameter appears more than once, which Lark never does. Nothing was stored.", truncateForMessage(k))), nil
		}
		if len(s) > 2048 || len(k) > 64 {
			return callbackPage(http.StatusBadRequest, "This link is not valid",
				fmt.Sprintf("The link's %s parameter is far too long to come from Lark. Nothing was stored.", truncateForMessage(k))), nil
		}
		params[k] = s
	}
	if !b.WriteSafeReplicationState() {
		return nil, logical.ErrReadOnly
	}
	state := params["state"]
	if state == "" {
		return callbackPage(http.StatusBadRequest, "This link is not valid", "The link has no state parameter, so it does not come from an authorization started in Vault. Nothing was stored."), nil
	}
	// Checked before the single-use state is taken: a link that cannot succeed must not use it up.
	code := params["code"]
	if params["error"] == "" && !codePattern.MatchString(code) {
		return callbackPage(http.StatusBadRequest, "This link is not valid", "The link carries no valid authorization code. Nothing was stored; open the authorization link again, or ask for a new one."), nil
	}
	// A plugin that is stopping exchanges no code: checked before the single-use state is taken, so
	// the same link works again in a minute.
	if !b.refresher.calls.admitting() {
		return callbackPage(http.StatusServiceUnavailable, "Vault is restarting this plugin",
			"Vault is reloading or stopping this plugin right now. Nothing was used up: open the same link again in a minute."), nil
	}
	st, err := b.states.take(ctx, req.Storage, state)
	switch {
	case errors.Is(err, errStateUnknown):
		return callbackPage(http.StatusBadRequest, "This authorization link is unknown or already used",
			"Each link works once. Ask for a new one (vault write <mount>/oauth/<app_id>/authorize user=<you>) and open it within 10 minutes. Nothing was stored."), nil
	case errors.Is(err, errStateExpired):
		return callbackPage(http.StatusBadRequest, "This authorization link has expired",
			"Links are valid for 10 minutes. Ask for a new one and open it right away. Nothing was stored."), nil
	case err != nil:
		return nil, err
	}
	if e := params["error"]; e != "" {
		if e == "access_denied" {
			return callbackPage(http.StatusBadRequest, "Authorization declined",
				"You declined the request in Lark, so Vault holds no grant for you. You can close this window; ask for a new link if that was a mistake."), nil
		}
		return callbackPage(http.StatusBadRequest, "Lark reported an error",
			fmt.Sprintf("Lark answered %q instead of an authorization code. Nothing was stored; ask for a new link.", truncateForMessage(e))), nil
	}
	g, err := b.refresher.authorize(ctx, req.Storage, st, code)
	if err != nil {
		var ae *authError
		if errors.As(err, &ae) {
			return callbackPage(ae.status, "Authorization failed", ae.msg), nil
		}
		b.Logger().Error("authorization callback failed", "grant", st.id().String(), "error", err)
		return callbackPage(http.StatusInternalServerError, "Authorization failed", "Vault could not complete the authorization. Ask an administrator to look at Vault's log, then try again with a new link."), nil
	}
	who := g.Name
	if who == "" {
		who = g.OpenID
	}
	return callbackPage(http.StatusOK, "Authorized",
		fmt.Sprintf("Vault now holds your Lark authorization for app %s as %q (slot %q). It keeps it fresh for up to 365 days. You can close this window.", g.AppID, who, g.Slot)), nil
}

func (b *backend) pathOAuthExchange(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	appID := d.Get("app_id").(string)
	if err := validateAppID(appID); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	code, state := d.Get("code").(string), d.Get("state").(string)
	if !codePattern.MatchString(code) {
		return logical.ErrorResponse("code is missing or is not a Lark authorization code"), nil
	}
	if state == "" || len(state) > maxStateParamBytes {
		return logical.ErrorResponse("state is missing or too long"), nil
	}
	if !b.WriteSafeReplicationState() {
		return nil, logical.ErrReadOnly
	}
	if !b.refresher.calls.admitting() {
		return nil, logical.CodedError(http.StatusServiceUnavailable, errStopping.Error()+"; the state was not used up")
	}
	st, err := b.states.take(ctx, req.Storage, state)
	switch {
	case errors.Is(err, errStateUnknown):
		return logical.ErrorResponse("state is unknown or was already used; start a new authorization"), nil
	case errors.Is(err, errStateExpired):
		return logical.ErrorResponse("state has expired (10 minutes); start a new authorization"), nil
	case err != nil:
		return nil, err
	}
	if st.AppID != appID {
		return logical.ErrorResponse("state belongs to app %s, not %s; it is now used up", st.AppID, appID), nil
	}
	if !st.startedBy(req) {
		return nil, logical.CodedError(http.StatusForbidden, "this authorization was started by another Vault identity (or token); only that identity may complete it (the state is now used up)")
	}
	g, err := b.refresher.authorize(ctx, req.Storage, st, code)
	if err != nil {
		var ae *authError
		if errors.As(err, &ae) {
			return nil, logical.CodedError(ae.status, ae.msg)
		}
		return nil, err
	}
	cfg, err := b.config.get(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	data := g.status(g.healthNow(b.clock.Now(), cfg))
	data["app_id"], data["user"] = g.AppID, g.Slot
	return &logical.Response{Data: data}, nil
}
