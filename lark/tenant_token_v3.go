package lark

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// EndpointTenantAccessTokenV3 names the v3 client-credentials call in errors and Observe calls. It
// differs from EndpointTenantAccessToken so metrics tell the two generations apart.
const EndpointTenantAccessTokenV3 = "tenant_access_token_v3"

// TenantTokenEndpoint picks how a self-built app gets its tenant token.
type TenantTokenEndpoint string

const (
	// TenantTokenLegacy is POST {open}/open-apis/auth/v3/tenant_access_token/internal
	// (docs/lark-api.md §2): proven, documented, the default.
	TenantTokenLegacy TenantTokenEndpoint = "legacy"
	// TenantTokenV3 is POST {accounts}/oauth/v3/token with grant_type=client_credentials
	// (docs/lark-api.md §2b): the newest documentation's endpoint. Its tokens are JWTs of a few KB.
	TenantTokenV3 TenantTokenEndpoint = "v3"
)

// ParseTenantTokenEndpoint accepts exactly "legacy" or "v3".
func ParseTenantTokenEndpoint(s string) (TenantTokenEndpoint, error) {
	switch ep := TenantTokenEndpoint(s); ep {
	case TenantTokenLegacy, TenantTokenV3:
		return ep, nil
	case "":
		return "", errors.New(`lark: tenant token endpoint is required; allowed values: "legacy", "v3"`)
	default:
		return "", errors.New(`lark: unknown tenant token endpoint ` + quoteShort(s, 20) + `; allowed values: "legacy", "v3"`)
	}
}

// tenantAccessTokenV3 runs the client-credentials grant. What is known of it (docs/lark-api.md §2b,
// from the tenant_access_token page and the official CLI, which uses it for Feishu and Lark):
//
//   - A form body with grant_type, client_id and client_secret. The client authenticates in the body
//     only: adding HTTP Basic as well is refused with 20070.
//   - Success is {code:0, access_token, token_type, expires_in}; the token is a JWT.
//   - Errors use the OAuth shape of §5: a wrong secret is HTTP 400 {"error":"invalid_client",
//     "error_description":"The client secret is invalid.","code":20002}, an unknown app 20048.
//
// Issuing a tenant token spends nothing, so the call is retried like a read.
func (a *App) tenantAccessTokenV3(ctx context.Context) (*TenantToken, error) {
	appID, appSecret := a.creds.AppID, a.creds.AppSecret
	if err := checkAppCredentials(EndpointTenantAccessTokenV3, appID, appSecret); err != nil {
		return nil, err
	}
	var resp clientCredentialsResponse
	err := a.do(ctx, request{
		endpoint: EndpointTenantAccessTokenV3,
		method:   http.MethodPost,
		url:      a.accounts("/oauth/v3/token"),
		// A form, as the CLI sends it; the v3 endpoint's accepted content types are otherwise
		// undocumented (docs/lark-api.md §13).
		body:     url.Values{"grant_type": {"client_credentials"}, "client_id": {appID}, "client_secret": {appSecret}},
		secrets:  []string{appSecret},
		classify: classifyClientCredentials,
	}, &resp)
	if err != nil {
		return nil, err
	}
	return &TenantToken{TenantAccessToken: resp.AccessToken, ExpiresIn: time.Duration(resp.ExpiresIn) * time.Second}, nil
}

// classifyClientCredentials maps the OAuth codes a client-credentials grant can meet. The codes are
// the shared OAuth numbering (docs/lark-api.md §5); only the app-level ones can occur here, since no
// user or code is involved. RFC 6749's unauthorized_client (the client may not use this grant) is
// app setup, not a wrong secret; the official CLI treats it like invalid_client, which is also an
// app-setup failure, so the plugin's reaction is the same either way.
func classifyClientCredentials(code int, errName string) ErrorKind {
	if code == 0 && errName == "unauthorized_client" {
		return KindAppSetup
	}
	return classifyOAuthCommon(code, errName)
}

type clientCredentialsResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
}

func (r *clientCredentialsResponse) validate() error {
	if err := checkToken("access_token", r.AccessToken, true); err != nil {
		return err
	}
	// The CLI shows the endpoint can also issue DPoP-bound tokens (token_type "DPoP") when a proof
	// is sent. This client sends none, so anything but Bearer is a token the plugin could not use
	// in an Authorization: Bearer header. A missing token_type is accepted: the field is not
	// documented as mandatory.
	if r.TokenType != "" && !strings.EqualFold(r.TokenType, "Bearer") {
		return errors.New("token_type is not Bearer (sender-constrained tokens are not supported)")
	}
	return checkSeconds("expires_in", r.ExpiresIn)
}
