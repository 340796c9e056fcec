package lark

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestErrorKinds(t *testing.T) {
	const htmlPage = "<!DOCTYPE html><html><body>502 Bad Gateway</body></html>"
	huge := `{"code":0,"msg":"` + strings.Repeat("x", 2<<20) + `"}`
	// Streams without end: a client that reads unbounded never finishes and the test fails on
	// the timeout instead of the size limit.
	endless := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		chunk := []byte(strings.Repeat("y", 32<<10))
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}
	tests := []struct {
		name       string
		steps      []http.HandlerFunc
		endpoint   string // default tenant
		kind       ErrorKind
		attempts   int
		httpStatus int
		code       int
		msg        string
		retryAfter time.Duration
		logID      string
		contains   string
		observed   []string
	}{
		{name: "10003 on 200", steps: []http.HandlerFunc{reply(200, `{"code":10003,"data":{},"msg":"invalid param"}`)},
			kind: KindInvalidRequest, attempts: 1, httpStatus: 200, code: 10003, msg: "invalid param",
			contains: "tenant_access_token: invalid request (code 10003: invalid param)", observed: []string{StatusLarkError}},
		{name: "10003 on 400", steps: []http.HandlerFunc{reply(400, `{"code":10003,"msg":"invalid param"}`)},
			kind: KindInvalidRequest, attempts: 1, httpStatus: 400, code: 10003, msg: "invalid param", contains: "(HTTP 400, code 10003: invalid param)"},
		{name: "10014 app secret invalid", endpoint: EndpointAppAccessToken, steps: []http.HandlerFunc{reply(200, `{"code":10014,"msg":"app secret invalid"}`)},
			kind: KindAppSecretRejected, attempts: 1, httpStatus: 200, code: 10014, msg: "app secret invalid",
			contains: "lark: app_access_token: Lark rejected the app secret (code 10014: app secret invalid)"},
		{name: "10014 app secret invalid on 400", steps: []http.HandlerFunc{reply(400, `{"code":10014,"msg":"app secret invalid"}`)},
			kind: KindAppSecretRejected, attempts: 1, httpStatus: 400, code: 10014, msg: "app secret invalid"},
		{name: "10014 app id not exists", steps: []http.HandlerFunc{reply(200, `{"code":10014,"msg":"app id not exists"}`)},
			kind: KindAppNotFound, attempts: 1, httpStatus: 200, code: 10014, msg: "app id not exists", contains: "does not know this app id"},
		{name: "10015 wrong secret", steps: []http.HandlerFunc{reply(200, `{"code":10015,"msg":"wrong app secret"}`)},
			kind: KindAppSecretRejected, attempts: 1, httpStatus: 200, code: 10015, msg: "wrong app secret"},
		{name: "99991543", steps: []http.HandlerFunc{reply(400, `{"code":99991543,"msg":"app_id or app_secret does not exist"}`)},
			kind: KindAppSecretRejected, attempts: 1, httpStatus: 400, code: 99991543, msg: "app_id or app_secret does not exist"},
		{name: "unknown code", steps: []http.HandlerFunc{reply(200, `{"code":10012,"msg":"get app access token fail"}`)},
			kind: KindLarkError, attempts: 1, httpStatus: 200, code: 10012, msg: "get app access token fail", contains: "Lark returned an error (code 10012"},
		{name: "gateway error with body log id", steps: []http.HandlerFunc{reply(400, `{"code":99991663,"msg":"Invalid access token","error":{"log_id":"LOG-BODY"}}`)},
			kind: KindLarkError, attempts: 1, httpStatus: 400, code: 99991663, msg: "Invalid access token", logID: "LOG-BODY", contains: "[log_id LOG-BODY]"},
		{name: "400 without code", steps: []http.HandlerFunc{reply(400, `{}`)},
			kind: KindInvalidRequest, attempts: 1, httpStatus: 400, contains: "invalid request: HTTP 400"},
		{name: "403 without code", steps: []http.HandlerFunc{reply(403, `{"error":"forbidden"}`)},
			kind: KindLarkError, attempts: 1, httpStatus: 403, msg: "forbidden"},
		{name: "429 with reset beyond cap gives up at once",
			steps: []http.HandlerFunc{reply(429, `{"code":99991400,"msg":"request trigger frequency limit"}`, "X-Ogw-Ratelimit-Reset", "60", "X-Tt-Logid", "LOG429")},
			kind:  KindRateLimited, attempts: 1, httpStatus: 429, code: 99991400, msg: "request trigger frequency limit", retryAfter: 60 * time.Second, logID: "LOG429",
			contains: "lark: tenant_access_token: rate limited by Lark (HTTP 429, code 99991400: request trigger frequency limit); retry after 1m0s [log_id LOG429]",
			observed: []string{StatusRateLimited}},
		{name: "rate limit code on 400 without reset retries with backoff",
			steps: []http.HandlerFunc{reply(400, `{"code":99991400,"msg":"request trigger frequency limit"}`)},
			kind:  KindRateLimited, attempts: 3, httpStatus: 400, code: 99991400, msg: "request trigger frequency limit",
			observed: []string{StatusRateLimited, StatusRateLimited, StatusRateLimited}},
		{name: "503 three times", steps: []http.HandlerFunc{replyType(503, "text/plain", "busy")},
			kind: KindUnavailable, attempts: 3, httpStatus: 503,
			contains: "lark: tenant_access_token: Lark unreachable after 3 attempts: HTTP 503",
			observed: []string{StatusHTTP5xx, StatusHTTP5xx, StatusHTTP5xx}},
		{name: "502 HTML from a gateway is retried", steps: []http.HandlerFunc{replyType(502, "text/html", htmlPage)},
			kind: KindUnavailable, attempts: 3, httpStatus: 502},
		{name: "500 with OAuth-style 20050", steps: []http.HandlerFunc{reply(500, `{"code":20050,"error":"server_error","error_description":"An unexpected server error occurred. Please retry your request."}`)},
			kind: KindUnavailable, attempts: 3, httpStatus: 500, code: 20050, msg: "An unexpected server error occurred. Please retry your request."},
		{name: "HTML on 200 is not retried", steps: []http.HandlerFunc{replyType(200, "text/html; charset=utf-8", htmlPage)},
			kind: KindBadResponse, attempts: 1, httpStatus: 200, contains: "HTML page instead of JSON", observed: []string{StatusBadResponse}},
		{name: "HTML without content type", steps: []http.HandlerFunc{replyType(200, "", "\n  <html>login</html>")},
			kind: KindBadResponse, attempts: 1, httpStatus: 200, contains: "HTML page"},
		{name: "truncated JSON", steps: []http.HandlerFunc{reply(200, `{"code":0,"msg":"ok","tenant_access_token":"t-abc`)},
			kind: KindBadResponse, attempts: 1, httpStatus: 200, contains: "invalid JSON (HTTP 200)"},
		{name: "empty body", steps: []http.HandlerFunc{reply(200, ``)},
			kind: KindBadResponse, attempts: 1, httpStatus: 200, contains: "empty body"},
		{name: "404 plain text", steps: []http.HandlerFunc{replyType(404, "text/plain", "404 page not found")},
			kind: KindBadResponse, attempts: 1, httpStatus: 404, contains: "invalid JSON (HTTP 404)"},
		{name: "JSON array", steps: []http.HandlerFunc{reply(200, `[1,2]`)},
			kind: KindBadResponse, attempts: 1, httpStatus: 200},
		{name: "huge body with content length", steps: []http.HandlerFunc{reply(200, huge)},
			kind: KindBadResponse, attempts: 1, httpStatus: 200, contains: "larger than 1048576 bytes"},
		{name: "endless chunked body", steps: []http.HandlerFunc{endless},
			kind: KindBadResponse, attempts: 1, httpStatus: 200, contains: "larger than 1048576 bytes"},
		{name: "missing tenant token", steps: []http.HandlerFunc{reply(200, `{"code":0,"msg":"ok","expire":7200}`)},
			kind: KindBadResponse, attempts: 1, httpStatus: 200, contains: "unexpected response from Lark: missing tenant_access_token"},
		{name: "missing app token", endpoint: EndpointAppAccessToken, steps: []http.HandlerFunc{reply(200, `{"code":0,"msg":"ok","tenant_access_token":"t-1","expire":7200}`)},
			kind: KindBadResponse, attempts: 1, httpStatus: 200, contains: "missing app_access_token"},
		{name: "expire zero", steps: []http.HandlerFunc{okTenant("t-1", 0)},
			kind: KindBadResponse, attempts: 1, httpStatus: 200, contains: "expire is missing or not positive"},
		{name: "expire negative", endpoint: EndpointAppAccessToken, steps: []http.HandlerFunc{reply(200, `{"code":0,"app_access_token":"a-1","expire":-5}`)},
			kind: KindBadResponse, attempts: 1, httpStatus: 200, contains: "expire is missing or not positive"},
		{name: "expire missing", steps: []http.HandlerFunc{reply(200, `{"code":0,"tenant_access_token":"t-1"}`)},
			kind: KindBadResponse, attempts: 1, httpStatus: 200, contains: "expire"},
		{name: "expire as string", steps: []http.HandlerFunc{reply(200, `{"code":0,"tenant_access_token":"t-1","expire":"7200"}`)},
			kind: KindBadResponse, attempts: 1, httpStatus: 200, contains: "unexpected JSON shape"},
		{name: "token with a newline", steps: []http.HandlerFunc{reply(200, `{"code":0,"tenant_access_token":"t-1\r\nX: y","expire":7200}`)},
			kind: KindBadResponse, attempts: 1, httpStatus: 200, contains: "characters not allowed"},
		{name: "redirect is not followed", steps: []http.HandlerFunc{func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://127.0.0.1:1/steal", http.StatusTemporaryRedirect)
		}}, kind: KindBadResponse, attempts: 1, httpStatus: 307, contains: "unexpected redirect (HTTP 307)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake(t, tt.steps...)
			obs := &observer{}
			c := newClient(t, fake.srv.URL, func(cfg *Config) { cfg.Observe = obs.observe })
			var err error
			if tt.endpoint == EndpointAppAccessToken {
				var tok *AppToken
				tok, err = c.App(AppCredentials{AppID: testAppID, AppSecret: testAppSecret}).AppAccessToken(context.Background())
				assert.Nil(t, tok)
			} else {
				var tok *TenantToken
				tok, err = c.App(AppCredentials{AppID: testAppID, AppSecret: testAppSecret}).TenantAccessToken(context.Background())
				assert.Nil(t, tok)
			}
			e := asError(t, err)
			endpoint := tt.endpoint
			if endpoint == "" {
				endpoint = EndpointTenantAccessToken
			}
			assert.Equal(t, endpoint, e.Endpoint)
			assert.Equal(t, tt.kind, e.Kind, e.Error())
			assert.Equal(t, tt.attempts, e.Attempts, "attempts")
			assert.Equal(t, tt.attempts, fake.hits(), "requests that reached the server")
			assert.Equal(t, tt.httpStatus, e.HTTPStatus)
			assert.Equal(t, tt.code, e.Code)
			assert.Equal(t, tt.msg, e.Msg)
			assert.Equal(t, tt.retryAfter, e.RetryAfter)
			assert.Equal(t, tt.logID, e.LogID)
			assert.True(t, IsKind(err, tt.kind))
			assert.Equal(t, tt.kind == KindUnavailable || tt.kind == KindRateLimited, e.Retryable())
			if tt.contains != "" {
				assert.Contains(t, e.Error(), tt.contains)
			}
			assert.Len(t, obs.statuses(), tt.attempts, "Observe is called once per attempt")
			if tt.observed != nil {
				assert.Equal(t, tt.observed, obs.statuses())
			}
		})
	}
}

func TestRetryThenSuccess(t *testing.T) {
	tests := []struct {
		name     string
		first    http.HandlerFunc
		minWait  time.Duration
		observed []string
	}{
		{"429 honours reset header", reply(429, `{"code":99991400,"msg":"request trigger frequency limit"}`, "X-Ogw-Ratelimit-Reset", "1"),
			900 * time.Millisecond, []string{StatusRateLimited, StatusOK}},
		{"503", replyType(503, "text/plain", "unavailable"), 0, []string{StatusHTTP5xx, StatusOK}},
		{"connection dropped", func(w http.ResponseWriter, _ *http.Request) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		}, 0, []string{StatusNetwork, StatusOK}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake(t, tt.first, okTenant("t-after-retry", 7200))
			obs := &observer{}
			c := newClient(t, fake.srv.URL, func(cfg *Config) { cfg.Observe = obs.observe })
			start := time.Now()
			tok, err := c.App(AppCredentials{AppID: testAppID, AppSecret: testAppSecret}).TenantAccessToken(context.Background())
			require.NoError(t, err)
			assert.Equal(t, "t-after-retry", tok.TenantAccessToken)
			assert.GreaterOrEqual(t, time.Since(start), tt.minWait)
			assert.Equal(t, 2, fake.hits())
			assert.Equal(t, tt.observed, obs.statuses())
			reqs := fake.requests()
			assert.Equal(t, reqs[0].Body, reqs[1].Body, "a retry must resend the same body")
		})
	}
}

func TestTimeoutPerAttempt(t *testing.T) {
	fake := newFake(t, hang)
	obs := &observer{}
	c := newClient(t, fake.srv.URL, func(cfg *Config) {
		cfg.Timeout = 100 * time.Millisecond
		cfg.Observe = obs.observe
	})
	start := time.Now()
	_, err := c.App(AppCredentials{AppID: testAppID, AppSecret: testAppSecret}).TenantAccessToken(context.Background())
	elapsed := time.Since(start)
	e := asError(t, err)
	assert.Equal(t, KindUnavailable, e.Kind)
	assert.Equal(t, 3, e.Attempts)
	assert.Equal(t, 3, fake.hits())
	assert.Equal(t, "lark: tenant_access_token: Lark unreachable after 3 attempts: timeout", e.Error())
	assert.True(t, errors.Is(err, context.DeadlineExceeded))
	assert.Equal(t, []string{StatusTimeout, StatusTimeout, StatusTimeout}, obs.statuses())
	for _, call := range obs.calls {
		assert.GreaterOrEqual(t, call.Duration, 90*time.Millisecond)
	}
	assert.Less(t, elapsed, 3*time.Second, "each attempt must be cut at Timeout")
}

func TestSlowBodyCountsAgainstTimeout(t *testing.T) {
	fake := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"code":0,`))
		w.(http.Flusher).Flush()
		hang(w, r)
	})
	c := newClient(t, fake.srv.URL, func(cfg *Config) { cfg.Timeout = 100 * time.Millisecond; cfg.MaxAttempts = 2 })
	_, err := c.App(AppCredentials{AppID: testAppID, AppSecret: testAppSecret}).TenantAccessToken(context.Background())
	e := asError(t, err)
	assert.Equal(t, KindUnavailable, e.Kind)
	assert.Equal(t, 2, e.Attempts)
	assert.Contains(t, e.Error(), "timeout")
}

func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	obs := &observer{}
	c := newClient(t, "http://"+addr, func(cfg *Config) { cfg.Observe = obs.observe })
	_, err = c.App(AppCredentials{AppID: testAppID, AppSecret: testAppSecret}).AppAccessToken(context.Background())
	e := asError(t, err)
	assert.Equal(t, KindUnavailable, e.Kind)
	assert.Equal(t, 3, e.Attempts)
	assert.Zero(t, e.HTTPStatus)
	assert.Equal(t, "lark: app_access_token: Lark unreachable after 3 attempts: connection refused", e.Error())
	assert.True(t, e.Retryable())
	assert.Equal(t, []string{StatusNetwork, StatusNetwork, StatusNetwork}, obs.statuses())
}

func TestContextStopsRetries(t *testing.T) {
	limited := reply(429, `{"code":99991400,"msg":"request trigger frequency limit"}`, "X-Ogw-Ratelimit-Reset", "4")

	t.Run("cancel during backoff", func(t *testing.T) {
		fake := newFake(t, limited)
		c := newClient(t, fake.srv.URL)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			for fake.hits() == 0 {
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(50 * time.Millisecond)
			cancel()
		}()
		start := time.Now()
		_, err := c.App(AppCredentials{AppID: testAppID, AppSecret: testAppSecret}).TenantAccessToken(ctx)
		assert.Less(t, time.Since(start), time.Second, "must not sit out the 4 s reset")
		e := asError(t, err)
		assert.Equal(t, KindRateLimited, e.Kind)
		assert.Equal(t, 1, e.Attempts)
		assert.Equal(t, 1, fake.hits())
		assert.True(t, errors.Is(err, context.Canceled))
		assert.Contains(t, e.Error(), "gave up before retrying: canceled by caller")
	})

	t.Run("cancel during an attempt", func(t *testing.T) {
		fake := newFake(t, hang)
		obs := &observer{}
		c := newClient(t, fake.srv.URL, func(cfg *Config) { cfg.Observe = obs.observe })
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		_, err := c.App(AppCredentials{AppID: testAppID, AppSecret: testAppSecret}).TenantAccessToken(ctx)
		assert.Less(t, time.Since(start), time.Second)
		e := asError(t, err)
		assert.Equal(t, KindUnavailable, e.Kind)
		assert.Equal(t, 1, e.Attempts)
		assert.Equal(t, 1, fake.hits())
		assert.True(t, errors.Is(err, context.Canceled))
		assert.Contains(t, e.Error(), "canceled by caller")
		assert.Equal(t, []string{StatusNetwork}, obs.statuses())
	})

	t.Run("deadline shorter than the wait", func(t *testing.T) {
		fake := newFake(t, limited)
		c := newClient(t, fake.srv.URL)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		_, err := c.App(AppCredentials{AppID: testAppID, AppSecret: testAppSecret}).TenantAccessToken(ctx)
		assert.Less(t, time.Since(start), time.Second, "must not sleep into the deadline")
		e := asError(t, err)
		assert.Equal(t, KindRateLimited, e.Kind)
		assert.Equal(t, 4*time.Second, e.RetryAfter)
		assert.Equal(t, 1, fake.hits())
	})

	t.Run("already canceled", func(t *testing.T) {
		fake := newFake(t, okTenant("t-1", 7200))
		obs := &observer{}
		c := newClient(t, fake.srv.URL, func(cfg *Config) { cfg.Observe = obs.observe })
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := c.App(AppCredentials{AppID: testAppID, AppSecret: testAppSecret}).TenantAccessToken(ctx)
		assert.True(t, errors.Is(err, context.Canceled))
		e := asError(t, err)
		assert.Zero(t, e.Attempts)
		assert.Equal(t, "lark: tenant_access_token: request not sent: canceled by caller", e.Error())
		assert.Zero(t, fake.hits())
		assert.Empty(t, obs.statuses(), "no HTTP attempt, nothing to observe")
	})
}

func TestRedirectTargetNeverSeesTheSecret(t *testing.T) {
	for _, tc := range []struct {
		name string
		hc   *http.Client
	}{
		{"default client", nil},
		{"caller's client that follows redirects", &http.Client{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			thief := newFake(t, okTenant("t-stolen", 7200))
			fake := newFake(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, thief.srv.URL+"/open-apis/auth/v3/tenant_access_token/internal", http.StatusPermanentRedirect)
			})
			c := newClient(t, fake.srv.URL, func(cfg *Config) { cfg.HTTPClient = tc.hc })
			_, err := c.App(AppCredentials{AppID: testAppID, AppSecret: testAppSecret}).TenantAccessToken(context.Background())
			assert.True(t, IsKind(err, KindBadResponse), "got %v", err)
			assert.Zero(t, thief.hits())
			if tc.hc != nil {
				assert.Nil(t, tc.hc.CheckRedirect, "the caller's client must not be modified")
			}
		})
	}
}

func TestMsgIsCleanedAndTruncated(t *testing.T) {
	long := strings.Repeat("é", 1000)
	fake := newFake(t, reply(200, `{"code":12345,"msg":"line1\nline2 `+long+`"}`))
	_, err := newClient(t, fake.srv.URL).App(AppCredentials{AppID: testAppID, AppSecret: testAppSecret}).TenantAccessToken(context.Background())
	e := asError(t, err)
	assert.NotContains(t, e.Msg, "\n")
	assert.True(t, strings.HasPrefix(e.Msg, "line1 line2 "))
	assert.LessOrEqual(t, len([]rune(e.Msg)), maxMsgLen+3)
	assert.True(t, strings.HasSuffix(e.Msg, "..."))
}

// TestSecretsNeverLeak forces every error kind, with a Lark that echoes the secret and hands out
// tokens in rejected responses, and checks that neither shows up however the error is printed.
func TestSecretsNeverLeak(t *testing.T) {
	const secret = "SeCrEt-4242-do-not-leak"
	const token = "t-LEAKY-TOKEN-777"
	echo := func(status int, code int) http.HandlerFunc {
		return reply(status, fmt.Sprintf(`{"code":%d,"msg":"bad app_secret %s for token %s"}`, code, secret, token))
	}
	tests := []struct {
		name  string
		steps []http.HandlerFunc
		kind  ErrorKind
		cfg   func(*Config)
	}{
		{"invalid request", []http.HandlerFunc{echo(200, 10003)}, KindInvalidRequest, nil},
		{"secret rejected", []http.HandlerFunc{echo(200, 10014)}, KindAppSecretRejected, nil},
		{"app not found", []http.HandlerFunc{reply(200, `{"code":10014,"msg":"app id not exists: `+secret+`"}`)}, KindAppNotFound, nil},
		{"lark error", []http.HandlerFunc{echo(400, 99991663)}, KindLarkError, nil},
		{"oauth shape", []http.HandlerFunc{reply(400, `{"code":20002,"error":"invalid_client","error_description":"`+secret+`"}`)}, KindLarkError, nil},
		{"rate limited", []http.HandlerFunc{echo(429, 99991400)}, KindRateLimited, nil},
		{"5xx", []http.HandlerFunc{echo(503, 0)}, KindUnavailable, nil},
		{"timeout", []http.HandlerFunc{hang}, KindUnavailable, func(c *Config) { c.Timeout = 50 * time.Millisecond }},
		{"html", []http.HandlerFunc{replyType(200, "text/html", "<p>"+secret+token+"</p>")}, KindBadResponse, nil},
		{"truncated", []http.HandlerFunc{reply(200, `{"code":0,"tenant_access_token":"`+token+`","msg":"`+secret)}, KindBadResponse, nil},
		{"bad byte in JSON", []http.HandlerFunc{reply(200, `{"code":0,"tenant_access_token":"`+token+`",`+secret+`}`)}, KindBadResponse, nil},
		{"oversized", []http.HandlerFunc{reply(200, `{"code":0,"msg":"`+strings.Repeat(secret, 100)+`"}`)}, KindBadResponse, func(c *Config) { c.MaxBodyBytes = 512 }},
		{"expire zero with token", []http.HandlerFunc{okTenant(token, 0)}, KindBadResponse, nil},
		{"token with bad bytes", []http.HandlerFunc{reply(200, `{"code":0,"tenant_access_token":"`+token+` x","expire":7200}`)}, KindBadResponse, nil},
		{"wrong type", []http.HandlerFunc{reply(200, `{"code":0,"tenant_access_token":"`+token+`","expire":{"v":"`+secret+`"}}`)}, KindBadResponse, nil},
		{"redirect", []http.HandlerFunc{func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/x?s="+secret, http.StatusFound)
		}}, KindBadResponse, nil},
	}
	seen := map[ErrorKind]bool{}
	check := func(t *testing.T, err error) {
		t.Helper()
		e := asError(t, err)
		seen[e.Kind] = true
		for _, s := range []string{e.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%v", err), fmt.Sprintf("%#v", *e), fmt.Sprintf("%+v", e.Err)} {
			assert.NotContains(t, s, secret)
			assert.NotContains(t, s, token)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake(t, tt.steps...)
			c := newClient(t, fake.srv.URL, func(cfg *Config) {
				cfg.MaxAttempts = 1
				if tt.cfg != nil {
					tt.cfg(cfg)
				}
			})
			_, err := c.App(AppCredentials{AppID: testAppID, AppSecret: secret}).TenantAccessToken(context.Background())
			require.True(t, IsKind(err, tt.kind), "got %v", err)
			check(t, err)
		})
	}
	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		_, err = newClient(t, "http://"+addr).App(AppCredentials{AppID: testAppID, AppSecret: secret}).AppAccessToken(context.Background())
		check(t, err)
	})
	for _, k := range []ErrorKind{KindAppSecretRejected, KindAppNotFound, KindInvalidRequest, KindRateLimited, KindUnavailable, KindBadResponse, KindLarkError} {
		assert.True(t, seen[k], "kind %s not exercised", k)
	}
}

func TestIsKindAndRetryable(t *testing.T) {
	e := &Error{Endpoint: EndpointAppAccessToken, Kind: KindRateLimited}
	wrapped := fmt.Errorf("reading app token: %w", e)
	assert.True(t, IsKind(wrapped, KindRateLimited))
	assert.False(t, IsKind(wrapped, KindUnavailable))
	assert.False(t, IsKind(nil, KindRateLimited))
	assert.False(t, IsKind(errors.New("other"), KindRateLimited))

	retryable := map[ErrorKind]bool{KindUnavailable: true, KindRateLimited: true}
	for _, k := range []ErrorKind{KindAppSecretRejected, KindAppNotFound, KindInvalidRequest, KindRateLimited, KindUnavailable, KindBadResponse, KindLarkError} {
		assert.Equal(t, retryable[k], (&Error{Kind: k}).Retryable(), k)
	}

	cause := errors.New("cause")
	assert.Same(t, cause, errors.Unwrap(&Error{Err: cause}))
}
