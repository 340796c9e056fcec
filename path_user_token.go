package larksecrets

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
)

const secretTypeUserToken = "lark_user_token"

var userSlotField = &framework.FieldSchema{
	Type:        framework.TypeString,
	Description: "The user slot: a short name for one Lark user's grant under this app, such as the person's Vault entity name. 1-64 letters, digits, '.', '_', '@' or '-'.",
	Required:    true,
}

var appIDField = &framework.FieldSchema{
	Type:        framework.TypeString,
	Description: "The Lark app, as configured under apps/.",
	Required:    true,
}

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
			HelpDescription: `Lists every user slot of the app. key_info carries, per slot: open_id, name,
state (ok or reauth_required) and why, authorized_at, grant_expires_at (365 days
after authorization), refresh_expires_at, access_expires_at, last_refresh_at.`,
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
					Description: "Import only: when the user authorized (RFC 3339). Lark ends a grant 365 days after that; defaults to now, which may overstate how long the grant lives.",
				},
				"replace": {
					Type:        framework.TypeBool,
					Description: "Import only: allow the imported grant to belong to a different Lark user than the one the slot holds now.",
				},
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
and revokes it at Lark.`,
		},
	}
}

func (b *backend) grantExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	appID, slot := d.Get("app_id").(string), d.Get("user").(string)
	if validateAppID(appID) != nil || validateSlot(slot) != nil {
		return false, nil
	}
	g, err := b.loadGrant(ctx, req.Storage, appID, slot)
	return g != nil, err
}

func validateAppAndSlot(d *framework.FieldData) (string, string, *logical.Response) {
	appID, slot := d.Get("app_id").(string), d.Get("user").(string)
	if err := validateAppID(appID); err != nil {
		return "", "", logical.ErrorResponse(err.Error())
	}
	if err := validateSlot(slot); err != nil {
		return "", "", logical.ErrorResponse(err.Error())
	}
	return appID, slot, nil
}

func (b *backend) pathUserTokenRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(req, d); resp != nil {
		return resp, nil
	}
	appID, slot, errResp := validateAppAndSlot(d)
	if errResp != nil {
		return errResp, nil
	}
	for _, k := range []string{"refresh_token", "authorized_at", "replace"} {
		if _, ok := req.Data[k]; ok {
			return logical.ErrorResponse("%s is only accepted when importing (write)", k), nil
		}
	}
	g, warnings, err := b.userToken(ctx, req.Storage, appID, slot)
	if err != nil {
		return nil, b.userTokenError(req, appID, slot, err)
	}
	resp, err := b.tokenResponse(ctx, req.Storage, appID, secretTypeUserToken, map[string]interface{}{
		"app_id":             appID,
		"user":               slot,
		"token_type":         "user_access_token",
		"access_token":       g.AccessToken,
		"expires_at":         formatTime(g.AccessExpiresAt),
		"expires_in":         int64(g.AccessExpiresAt.Sub(b.clock.Now()).Seconds()),
		"open_id":            g.OpenID,
		"union_id":           g.UnionID,
		"name":               g.Name,
		"scope":              strings.Join(g.Scopes, " "),
		"authorized_at":      formatTime(g.AuthorizedAt),
		"grant_expires_at":   formatTime(g.GrantExpiresAt),
		"refresh_expires_at": formatTime(g.RefreshExpiresAt),
	}, map[string]interface{}{"app_id": appID, "user": slot}, g.AccessExpiresAt, g.LastRefreshAt)
	if err != nil {
		return nil, err
	}
	// The grant's level travels with every read: the warning lands in the audit log in plain text,
	// the numbers and booleans too.
	if cfg, err := b.getConfig(ctx, req.Storage); err == nil {
		h := g.health(b.clock.Now(), cfg)
		b.metrics.setLevel(appID+"/"+slot, h.Level)
		resp.Data["days_left"] = h.DaysLeft
		resp.Data["reauth_required"] = h.Level == levelExpired || h.Level == levelReauthRequired
		if w := h.warning(appID, slot, mountOf(req)); w != "" {
			resp.AddWarning(w)
		}
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
	slots, err := req.Storage.List(ctx, grantStoragePrefix+appID+"/")
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(slots))
	info := make(map[string]interface{}, len(slots))
	for _, slot := range slots {
		g, err := b.loadGrant(ctx, req.Storage, appID, slot)
		if err != nil {
			return nil, err
		}
		if g == nil {
			continue
		}
		keys = append(keys, slot)
		info[slot] = g.status()
	}
	return logical.ListResponseWithInfo(keys, info), nil
}

func (b *backend) pathUserTokenImport(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(req, d); resp != nil {
		return resp, nil
	}
	appID, slot, errResp := validateAppAndSlot(d)
	if errResp != nil {
		return errResp, nil
	}
	refresh := d.Get("refresh_token").(string)
	if refresh == "" {
		return logical.ErrorResponse("refresh_token is required to import a grant; to authorize a user instead, use oauth/%s/authorize", appID), nil
	}
	if len(refresh) > 8192 || strings.ContainsAny(refresh, " \t\r\n") {
		return logical.ErrorResponse("refresh_token is not a Lark refresh token (too long or contains whitespace)"), nil
	}
	now := b.clock.Now()
	authorizedAt := now
	if raw := d.Get("authorized_at").(string); raw != "" {
		t, err := time.Parse(time.RFC3339, raw)
		if err != nil {
			return logical.ErrorResponse("authorized_at must be an RFC 3339 time such as 2026-01-31T09:00:00Z"), nil
		}
		if t.After(now.Add(time.Minute)) {
			return logical.ErrorResponse("authorized_at is in the future"), nil
		}
		authorizedAt = t
	}
	if !b.WriteSafeReplicationState() {
		return nil, logical.ErrReadOnly
	}
	app, err := b.getApp(ctx, req.Storage, appID)
	if err != nil {
		return nil, err
	}
	if app == nil {
		return nil, b.operatorError(req, appID, errAppNotConfigured)
	}
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	client, err := b.larkClient(app, cfg)
	if err != nil {
		return nil, err
	}

	unlock := b.grants.lock(appID, slot)
	defer unlock()
	existing, err := b.reloadGrantLocked(ctx, req.Storage, appID, slot)
	if err != nil {
		return nil, err
	}

	callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*cfg.LarkRequestTimeout+5*time.Second)
	defer cancel()
	tok, err := client.RefreshUserToken(callCtx, refresh)
	if err != nil {
		var le *lark.Error
		if errors.As(err, &le) && le.Kind == lark.KindReauthRequired {
			return logical.ErrorResponse("Lark refused the refresh token: %s (code %d); nothing was stored", le.Reason(), le.Code), nil
		}
		return nil, b.operatorError(req, appID, err)
	}
	fetchedAt := b.clock.Now()
	info, err := client.UserInfo(callCtx, tok.AccessToken)
	if err != nil {
		// The imported token is spent; keep the new pair rather than lose the grant.
		b.Logger().Warn("imported grant: user_info failed; storing the grant without the user's identity", "app_id", appID, "user", slot, "error", err)
		info = &lark.UserInfo{}
	}
	if existing != nil && existing.OpenID != "" && info.OpenID != "" && existing.OpenID != info.OpenID && !d.Get("replace").(bool) {
		b.revokeBestEffort(client, app, tok.RefreshToken, "refresh_token")
		return logical.ErrorResponse("slot %q of %s belongs to Lark user %s, and the imported token is for %s; pass replace=true to give the slot to the new user (the imported grant was revoked)",
			slot, appID, existing.OpenID, info.OpenID), nil
	}
	g := newGrant(appID, slot, authorizedAt, req.EntityID, tok, info, fetchedAt)
	if err := b.storeGrant(ctx, req.Storage, g); err != nil {
		b.grants.mu.Lock()
		b.grants.unsaved[grantStorageKey(appID, slot)] = g
		b.grants.mu.Unlock()
		return nil, fmt.Errorf("the grant was imported at Lark but Vault could not store it (kept in memory, stored on the next read): %w", err)
	}
	b.revokeReplaced(client, app, existing, g)
	resp := &logical.Response{Data: g.status()}
	if g.GrantExpiresAt.Sub(fetchedAt) < 7*24*time.Hour {
		resp.AddWarning(fmt.Sprintf("this grant ends at %s (365 days after authorized_at); the user must authorize again before then", formatTime(g.GrantExpiresAt)))
	}
	return resp, nil
}

// newGrant builds a fresh grant from a token answer and the user's identity.
func newGrant(appID, slot string, authorizedAt time.Time, entityID string, tok *lark.UserToken, info *lark.UserInfo, now time.Time) *grantEntry {
	g := &grantEntry{
		AppID:           appID,
		Slot:            slot,
		OpenID:          info.OpenID,
		UnionID:         info.UnionID,
		Name:            info.Name,
		Scopes:          tok.Scope,
		AccessToken:     tok.AccessToken,
		AccessExpiresAt: now.Add(tok.ExpiresIn),
		RefreshToken:    tok.RefreshToken,
		AuthorizedAt:    authorizedAt.UTC(),
		AuthorizedBy:    entityID,
		LastRefreshAt:   now,
		GrantExpiresAt:  authorizedAt.UTC().Add(grantMaxAge),
		State:           grantStateOK,
	}
	if tok.RefreshToken != "" {
		g.RefreshExpiresAt = now.Add(tok.RefreshExpiresIn)
		if g.RefreshExpiresAt.After(g.GrantExpiresAt) {
			g.RefreshExpiresAt = g.GrantExpiresAt
		}
	}
	return g
}

func (b *backend) pathUserTokenDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	appID, slot, errResp := validateAppAndSlot(d)
	if errResp != nil {
		return errResp, nil
	}
	unlock := b.grants.lock(appID, slot)
	defer unlock()
	g, err := b.reloadGrantLocked(ctx, req.Storage, appID, slot)
	if err != nil {
		return nil, err
	}
	if g == nil {
		return nil, nil
	}
	resp := &logical.Response{}
	if app, err := b.getApp(ctx, req.Storage, appID); err == nil && app != nil {
		if cfg, err := b.getConfig(ctx, req.Storage); err == nil {
			if client, err := b.larkClient(app, cfg); err == nil {
				for _, t := range []struct{ tok, hint string }{{g.RefreshToken, "refresh_token"}, {g.AccessToken, "access_token"}} {
					if t.tok == "" {
						continue
					}
					if err := b.revokeBestEffort(client, app, t.tok, t.hint); err != nil {
						resp.AddWarning(fmt.Sprintf("could not revoke the %s at Lark (%v); the grant is forgotten here anyway, and the user can remove the app's access in Lark", t.hint, err))
					}
				}
			}
		}
	}
	if err := req.Storage.Delete(ctx, grantStorageKey(appID, slot)); err != nil {
		return nil, err
	}
	if len(resp.Warnings) == 0 {
		return nil, nil
	}
	return resp, nil
}

// revokeReplaced revokes, at Lark, the tokens of a grant that a new one just replaced in its slot:
// Vault no longer knows them, so nobody should be able to use them.
func (b *backend) revokeReplaced(client *lark.App, app *appEntry, old, replacement *grantEntry) {
	if old == nil {
		return
	}
	if old.RefreshToken != "" && old.RefreshToken != replacement.RefreshToken {
		_ = b.revokeBestEffort(client, app, old.RefreshToken, lark.TokenTypeHintRefreshToken)
	}
	if old.AccessToken != "" && old.AccessToken != replacement.AccessToken {
		_ = b.revokeBestEffort(client, app, old.AccessToken, lark.TokenTypeHintAccessToken)
	}
}

func (b *backend) revokeBestEffort(client *lark.App, app *appEntry, token, hint string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := client.RevokeToken(ctx, token, hint)
	if err != nil {
		b.Logger().Warn("revoking a user token at Lark failed", "app_id", app.AppID, "hint", hint, "error", err)
	}
	return err
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
