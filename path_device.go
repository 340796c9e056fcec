package larksecrets

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
)

func pathDevice(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern:      "device/(?P<app_id>[^/]+)/(?P<user>[^/]+)$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "device-login"},
			Fields: map[string]*framework.FieldSchema{
				"app_id": appIDField,
				"user":   userSlotField,
				"scopes": {
					Type:        framework.TypeCommaStringSlice,
					Description: "Extra scopes for this login, on top of the app's scopes; offline_access is always requested. Only when starting (write).",
				},
				"expected_open_id": {
					Type:        framework.TypeString,
					Description: "The Lark user (open_id, ou_...) who must approve. It may only repeat the slot's own user (from the slot's binding, its current grant or the requester's Vault identity). Only when starting (write).",
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback: b.pathDeviceStart,
					Summary:  "Start a device login for a user slot: returns the user code and the page where the user approves it.",
				},
				logical.ReadOperation: &framework.PathOperation{
					Callback: b.pathDeviceRead,
					Summary:  "How the slot's device login stands: pending, approved, denied, expired, refused, failed or cancelled.",
				},
				logical.DeleteOperation: &framework.PathOperation{
					Callback: b.pathDeviceDelete,
					Summary:  "Cancel a pending device login (or forget a finished one).",
				},
			},
			HelpSynopsis:    "Fill a user slot by device login: no browser redirect, no callback.",
			HelpDescription: deviceHelp,
		},
		{
			Pattern:      "device/(?P<app_id>[^/]+)/?$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "device-logins"},
			Fields:       map[string]*framework.FieldSchema{"app_id": appIDField},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback: b.pathDeviceList,
					Summary:  "List the slots of an app with a device login, and how each stands.",
				},
			},
			HelpSynopsis:    "List the device logins of an app.",
			HelpDescription: "Lists the slots of the app that have a device login (pending, or finished within the last 24 hours), with their status; `vault list -detailed` shows it as columns.",
		},
	}
}

const deviceHelp = `A device login fills a user slot the way Lark's own CLI logs in: writing here asks Lark for
a short user code and answers with it (user_code), the page where the user approves it
(verification_uri, and verification_uri_complete with the code filled in), how long it is
valid (expires_in, expires_at) and how often Lark may be asked (interval). The user opens the
page on any device, signs in to Lark and approves. Nothing has to stay connected: Vault itself
asks Lark every interval (on the active node, within the app's keepalive_rate) and stores the
grant as soon as the user approves; reading this path says how it stands. The pending login
survives reloads and leader changes, and its device code is used once.

Who may start one, and who may approve it, follows the same rules as
oauth/<app_id>/authorize (README, "Who may fill a slot"): only the slot's own Lark user; an
approval by anyone else is refused and revoked at Lark. Starting again replaces a pending login.
Deleting cancels it.

Use it for bots on servers without a public callback, command-line tools and AI agents, or
wherever the app has no redirect_uri.`

func (b *backend) pathDeviceStart(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
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
	requested := d.Get("scopes").([]string)
	if _, err := normalizeScopes(requested, []string{offlineAccessScope}); err != nil {
		return logical.ErrorResponse("scopes: %s", err.Error()), nil
	}
	if !b.WriteSafeReplicationState() {
		return nil, logical.ErrReadOnly
	}
	r := remediesFor(req)
	sess, err := b.sessions.open(ctx, req.Storage, id.App)
	if err != nil {
		return nil, r.httpError(id.App, err)
	}
	expected, refusal := b.selfServiceIdentity(ctx, req, sess, id, asked)
	if refusal != nil {
		return nil, refusal
	}
	dl, err := b.devices.start(ctx, req.Storage, sess, deviceStart{id: id, scopes: requested, expected: expected,
		entityID: req.EntityID, tokenAccessor: req.ClientTokenAccessor})
	if err != nil {
		if strings.HasPrefix(err.Error(), "scopes: ") {
			return logical.ErrorResponse(err.Error()), nil
		}
		var le *lark.Error
		if errors.As(err, &le) && le.Kind == lark.KindInvalidRequest {
			return logical.ErrorResponse(le.Error()), nil
		}
		return nil, r.httpError(id.App, err)
	}
	now := b.clock.Now()
	data := dl.view(now)
	data["expires_in"] = int64(dl.ExpiresAt.Sub(now).Seconds())
	data["check_with"] = fmt.Sprintf("vault read %sdevice/%s/%s", r.mount, id.App, id.Slot)
	return &logical.Response{Data: data}, nil
}

func (b *backend) pathDeviceRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	id, errResp := grantIDFrom(d)
	if errResp != nil {
		return errResp, nil
	}
	for _, k := range []string{"scopes", "expected_open_id"} {
		if _, ok := req.Data[k]; ok {
			return logical.ErrorResponse("%s is only accepted when starting a device login (write)", k), nil
		}
	}
	dl, err := b.devices.get(ctx, req.Storage, id)
	if err != nil {
		return nil, err
	}
	r := remediesFor(req)
	if dl == nil {
		return nil, logical.CodedError(http.StatusNotFound, fmt.Sprintf("no device login for user %q of app %s; start one with: vault write %sdevice/%s/%s",
			id.Slot, id.App, r.mount, id.App, id.Slot))
	}
	return &logical.Response{Data: dl.view(b.clock.Now())}, nil
}

func (b *backend) pathDeviceDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	id, errResp := grantIDFrom(d)
	if errResp != nil {
		return errResp, nil
	}
	if !b.WriteSafeReplicationState() {
		return nil, logical.ErrReadOnly
	}
	if _, err := b.devices.cancel(ctx, req.Storage, id); err != nil {
		return nil, err
	}
	return nil, nil
}

func (b *backend) pathDeviceList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	appID := d.Get("app_id").(string)
	if err := validateAppID(appID); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	slots, err := b.devices.list(ctx, req.Storage, appID)
	if err != nil {
		return nil, err
	}
	now := b.clock.Now()
	keys := make([]string, 0, len(slots))
	info := map[string]interface{}{}
	for _, slot := range slots {
		dl, err := b.devices.get(ctx, req.Storage, grantID{appID, slot})
		if err != nil {
			return nil, err
		}
		if dl == nil {
			continue
		}
		keys = append(keys, slot)
		v := dl.view(now)
		info[slot] = map[string]interface{}{"status": v["status"], "user_code": v["user_code"], "expires_at": v["expires_at"], "reason": v["reason"]}
	}
	return logical.ListResponseWithInfo(keys, info), nil
}

// view is what reads show of a device login; never the device code.
func (dl *deviceLogin) view(now time.Time) map[string]interface{} {
	v := map[string]interface{}{
		"app_id":                    dl.AppID,
		"user":                      dl.Slot,
		"status":                    dl.Status,
		"user_code":                 dl.UserCode,
		"verification_uri":          dl.VerificationURI,
		"verification_uri_complete": dl.VerificationURIComplete,
		"scopes":                    dl.Scopes,
		"expected_user":             dl.Expected.String(),
		"started_at":                formatTime(dl.StartedAt),
		"expires_at":                formatTime(dl.ExpiresAt),
		"interval":                  dl.IntervalSeconds,
		"polls":                     dl.Polls,
		"reason":                    dl.Reason,
		"finished_at":               formatTime(dl.FinishedAt),
	}
	if dl.Status == deviceStatusPending {
		v["next_poll_at"] = formatTime(dl.NextPollAt)
		if !now.Before(dl.ExpiresAt) {
			v["status"] = deviceStatusExpired
			v["reason"] = "the user code expired before anyone approved it; start a new device login"
		}
	}
	if dl.LastError != "" {
		v["last_error"] = dl.LastError
	}
	return v
}
