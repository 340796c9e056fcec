package larksecrets

import (
	"fmt"
	"unicode"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
)

// maxEventSecretBytes bounds the Verification Token and Encrypt Key. The console's values are a few
// dozen characters.
const maxEventSecretBytes = 256

// applyStoreFields takes the app type, tenant-token endpoint, notice tenant and event secrets of an
// apps/ write.
func applyStoreFields(app *appEntry, d *framework.FieldData, mount string) *logical.Response {
	_, endpointGiven := d.GetOk("tenant_token_endpoint")
	if raw, ok := d.GetOk("app_type"); ok {
		t, err := lark.ParseAppType(raw.(string))
		if err != nil {
			return logical.ErrorResponse("app_type: %s", err.Error())
		}
		if t == lark.AppTypeStore && !endpointGiven {
			// The setting means nothing for a store app; do not let an old value block the switch.
			app.TenantTokenEndpoint = ""
		}
		if _, given := d.GetOk("notify_tenant_key"); t != lark.AppTypeStore && !given {
			app.NotifyTenantKey = "" // likewise for a self-built app
		}
		app.AppType = string(t)
	}
	if endpointGiven {
		ep, err := lark.ParseTenantTokenEndpoint(d.Get("tenant_token_endpoint").(string))
		if err != nil {
			return logical.ErrorResponse("tenant_token_endpoint: %s", err.Error())
		}
		app.TenantTokenEndpoint = string(ep)
	}
	if app.isStore() && app.tenantTokenEndpoint() != lark.TenantTokenLegacy {
		return logical.ErrorResponse("tenant_token_endpoint=%s is for self-built apps: a store app's tenant tokens come per tenant, from tenant-token/%s/<tenant_key>", app.TenantTokenEndpoint, app.AppID)
	}
	if raw, ok := d.GetOk("notify_tenant_key"); ok {
		tk := raw.(string)
		if tk != "" {
			if err := validateTenantKey(tk); err != nil {
				return logical.ErrorResponse("notify_tenant_key: %s", err.Error())
			}
		}
		app.NotifyTenantKey = tk
	}
	switch {
	case !app.isStore() && app.NotifyTenantKey != "":
		return logical.ErrorResponse("notify_tenant_key is for store apps: app %s is self-built, and its notices go out with its one tenant token", app.AppID)
	case app.isStore() && len(app.NotifyOpenIDs) > 0 && app.NotifyTenantKey == "":
		return logical.ErrorResponse("app %s is a store app: it can message notify_open_ids only with the tenant token of their organisation; set notify_tenant_key to that tenant's key (the tenant_key of its app_open event, or see vault list %stenants/%s/)", app.AppID, mount, app.AppID)
	}
	for _, f := range []struct {
		name  string
		value *string
	}{{"verification_token", &app.VerificationToken}, {"encrypt_key", &app.EncryptKey}} {
		raw, ok := d.GetOk(f.name)
		if !ok {
			continue
		}
		v := raw.(string)
		if err := validateEventSecret(f.name, v); err != nil {
			return logical.ErrorResponse(err.Error())
		}
		*f.value = v
	}
	return checkEventSecrets(app, d, mount)
}

// checkEventSecrets refuses a write that leaves the app with an Encrypt Key but no Verification
// Token: events/<app_id> accepts an event only when its token matches, so every event would be
// refused. An app stored so by an older version is only warned about (eventSetupWarnings) until a
// write touches its event secrets.
func checkEventSecrets(app *appEntry, d *framework.FieldData, mount string) *logical.Response {
	_, tokenGiven := d.GetOk("verification_token")
	_, keyGiven := d.GetOk("encrypt_key")
	if (!tokenGiven && !keyGiven) || app.EncryptKey == "" || app.VerificationToken != "" {
		return nil
	}
	fix := fmt.Sprintf("store the console's Verification Token beside it (developer console → Events & Callbacks → Encryption Strategy): vault write %sapps/%s verification_token=<token>; or, to stop receiving events, remove both: vault write %sapps/%s verification_token= encrypt_key=",
		mount, app.AppID, mount, app.AppID)
	if tokenGiven && !keyGiven {
		return logical.ErrorResponse("verification_token cannot be removed while the app keeps its encrypt_key: events/%s would then refuse every event Lark posts. Nothing was stored; give the new token, or remove both: vault write %sapps/%s verification_token= encrypt_key=",
			app.AppID, mount, app.AppID)
	}
	return logical.ErrorResponse("encrypt_key needs verification_token: events/%s accepts an event only when the Verification Token inside matches, so with an Encrypt Key alone every event Lark posts would be refused. Nothing was stored; %s", app.AppID, fix)
}

// validateEventSecret accepts "" (remove) or what the console shows: printable ASCII, no spaces.
func validateEventSecret(name, v string) error {
	if len(v) > maxEventSecretBytes {
		return fmt.Errorf("%s is too long (%d bytes, at most %d)", name, len(v), maxEventSecretBytes)
	}
	for _, r := range v {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return fmt.Errorf("%s contains whitespace or non-printable characters; copy it from the developer console without a trailing newline", name)
		}
	}
	return nil
}

// eventSetupWarnings tells the operator what the app's event setup still lacks; nil when nothing.
func eventSetupWarnings(app *appEntry, r remedies) *logical.Response {
	var warnings []string
	switch {
	case app.isStore() && app.VerificationToken == "":
		warnings = append(warnings, fmt.Sprintf("a store app's app token needs the app_ticket Lark pushes to https://<vault address>/v1/%sevents/%s: store the console's Verification Token (and Encrypt Key) with verification_token= (encrypt_key=), or have your own event receiver forward each ticket with: vault write %sapps/%s/ticket app_ticket=...",
			r.mount, app.AppID, r.mount, app.AppID))
	case app.VerificationToken == "" && app.EncryptKey != "":
		warnings = append(warnings, fmt.Sprintf("encrypt_key is set without verification_token, so events/%s refuses every event; store the console's Verification Token: vault write %sapps/%s verification_token=<token>", app.AppID, r.mount, app.AppID))
	case app.VerificationToken != "" && app.EncryptKey == "":
		warnings = append(warnings, "no encrypt_key: Lark then posts events in clear text, and the Verification Token inside each is all that authenticates it; set an Encrypt Key in the console and here")
	}
	if len(warnings) == 0 {
		return nil
	}
	return &logical.Response{Warnings: warnings}
}
