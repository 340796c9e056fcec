package lark

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// recorded is what fakeLark saw of one request.
type recorded struct {
	Method string
	Path   string
	Query  string
	Header http.Header
	Body   []byte
}

// fakeLark is a scripted stand-in for Lark: request i is answered by steps[i], the last step repeats.
type fakeLark struct {
	srv   *httptest.Server
	mu    sync.Mutex
	reqs  []recorded
	steps []http.HandlerFunc
}

func newFake(t *testing.T, steps ...http.HandlerFunc) *fakeLark {
	t.Helper()
	require.NotEmpty(t, steps)
	f := &fakeLark{steps: steps}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body)) // steps may read it again, e.g. to echo it
		f.mu.Lock()
		i := len(f.reqs)
		f.reqs = append(f.reqs, recorded{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
		step := f.steps[min(i, len(f.steps)-1)]
		f.mu.Unlock()
		step(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeLark) hits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

func (f *fakeLark) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.reqs...)
}

// reply answers with a JSON body; extra is header name/value pairs.
func reply(status int, body string, extra ...string) http.HandlerFunc {
	return replyType(status, "application/json; charset=utf-8", body, extra...)
}

func replyType(status int, contentType, body string, extra ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(extra); i += 2 {
			w.Header().Set(extra[i], extra[i+1])
		}
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		} else {
			w.Header()["Content-Type"] = nil // stop net/http from sniffing one
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// hang blocks until the client gives up (or the test ends), to simulate a stalled Lark.
func hang(w http.ResponseWriter, r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-time.After(10 * time.Second):
	}
}

// observer records Observe calls.
type observer struct {
	mu    sync.Mutex
	calls []Call
}

func (o *observer) observe(c Call) {
	o.mu.Lock()
	o.calls = append(o.calls, c)
	o.mu.Unlock()
}

func (o *observer) statuses() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var s []string
	for _, c := range o.calls {
		s = append(s, c.Status)
	}
	return s
}

// newClient builds a client aimed at base with fast retries; mods adjust the config.
func newClient(t *testing.T, base string, mods ...func(*Config)) *Client {
	t.Helper()
	cfg := Config{Brand: BrandFeishu, BaseURL: base, BackoffBase: time.Millisecond, Timeout: 5 * time.Second}
	for _, m := range mods {
		m(&cfg)
	}
	c, err := New(cfg)
	require.NoError(t, err)
	return c
}

func asError(t *testing.T, err error) *Error {
	t.Helper()
	require.Error(t, err)
	e, ok := err.(*Error)
	require.Truef(t, ok, "want *lark.Error, got %T: %v", err, err)
	return e
}

const (
	testAppID     = "cli_a1b2c3d4e5f6a7b8"
	testAppSecret = "s3cr3tS3cr3tS3cr3t"
)

func okTenant(token string, expire int) http.HandlerFunc {
	return reply(200, `{"code":0,"msg":"ok","tenant_access_token":"`+token+`","expire":`+strconv.Itoa(expire)+`}`)
}
