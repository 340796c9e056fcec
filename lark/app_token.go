package lark

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strings"
	"time"
)

// Endpoint names used in errors and Observe calls.
const (
	EndpointAppAccessToken    = "app_access_token"
	EndpointTenantAccessToken = "tenant_access_token"
)

// AppToken is the answer of the self-built app endpoint, which hands out both tokens at once.
type AppToken struct {
	AppAccessToken string
	// TenantAccessToken is empty if Lark leaves it out; the backend fetches tenant tokens through
	// TenantAccessToken, so this endpoint is not the only source.
	TenantAccessToken string
	// ExpiresIn is Lark's `expire`: the time REMAINING, not the full lifetime. A token fetched twice
	// is the same token with a smaller ExpiresIn.
	ExpiresIn time.Duration
}

// TenantToken is a tenant_access_token and its remaining lifetime.
type TenantToken struct {
	TenantAccessToken string
	ExpiresIn         time.Duration
}

// AppAccessToken calls POST /open-apis/auth/v3/app_access_token/internal, for self-built apps.
// A store app's app token needs its app_ticket: see AppAccessTokenWithTicket.
func (a *App) AppAccessToken(ctx context.Context) (*AppToken, error) {
	if err := a.requireType(EndpointAppAccessToken, AppTypeSelfBuilt); err != nil {
		return nil, err
	}
	var resp appTokenResponse
	if err := a.appCredentialCall(ctx, EndpointAppAccessToken, "/open-apis/auth/v3/app_access_token/internal", &resp); err != nil {
		return nil, err
	}
	return &AppToken{
		AppAccessToken:    resp.AppAccessToken,
		TenantAccessToken: resp.TenantAccessToken,
		ExpiresIn:         time.Duration(resp.Expire) * time.Second,
	}, nil
}

// TenantAccessToken fetches a self-built app's tenant token from the endpoint its credentials name:
// POST /open-apis/auth/v3/tenant_access_token/internal (TenantTokenLegacy, the default) or the
// OAuth v3 client-credentials grant (TenantTokenV3, tenant_token_v3.go). A store app has one tenant
// token per tenant: see TenantAccessTokenFor.
func (a *App) TenantAccessToken(ctx context.Context) (*TenantToken, error) {
	if err := a.requireType(EndpointTenantAccessToken, AppTypeSelfBuilt); err != nil {
		return nil, err
	}
	switch a.creds.TenantTokenEndpoint {
	case TenantTokenLegacy:
	case TenantTokenV3:
		return a.tenantAccessTokenV3(ctx)
	default:
		return nil, invalid(EndpointTenantAccessToken, `tenant token endpoint must be "legacy" or "v3"`)
	}
	var resp tenantTokenResponse
	if err := a.appCredentialCall(ctx, EndpointTenantAccessToken, "/open-apis/auth/v3/tenant_access_token/internal", &resp); err != nil {
		return nil, err
	}
	return &TenantToken{
		TenantAccessToken: resp.TenantAccessToken,
		ExpiresIn:         time.Duration(resp.Expire) * time.Second,
	}, nil
}

func (a *App) appCredentialCall(ctx context.Context, endpoint, path string, out validator) error {
	appID, appSecret := a.creds.AppID, a.creds.AppSecret
	// Lark would answer 10003 anyway; failing here saves a round trip and a rate-limit slot.
	switch {
	case strings.TrimSpace(appID) == "":
		return &Error{Endpoint: endpoint, Kind: KindInvalidRequest, detail: "app_id is empty"}
	case appSecret == "":
		return &Error{Endpoint: endpoint, Kind: KindInvalidRequest, detail: "app_secret is empty"}
	}
	return a.do(ctx, request{
		endpoint: endpoint,
		method:   http.MethodPost,
		url:      a.openAPI(path),
		body:     appCredentials{AppID: appID, AppSecret: appSecret},
		secrets:  []string{appSecret},
	}, out)
}

type appCredentials struct {
	AppID     string `json:"app_id"`
	AppSecret string `json:"app_secret"`
}

type appTokenResponse struct {
	AppAccessToken    string `json:"app_access_token"`
	TenantAccessToken string `json:"tenant_access_token"`
	Expire            int64  `json:"expire"`
}

func (r *appTokenResponse) validate() error {
	if err := checkToken("app_access_token", r.AppAccessToken, true); err != nil {
		return err
	}
	if err := checkToken("tenant_access_token", r.TenantAccessToken, false); err != nil {
		return err
	}
	return checkExpire(r.Expire)
}

type tenantTokenResponse struct {
	TenantAccessToken string `json:"tenant_access_token"`
	Expire            int64  `json:"expire"`
}

func (r *tenantTokenResponse) validate() error {
	if err := checkToken("tenant_access_token", r.TenantAccessToken, true); err != nil {
		return err
	}
	return checkExpire(r.Expire)
}

// maxTokenLen leaves room for JWT tokens (1-2 KB today; docs/lark-api.md §1 says reserve 4 KB, and
// the v3 tenant token is a JWT too) while refusing absurd values before they reach storage. Every
// token the client accepts or sends passes checkToken, so this is the one limit to raise if Lark's
// tokens ever grow; response bodies (Config.MaxBodyBytes, 1 MiB) are far larger.
const maxTokenLen = 8 << 10

// checkToken rejects tokens that could not be sent back as an Authorization header, which is where
// every token ends up; a token with spaces or control characters would break (or inject into) it.
func checkToken(field, tok string, required bool) error {
	switch {
	case tok == "" && required:
		return errors.New("missing " + field)
	case tok == "":
		return nil
	case len(tok) > maxTokenLen:
		return errors.New(field + " is implausibly long")
	}
	for i := 0; i < len(tok); i++ {
		if b := tok[i]; b <= ' ' || b >= 0x7f {
			return errors.New(field + " contains characters not allowed in a token")
		}
	}
	return nil
}

func checkExpire(expire int64) error { return checkSeconds("expire", expire) }

// checkSeconds checks a lifetime in seconds before it becomes a time.Duration, where an absurd value
// would overflow into a negative (already expired) duration.
func checkSeconds(field string, v int64) error {
	switch {
	case v <= 0:
		return errors.New(field + " is missing or not positive")
	case v > math.MaxInt64/int64(time.Second):
		return errors.New(field + " is out of range")
	}
	return nil
}
