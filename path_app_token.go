package larksecrets

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const accessTokenHelp = `Reading returns the token, its real expiry and a non-renewable lease whose TTL is
the token's remaining life minus the mount's lease_safety_margin. Vault Agent re-reads
such a lease at about 90% of its TTL, so rendered files stay fresh by themselves.

The token is fetched from Lark once per lifetime and cached (in memory and in storage),
however many readers arrive at once. Lark re-issues a token only in the last 30 minutes
of its two hours; the cached one is replaced once it has less than token_refresh_window
left. Revoking the lease only removes Vault's record: Lark has no way to revoke an app
or tenant token early.

A read may ask for a minimum remaining life, e.g. "vault read lark/app-token/<app_id>
min_ttl=1h": the answer's lease then lasts at least that long. A cached token that
ends sooner is replaced first if Lark would issue a new one (once for all readers
asking together). Lark does not while the current token has 30 minutes or more left,
so such a read is refused with HTTP 409, naming the longest min_ttl possible now and
when a fresh token can be had; more than a fresh token ever lasts (2 hours minus
lease_safety_margin, minus a minute) is refused with HTTP 400.`

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
				"min_ttl": minTTLField(kind.larkName()),
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
// pathTenantTokenOfTenant is tenant-token/<app_id>/<tenant_key>: one tenant's token of a store
// (marketplace) app.
func pathTenantTokenOfTenant(b *backend) *framework.Path {
	return &framework.Path{
		Pattern:      "tenant-token/(?P<app_id>[^/]+)/(?P<tenant_key>.+)",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "tenant-token-of-tenant"},
		Fields: map[string]*framework.FieldSchema{
			"app_id": {
				Type:        framework.TypeString,
				Description: "The store app; it must be configured under apps/ with app_type=store.",
				Required:    true,
			},
			"tenant_key": {
				Type:        framework.TypeString,
				Description: `The tenant whose tenant_access_token to return, as Lark names it (e.g. "736588c92lxf175d"); tenants/<app_id>/ lists the known ones.`,
				Required:    true,
			},
			"min_ttl": minTTLField("tenant_access_token"),
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback: b.pathTenantTokenOfTenantRead,
				Summary:  "Return one tenant's tenant_access_token of a store app as a non-renewable lease.",
			},
		},
		HelpSynopsis: "The tenant_access_token of one tenant of a store app.",
		HelpDescription: `A store (marketplace) app has one tenant token per tenant that installed it. Each is
fetched from Lark with the app token once per lifetime, cached, and served like
tenant-token/<app_id> of a self-built app (lease or lease-free). Policies can give a
team one tenant by path:

    path "lark/tenant-token/cli_a1b2c3d4e5f6a7b8/736588c92lxf175d" { capabilities = ["read"] }

An unknown tenant, or one where the app is not installed or enabled, is refused with
HTTP 400 naming the tenant.

` + accessTokenHelp,
	}
}

func (b *backend) pathTenantTokenOfTenantRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	appID, tk := d.Get("app_id").(string), d.Get("tenant_key").(string)
	if err := validateAppID(appID); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	if err := validateTenantKey(tk); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	r := remediesFor(req)
	app, err := b.apps.get(ctx, req.Storage, appID)
	switch {
	case err != nil:
		return nil, err
	case app == nil:
		return nil, r.httpError(appID, errAppNotConfigured)
	case !app.isStore():
		return logical.ErrorResponse("app %s is self-built: it has one tenant token, at %stenant-token/%s (set app_type=store if it is a marketplace app)", appID, r.mount, appID), nil
	}
	return b.serveAccessToken(ctx, req, d, tenantTokenRef(appID, tk))
}

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
	return b.serveAccessToken(ctx, req, d, tokenRef{App: appID, Kind: kind})
}

// serveAccessToken answers a read of the token ref names, as a lease or lease-free, honouring the
// read's min_ttl.
func (b *backend) serveAccessToken(ctx context.Context, req *logical.Request, d *framework.FieldData, ref tokenRef) (*logical.Response, error) {
	cfg, err := b.config.get(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	limit := appTokenMaxLife - cfg.LeaseSafetyMargin - minTTLFetchAllowance
	minTTL, err := parseMinTTL(d, limit, fmt.Sprintf("an %s lives at most 2h, and its lease ends lease_safety_margin (%s) earlier, less a minute for fetching it",
		ref.Kind.larkName(), cfg.LeaseSafetyMargin))
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	var need time.Duration
	if minTTL > 0 {
		// The lease ends LeaseSafetyMargin before the token; a second more keeps the lease's
		// whole-second TTL from falling short of min_ttl by the time the answer is built.
		need = minTTL + cfg.LeaseSafetyMargin + time.Second
	}
	tok, warning, err := b.tokens.getRefLasting(ctx, req.Storage, ref, need)
	if err != nil {
		var short *shortLifeError
		if errors.As(err, &short) {
			return nil, logical.CodedError(http.StatusConflict, shortLifeMessage(short, minTTL, cfg.LeaseSafetyMargin, b.clock.Now()))
		}
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

// shortLifeMessage explains a min_ttl that cannot be met now and what can.
func shortLifeMessage(e *shortLifeError, minTTL, margin time.Duration, now time.Time) string {
	most := e.expiresAt.Sub(now) - margin - time.Second
	if most < 0 {
		most = 0
	}
	most = most.Truncate(time.Second)
	name := e.ref.Kind.larkName()
	if e.reissueAt.IsZero() {
		return fmt.Sprintf("min_ttl %s cannot be met now: the %s Lark just issued expires at %s, so its lease lasts at most %s; ask for at most that",
			minTTL, name, e.expiresAt.UTC().Format(time.RFC3339), most)
	}
	return fmt.Sprintf("min_ttl %s cannot be met now: the current %s expires at %s, so its lease lasts at most %s, and Lark "+
		"issues a new app or tenant token only in the last 30 minutes of the current one's 2 hours. Ask for at most %s, or read "+
		"again after %s, when a fresh token can be fetched",
		minTTL, name, e.expiresAt.UTC().Format(time.RFC3339), most, most, e.reissueAt.UTC().Format(time.RFC3339))
}
