package lark

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rewriteTransport sends every request to target while recording the URL the client asked for, so
// the brand's real hosts can be checked without network access.
type rewriteTransport struct {
	target *url.URL
	mu     sync.Mutex
	asked  []string
}

func (rt *rewriteTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rt.mu.Lock()
	rt.asked = append(rt.asked, r.URL.String())
	rt.mu.Unlock()
	r = r.Clone(r.Context())
	r.URL.Scheme, r.URL.Host = rt.target.Scheme, rt.target.Host
	r.Host = ""
	return http.DefaultTransport.RoundTrip(r)
}

func TestTokenSuccess(t *testing.T) {
	const appBody = `{"code":0,"msg":"ok","app_access_token":"a-app123","tenant_access_token":"t-ten456","expire":7200}`
	const tenantBody = `{"code":0,"msg":"ok","tenant_access_token":"t-ten456","expire":5400}`
	tests := []struct {
		brand    Brand
		endpoint string
		wantURL  string
	}{
		{BrandFeishu, EndpointAppAccessToken, "https://open.feishu.cn/open-apis/auth/v3/app_access_token/internal"},
		{BrandFeishu, EndpointTenantAccessToken, "https://open.feishu.cn/open-apis/auth/v3/tenant_access_token/internal"},
		{BrandLark, EndpointAppAccessToken, "https://open.larksuite.com/open-apis/auth/v3/app_access_token/internal"},
		{BrandLark, EndpointTenantAccessToken, "https://open.larksuite.com/open-apis/auth/v3/tenant_access_token/internal"},
	}
	for _, tt := range tests {
		t.Run(string(tt.brand)+"/"+tt.endpoint, func(t *testing.T) {
			body := tenantBody
			if tt.endpoint == EndpointAppAccessToken {
				body = appBody
			}
			fake := newFake(t, reply(200, body, "X-Tt-Logid", "20240101abc"))
			target, _ := url.Parse(fake.srv.URL)
			rt := &rewriteTransport{target: target}
			obs := &observer{}
			c, err := New(Config{Brand: tt.brand, HTTPClient: &http.Client{Transport: rt}, Observe: obs.observe})
			require.NoError(t, err)

			if tt.endpoint == EndpointAppAccessToken {
				tok, err := c.App(AppCredentials{AppID: testAppID, AppSecret: testAppSecret}).AppAccessToken(context.Background())
				require.NoError(t, err)
				assert.Equal(t, &AppToken{AppAccessToken: "a-app123", TenantAccessToken: "t-ten456", ExpiresIn: 7200 * time.Second}, tok)
			} else {
				tok, err := c.App(AppCredentials{AppID: testAppID, AppSecret: testAppSecret}).TenantAccessToken(context.Background())
				require.NoError(t, err)
				assert.Equal(t, &TenantToken{TenantAccessToken: "t-ten456", ExpiresIn: 5400 * time.Second}, tok)
			}

			assert.Equal(t, []string{tt.wantURL}, rt.asked)
			reqs := fake.requests()
			require.Len(t, reqs, 1)
			r := reqs[0]
			assert.Equal(t, http.MethodPost, r.Method)
			assert.Equal(t, "application/json; charset=utf-8", r.Header.Get("Content-Type"))
			assert.Equal(t, "application/json", r.Header.Get("Accept"))
			assert.Equal(t, "vault-plugin-secrets-lark/"+Version, r.Header.Get("User-Agent"))
			assert.Empty(t, r.Header.Get("Authorization"), "legacy token endpoints take no Authorization header")
			var sent map[string]any
			require.NoError(t, json.Unmarshal(r.Body, &sent))
			assert.Equal(t, map[string]any{"app_id": testAppID, "app_secret": testAppSecret}, sent)
			assert.Equal(t, []string{StatusOK}, obs.statuses())
			assert.Equal(t, tt.endpoint, obs.calls[0].Endpoint)
		})
	}
}

func TestBaseURLOverride(t *testing.T) {
	fake := newFake(t, okTenant("t-override", 7000))
	c := newClient(t, fake.srv.URL+"/", func(cfg *Config) {
		cfg.Brand = BrandLark
		cfg.UserAgent = "custom-agent/9"
	})
	tok, err := c.App(AppCredentials{AppID: testAppID, AppSecret: testAppSecret}).TenantAccessToken(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "t-override", tok.TenantAccessToken)
	assert.Equal(t, 7000*time.Second, tok.ExpiresIn)
	reqs := fake.requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "/open-apis/auth/v3/tenant_access_token/internal", reqs[0].Path)
	assert.Equal(t, "custom-agent/9", reqs[0].Header.Get("User-Agent"))
}

func TestAppTokenWithoutTenantToken(t *testing.T) {
	fake := newFake(t, reply(200, `{"code":0,"msg":"ok","app_access_token":"a-only","expire":100}`))
	tok, err := newClient(t, fake.srv.URL).App(AppCredentials{AppID: testAppID, AppSecret: testAppSecret}).AppAccessToken(context.Background())
	require.NoError(t, err)
	assert.Equal(t, &AppToken{AppAccessToken: "a-only", ExpiresIn: 100 * time.Second}, tok)
}

func TestEmptyCredentialsRejectedLocally(t *testing.T) {
	fake := newFake(t, okTenant("t-x", 7200))
	c := newClient(t, fake.srv.URL)
	for _, tc := range []struct{ id, secret, want string }{
		{"", testAppSecret, "app_id is empty"},
		{"  ", testAppSecret, "app_id is empty"},
		{testAppID, "", "app_secret is empty"},
	} {
		_, err := c.App(AppCredentials{AppID: tc.id, AppSecret: tc.secret}).TenantAccessToken(context.Background())
		e := asError(t, err)
		assert.Equal(t, KindInvalidRequest, e.Kind)
		assert.Contains(t, e.Error(), tc.want)
		_, err = c.App(AppCredentials{AppID: tc.id, AppSecret: tc.secret}).AppAccessToken(context.Background())
		assert.True(t, IsKind(err, KindInvalidRequest))
	}
	assert.Zero(t, fake.hits(), "nothing must be sent")
}

func TestConcurrentUse(t *testing.T) {
	fake := newFake(t, okTenant("t-shared", 7200))
	obs := &observer{}
	c := newClient(t, fake.srv.URL, func(cfg *Config) { cfg.Observe = obs.observe })
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			tok, err := c.App(AppCredentials{AppID: testAppID, AppSecret: testAppSecret}).TenantAccessToken(context.Background())
			if assert.NoError(t, err) {
				assert.Equal(t, "t-shared", tok.TenantAccessToken)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 16, fake.hits())
	assert.Len(t, obs.statuses(), 16)
}
