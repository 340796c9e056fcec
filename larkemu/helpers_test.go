package larkemu

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lark-vault/vault-plugin-secrets-lark/clock"
)

const (
	testApp    = "cli_a1b2c3d4e5f6a7b8"
	testSecret = "s3cr3tS3cr3tS3cr3t"
)

var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// newFakeEmu starts an emulator on a fake clock with one registered app.
func newFakeEmu(t *testing.T, opts Options) (*Server, *httptest.Server, *clock.Fake) {
	t.Helper()
	fc := clock.NewFake(epoch)
	if opts.Clock == nil {
		opts.Clock = fc
	}
	if opts.Apps == nil {
		opts.Apps = map[string]string{testApp: testSecret}
	}
	s, ts := NewTestServer(t, opts)
	return s, ts, fc
}

type response struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, method, url, contentType string, body io.Reader, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func postJSON(t *testing.T, url, body string, header ...string) response {
	t.Helper()
	return do(t, http.MethodPost, url, "application/json; charset=utf-8", strings.NewReader(body), header...)
}

func get(t *testing.T, url string, header ...string) response {
	t.Helper()
	return do(t, http.MethodGet, url, "", nil, header...)
}

// decode parses a JSON object body into a map, failing the test on anything else.
func decode(t *testing.T, body string) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("body is not a JSON object: %v: %q", err, body)
	}
	return m
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// credentials is the legacy token request body.
func credentials(appID, secret string) string {
	var buf bytes.Buffer
	_ = json.NewEncoder(&buf).Encode(map[string]string{"app_id": appID, "app_secret": secret})
	return buf.String()
}

type legacyToken struct {
	Code              int    `json:"code"`
	Msg               string `json:"msg"`
	AppAccessToken    string `json:"app_access_token"`
	TenantAccessToken string `json:"tenant_access_token"`
	Expire            int64  `json:"expire"`
}

// fetchTenantToken calls the tenant endpoint and insists on success.
func fetchToken(t *testing.T, ts *httptest.Server, path string) legacyToken {
	t.Helper()
	r := postJSON(t, ts.URL+path, credentials(testApp, testSecret))
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var lt legacyToken
	if err := json.Unmarshal([]byte(r.body), &lt); err != nil {
		t.Fatalf("decoding %q: %v", r.body, err)
	}
	if lt.Code != 0 {
		t.Fatalf("code %d: %s", lt.Code, r.body)
	}
	return lt
}

func expectEqual[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

type jsonNumber = json.Number
