package larkemu

// Endpoint names key the counters and failure injection. They are part of the control API (JSON
// clients use the same strings), so they never change once published.
const (
	// EndpointAppAccessToken is POST /open-apis/auth/v3/app_access_token/internal.
	EndpointAppAccessToken = "app_access_token"
	// EndpointTenantAccessToken is POST /open-apis/auth/v3/tenant_access_token/internal.
	EndpointTenantAccessToken = "tenant_access_token"
	// EndpointAuthorize is GET /open-apis/authen/v1/authorize (the browser-facing consent page).
	EndpointAuthorize = "authorize"
	// EndpointOAuthToken is POST /open-apis/authen/v2/oauth/token and POST /oauth/v3/token, any grant.
	EndpointOAuthToken = "oauth_token"
	// EndpointCodeExchange counts token calls with grant_type=authorization_code. It is a subset of
	// EndpointOAuthToken, so a failure can target code exchanges without touching refreshes.
	EndpointCodeExchange = "code_exchange"
	// EndpointRefresh counts token calls with grant_type=refresh_token (a subset of EndpointOAuthToken).
	EndpointRefresh = "refresh"
	// EndpointRefreshReuse counts refresh calls that presented an already used refresh token. It is a
	// counter only; failures cannot target it.
	EndpointRefreshReuse = "refresh_reuse"
	// EndpointRevoke is POST /oauth/v1/revoke.
	EndpointRevoke = "revoke"
	// EndpointUserInfo is GET /open-apis/authen/v1/user_info.
	EndpointUserInfo = "user_info"
	// EndpointMessages is POST /open-apis/im/v1/messages.
	EndpointMessages = "messages"
	// EndpointClientCredentials counts v3 token calls with grant_type=client_credentials (a subset
	// of EndpointOAuthToken, like EndpointCodeExchange).
	EndpointClientCredentials = "client_credentials"
	// EndpointAppTicketResend is POST /open-apis/auth/v3/app_ticket/resend (store apps).
	EndpointAppTicketResend = "app_ticket_resend"
	// EndpointStoreAppAccessToken is POST /open-apis/auth/v3/app_access_token (store apps).
	EndpointStoreAppAccessToken = "store_app_access_token"
	// EndpointStoreTenantAccessToken is POST /open-apis/auth/v3/tenant_access_token (store apps).
	// Calls per tenant are on GET /_emulator/apps/{app_id}/tenants.
	EndpointStoreTenantAccessToken = "store_tenant_access_token"
	// EndpointEventDelivery counts the emulator's own POSTs to apps' event URLs, every attempt and
	// retry. It is a counter only; failures cannot target it.
	EndpointEventDelivery = "event_delivery"
	// EndpointAuthenV1 is the deprecated authen v1 user token endpoints, all four of them:
	// POST /open-apis/authen/v1/{oidc/access_token,oidc/refresh_access_token,access_token,refresh_access_token}.
	EndpointAuthenV1 = "authen_v1"
	// EndpointDeviceAuthorization is POST /oauth/v1/device_authorization (the device flow's start).
	EndpointDeviceAuthorization = "device_authorization"
	// EndpointDeviceToken counts token calls with grant_type=urn:ietf:params:oauth:grant-type:device_code
	// (a subset of EndpointOAuthToken, like EndpointRefresh).
	EndpointDeviceToken = "device_token"
	// EndpointAll makes an injected failure match every endpoint (except the grant-specific subsets
	// EndpointCodeExchange, EndpointRefresh, EndpointClientCredentials and EndpointDeviceToken, which a wildcard already
	// hit at EndpointOAuthToken).
	EndpointAll = "*"
)

// counterNames lists every counter, so GET /_emulator/counters always has the same keys.
var counterNames = []string{
	EndpointAppAccessToken,
	EndpointTenantAccessToken,
	EndpointAuthorize,
	EndpointOAuthToken,
	EndpointCodeExchange,
	EndpointRefresh,
	EndpointRefreshReuse,
	EndpointRevoke,
	EndpointUserInfo,
	EndpointMessages,
	EndpointClientCredentials,
	EndpointAppTicketResend,
	EndpointStoreAppAccessToken,
	EndpointStoreTenantAccessToken,
	EndpointEventDelivery,
	EndpointAuthenV1,
	EndpointDeviceAuthorization,
	EndpointDeviceToken,
}

// failureTargets are the endpoint names a Failure may name.
var failureTargets = map[string]bool{
	EndpointAll:               true,
	EndpointAppAccessToken:    true,
	EndpointTenantAccessToken: true,
	EndpointAuthorize:         true,
	EndpointOAuthToken:        true,
	EndpointCodeExchange:      true,
	EndpointRefresh:           true,
	EndpointRevoke:            true,
	EndpointUserInfo:          true,
	EndpointMessages:          true,

	EndpointClientCredentials:      true,
	EndpointAppTicketResend:        true,
	EndpointStoreAppAccessToken:    true,
	EndpointStoreTenantAccessToken: true,
	EndpointAuthenV1:               true,
	EndpointDeviceAuthorization:    true,
	EndpointDeviceToken:            true,
}

// Paths served by the emulator. The "open" and the "accounts" hosts of real Lark are both this server.
const (
	PathAppAccessToken      = "/open-apis/auth/v3/app_access_token/internal"
	PathTenantAccessToken   = "/open-apis/auth/v3/tenant_access_token/internal"
	PathAuthorize           = "/open-apis/authen/v1/authorize"
	PathOAuthTokenV2        = "/open-apis/authen/v2/oauth/token"
	PathOAuthTokenV3        = "/oauth/v3/token"
	PathRevoke              = "/oauth/v1/revoke"
	PathDeviceAuthorization = "/oauth/v1/device_authorization"
	PathUserInfo            = "/open-apis/authen/v1/user_info"
	PathMessages            = "/open-apis/im/v1/messages"

	PathAppTicketResend          = "/open-apis/auth/v3/app_ticket/resend"
	PathStoreAppAccessToken      = "/open-apis/auth/v3/app_access_token"
	PathStoreTenantAccessToken   = "/open-apis/auth/v3/tenant_access_token"
	PathV1OIDCAccessToken        = "/open-apis/authen/v1/oidc/access_token"
	PathV1OIDCRefreshAccessToken = "/open-apis/authen/v1/oidc/refresh_access_token"
	PathV1AccessToken            = "/open-apis/authen/v1/access_token"
	PathV1RefreshAccessToken     = "/open-apis/authen/v1/refresh_access_token"

	// ControlPrefix is reserved for the test control API; real Lark has nothing there.
	ControlPrefix = "/_emulator/"
)
