package lark

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// These tests drive the shared do() helper the way later endpoint files (OAuth, user_info,
// messages) will: form bodies, extra headers, single-attempt calls and endpoint-specific codes.

func TestDoFormBodyAndHeaders(t *testing.T) {
	fake := newFake(t, reply(200, `{"code":0,"access_token":"eyJabc.def.ghi","expires_in":7200}`))
	c := newClient(t, fake.srv.URL)
	var out struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	err := c.do(context.Background(), request{
		endpoint: "oauth_token",
		method:   http.MethodPost,
		url:      fake.srv.URL + "/oauth/v3/token?x=1",
		body:     url.Values{"grant_type": {"client_credentials"}, "client_id": {"cli_x"}},
		header:   http.Header{"Authorization": {"Bearer t-abc"}},
	}, &out)
	require.NoError(t, err)
	assert.Equal(t, "eyJabc.def.ghi", out.AccessToken)
	assert.Equal(t, 7200, out.ExpiresIn)
	r := fake.requests()[0]
	assert.Equal(t, "/oauth/v3/token", r.Path)
	assert.Equal(t, "x=1", r.Query)
	assert.Equal(t, "application/x-www-form-urlencoded", r.Header.Get("Content-Type"))
	assert.Equal(t, "Bearer t-abc", r.Header.Get("Authorization"))
	assert.Equal(t, "client_id=cli_x&grant_type=client_credentials", string(r.Body))
}

func TestDoGetWithoutBody(t *testing.T) {
	fake := newFake(t, reply(200, `{"code":0,"msg":"success","data":{"open_id":"ou_1"}}`))
	var out struct {
		Data struct {
			OpenID string `json:"open_id"`
		} `json:"data"`
	}
	err := newClient(t, fake.srv.URL).do(context.Background(), request{endpoint: "user_info", method: http.MethodGet, url: fake.srv.URL + "/open-apis/authen/v1/user_info"}, &out)
	require.NoError(t, err)
	assert.Equal(t, "ou_1", out.Data.OpenID)
	r := fake.requests()[0]
	assert.Equal(t, http.MethodGet, r.Method)
	assert.Empty(t, r.Header.Get("Content-Type"))
	assert.Empty(t, r.Body)
}

func TestDoSingleAttemptOverride(t *testing.T) {
	fake := newFake(t, replyType(503, "text/plain", "busy"))
	err := newClient(t, fake.srv.URL).do(context.Background(), request{
		endpoint: "oauth_token", method: http.MethodPost, url: fake.srv.URL + "/x", body: map[string]string{"a": "b"}, maxAttempts: 1,
	}, nil)
	e := asError(t, err)
	assert.Equal(t, KindUnavailable, e.Kind)
	assert.Equal(t, 1, e.Attempts)
	assert.Equal(t, 1, fake.hits())
}

func TestDoEndpointClassifier(t *testing.T) {
	classify := func(code int, errName string) ErrorKind {
		switch {
		case code == 20002 || errName == "invalid_client":
			return KindAppSecretRejected
		case code == 20072:
			return KindUnavailable
		}
		return ""
	}
	tests := []struct {
		name     string
		body     string
		status   int
		kind     ErrorKind
		msg      string
		attempts int
	}{
		{"endpoint code", `{"code":20002,"error":"invalid_client","error_description":"The client secret is invalid."}`, 400, KindAppSecretRejected, "The client secret is invalid.", 1},
		{"falls back to common codes", `{"code":10003,"msg":"invalid param"}`, 200, KindInvalidRequest, "invalid param", 1},
		{"error name when no description", `{"code":20999,"error":"weird"}`, 400, KindLarkError, "weird", 1},
		{"classifier may ask for a retry", `{"code":20072,"error":"temporarily_unavailable"}`, 200, KindUnavailable, "temporarily_unavailable", 3},
		{"error name without a code", `{"error":"invalid_client","error_description":"bad secret"}`, 401, KindAppSecretRejected, "bad secret", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake(t, reply(tt.status, tt.body))
			err := newClient(t, fake.srv.URL).do(context.Background(), request{
				endpoint: "oauth_token", method: http.MethodPost, url: fake.srv.URL + "/x", body: struct{}{}, classify: classify,
			}, nil)
			e := asError(t, err)
			assert.Equal(t, tt.kind, e.Kind)
			assert.Equal(t, tt.msg, e.Msg)
			assert.Equal(t, tt.attempts, e.Attempts)
			assert.Equal(t, tt.attempts, fake.hits())
		})
	}
}

func TestDoUnencodableBody(t *testing.T) {
	fake := newFake(t, reply(200, `{}`))
	err := newClient(t, fake.srv.URL).do(context.Background(), request{endpoint: "x", method: http.MethodPost, url: fake.srv.URL, body: func() {}}, nil)
	assert.True(t, IsKind(err, KindInvalidRequest))
	assert.Zero(t, fake.hits())
}

func TestClassifyCode(t *testing.T) {
	tests := []struct {
		code int
		msg  string
		want ErrorKind
	}{
		{10003, "invalid param", KindInvalidRequest},
		{10014, "app secret invalid", KindAppSecretRejected},
		{10014, "app id not exists", KindAppNotFound},
		{10014, "App ID not exists", KindAppNotFound},
		{10014, "app unauthorized", KindAppSetup}, // the generic table: the app is disabled, its secret is fine
		{10015, "", KindAppSecretRejected},
		{99991543, "", KindAppSecretRejected},
		{99991400, "", KindRateLimited},
		{99991663, "", KindLarkError},
		{1, "", KindLarkError},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, classifyCode(tt.code, tt.msg), "%d %q", tt.code, tt.msg)
	}
}

func TestParseReset(t *testing.T) {
	tests := map[string]time.Duration{
		"":      0,
		"abc":   0,
		"-3":    0,
		"0":     0,
		"NaN":   0,
		"2":     2 * time.Second,
		" 7 ":   7 * time.Second,
		"0.5":   500 * time.Millisecond,
		"1e300": 24 * time.Hour,
	}
	for in, want := range tests {
		assert.Equal(t, want, parseReset(in), "%q", in)
	}
}

func TestBackoffIsCappedExponentialWithJitter(t *testing.T) {
	c := newClient(t, "http://127.0.0.1:1", func(cfg *Config) { cfg.BackoffBase = 100 * time.Millisecond })
	for attempt := 1; attempt <= 70; attempt++ {
		limit := backoffCap
		if attempt <= 5 {
			limit = min(backoffCap, 100*time.Millisecond<<(attempt-1))
		}
		var maxSeen time.Duration
		for range 200 {
			d := c.backoff(attempt)
			require.GreaterOrEqual(t, d, time.Duration(0))
			require.LessOrEqual(t, d, limit, "attempt %d", attempt)
			maxSeen = max(maxSeen, d)
		}
		assert.Greater(t, maxSeen, limit/2, "attempt %d: jitter should spread up to the limit", attempt)
	}
}
