package lark

// Store (marketplace) apps, docs/lark-api.md §3. One app serves many tenants:
//
//  1. Lark pushes an app_ticket event to the app's event URL every hour (larkevent decodes it);
//     ResendAppTicket asks for an extra push when the plugin holds no usable ticket.
//  2. AppAccessTokenWithTicket turns app id, secret and the current ticket into an app token.
//  3. TenantAccessTokenFor turns that app token and a tenant key into the tenant's own token.
//
// Both tokens follow the 2 h / 30 min reuse rule of §2, so the plugin caches one app token per app
// and one tenant token per tenant.
//
// Error codes. The store endpoints' pages defer to Lark's generic error table; what each code means
// here is partly documented and partly inferred, and the comments on the code constants below say
// which. A code not listed falls back to classifyCode (10003, 10014, 10015, 99991543, 99991400), so
// a wrong secret on a store app reads exactly as on a self-built one.

import (
	"context"
	"net/http"
	"strings"
	"time"
)

// Endpoint names of the store-app calls, used in errors and Observe calls.
const (
	EndpointStoreAppAccessToken    = "store_app_access_token"
	EndpointStoreTenantAccessToken = "store_tenant_access_token"
	EndpointAppTicketResend        = "app_ticket_resend"
)

// Codes with a meaning on the store endpoints.
const (
	// codeAppTicketInvalid: the generic table says only "get app access token fail"; Lark's
	// official Go SDK (core/constants.go) and Java SDK (response Body) both name 10012 "app ticket
	// invalid" and react to it by requesting a resend. Inferred from the SDKs, so it is classified
	// only on the store app-token call, where a ticket is involved.
	codeAppTicketInvalid = 10012
	// codeNotStoreApp: generic table "app resend fail": the resend failed, "check whether the app
	// is an ISV (store) app; self-built apps cannot call this API". Documented.
	codeNotStoreApp = 10016
	// codeAppIDUnauthorized: generic table "app id unauthorized": "request authentication failed;
	// the app information or the tenant information of the request is wrong". On the tenant-token
	// call the app token is checked separately (99991664), so the tenant key is what is left:
	// inferred.
	codeAppIDUnauthorized = 10005
	// codeTenantKeyNotFound1/2: generic table "these ids not existed": "the current tenant_key
	// does not exist". Documented (for business APIs; applied here by inference).
	codeTenantKeyNotFound1 = 99992500
	codeTenantKeyNotFound2 = 99992501
	// codeAppNotInstalled: generic table "unauthorized app": "app status unavailable, check the
	// app's installation in the current tenant" (docs/lark-api.md §9). Documented.
	codeAppNotInstalled = 99991673
	// codeMalformedToken: "Invalid token: must start with t-/u-" (docs/lark-api.md §9).
	codeMalformedToken = 99991671
	// 10013 "get tenant access token fail" is deliberately absent: the table gives no cause, and a
	// third-party reading calls it an app-token problem while the text fits a tenant problem too.
	// Guessing wrong would either drop a healthy tenant or keep refetching a good app token, so it
	// stays KindLarkError (MeaningUnknown: warn and count).
)

// Bounds for values the plugin stores and sends. Lark documents no lengths; tickets and tenant keys
// seen in the docs are tens of characters, so these only keep garbage out.
const (
	maxTicketLen    = 1 << 10
	maxTenantKeyLen = 256
)

// AppAccessTokenWithTicket calls POST /open-apis/auth/v3/app_access_token with the app's id, secret
// and the app_ticket Lark last pushed. An empty ticket, or one Lark refuses, is KindAppTicketInvalid
// (MeaningAwaitTicket). The answer has no tenant token: store apps get those per tenant.
func (a *App) AppAccessTokenWithTicket(ctx context.Context, ticket string) (*AppToken, error) {
	const endpoint = EndpointStoreAppAccessToken
	if err := a.requireType(endpoint, AppTypeStore); err != nil {
		return nil, err
	}
	if err := checkAppCredentials(endpoint, a.creds.AppID, a.creds.AppSecret); err != nil {
		return nil, err
	}
	if ticket == "" {
		return nil, &Error{Endpoint: endpoint, Kind: KindAppTicketInvalid, detail: "no app_ticket held"}
	}
	if !printableToken(ticket, maxTicketLen) {
		return nil, &Error{Endpoint: endpoint, Kind: KindAppTicketInvalid, detail: "the held app_ticket is malformed"}
	}
	var resp storeAppTokenResponse
	err := a.do(ctx, request{
		endpoint: endpoint,
		method:   http.MethodPost,
		url:      a.openAPI("/open-apis/auth/v3/app_access_token"),
		body:     storeAppTokenRequest{AppID: a.creds.AppID, AppSecret: a.creds.AppSecret, AppTicket: ticket},
		secrets:  []string{a.creds.AppSecret, ticket},
		classify: classifyStoreAppToken,
	}, &resp)
	if err != nil {
		return nil, err
	}
	return &AppToken{AppAccessToken: resp.AppAccessToken, ExpiresIn: time.Duration(resp.Expire) * time.Second}, nil
}

// TenantAccessTokenFor calls POST /open-apis/auth/v3/tenant_access_token with a store app's app
// token and one tenant's key. Refusals: KindAppTokenInvalid (fetch a new app token, try once more),
// KindTenantKeyInvalid (that tenant cannot be served).
func (a *App) TenantAccessTokenFor(ctx context.Context, appAccessToken, tenantKey string) (*TenantToken, error) {
	const endpoint = EndpointStoreTenantAccessToken
	if err := a.requireType(endpoint, AppTypeStore); err != nil {
		return nil, err
	}
	switch {
	case checkToken("app access token", appAccessToken, true) != nil:
		return nil, invalid(endpoint, "app access token is empty or malformed")
	case tenantKey == "":
		return nil, invalid(endpoint, "tenant_key is empty")
	case !printableToken(tenantKey, maxTenantKeyLen):
		return nil, invalid(endpoint, "tenant_key is malformed")
	}
	var resp tenantTokenResponse
	err := a.do(ctx, request{
		endpoint: endpoint,
		method:   http.MethodPost,
		url:      a.openAPI("/open-apis/auth/v3/tenant_access_token"),
		body:     storeTenantTokenRequest{AppAccessToken: appAccessToken, TenantKey: tenantKey},
		secrets:  []string{appAccessToken},
		classify: classifyStoreTenantToken,
	}, &resp)
	if err != nil {
		return nil, err
	}
	return &TenantToken{TenantAccessToken: resp.TenantAccessToken, ExpiresIn: time.Duration(resp.Expire) * time.Second}, nil
}

// ResendAppTicket calls POST /open-apis/auth/v3/app_ticket/resend, which makes Lark push the
// app_ticket event again at once. It answers {"code":0,"msg":"success"} and nothing else; the ticket
// itself arrives later, by the event. Asking twice only pushes twice, so the call is retried like a
// read. Lark answering 10016 means it does not consider the app a store app: KindAppTypeMismatch.
func (a *App) ResendAppTicket(ctx context.Context) error {
	const endpoint = EndpointAppTicketResend
	if err := a.requireType(endpoint, AppTypeStore); err != nil {
		return err
	}
	if err := checkAppCredentials(endpoint, a.creds.AppID, a.creds.AppSecret); err != nil {
		return err
	}
	return a.do(ctx, request{
		endpoint: endpoint,
		method:   http.MethodPost,
		url:      a.openAPI("/open-apis/auth/v3/app_ticket/resend"),
		body:     appCredentials{AppID: a.creds.AppID, AppSecret: a.creds.AppSecret},
		secrets:  []string{a.creds.AppSecret},
		classify: classifyResend,
	}, nil)
}

func classifyStoreAppToken(code int, _ string) ErrorKind {
	if code == codeAppTicketInvalid {
		return KindAppTicketInvalid
	}
	return ""
}

func classifyStoreTenantToken(code int, _ string) ErrorKind {
	switch code {
	case codeGatewayAppTokenBad, codeGatewayAppTokenInvalid, codeMalformedToken:
		// 99991664 "invalid app token" is documented; 99991663 and 99991671 name the token the
		// call presented, which on this endpoint is the app token.
		return KindAppTokenInvalid
	case codeTenantKeyNotFound1, codeTenantKeyNotFound2, codeAppNotInstalled, codeAppIDUnauthorized, codeGatewayTenantCodeBad:
		// 99991665 "invalid tenant code" is the gateway's code for a bad tenant (§9). On this
		// endpoint no tenant token is presented, so the tenant it can only mean is tenant_key:
		// inferred.
		return KindTenantKeyInvalid
	}
	return ""
}

func classifyResend(code int, _ string) ErrorKind {
	if code == codeNotStoreApp {
		return KindAppTypeMismatch
	}
	return ""
}

// printableToken accepts a non-empty value of at most max bytes of visible ASCII: what tickets and
// tenant keys look like, and nothing that could smuggle control characters into logs or paths.
func printableToken(s string, max int) bool {
	return s != "" && len(s) <= max && !strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r >= 0x7f })
}

type storeAppTokenRequest struct {
	AppID     string `json:"app_id"`
	AppSecret string `json:"app_secret"`
	AppTicket string `json:"app_ticket"`
}

type storeTenantTokenRequest struct {
	AppAccessToken string `json:"app_access_token"`
	TenantKey      string `json:"tenant_key"`
}

type storeAppTokenResponse struct {
	AppAccessToken string `json:"app_access_token"`
	Expire         int64  `json:"expire"`
}

func (r *storeAppTokenResponse) validate() error {
	if err := checkToken("app_access_token", r.AppAccessToken, true); err != nil {
		return err
	}
	return checkExpire(r.Expire)
}
