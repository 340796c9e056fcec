package larksecrets

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
)

const callbackPath = "oauth/callback"

var (
	errStateUnknown = errors.New("unknown authorization state")
	errStateExpired = errors.New("expired authorization state")
	// Lark's codes are [A-Za-z0-9-_]; anything else is not a code Lark sent.
	codePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,512}$`)
)

// authError is a failed authorization with a message meant for the person at the browser (and the
// operator reading the exchange response). It never contains a token.
type authError struct {
	status int
	msg    string
}

func (e *authError) Error() string { return e.msg }

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
				Description: "If set, the authorization succeeds only when the person signs in as this Lark user (open_id, ou_...).",
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
				"code":   {Type: framework.TypeString, Description: "The authorization code your redirect page received.", Required: true},
				"state":  {Type: framework.TypeString, Description: "The state your redirect page received.", Required: true},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback: b.pathOAuthExchange,
					Summary:  "Complete an authorization whose redirect landed in your own app.",
				},
			},
			HelpSynopsis: "Complete an authorization with a code and state received elsewhere.",
			HelpDescription: `For setups where redirect_uri points at the team's own app rather than at Vault: that
page writes code and state here. The Vault identity must be the one that started the
authorization. Returns the grant's status, never a token.`,
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
				HelpDescription: "Same as oauth/<app_id>/authorize, except that the grant replaces the slot's current one even when it belongs to another Lark user. Grant this path to administrators only.",
			})
	}
	return paths
}

const authorizeHelp = `Returns authorize_url, valid for 10 minutes and usable once. The person opens it,
signs in to Lark and approves; Lark then redirects to the app's redirect_uri.

The slot can be named in the path (oauth/<app_id>/authorize/<user>), which lets an
identity-templated policy allow each person to start an authorization only for their
own slot, or in the "user" field.

A slot belongs to one Lark user: once it holds a grant, an authorization that comes back
as a different Lark user is refused. Use oauth/<app_id>/replace (admins) to hand a
slot to someone else.`

func (b *backend) pathOAuthStart(ctx context.Context, req *logical.Request, d *framework.FieldData, replace bool) (*logical.Response, error) {
	if resp := rejectUnknownFields(req, d); resp != nil {
		return resp, nil
	}
	appID, slot, errResp := validateAppAndSlot(d)
	if errResp != nil {
		return errResp, nil
	}
	// The path form and the field must not disagree, or a policy on the path could be bypassed.
	if body, ok := req.Data["user"].(string); ok && body != slot {
		return logical.ErrorResponse("user in the path (%q) and in the request (%q) differ", slot, truncateForMessage(body)), nil
	}
	expected := d.Get("expected_open_id").(string)
	if expected != "" && !openIDPattern.MatchString(expected) {
		return logical.ErrorResponse("expected_open_id %q is not a Lark open_id (ou_...)", truncateForMessage(expected)), nil
	}
	app, err := b.getApp(ctx, req.Storage, appID)
	if err != nil {
		return nil, err
	}
	if app == nil {
		return nil, b.operatorError(req, appID, errAppNotConfigured)
	}
	if app.RedirectURI == "" {
		return logical.ErrorResponse("app %s has no redirect_uri; set it first: vault write %sapps/%s redirect_uri=https://<vault>/v1/%soauth/callback", appID, mountOf(req), appID, mountOf(req)), nil
	}
	scopes, err := normalizeScopes(app.Scopes, d.Get("scopes").([]string), []string{offlineAccessScope})
	if err != nil {
		return logical.ErrorResponse("scopes: %s", err.Error()), nil
	}
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	client, err := b.larkClient(app, cfg)
	if err != nil {
		return nil, err
	}
	state, err := newStateValue()
	if err != nil {
		return nil, err
	}
	verifier, err := lark.NewPKCEVerifier()
	if err != nil {
		return nil, err
	}
	authURL, err := client.AuthorizeURL(lark.AuthorizeRequest{
		RedirectURI:   app.RedirectURI,
		State:         state,
		CodeChallenge: lark.PKCEChallengeS256(verifier),
		Scopes:        scopes,
	})
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	now := b.clock.Now()
	st := &oauthState{
		AppID:          appID,
		Slot:           slot,
		Verifier:       verifier,
		RedirectURI:    app.RedirectURI,
		Scopes:         scopes,
		EntityID:       req.EntityID,
		ExpectedOpenID: expected,
		Replace:        replace,
		CreatedAt:      now,
		ExpiresAt:      now.Add(oauthStateTTL),
	}
	if err := b.putOAuthState(ctx, req.Storage, state, st); err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]interface{}{
		"authorize_url":    authURL,
		"expires_at":       formatTime(st.ExpiresAt),
		"app_id":           appID,
		"user":             slot,
		"redirect_uri":     app.RedirectURI,
		"scopes":           scopes,
		"replaces_holder":  replace,
		"expected_open_id": expected,
	}}, nil
}

func (b *backend) pathOAuthCallback(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	params := map[string]string{}
	for k, v := range req.Data {
		s, ok := v.(string)
		if !ok {
			return callbackPage(http.StatusBadRequest, "This link is not valid", "A parameter of the link appears more than once, which Lark never does. Nothing was stored."), nil
		}
		if len(s) > 2048 || len(k) > 64 {
			return callbackPage(http.StatusBadRequest, "This link is not valid", "A parameter of the link is far too long to come from Lark. Nothing was stored."), nil
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
	st, err := b.takeOAuthState(ctx, req.Storage, state)
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
	code := params["code"]
	if !codePattern.MatchString(code) {
		return callbackPage(http.StatusBadRequest, "This link is not valid", "The link carries no valid authorization code. Nothing was stored; ask for a new link."), nil
	}
	g, err := b.completeAuthorization(ctx, req.Storage, st, code)
	if err != nil {
		var ae *authError
		if errors.As(err, &ae) {
			return callbackPage(ae.status, "Authorization failed", ae.msg), nil
		}
		b.Logger().Error("authorization callback failed", "app_id", st.AppID, "user", st.Slot, "error", err)
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
	if resp := rejectUnknownFields(req, d); resp != nil {
		return resp, nil
	}
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
	st, err := b.takeOAuthState(ctx, req.Storage, state)
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
	if st.EntityID != "" && st.EntityID != req.EntityID {
		return logical.ErrorResponse("this authorization was started by another Vault identity; only that identity may complete it (the state is now used up)"), nil
	}
	g, err := b.completeAuthorization(ctx, req.Storage, st, code)
	if err != nil {
		var ae *authError
		if errors.As(err, &ae) {
			return nil, logical.CodedError(ae.status, ae.msg)
		}
		return nil, err
	}
	data := g.status()
	data["app_id"], data["user"] = g.AppID, g.Slot
	return &logical.Response{Data: data}, nil
}

// completeAuthorization exchanges the code, learns who the user is, applies the slot-ownership
// rules and stores the grant. Any grant obtained but refused is revoked at Lark.
func (b *backend) completeAuthorization(ctx context.Context, s logical.Storage, st *oauthState, code string) (*grantEntry, error) {
	app, err := b.getApp(ctx, s, st.AppID)
	if err != nil {
		return nil, err
	}
	if app == nil {
		return nil, &authError{http.StatusBadRequest, fmt.Sprintf("App %s is no longer configured in Vault. Nothing was stored.", st.AppID)}
	}
	cfg, err := b.getConfig(ctx, s)
	if err != nil {
		return nil, err
	}
	client, err := b.larkClient(app, cfg)
	if err != nil {
		return nil, err
	}
	callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*cfg.LarkRequestTimeout+5*time.Second)
	defer cancel()

	tok, err := client.ExchangeCode(callCtx, code, st.RedirectURI, st.Verifier)
	if err != nil {
		return nil, exchangeAuthError(err)
	}
	refuse := func(status int, msg string) (*grantEntry, error) {
		for _, t := range []struct{ tok, hint string }{{tok.RefreshToken, lark.TokenTypeHintRefreshToken}, {tok.AccessToken, lark.TokenTypeHintAccessToken}} {
			if t.tok != "" {
				_ = b.revokeBestEffort(client, app, t.tok, t.hint)
			}
		}
		return nil, &authError{status, msg}
	}
	if tok.RefreshToken == "" {
		return refuse(http.StatusBadRequest, "Lark issued no refresh token, so Vault could not keep this authorization alive. The app must have the offline_access scope enabled (and token refresh switched on) in the developer console. Nothing was stored.")
	}
	info, err := client.UserInfo(callCtx, tok.AccessToken)
	if err != nil {
		return refuse(http.StatusBadGateway, "Vault could not ask Lark who you are, so it stored nothing. Try again with a new link.")
	}
	if st.ExpectedOpenID != "" && info.OpenID != st.ExpectedOpenID {
		return refuse(http.StatusForbidden, "You signed in as a different Lark user than this link was made for. Nothing was stored; the authorization was revoked.")
	}

	unlock := b.grants.lock(st.AppID, st.Slot)
	defer unlock()
	existing, err := b.reloadGrantLocked(ctx, s, st.AppID, st.Slot)
	if err != nil {
		return refuse(http.StatusInternalServerError, "Vault could not read the slot. Nothing was stored.")
	}
	if existing != nil && existing.OpenID != "" && existing.OpenID != info.OpenID && !st.Replace {
		b.Logger().Warn("refused an authorization by a different Lark user for an occupied slot", "app_id", st.AppID, "user", st.Slot)
		return refuse(http.StatusForbidden, fmt.Sprintf("Slot %q already holds another Lark user's grant. Only an administrator can hand it to someone else (oauth/%s/replace). Nothing was stored; the authorization was revoked.", st.Slot, st.AppID))
	}
	now := b.clock.Now()
	g := newGrant(st.AppID, st.Slot, now, st.EntityID, tok, info, now)
	if err := b.storeGrant(ctx, s, g); err != nil {
		b.grants.mu.Lock()
		b.grants.unsaved[grantStorageKey(g.AppID, g.Slot)] = g
		b.grants.mu.Unlock()
		return nil, fmt.Errorf("storing the new grant: %w", err)
	}
	b.revokeReplaced(client, app, existing, g)
	b.Logger().Info("user authorized", "app_id", g.AppID, "user", g.Slot, "open_id", g.OpenID)
	b.sendEvent(ctx, "lark/user-authorized", g.AppID, g.Slot, "authorize")
	return g, nil
}

func exchangeAuthError(err error) error {
	var le *lark.Error
	if !errors.As(err, &le) {
		return err
	}
	switch le.Kind {
	case lark.KindCodeInvalid:
		return &authError{http.StatusBadRequest, fmt.Sprintf("Lark refused the authorization code (code %d: %s). Codes work once and for 5 minutes; ask for a new link. Nothing was stored.", le.Code, strings.TrimSuffix(le.Msg, "."))}
	case lark.KindAppSecretRejected:
		return &authError{http.StatusBadGateway, "Lark rejected the app's secret, so the authorization could not be completed. An administrator must update the app secret in Vault. Nothing was stored."}
	case lark.KindUnavailable, lark.KindRateLimited:
		return &authError{http.StatusServiceUnavailable, "Lark could not be reached to complete the authorization. Try again in a few minutes with a new link. Nothing was stored."}
	}
	return &authError{http.StatusBadGateway, fmt.Sprintf("Lark could not complete the authorization (code %d: %s). Nothing was stored.", le.Code, le.Msg)}
}
