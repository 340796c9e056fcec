package lark

// Why the user-token calls do not use golang.org/x/oauth2, although it speaks OAuth 2.0:
//
//   - It posts only form bodies; Lark's v2 token endpoint takes JSON only.
//   - It reports a refusal as *oauth2.RetrieveError: an RFC 6749 error name plus the raw body.
//     Lark's numeric code, which decides between "retry", "the user must authorize again" (20037,
//     20064, 20073, ...) and "fix the app secret" (20002), would have to be dug out of that body,
//     and the raw body is exactly what must never reach a log unredacted.
//   - It refreshes behind the caller's back: a TokenSource refreshes whenever its token looks
//     expired, and AuthStyleAutoDetect re-sends a refused token request with the other client
//     authentication style. A Lark refresh token (and a code) works exactly once, so any hidden or
//     repeated request can cost the user's grant.
//   - It cannot tell "Lark refused" from "the answer got lost after Lark acted", which is the one
//     question the backend must answer before it may try a refresh again (Error.ConsumedMaybe).
//
// So these calls go through do() like every other endpoint: JSON bodies, client credentials in the
// body (never HTTP Basic: Lark answers 20070 when it sees both), exactly one attempt for anything
// that spends a single-use credential, typed errors and redacted secrets.

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Endpoint names of the user-grant calls, used in errors and Observe calls.
const (
	EndpointOAuthToken   = "oauth_token" // authorization code exchange
	EndpointOAuthRefresh = "oauth_refresh"
	EndpointOAuthRevoke  = "oauth_revoke"
)

// TokenEndpoint picks the OAuth token endpoint generation. Lark documents both, with the same
// request and response (lark-api.md §0, §5); which one a tenant should use has changed between doc
// revisions, so the choice is configuration, not code.
type TokenEndpoint string

const (
	// TokenEndpointV3 is POST {accounts}/oauth/v3/token, the newest and what the official CLI uses.
	TokenEndpointV3 TokenEndpoint = "v3"
	// TokenEndpointV2 is POST {open}/open-apis/authen/v2/oauth/token.
	TokenEndpointV2 TokenEndpoint = "v2"
)

// ParseTokenEndpoint accepts exactly "v3" or "v2", like ParseBrand, so stored values have one spelling.
func ParseTokenEndpoint(s string) (TokenEndpoint, error) {
	switch ep := TokenEndpoint(s); ep {
	case TokenEndpointV3, TokenEndpointV2:
		return ep, nil
	case "":
		return "", errors.New(`lark: token endpoint is required; allowed values: "v3", "v2"`)
	default:
		return "", errors.New(`lark: unknown token endpoint ` + quoteShort(s, 20) + `; allowed values: "v3", "v2"`)
	}
}

func (c *Client) tokenURL(ep TokenEndpoint) (string, bool) {
	switch ep {
	case TokenEndpointV3:
		return c.accounts("/oauth/v3/token"), true
	case TokenEndpointV2:
		return c.openAPI("/open-apis/authen/v2/oauth/token"), true
	}
	return "", false
}

// UserToken is a user_access_token and, if the user granted offline_access, the refresh token that
// replaces the one just spent.
type UserToken struct {
	AccessToken string
	ExpiresIn   time.Duration
	// RefreshToken is "" and RefreshExpiresIn 0 when offline_access was not granted.
	RefreshToken     string
	RefreshExpiresIn time.Duration
	Scope            []string // effective scopes
	TokenType        string
}

// ExchangeCode redeems an authorization code. It makes exactly one attempt: a code works once, so
// after a lost answer the code is probably gone and the user must start over (see
// Error.ConsumedMaybe). redirectURI and codeVerifier must repeat what the authorize link used.
func (a *App) ExchangeCode(ctx context.Context, code, redirectURI, codeVerifier string) (*UserToken, error) {
	switch {
	case code == "":
		return nil, invalid(EndpointOAuthToken, "authorization code is empty")
	case codeVerifier != "" && !pkcePattern.MatchString(codeVerifier):
		return nil, invalid(EndpointOAuthToken, "code_verifier must be 43-128 characters of [A-Za-z0-9-._~]")
	}
	return a.userTokenCall(ctx, EndpointOAuthToken, tokenRequest{
		GrantType: "authorization_code", ClientID: a.creds.AppID, ClientSecret: a.creds.AppSecret,
		Code: code, RedirectURI: redirectURI, CodeVerifier: codeVerifier,
	}, classifyCodeExchange, a.creds.AppSecret, code, codeVerifier)
}

// RefreshUserToken spends refreshToken for a new token pair. It makes exactly one attempt, because
// Lark invalidates a refresh token the moment it accepts it: retrying after a lost answer would
// present a dead token and end the grant. The caller decides about retrying, and may do so only when
// the error's ConsumedMaybe is false. Dead grants come back as KindReauthRequired with a Reason.
func (a *App) RefreshUserToken(ctx context.Context, refreshToken string) (*UserToken, error) {
	if refreshToken == "" {
		return nil, invalid(EndpointOAuthRefresh, "refresh token is empty")
	}
	return a.userTokenCall(ctx, EndpointOAuthRefresh, tokenRequest{
		GrantType: "refresh_token", ClientID: a.creds.AppID, ClientSecret: a.creds.AppSecret, RefreshToken: refreshToken,
	}, classifyRefresh, a.creds.AppSecret, refreshToken)
}

func (a *App) userTokenCall(ctx context.Context, endpoint string, body tokenRequest,
	classify func(int, string) ErrorKind, secrets ...string) (*UserToken, error) {
	if err := checkAppCredentials(endpoint, body.ClientID, body.ClientSecret); err != nil {
		return nil, err
	}
	u, ok := a.tokenURL(a.creds.UserTokenEndpoint)
	if !ok {
		return nil, invalid(endpoint, `token endpoint must be "v3" or "v2"`)
	}
	var resp userTokenResponse
	err := a.do(ctx, request{
		endpoint: endpoint, method: http.MethodPost, url: u, body: body,
		secrets: secrets, maxAttempts: 1, classify: classify,
	}, &resp)
	if err != nil {
		return nil, err
	}
	return resp.userToken(), nil
}

// Token type hints for RevokeToken.
const (
	TokenTypeHintAccessToken  = "access_token"
	TokenTypeHintRefreshToken = "refresh_token"
)

// RevokeToken revokes a user access or refresh token (POST {accounts}/oauth/v1/revoke, known only
// from the official CLI, lark-api.md §11). Revoking a refresh token ends the grant; an access token
// stops working at once. Lark treats an unknown token as success, so revoking twice is harmless and
// the call is retried like any idempotent one. tokenTypeHint is "", "access_token" or "refresh_token".
func (a *App) RevokeToken(ctx context.Context, token, tokenTypeHint string) error {
	appID, appSecret := a.creds.AppID, a.creds.AppSecret
	if err := checkAppCredentials(EndpointOAuthRevoke, appID, appSecret); err != nil {
		return err
	}
	switch {
	case token == "":
		return invalid(EndpointOAuthRevoke, "token is empty")
	case tokenTypeHint != "" && tokenTypeHint != TokenTypeHintAccessToken && tokenTypeHint != TokenTypeHintRefreshToken:
		return invalid(EndpointOAuthRevoke, `token_type_hint must be empty, "access_token" or "refresh_token"`)
	}
	// A form, as the CLI sends it: the only shape this undocumented endpoint is known to accept.
	form := url.Values{"client_id": {appID}, "client_secret": {appSecret}, "token": {token}}
	if tokenTypeHint != "" {
		form.Set("token_type_hint", tokenTypeHint)
	}
	return a.do(ctx, request{
		endpoint: EndpointOAuthRevoke, method: http.MethodPost, url: a.accounts("/oauth/v1/revoke"), body: form,
		secrets: []string{appSecret, token}, classify: classifyOAuthCommon,
	}, nil)
}

// tokenRequest is the JSON body of both grants; v2 takes nothing else, and v3 takes it too.
type tokenRequest struct {
	GrantType    string `json:"grant_type"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	Code         string `json:"code,omitempty"`
	RedirectURI  string `json:"redirect_uri,omitempty"`
	CodeVerifier string `json:"code_verifier,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

type userTokenResponse struct {
	AccessToken           string `json:"access_token"`
	ExpiresIn             int64  `json:"expires_in"`
	RefreshToken          string `json:"refresh_token"`
	RefreshTokenExpiresIn int64  `json:"refresh_token_expires_in"`
	TokenType             string `json:"token_type"`
	Scope                 string `json:"scope"`
}

// userToken converts a validated answer.
func (r *userTokenResponse) userToken() *UserToken {
	t := &UserToken{
		AccessToken: r.AccessToken,
		ExpiresIn:   time.Duration(r.ExpiresIn) * time.Second,
		Scope:       strings.Fields(r.Scope),
		TokenType:   r.TokenType,
	}
	if r.RefreshToken != "" {
		t.RefreshToken = r.RefreshToken
		t.RefreshExpiresIn = time.Duration(r.RefreshTokenExpiresIn) * time.Second
	}
	return t
}

func (r *userTokenResponse) validate() error {
	if err := checkToken("access_token", r.AccessToken, true); err != nil {
		return err
	}
	if err := checkSeconds("expires_in", r.ExpiresIn); err != nil {
		return err
	}
	if err := checkToken("refresh_token", r.RefreshToken, false); err != nil {
		return err
	}
	if r.RefreshToken != "" {
		// Without a lifetime the backend could not plan the next refresh before the token dies.
		return checkSeconds("refresh_token_expires_in", r.RefreshTokenExpiresIn)
	}
	return nil
}

func checkAppCredentials(endpoint, appID, appSecret string) *Error {
	switch {
	case strings.TrimSpace(appID) == "":
		return invalid(endpoint, "app_id is empty")
	case appSecret == "":
		return invalid(endpoint, "app_secret is empty")
	}
	return nil
}

// invalid is a request refused before sending; detail must not contain request values.
func invalid(endpoint, detail string) *Error {
	return &Error{Endpoint: endpoint, Kind: KindInvalidRequest, detail: detail}
}
