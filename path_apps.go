package larksecrets

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
)

var appFields = map[string]*framework.FieldSchema{
	"app_id": {
		Type:        framework.TypeString,
		Description: `The Lark app's App ID, as shown in the developer console (e.g. "cli_a1b2c3d4e5f6a7b8").`,
		Required:    true,
	},
	"app_secret": {
		Type:        framework.TypeString,
		Description: "The app's App Secret. Required when the app is created; write-only: reads show only whether it is set and a short SHA-256 fingerprint.",
		DisplayAttrs: &framework.DisplayAttributes{
			Sensitive: true,
		},
	},
	"brand": {
		Type:          framework.TypeString,
		Description:   `Which Lark the app lives in: "feishu" (open.feishu.cn, China) or "lark" (open.larksuite.com, international). Defaults to "feishu" when the app is created.`,
		AllowedValues: []interface{}{string(lark.BrandFeishu), string(lark.BrandLark)},
	},
	"base_url": {
		Type:        framework.TypeString,
		Description: `Optional override of the OpenAPI host, such as "http://127.0.0.1:8787" for the Lark emulator or an egress proxy. Scheme and host only; empty restores the brand's host.`,
	},
	"accounts_base_url": {
		Type:        framework.TypeString,
		Description: `Optional override of the accounts host (authorize page, v3 token endpoint, revoke), such as the emulator's address. Scheme and host only; empty restores the brand's host (accounts.feishu.cn or accounts.larksuite.com).`,
	},
	"redirect_uri": {
		Type:        framework.TypeString,
		Description: `Where Lark sends the user's browser after authorization. Use Vault's own callback, "https://<vault address>/v1/<mount>/oauth/callback", or your app's page that then writes the code to oauth/<app_id>/exchange. It must be listed under Security Settings → Redirect URLs in the developer console. Required before users can authorize.`,
	},
	"scopes": {
		Type:        framework.TypeCommaStringSlice,
		Description: `Scopes requested from every user of this app (comma-separated), e.g. "contact:user.base:readonly,im:message". "offline_access" is always added: without it Lark issues no refresh token.`,
	},
	"lease_mode": {
		Type:          framework.TypeString,
		Description:   `Overrides the mount's lease_mode for this app's tokens: "lease", "none", or "" to follow the mount.`,
		AllowedValues: []interface{}{"", leaseModeLease, leaseModeNone},
	},
	"notify_open_ids": {
		Type:        framework.TypeCommaStringSlice,
		Description: "Lark open_ids (ou_...) of the people told, by a Lark message card from this app's bot (plain text where Lark refuses the card), when one of the app's user grants nears its end (7 and 3 days ahead) or has ended. The app needs the im:message:send_as_bot scope and these people must be within its availability.",
	},
	"notify_tenant_key": {
		Type:        framework.TypeString,
		Description: "Store apps only: the tenant key of the organisation the notify_open_ids people belong to. A store app reaches a person only with the tenant token of their organisation, so it is required with notify_open_ids on a store app. Users' own notices go out in each user's tenant, which Vault learns when the grant is made.",
	},
	"notify_users": {
		Type:        framework.TypeBool,
		Description: "Also message the user whose grant nears its end: a card with a button that opens a fresh authorize link for their own slot (valid 24 hours, usable only by them), in notify_locale's language.",
	},
	"notify_locale": {
		Type:          framework.TypeString,
		Description:   `Language of this app's notices (cards and their plain-text fallback): "zh_cn" (simplified Chinese) or "en_us" (English). Empty restores the brand's default: "zh_cn" for brand feishu, "en_us" for brand lark.`,
		AllowedValues: []interface{}{"", localeZhCN, localeEnUS},
	},
	"identity_metadata_key": {
		Type:        framework.TypeString,
		Description: `Name of a Vault entity metadata key that holds each person's Lark identity for this app: their open_id ("ou_...") or union_id ("on_..."), e.g. "lark_union_id". oauth/<app_id>/authorize then only lets the requester's own Lark user complete the authorization. Empty: not used.`,
	},
	"identity_alias_mount": {
		Type:        framework.TypeString,
		Description: `Accessor of an auth mount (e.g. an OIDC/JWT mount whose logins come from Feishu, "auth_oidc_1a2b3c4d") whose alias name for a person is their Lark open_id or union_id. Used like identity_metadata_key. Empty: not used.`,
	},
	"app_type": {
		Type:          framework.TypeString,
		Description:   `"self_built" (a custom app of one tenant; the default) or "store" (a marketplace app that many tenants install: its app token needs the app_ticket Lark pushes to events/<app_id>, and each tenant has its own tenant token at tenant-token/<app_id>/<tenant_key>). Changing it drops the app's cached tokens.`,
		AllowedValues: []interface{}{string(lark.AppTypeSelfBuilt), string(lark.AppTypeStore)},
	},
	"tenant_token_endpoint": {
		Type:          framework.TypeString,
		Description:   `Where a self-built app's tenant token comes from: "legacy" (open.*/open-apis/auth/v3/tenant_access_token/internal; the default) or "v3" (accounts.*/oauth/v3/token with grant_type=client_credentials, the newest docs' endpoint; JWT tokens of a few KB). Store apps get tenant tokens per tenant and ignore it. Changing it drops the app's cached tokens.`,
		AllowedValues: []interface{}{string(lark.TenantTokenLegacy), string(lark.TenantTokenV3)},
	},
	"verification_token": {
		Type:        framework.TypeString,
		Description: `The Verification Token of the app's event subscription (developer console → Events & Callbacks → Encryption Strategy). Every event Lark posts to events/<app_id> must carry it; without it, events are refused. Write-only: reads show whether it is set and a fingerprint. Empty removes it, which is refused while encrypt_key is set (remove both together).`,
		DisplayAttrs: &framework.DisplayAttributes{
			Sensitive: true,
		},
	},
	"encrypt_key": {
		Type:        framework.TypeString,
		Description: `The Encrypt Key of the app's event subscription. With it set, only encrypted events are accepted, and an event must decrypt under it (recommended: without it the Verification Token travels in clear text). Requires verification_token (without it every event would be refused, so such a write is refused). Write-only: reads show whether it is set and a fingerprint. Empty removes it.`,
		DisplayAttrs: &framework.DisplayAttributes{
			Sensitive: true,
		},
	},
	"token_endpoint": {
		Type:          framework.TypeString,
		Description:   `Which OAuth token endpoint to use for user tokens: "v3" (accounts.*/oauth/v3/token, the newest docs; default) or "v2" (open.*/open-apis/authen/v2/oauth/token).`,
		AllowedValues: []interface{}{"v3", "v2"},
	},
}

func pathApps(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern:      "apps/?$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "apps"},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback: b.pathAppsList,
					Summary:  "List the configured Lark apps, with each app's type, grants and health.",
					// Health comes from the active node's memory (status.go).
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
				},
			},
			HelpSynopsis: "List the Lark apps configured in this mount.",
			HelpDescription: `Returns the app ids. With "vault list -detailed", key_info shows per app: app_type
(self_built or store), grants (slots holding a grant), health ("ok" or "unhealthy") and
problems (how many reasons "vault read <mount>status" gives for the app, which also says
what to do). Reading an app shows its settings; its secret is never shown.`,
		},
		{
			// ".+" rather than a strict pattern, so a malformed id reaches the handler and gets a
			// clear error instead of "unsupported path".
			Pattern:        "apps/(?P<app_id>.+)",
			DisplayAttrs:   &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "app"},
			Fields:         appFields,
			ExistenceCheck: b.appExists,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.CreateOperation: &framework.PathOperation{
					Callback: b.pathAppWrite,
					Summary:  "Register a Lark app and its secret.",
				},
				logical.UpdateOperation: &framework.PathOperation{
					Callback: b.pathAppWrite,
					Summary:  "Change an app's settings or rotate its secret; fields left out keep their value.",
				},
				logical.ReadOperation: &framework.PathOperation{
					Callback: b.pathAppRead,
					Summary:  "Show an app's settings (never its secret).",
				},
				logical.DeleteOperation: &framework.PathOperation{
					Callback: b.pathAppDelete,
					Summary:  "Forget an app, its secret and its cached tokens.",
				},
			},
			HelpSynopsis: "One Lark app: its secret, brand and endpoint.",
			HelpDescription: `Create the app once with its App Secret:

    vault write lark/apps/cli_a1b2c3d4e5f6a7b8 app_secret=... brand=feishu

The secret is write-only. A read shows "app_secret_set" and "app_secret_fingerprint"
(the first 8 hex digits of its SHA-256). Writing a new secret, brand, base_url, app_type
or tenant_token_endpoint drops the app's cached tokens, so the next read fetches them
with the new settings.

A store (marketplace) app also needs its event subscription's secrets, so that Lark's
app_ticket reaches it through events/<app_id>:

    vault write lark/apps/cli_a1b2c3d4e5f6a7b8 app_type=store \
        verification_token=... encrypt_key=...

verification_token and encrypt_key are write-only like the secret.`,
		},
	}
}

func (b *backend) appExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	appID := d.Get("app_id").(string)
	if validateAppID(appID) != nil {
		// Let the handler produce the error message.
		return false, nil
	}
	app, err := b.apps.get(ctx, req.Storage, appID)
	return app != nil, err
}

func (b *backend) pathAppsList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	ids, err := b.apps.list(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	info, err := b.appsListInfo(ctx, req, ids)
	if err != nil {
		return nil, err
	}
	return logical.ListResponseWithInfo(ids, info), nil
}

func (b *backend) pathAppRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	appID := d.Get("app_id").(string)
	if err := validateAppID(appID); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	app, err := b.apps.get(ctx, req.Storage, appID)
	if err != nil {
		return nil, err
	}
	if app == nil {
		return nil, nil
	}
	return &logical.Response{Data: map[string]interface{}{
		"identity_metadata_key":          app.IdentityMetadataKey,
		"identity_alias_mount":           app.IdentityAliasMount,
		"app_id":                         app.AppID,
		"brand":                          app.Brand,
		"base_url":                       app.BaseURL,
		"effective_base_url":             app.openBaseURL(),
		"accounts_base_url":              app.AccountsBaseURL,
		"redirect_uri":                   app.RedirectURI,
		"scopes":                         app.Scopes,
		"token_endpoint":                 string(app.tokenEndpoint()),
		"lease_mode":                     app.LeaseMode,
		"notify_open_ids":                app.NotifyOpenIDs,
		"notify_users":                   app.NotifyUsers,
		"notify_tenant_key":              app.NotifyTenantKey,
		"notify_locale":                  app.notifyLocale(),
		"app_secret_set":                 app.AppSecret != "",
		"app_secret_fingerprint":         secretFingerprint(app.AppSecret),
		"app_type":                       string(app.appType()),
		"tenant_token_endpoint":          string(app.tenantTokenEndpoint()),
		"verification_token_set":         app.VerificationToken != "",
		"verification_token_fingerprint": fingerprintIfSet(app.VerificationToken),
		"encrypt_key_set":                app.EncryptKey != "",
		"encrypt_key_fingerprint":        fingerprintIfSet(app.EncryptKey),
		"events_path":                    "/v1/" + remediesFor(req).mount + "events/" + app.AppID,
		"created_at":                     app.CreatedAt.Format(time.RFC3339),
		"updated_at":                     app.UpdatedAt.Format(time.RFC3339),
		"secret_updated_at":              app.SecretUpdatedAt.Format(time.RFC3339),
	}}, nil
}

func validateSecret(secret string) error {
	if secret == "" {
		return fmt.Errorf("app_secret must not be empty")
	}
	if len(secret) > maxSecretBytes {
		return fmt.Errorf("app_secret is too long (%d bytes, at most %d)", len(secret), maxSecretBytes)
	}
	for _, r := range secret {
		// Whitespace is the usual sign of a copy-paste accident (a trailing newline); Lark
		// secrets are printable ASCII.
		if r > unicode.MaxASCII || !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return fmt.Errorf("app_secret contains whitespace or non-printable characters; Lark app secrets are printable ASCII without spaces (check for a trailing newline)")
		}
	}
	return nil
}

func (b *backend) pathAppWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	appID := d.Get("app_id").(string)
	if err := validateAppID(appID); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	existing, err := b.apps.load(ctx, req.Storage, appID)
	if err != nil {
		return nil, err
	}

	now := b.clock.Now().UTC()
	app := appEntry{AppID: appID, Brand: string(lark.BrandFeishu), CreatedAt: now}
	if existing != nil {
		app = *existing
	}
	app.Version = appEntryVersion

	if raw, ok := d.GetOk("app_secret"); ok {
		secret := raw.(string)
		if err := validateSecret(secret); err != nil {
			return logical.ErrorResponse(err.Error()), nil
		}
		if secret != app.AppSecret {
			app.AppSecret = secret
			app.SecretUpdatedAt = now
		}
	} else if existing == nil {
		return logical.ErrorResponse("app_secret is required when creating an app"), nil
	}
	if raw, ok := d.GetOk("brand"); ok {
		brand, err := lark.ParseBrand(raw.(string))
		if err != nil {
			return logical.ErrorResponse(err.Error()), nil
		}
		app.Brand = string(brand)
	}
	if raw, ok := d.GetOk("base_url"); ok {
		u := raw.(string)
		if len(u) > maxFieldBytes {
			return logical.ErrorResponse("base_url is too long (%d bytes)", len(u)), nil
		}
		if u != "" {
			if err := lark.ValidateBaseURL(u); err != nil {
				return logical.ErrorResponse("base_url: %s", err.Error()), nil
			}
		}
		app.BaseURL = u
	}
	if raw, ok := d.GetOk("accounts_base_url"); ok {
		u := raw.(string)
		if len(u) > maxFieldBytes {
			return logical.ErrorResponse("accounts_base_url is too long (%d bytes)", len(u)), nil
		}
		if u != "" {
			if err := lark.ValidateBaseURL(u); err != nil {
				return logical.ErrorResponse("accounts_base_url: %s", err.Error()), nil
			}
		}
		app.AccountsBaseURL = u
	}
	if raw, ok := d.GetOk("redirect_uri"); ok {
		u := raw.(string)
		if u != "" {
			if err := validateRedirectURI(u); err != nil {
				return logical.ErrorResponse("redirect_uri: %s", err.Error()), nil
			}
		}
		app.RedirectURI = u
	}
	if raw, ok := d.GetOk("scopes"); ok {
		scopes, err := normalizeScopes(raw.([]string), nil)
		if err != nil {
			return logical.ErrorResponse("scopes: %s", err.Error()), nil
		}
		app.Scopes = scopes
	}
	if raw, ok := d.GetOk("notify_open_ids"); ok {
		ids := []string{}
		for _, id := range raw.([]string) {
			id = strings.TrimSpace(id)
			if id == "" {
				continue
			}
			if !openIDPattern.MatchString(id) {
				return logical.ErrorResponse("notify_open_ids: %q is not a Lark open_id (ou_...)", truncateForMessage(id)), nil
			}
			ids = append(ids, id)
		}
		if len(ids) > 50 {
			return logical.ErrorResponse("notify_open_ids: at most 50 recipients"), nil
		}
		app.NotifyOpenIDs = ids
	}
	if raw, ok := d.GetOk("notify_users"); ok {
		app.NotifyUsers = raw.(bool)
	}
	if raw, ok := d.GetOk("notify_locale"); ok {
		l := raw.(string)
		if l != "" && l != localeZhCN && l != localeEnUS {
			return logical.ErrorResponse(`notify_locale must be "zh_cn", "en_us" or "" (the brand's default), got %q`, truncateForMessage(l)), nil
		}
		app.NotifyLocale = l
	}
	if raw, ok := d.GetOk("lease_mode"); ok {
		m := raw.(string)
		if m != "" && !validLeaseMode(m) {
			return logical.ErrorResponse(`lease_mode must be "lease", "none" or "" (follow the mount), got %q`, truncateForMessage(m)), nil
		}
		app.LeaseMode = m
	}
	if raw, ok := d.GetOk("identity_metadata_key"); ok {
		k := raw.(string)
		if k != "" && !metadataKeyPattern.MatchString(k) {
			return logical.ErrorResponse("identity_metadata_key %q is not a metadata key name (1-128 letters, digits, '_', '-', '.')", truncateForMessage(k)), nil
		}
		app.IdentityMetadataKey = k
	}
	if raw, ok := d.GetOk("identity_alias_mount"); ok {
		m := raw.(string)
		if m != "" && !mountAccessorPattern.MatchString(m) {
			return logical.ErrorResponse("identity_alias_mount %q is not an auth mount accessor (such as auth_oidc_1a2b3c4d; see vault auth list -format=json)", truncateForMessage(m)), nil
		}
		app.IdentityAliasMount = m
	}
	if raw, ok := d.GetOk("token_endpoint"); ok {
		ep, err := lark.ParseTokenEndpoint(raw.(string))
		if err != nil {
			return logical.ErrorResponse("token_endpoint: %s", err.Error()), nil
		}
		app.TokenEndpoint = string(ep)
	}
	if resp := applyStoreFields(&app, d, remediesFor(req).mount); resp != nil {
		return resp, nil
	}

	endpointChanged := existing == nil || existing.AppSecret != app.AppSecret ||
		existing.Brand != app.Brand || existing.BaseURL != app.BaseURL ||
		existing.AccountsBaseURL != app.AccountsBaseURL ||
		existing.appType() != app.appType() || existing.tenantTokenEndpoint() != app.tenantTokenEndpoint()
	app.UpdatedAt = now

	if err := b.apps.put(ctx, req.Storage, &app); err != nil {
		return nil, err
	}
	if endpointChanged && existing != nil {
		// Tokens fetched with the old secret or from another host must not outlive the change.
		if err := b.tokens.drop(ctx, req.Storage, appID); err != nil {
			return nil, err
		}
	}
	return eventSetupWarnings(&app, remediesFor(req)), nil
}

func (b *backend) pathAppDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	appID := d.Get("app_id").(string)
	if err := validateAppID(appID); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	// User grants cannot be re-created without every user authorizing again: refuse rather than
	// lose them.
	slots, err := b.grants.list(ctx, req.Storage, appID)
	if err != nil {
		return nil, err
	}
	if len(slots) > 0 {
		return logical.ErrorResponse("app %s still holds %d user grant(s); delete them first (vault delete %suser-token/%s/<user>), which also revokes them at Lark", appID, len(slots), remediesFor(req).mount, appID), nil
	}
	// Tokens first: if deleting them fails the app stays and the delete can simply be repeated.
	if err := b.tokens.drop(ctx, req.Storage, appID); err != nil {
		return nil, err
	}
	if err := b.slots.dropApp(ctx, req.Storage, appID); err != nil {
		return nil, err
	}
	if err := b.tickets.delete(ctx, req.Storage, appID); err != nil {
		return nil, err
	}
	if err := b.tenants.dropApp(ctx, req.Storage, appID); err != nil {
		return nil, err
	}
	if err := b.rollbacks.dropApp(ctx, req.Storage, appID); err != nil {
		return nil, err
	}
	// The ids of the events handled for this app stay until they age out (the sweep prunes them):
	// an app configured again with the same keys must not accept an event it already acted on.
	if err := b.apps.delete(ctx, req.Storage, appID); err != nil {
		return nil, err
	}
	return nil, nil
}

var (
	metadataKeyPattern   = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)
	mountAccessorPattern = regexp.MustCompile(`^auth_[A-Za-z0-9_]+_[0-9a-f]{8}$`)
)
