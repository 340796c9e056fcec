package larksecrets

import (
	"context"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// tokenKind names the two app-level tokens. The value is part of storage keys and secret types.
type tokenKind string

const (
	kindApp    tokenKind = "app"
	kindTenant tokenKind = "tenant"
)

var allTokenKinds = []tokenKind{kindApp, kindTenant}

// larkName is Lark's own name of the token, used in responses so readers can tell them apart.
func (k tokenKind) larkName() string { return string(k) + "_access_token" }

func (k tokenKind) secretType() string { return "lark_" + string(k) + "_token" }

const accessTokenHelp = `Reading returns the token, its real expiry and a non-renewable lease whose TTL is
the token's remaining life minus the mount's lease_safety_margin. Vault Agent re-reads
such a lease at about 90% of its TTL, so rendered files stay fresh by themselves.

The token is fetched from Lark once per lifetime and cached (in memory and in storage),
however many readers arrive at once. Lark re-issues a token only in the last 30 minutes
of its two hours; the cached one is replaced once it has less than token_refresh_window
left. Revoking the lease only removes Vault's record: Lark has no way to revoke an app
or tenant token early.`

func pathAccessTokens(b *backend) []*framework.Path {
	// The per-tenant path of store apps first: tenant-token/(.+) would take it otherwise.
	paths := []*framework.Path{pathTenantTokenOfTenant(b)}
	for _, kind := range allTokenKinds {
		kind := kind
		paths = append(paths, &framework.Path{
			Pattern:      string(kind) + "-token/(?P<app_id>.+)",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: string(kind) + "-token"},
			Fields: map[string]*framework.FieldSchema{
				"app_id": {
					Type:        framework.TypeString,
					Description: "The Lark app whose " + kind.larkName() + " to return; it must be configured under apps/.",
					Required:    true,
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
						return b.pathAccessTokenRead(ctx, req, d, kind)
					},
					Summary: "Return the app's " + kind.larkName() + " as a non-renewable lease.",
				},
			},
			HelpSynopsis:    "The Lark " + kind.larkName() + " of an app, as a non-renewable lease.",
			HelpDescription: accessTokenHelp,
		})
	}
	return paths
}

// secretAccessToken declares the lease type. There is no Renew (the lease is non-renewable: a token
// cannot outlive Lark's expiry) and Revoke does nothing upstream, because Lark offers no way to
// revoke app or tenant tokens; it must still succeed so Vault can drop the lease.
func secretAccessToken(kind tokenKind) *framework.Secret {
	return &framework.Secret{
		Type: kind.secretType(),
		Fields: map[string]*framework.FieldSchema{
			"access_token": {Type: framework.TypeString, Description: "The " + kind.larkName() + "."},
			"expires_at":   {Type: framework.TypeString, Description: "When Lark stops accepting the token (RFC 3339)."},
			"expires_in":   {Type: framework.TypeInt, Description: "Seconds until the token expires, at the time of the read."},
		},
		Revoke: func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
			return nil, nil
		},
	}
}

func (b *backend) pathAccessTokenRead(ctx context.Context, req *logical.Request, d *framework.FieldData, kind tokenKind) (*logical.Response, error) {
	if resp := rejectUnknownFields(req, d); resp != nil {
		return resp, nil
	}
	appID := d.Get("app_id").(string)
	if err := validateAppID(appID); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	if kind == kindTenant {
		app, err := b.apps.get(ctx, req.Storage, appID)
		if err != nil {
			return nil, err
		}
		if app != nil && app.isStore() {
			r := remediesFor(req)
			return logical.ErrorResponse("app %s is a store app: each tenant has its own tenant token; read %stenant-token/%s/<tenant_key> (known tenants: vault list %stenants/%s/)",
				appID, r.mount, appID, r.mount, appID), nil
		}
	}
	return b.serveAccessToken(ctx, req, tokenRef{App: appID, Kind: kind})
}

// serveAccessToken answers a read of the token ref names, as a lease or lease-free.
func (b *backend) serveAccessToken(ctx context.Context, req *logical.Request, ref tokenRef) (*logical.Response, error) {
	tok, warning, err := b.tokens.getRef(ctx, req.Storage, ref)
	if err != nil {
		return nil, remediesFor(req).httpError(ref.App, err)
	}
	data := map[string]interface{}{
		"app_id":       ref.App,
		"token_type":   ref.Kind.larkName(),
		"access_token": tok.Token,
		"expires_at":   tok.ExpiresAt.UTC().Format(time.RFC3339),
		"expires_in":   int64(tok.ExpiresAt.Sub(b.clock.Now()).Seconds()),
	}
	internal := map[string]interface{}{"app_id": ref.App}
	if ref.Tenant != "" {
		data["tenant_key"] = ref.Tenant
		internal["tenant_key"] = ref.Tenant
	}
	resp, err := b.tokenResponse(ctx, req.Storage, ref.App, ref.Kind.secretType(), data, internal, tok.ExpiresAt, tok.FetchedAt)
	if err != nil {
		return nil, err
	}
	if warning != "" {
		resp.AddWarning(warning)
	}
	return resp, nil
}
