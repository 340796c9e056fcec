package lark

import "errors"

// AppCredentials identify one Lark app to Lark. They travel only in request bodies sent to Lark and
// are redacted from every error.
type AppCredentials struct {
	AppID     string
	AppSecret string
	// UserTokenEndpoint is where user tokens are exchanged and refreshed; "" means TokenEndpointV3.
	UserTokenEndpoint TokenEndpoint
	// Type says how the app gets its app and tenant tokens; "" means AppTypeSelfBuilt.
	Type AppType
	// TenantTokenEndpoint picks how a self-built app gets its tenant token; "" means
	// TenantTokenLegacy. Store apps ignore it: their tenant tokens come per tenant (store_app.go).
	TenantTokenEndpoint TenantTokenEndpoint
}

// AppType is how Lark issues an app's tokens (docs/lark-api.md §2, §3). The values are what
// operators type and what the plugin stores, so they stay lower case and stable.
type AppType string

const (
	// AppTypeSelfBuilt is a custom app living in one tenant: app and tenant tokens come from the
	// app id and secret alone.
	AppTypeSelfBuilt AppType = "self_built"
	// AppTypeStore is a marketplace app serving many tenants: its app token also needs the
	// app_ticket Lark pushes every hour, and each tenant has a tenant token of its own.
	AppTypeStore AppType = "store"
)

// ParseAppType accepts exactly "self_built" or "store", like ParseBrand, so stored values have one
// spelling.
func ParseAppType(s string) (AppType, error) {
	switch t := AppType(s); t {
	case AppTypeSelfBuilt, AppTypeStore:
		return t, nil
	case "":
		return "", errors.New(`lark: app type is required; allowed values: "self_built", "store"`)
	default:
		return "", errors.New(`lark: unknown app type ` + quoteShort(s, 20) + `; allowed values: "self_built", "store"`)
	}
}

// App is a Client bound to one app: every call that needs the app's identity takes it from here, so
// no caller passes an app secret around. It is cheap to create and safe for concurrent use; the
// Client's connection pool is shared.
type App struct {
	*Client
	creds AppCredentials
}

// App binds the client to one app's credentials. Empty choices get their defaults; unknown values
// are kept and make the calls that depend on them fail with KindInvalidRequest, so a bad stored
// value surfaces as a clear error rather than as a silent fallback.
func (c *Client) App(creds AppCredentials) *App {
	if creds.UserTokenEndpoint == "" {
		creds.UserTokenEndpoint = TokenEndpointV3
	}
	if creds.Type == "" {
		creds.Type = AppTypeSelfBuilt
	}
	if creds.TenantTokenEndpoint == "" {
		creds.TenantTokenEndpoint = TenantTokenLegacy
	}
	return &App{Client: c, creds: creds}
}

// ID is the app's id (cli_…).
func (a *App) ID() string { return a.creds.AppID }

// Type is the app's type after defaults.
func (a *App) Type() AppType { return a.creds.Type }

// AuthorizeURL builds the authorize link for this app; r.AppID is filled in.
func (a *App) AuthorizeURL(r AuthorizeRequest) (string, error) {
	r.AppID = a.creds.AppID
	return a.Client.AuthorizeURL(r)
}

// requireType refuses a call made for the other kind of app before anything is sent: a store app
// asking the /internal endpoints (or a self-built app asking for a ticket) is a configuration
// mistake that Lark would answer with a less helpful code.
func (a *App) requireType(endpoint string, want AppType) *Error {
	switch a.creds.Type {
	case want:
		return nil
	case AppTypeSelfBuilt, AppTypeStore:
		return invalid(endpoint, "this call is for "+string(want)+" apps; the app is configured as "+string(a.creds.Type))
	}
	return invalid(endpoint, `app type must be "self_built" or "store"`)
}
