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
)

const secretTypeUserToken = "lark_user_token"

func pathUserTokens(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern:      "user-token/(?P<app_id>[^/]+)/?$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "user-tokens"},
			Fields:       map[string]*framework.FieldSchema{"app_id": appIDField},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback: b.pathUserTokenList,
					Summary:  "List an app's user slots with the status of each grant (never a token).",
				},
			},
			HelpSynopsis: "The user grants of one app, with their status.",
			HelpDescription: `Lists every user slot of the app with the status of its grant; never a token.

key_info is kept narrow so that "vault list -detailed" fits 120 columns: per slot,
name (cut at 24 characters), level (ok, warning, critical, expired, reauth_required),
days_left and grant_expires_at (365 days after authorization).

grants holds every field per slot: open_id, union_id, name, state (ok or
reauth_required) and, when reauth_required, reauth_reason, reauth_code, reauth_end and
reauth_since; level, days_left, reauth_required, authorized_at, grant_expires_at,
refresh_expires_at, access_expires_at, last_refresh_at, refresh_count; while refreshes
fail, last_error, last_error_at, failures_in_row and next_attempt_at; challenge_url and
identity_pending when set. The Vault CLI prints fields beyond keys and key_info only in
JSON or YAML with -detailed: "vault list -detailed -format=json <mount>user-token/<app_id>/".`,
		},
		{
			Pattern:      "user-token/(?P<app_id>[^/]+)/(?P<user>.+)",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "user-token"},
			Fields: map[string]*framework.FieldSchema{
				"app_id": appIDField,
				"user":   userSlotField,
				"refresh_token": {
					Type:         framework.TypeString,
					Description:  "Import only: a Lark v2/v3 refresh token from another system. It is used once at once (which also proves it works), so the other system's copy stops working.",
					DisplayAttrs: &framework.DisplayAttributes{Sensitive: true},
				},
				"authorized_at": {
					Type:        framework.TypeString,
					Description: "Import only: when the user authorized (RFC 3339), at most 365 days ago and not in the future. Lark ends a grant 365 days after that; defaults to now, which may overstate how long the grant lives.",
				},
				"replace": {
					Type:        framework.TypeBool,
					Description: "Import only: allow the imported grant to belong to a different Lark user than the one the slot holds now.",
				},
				"min_ttl": minTTLField("user_access_token (read only)"),
			},
			ExistenceCheck: b.grantExists,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: b.pathUserTokenRead,
					Summary:  "Return the user's access token as a non-renewable lease, refreshing it first when due.",
				},
				logical.CreateOperation: &framework.PathOperation{
					Callback: b.pathUserTokenImport,
					Summary:  "Import an existing refresh token into the slot.",
				},
				logical.UpdateOperation: &framework.PathOperation{
					Callback: b.pathUserTokenImport,
					Summary:  "Import an existing refresh token into the slot.",
				},
				logical.DeleteOperation: &framework.PathOperation{
					Callback: b.pathUserTokenDelete,
					Summary:  "Forget the grant and revoke it at Lark (best effort).",
					// Revoking at Lark must happen only where the grant is then deleted.
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
				},
			},
			HelpSynopsis: "One Lark user's access token, from a grant kept alive inside Vault.",
			HelpDescription: `Reading returns the user_access_token, its expiry and a non-renewable lease whose TTL
is its remaining life minus lease_safety_margin. When the token has less than
token_refresh_window left, the plugin first spends the grant's single-use refresh
token and stores the new pair; concurrent readers wait for that one refresh.

A grant that can no longer be refreshed (expired, revoked, already used, 365 days
after authorization) is stored as reauth_required and every read says why (HTTP 409).

Writing refresh_token imports a grant from another system; deleting forgets the grant
and revokes it at Lark. Reading or deleting a slot that holds no grant answers 404.`,
		},
	}
}

func (b *backend) grantExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	id, errResp := grantIDFrom(d)
	if errResp != nil {
		return false, nil
	}
	g, err := b.grants.get(ctx, req.Storage, id)
	return g != nil, err
}

// grantIDFrom validates the app_id and user fields.
func (b *backend) pathUserTokenRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	id, errResp := grantIDFrom(d)
	if errResp != nil {
		return errResp, nil
	}
	for _, k := range []string{"refresh_token", "authorized_at", "replace"} {
		if _, ok := req.Data[k]; ok {
			return logical.ErrorResponse("%s is only accepted when importing (write)", k), nil
		}
	}
	cfg, err := b.config.get(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	minTTL, err := parseMinTTL(d, userTokenMaxLife-cfg.LeaseSafetyMargin-minTTLFetchAllowance, fmt.Sprintf(
		"a user_access_token lives at most 2h, and its lease ends lease_safety_margin (%s) earlier, less a minute for refreshing it", cfg.LeaseSafetyMargin))
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	r := remediesFor(req)
	g, warnings, err := b.refresher.read(ctx, req.Storage, id, minTTL)
	if err != nil {
		if errors.Is(err, errGrantNotFound) {
			return nil, b.noGrant(ctx, req.Storage, r, id, false)
		}
		return nil, r.httpError(id.App, err)
	}
	now := b.clock.Now()
	resp, err := b.tokenResponse(ctx, req.Storage, id.App, secretTypeUserToken, map[string]interface{}{
		"app_id":             id.App,
		"user":               id.Slot,
		"token_type":         "user_access_token",
		"access_token":       g.AccessToken,
		"expires_at":         formatTime(g.AccessExpiresAt),
		"expires_in":         int64(g.AccessExpiresAt.Sub(now).Seconds()),
		"open_id":            g.OpenID,
		"union_id":           g.UnionID,
		"name":               g.Name,
		"scope":              strings.Join(g.Scopes, " "),
		"authorized_at":      formatTime(g.AuthorizedAt),
		"grant_expires_at":   formatTime(g.GrantExpiresAt),
		"refresh_expires_at": formatTime(g.RefreshExpiresAt),
	}, map[string]interface{}{"app_id": id.App, "user": id.Slot}, g.AccessExpiresAt, g.LastRefreshAt)
	if err != nil {
		return nil, err
	}
	// The grant's level travels with every read: the warning lands in the audit log in plain text,
	// the numbers and booleans too.
	h := g.healthNow(now, cfg)
	resp.Data["days_left"] = h.DaysLeft
	resp.Data["reauth_required"] = h.reauthRequired()
	if w := h.warning(id, r); w != "" {
		resp.AddWarning(w)
	}
	for _, w := range warnings {
		resp.AddWarning(w)
	}
	return resp, nil
}

func (b *backend) pathUserTokenList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	appID := d.Get("app_id").(string)
	if err := validateAppID(appID); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	cfg, err := b.config.get(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	slots, err := b.grants.list(ctx, req.Storage, appID)
	if err != nil {
		return nil, err
	}
	now := b.clock.Now()
	keys := make([]string, 0, len(slots))
	info := make(map[string]interface{}, len(slots))
	full := make(map[string]interface{}, len(slots))
	for _, slot := range slots {
		g, err := b.grants.get(ctx, req.Storage, grantID{appID, slot})
		if err != nil {
			return nil, err
		}
		if g == nil {
			continue
		}
		keys = append(keys, slot)
		h := g.healthNow(now, cfg)
		full[slot] = g.status(h)
		info[slot] = map[string]interface{}{
			"name":             truncateRunes(g.Name, listNameRunes),
			"level":            h.Level,
			"days_left":        h.DaysLeft,
			"grant_expires_at": formatTime(g.GrantExpiresAt),
		}
	}
	resp := logical.ListResponseWithInfo(keys, info)
	resp.Data["grants"] = full
	return resp, nil
}

// listNameRunes bounds the name column of the grants list, so that the table fits 120 columns.
const listNameRunes = 24

// truncateRunes cuts s to at most n runes, marking a cut with "…".
func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// importRefreshTokenPattern is what a Lark v2/v3 refresh token can look like (a JWT or an opaque
// token): checked before the token is spent, so a paste mistake costs nothing.
var importRefreshTokenPattern = regexp.MustCompile(`^[A-Za-z0-9._~+/=-]+$`)

func plausibleRefreshToken(t string) bool {
	return len(t) >= 16 && len(t) <= 8192 && importRefreshTokenPattern.MatchString(t)
}

func (b *backend) pathUserTokenImport(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	id, errResp := grantIDFrom(d)
	if errResp != nil {
		return errResp, nil
	}
	if _, ok := req.Data["min_ttl"]; ok {
		return logical.ErrorResponse("min_ttl is only accepted when reading the token"), nil
	}
	r := remediesFor(req)
	// Everything that can be checked here is checked before the single-use token is spent.
	refresh := d.Get("refresh_token").(string)
	if refresh == "" {
		return logical.ErrorResponse("refresh_token is required to import a grant; to authorize a user instead, use oauth/%s/authorize", id.App), nil
	}
	if !plausibleRefreshToken(refresh) {
		return logical.ErrorResponse("refresh_token is not a Lark refresh token (16-8192 characters of letters, digits and ._~+/=-, no spaces); nothing was sent to Lark"), nil
	}
	now := b.clock.Now()
	authorizedAt := now
	if raw := d.Get("authorized_at").(string); raw != "" {
		t, err := time.Parse(time.RFC3339, raw)
		if err != nil {
			return logical.ErrorResponse("authorized_at must be an RFC 3339 time such as 2026-01-31T09:00:00Z; nothing was sent to Lark"), nil
		}
		switch {
		case t.After(now.Add(time.Minute)):
			return logical.ErrorResponse("authorized_at is in the future; nothing was sent to Lark"), nil
		case !now.Before(t.Add(grantMaxAge)):
			return logical.ErrorResponse("authorized_at is %s, more than 365 days ago: Lark has ended that grant, so the user must authorize again (%s); nothing was sent to Lark",
				formatTime(t), r.authorizeCommand(id)), nil
		}
		authorizedAt = t
	}
	if !b.WriteSafeReplicationState() {
		return nil, logical.ErrReadOnly
	}
	sess, err := b.sessions.open(ctx, req.Storage, id.App)
	if err != nil {
		return nil, r.httpError(id.App, err)
	}
	g, warnings, err := b.refresher.importGrant(ctx, req.Storage, sess, importRequest{
		id: id, refreshToken: refresh, authorizedAt: authorizedAt, entityID: req.EntityID,
		replace: d.Get("replace").(bool), remedies: r,
	})
	var refused *importRefusal
	if errors.As(err, &refused) {
		return logical.ErrorResponse(refused.msg), nil
	}
	if err != nil {
		return nil, r.httpError(id.App, err)
	}
	h := g.healthNow(b.clock.Now(), sess.cfg)
	resp := &logical.Response{Data: g.status(h)}
	if w := h.warning(id, r); w != "" {
		resp.AddWarning(w)
	}
	for _, w := range warnings {
		resp.AddWarning(w)
	}
	return resp, nil
}

func (b *backend) pathUserTokenDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	id, errResp := grantIDFrom(d)
	if errResp != nil {
		return errResp, nil
	}
	// A node that may not write must not revoke at Lark a grant it then cannot delete.
	if !b.WriteSafeReplicationState() {
		return nil, logical.ErrReadOnly
	}
	resp := &logical.Response{}
	err := b.grants.withGrant(ctx, req.Storage, id, func(tx *grantTx) error {
		g := tx.grant()
		if g == nil {
			return errGrantNotFound
		}
		if sess, err := b.sessions.open(ctx, req.Storage, id.App); err == nil {
			for _, rerr := range b.refresher.revoke(sess, g.RefreshToken, g.AccessToken) {
				resp.AddWarning(fmt.Sprintf("could not revoke the %v at Lark; the grant is forgotten here anyway, and the user can remove the app's access in Lark", rerr))
			}
		}
		return tx.remove()
	})
	if errors.Is(err, errGrantNotFound) {
		return nil, b.noGrant(ctx, req.Storage, remediesFor(req), id, true)
	}
	if err != nil {
		return nil, err
	}
	if len(resp.Warnings) == 0 {
		return nil, nil
	}
	return resp, nil
}

// noGrant is the answer for a slot that holds no grant: 404, with what to do instead. (Of the vault
// CLI's commands, only read drops a 404's message, printing "No value found at <path>"; the API,
// delete and -format=json callers see it.)
func (b *backend) noGrant(ctx context.Context, s logical.Storage, r remedies, id grantID, deleting bool) error {
	msg := fmt.Sprintf("no Lark grant for user %q of app %s", id.Slot, id.App)
	if deleting {
		msg += fmt.Sprintf("; nothing was deleted (the app's grants: vault list %suser-token/%s/)", r.mount, id.App)
	} else if app, err := b.apps.get(ctx, s, id.App); err == nil && app == nil {
		msg += fmt.Sprintf(": the app is not configured in this mount; add it with: vault write %sapps/%s app_secret=..., then start one with: %s", r.mount, id.App, r.authorizeCommand(id))
	} else {
		msg += fmt.Sprintf("; start one with: %s (or import a refresh token: vault write %suser-token/%s/%s refresh_token=...)", r.authorizeCommand(id), r.mount, id.App, id.Slot)
	}
	return logical.CodedError(http.StatusNotFound, msg)
}

// secretUserToken: non-renewable, and revoking the lease must not revoke the grant (the next
// reader still needs it), so Revoke does nothing.
func secretUserToken() *framework.Secret {
	return &framework.Secret{
		Type: secretTypeUserToken,
		Fields: map[string]*framework.FieldSchema{
			"access_token": {Type: framework.TypeString, Description: "The user_access_token."},
			"expires_at":   {Type: framework.TypeString, Description: "When Lark stops accepting the token (RFC 3339)."},
			"expires_in":   {Type: framework.TypeInt, Description: "Seconds until the token expires, at the time of the read."},
		},
		Revoke: func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
			return nil, nil
		},
	}
}
