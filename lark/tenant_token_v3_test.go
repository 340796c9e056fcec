package lark

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// jwtOfSize builds a JWT-shaped token (header.payload.signature, base64url) of exactly n bytes, the
// shape of v3 tenant tokens.
func jwtOfSize(t *testing.T, n int) string {
	t.Helper()
	head := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256","typ":"JWT"}`))
	sig := strings.Repeat("S", 86)
	fill := n - len(head) - len(sig) - 2
	require.Positive(t, fill)
	payload := strings.Repeat("eyJwYXlsb2FkIjoxfQ", fill/18+1)[:fill]
	tok := head + "." + payload + "." + sig
	require.Len(t, tok, n)
	return tok
}

func v3Answer(token string, expiresIn int) http.HandlerFunc {
	return reply(200, `{"code":0,"access_token":"`+token+`","token_type":"Bearer","expires_in":`+strconv.Itoa(expiresIn)+`}`)
}

func v3App(c *Client) *App {
	return c.App(AppCredentials{AppID: testAppID, AppSecret: testAppSecret, TenantTokenEndpoint: TenantTokenV3})
}

func TestParseTenantTokenEndpoint(t *testing.T) {
	for in, want := range map[string]TenantTokenEndpoint{"legacy": TenantTokenLegacy, "v3": TenantTokenV3} {
		got, err := ParseTenantTokenEndpoint(in)
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
	for _, in := range []string{"", "V3", "v2", "internal"} {
		_, err := ParseTenantTokenEndpoint(in)
		assert.Error(t, err, in)
	}
}

// TestTenantTokenV3 pins the wire format of the client-credentials grant (docs/lark-api.md §2b) with
// a 4 KB JWT, twice the size seen today, and checks the token survives every later use intact.
func TestTenantTokenV3(t *testing.T) {
	jwt := jwtOfSize(t, 4<<10)
	accounts := newFake(t, v3Answer(jwt, 7200))
	open := newFake(t, reply(200, `{"code":0,"msg":"success","data":{"message_id":"om_1"}}`))
	c := newClient(t, open.srv.URL, func(cfg *Config) { cfg.AccountsBaseURL = accounts.srv.URL })

	tok, err := v3App(c).TenantAccessToken(t.Context())
	require.NoError(t, err)
	assert.Equal(t, &TenantToken{TenantAccessToken: jwt, ExpiresIn: 2 * time.Hour}, tok)

	reqs := accounts.requests()
	require.Len(t, reqs, 1)
	r := reqs[0]
	assert.Equal(t, http.MethodPost, r.Method)
	assert.Equal(t, "/oauth/v3/token", r.Path)
	assert.Equal(t, "application/x-www-form-urlencoded", r.Header.Get("Content-Type"))
	assert.Empty(t, r.Header.Get("Authorization"), "client authentication in the body only: Basic as well is 20070")
	form, err := url.ParseQuery(string(r.Body))
	require.NoError(t, err)
	assert.Equal(t, url.Values{"grant_type": {"client_credentials"}, "client_id": {testAppID}, "client_secret": {testAppSecret}}, form)

	// The token is sent on as a bearer header, where no limit of ours may cut it.
	_, err = c.SendText(t.Context(), tok.TenantAccessToken, "ou_1", "hi", "u-1")
	require.NoError(t, err)
	assert.Equal(t, "Bearer "+jwt, open.requests()[0].Header.Get("Authorization"))
}

func TestTenantTokenEndpointDispatch(t *testing.T) {
	fake := newFake(t, okTenant("t-legacy", 7200))
	c := newClient(t, fake.srv.URL, func(cfg *Config) { cfg.AccountsBaseURL = fake.srv.URL })
	_, err := c.App(AppCredentials{AppID: testAppID, AppSecret: testAppSecret}).TenantAccessToken(t.Context())
	require.NoError(t, err)
	_, err = c.App(AppCredentials{AppID: testAppID, AppSecret: testAppSecret, TenantTokenEndpoint: TenantTokenLegacy}).TenantAccessToken(t.Context())
	require.NoError(t, err)
	_, err = c.App(AppCredentials{AppID: testAppID, AppSecret: testAppSecret, TenantTokenEndpoint: "v9"}).TenantAccessToken(t.Context())
	e := asError(t, err)
	assert.Equal(t, KindInvalidRequest, e.Kind)
	assert.Contains(t, e.Error(), `tenant token endpoint must be "legacy" or "v3"`)
	for _, r := range fake.requests() {
		assert.Equal(t, "/open-apis/auth/v3/tenant_access_token/internal", r.Path, "legacy stays the default")
	}
	assert.Equal(t, 2, fake.hits())
	_, err = c.App(AppCredentials{AppID: "", AppSecret: testAppSecret, TenantTokenEndpoint: TenantTokenV3}).TenantAccessToken(t.Context())
	assert.Contains(t, asError(t, err).Error(), "tenant_access_token_v3: invalid request: app_id is empty")
	assert.Equal(t, 2, fake.hits())
}

func TestTenantTokenV3Errors(t *testing.T) {
	tests := []struct {
		name     string
		step     http.HandlerFunc
		kind     ErrorKind
		code     int
		attempts int
		contains string
	}{
		{"wrong secret", reply(400, `{"error":"invalid_client","error_description":"The client secret is invalid.","code":20002}`),
			KindAppSecretRejected, 20002, 1, "lark: tenant_access_token_v3: Lark rejected the app secret (HTTP 400, code 20002: The client secret is invalid.)"},
		{"unknown app", reply(400, `{"code":20048,"error":"invalid_client","error_description":"The specified app does not exist."}`),
			KindAppNotFound, 20048, 1, "does not know this app id"},
		{"app not enabled", reply(400, `{"code":20069,"error":"invalid_client","error_description":"The specified app is not enabled."}`),
			KindAppSetup, 20069, 1, "not enabled"},
		{"both authentication methods", reply(400, `{"code":20070,"error":"invalid_client","error_description":"Multiple authentication methods were provided. Please only use one to proceed."}`),
			KindInvalidRequest, 20070, 1, "Multiple authentication methods"},
		{"invalid_client without code", reply(401, `{"error":"invalid_client","error_description":"The client secret is invalid."}`),
			KindAppSecretRejected, 0, 1, ""},
		{"unauthorized_client", reply(400, `{"error":"unauthorized_client","error_description":"client may not use client_credentials"}`),
			KindAppSetup, 0, 1, "the app's setup at Lark must change"},
		{"legacy code shape", reply(400, `{"code":99991543,"msg":"app_id or app_secret does not exist"}`),
			KindAppSecretRejected, 99991543, 1, ""},
		{"server error retried", reply(500, `{"code":20050,"error":"server_error","error_description":"An unexpected server error occurred. Please retry your request."}`),
			KindUnavailable, 20050, 3, ""},
		{"temporarily unavailable", reply(503, `{"code":20072,"error":"temporarily_unavailable","error_description":"The server is temporarily unavailable. Please retry your request."}`),
			KindUnavailable, 20072, 3, ""},
		{"rate limited", reply(429, `{"code":99991400,"msg":"request trigger frequency limit"}`, "X-Ogw-Ratelimit-Reset", "30"),
			KindRateLimited, 99991400, 1, "retry after 30s"},
		{"DPoP-bound token", reply(200, `{"code":0,"access_token":"eyJ.a.b","token_type":"DPoP","expires_in":7200}`),
			KindBadResponse, 0, 1, "token_type is not Bearer (sender-constrained tokens are not supported)"},
		{"no access token", reply(200, `{"code":0,"tenant_access_token":"t-1","expire":7200}`),
			KindBadResponse, 0, 1, "missing access_token"},
		{"no lifetime", reply(200, `{"code":0,"access_token":"eyJ.a.b","token_type":"Bearer"}`),
			KindBadResponse, 0, 1, "expires_in is missing or not positive"},
		{"token above the limit", v3Answer(strings.Repeat("a", maxTokenLen+1), 7200),
			KindBadResponse, 0, 1, "access_token is implausibly long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake(t, tt.step)
			c := newClient(t, fake.srv.URL, func(cfg *Config) { cfg.AccountsBaseURL = fake.srv.URL })
			tok, err := v3App(c).TenantAccessToken(t.Context())
			assert.Nil(t, tok)
			e := asError(t, err)
			assert.Equal(t, tt.kind, e.Kind, e.Error())
			assert.Equal(t, tt.code, e.Code)
			assert.Equal(t, EndpointTenantAccessTokenV3, e.Endpoint)
			assert.Equal(t, tt.attempts, fake.hits())
			if tt.contains != "" {
				assert.Contains(t, e.Error(), tt.contains)
			}
		})
	}
}

func TestTenantTokenV3Limits(t *testing.T) {
	for _, tc := range []struct {
		name  string
		token string
	}{
		{"lower-case bearer", "eyJ.a.b"},
		{"token at the limit", jwtOfSize(t, maxTokenLen)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"code":0,"access_token":"` + tc.token + `","token_type":"bearer","expires_in":7200,"status_message":"ok"}`
			fake := newFake(t, reply(200, body))
			c := newClient(t, fake.srv.URL, func(cfg *Config) { cfg.AccountsBaseURL = fake.srv.URL })
			tok, err := v3App(c).TenantAccessToken(t.Context())
			require.NoError(t, err)
			assert.Equal(t, tc.token, tok.TenantAccessToken)
		})
	}
}

// TestTenantTokenV3NeverLeaks: the secret echoed in a refusal and a JWT handed out in answers that
// are then refused never reach the error text, however long the token.
func TestTenantTokenV3NeverLeaks(t *testing.T) {
	const secret = "SeCrEt-v3-do-not-leak"
	jwt := jwtOfSize(t, 4<<10)
	steps := []http.HandlerFunc{
		reply(400, fmt.Sprintf(`{"code":20002,"error":"invalid_client","error_description":"bad secret %s, have %s","access_token":"%s"}`, secret, jwt, jwt)),
		reply(200, fmt.Sprintf(`{"code":0,"access_token":"%s","token_type":"DPoP","expires_in":7200}`, jwt)),
		reply(200, fmt.Sprintf(`{"code":0,"access_token":"%s","expires_in":"7200","msg":"%s"}`, jwt, secret)),
		reply(200, fmt.Sprintf(`{"code":4242,"msg":"token %s for %s"}`, jwt, secret)),
	}
	for i, step := range steps {
		fake := newFake(t, step)
		c := newClient(t, fake.srv.URL, func(cfg *Config) { cfg.AccountsBaseURL = fake.srv.URL })
		_, err := c.App(AppCredentials{AppID: testAppID, AppSecret: secret, TenantTokenEndpoint: TenantTokenV3}).TenantAccessToken(t.Context())
		e := asError(t, err)
		for _, s := range []string{e.Error(), fmt.Sprintf("%#v", *e), fmt.Sprintf("%v", e.Err)} {
			assert.NotContains(t, s, secret, "step %d", i)
			assert.NotContains(t, s, jwt, "step %d", i)
			assert.NotContains(t, s, jwt[:64], "step %d: not even a prefix of the JWT", i)
		}
	}
}
