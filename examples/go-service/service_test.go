package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fakeLark stands in for Lark's OpenAPI host: it serves the two calls the service makes, accepts
// only the tokens it is told about, and records every request. (e2e/gosvc_test.go runs the
// service against the repository's Lark emulator, through Vault Agent and a rotation.)
type fakeLark struct {
	mu       sync.Mutex
	accepted map[string]string // bearer token → "app" or "user"
	calls    []fakeCall
}

type fakeCall struct {
	method, path, query, token string
	body                       map[string]any
}

func (f *fakeLark) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	var body map[string]any
	_ = json.Unmarshal(raw, &body)
	f.mu.Lock()
	f.calls = append(f.calls, fakeCall{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery, token: token, body: body})
	kind := f.accepted[token]
	f.mu.Unlock()

	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/open-apis/im/v1/messages":
		if kind == "" {
			// Lark's gateway answer for a tenant token it does not know (docs/lark-api.md §9).
			reply(http.StatusBadRequest, map[string]any{"code": 99991663, "msg": "Invalid access token for authorization. Please make a request with token attached."})
			return
		}
		reply(http.StatusOK, map[string]any{"code": 0, "msg": "success", "data": map[string]any{
			"message_id": "om_fake1", "msg_type": "text", "chat_id": "oc_fake",
			"sender": map[string]any{"id": "cli_fake", "id_type": "app_id", "sender_type": kind, "tenant_key": "tk"},
			"body":   map[string]any{"content": body["content"]},
		}})
	case r.Method == http.MethodGet && r.URL.Path == "/open-apis/authen/v1/user_info":
		if kind != "user" {
			reply(http.StatusBadRequest, map[string]any{"code": 99991668, "msg": "Invalid access token for authorization."})
			return
		}
		reply(http.StatusOK, map[string]any{"code": 0, "msg": "success", "data": map[string]any{
			"name": "Release Bot", "open_id": "ou_fake", "union_id": "on_fake", "tenant_key": "tk",
		}})
	default:
		// Any other call (a token endpoint above all) is one the service must never make.
		reply(http.StatusNotFound, map[string]any{"code": 404, "msg": "not served by the fake"})
	}
}

func (f *fakeLark) accept(token, kind string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.accepted[token] = kind
}

func (f *fakeLark) recorded() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeCall(nil), f.calls...)
}

type harness struct {
	lark       *fakeLark
	svc        http.Handler
	logs       *bytes.Buffer
	tenantFile string
	userFile   string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	f := &fakeLark{accepted: map[string]string{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	h := &harness{lark: f, logs: &bytes.Buffer{}, tenantFile: filepath.Join(dir, "tenant-token"), userFile: filepath.Join(dir, "user-token")}
	cfg, err := configFromEnv(func(name string) string {
		return map[string]string{
			"LARK_APP_ID": "cli_fake", "LARK_BASE_URL": srv.URL, "LARK_RECEIVE_ID": "ou_receiver",
			"LARK_TENANT_TOKEN_FILE": h.tenantFile, "LARK_USER_TOKEN_FILE": h.userFile,
		}[name]
	})
	if err != nil {
		t.Fatal(err)
	}
	h.svc = newService(cfg, log.New(h.logs, "", 0)).routes()
	return h
}

// render writes a token file the way Vault Agent does: a new file renamed over the old one.
func render(t *testing.T, path, token string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) do(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.svc.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	var v map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("%s %s: HTTP %d, not JSON: %s", method, path, rec.Code, rec.Body)
	}
	return rec.Code, v
}

// TestNotifySendsTheTokenOfTheFileAndFollowsARotation: each message goes out with exactly the
// tenant token in the file at the time; when the file is replaced, the next message carries the
// new token; nothing but the message call reaches Lark (no token fetched by the SDK).
func TestNotifySendsTheTokenOfTheFileAndFollowsARotation(t *testing.T) {
	h := newHarness(t)
	h.lark.accept("t-first", "app")
	h.lark.accept("t-second", "app")
	render(t, h.tenantFile, "t-first")

	status, reply := h.do(t, http.MethodPost, "/notify", `{"text":"hello","uuid":"u-1"}`)
	if status != http.StatusOK || reply["message_id"] != "om_fake1" || reply["sender_type"] != "app" {
		t.Fatalf("first /notify: HTTP %d %v", status, reply)
	}
	render(t, h.tenantFile, "t-second")
	if status, reply := h.do(t, http.MethodPost, "/notify", `{"text":"again","receive_id":"ou_other"}`); status != http.StatusOK {
		t.Fatalf("second /notify: HTTP %d %v", status, reply)
	}

	calls := h.lark.recorded()
	if len(calls) != 2 {
		t.Fatalf("Lark saw %d calls, want the 2 messages: %+v", len(calls), calls)
	}
	for i, want := range []struct{ token, text, receiver, uuid string }{
		{"t-first", "hello", "ou_receiver", "u-1"},
		{"t-second", "again", "ou_other", ""},
	} {
		c := calls[i]
		if c.method != http.MethodPost || c.path != "/open-apis/im/v1/messages" || c.query != "receive_id_type=open_id" {
			t.Errorf("call %d: %s %s?%s", i+1, c.method, c.path, c.query)
		}
		if c.token != want.token {
			t.Errorf("call %d went out with token %q, want %q", i+1, c.token, want.token)
		}
		wantContent, _ := json.Marshal(map[string]string{"text": want.text})
		if c.body["receive_id"] != want.receiver || c.body["msg_type"] != "text" || c.body["content"] != string(wantContent) {
			t.Errorf("call %d body: %v", i+1, c.body)
		}
		if uuid, _ := c.body["uuid"].(string); uuid != want.uuid {
			t.Errorf("call %d uuid %q, want %q", i+1, uuid, want.uuid)
		}
	}
}

// TestMeUsesTheUserTokenFile: /me calls user_info with the user token of its file, and follows
// the file when it is rewritten in place (an editor, not Agent) as well.
func TestMeUsesTheUserTokenFile(t *testing.T) {
	h := newHarness(t)
	h.lark.accept("u-first", "user")
	h.lark.accept("u-second", "user")
	render(t, h.userFile, "u-first")
	status, who := h.do(t, http.MethodGet, "/me", "")
	if status != http.StatusOK || who["name"] != "Release Bot" || who["open_id"] != "ou_fake" || who["tenant_key"] != "tk" {
		t.Fatalf("/me: HTTP %d %v", status, who)
	}
	if err := os.WriteFile(h.userFile, []byte("u-second-and-longer\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.lark.accept("u-second-and-longer", "user")
	if status, who := h.do(t, http.MethodGet, "/me", ""); status != http.StatusOK {
		t.Fatalf("/me after the rewrite: HTTP %d %v", status, who)
	}
	calls := h.lark.recorded()
	if len(calls) != 2 || calls[0].path != "/open-apis/authen/v1/user_info" || calls[0].token != "u-first" || calls[1].token != "u-second-and-longer" {
		t.Fatalf("Lark saw %+v", calls)
	}
}

// TestRefusedTokenIsOneCallAndNoSecretLeaks: a token Lark refuses gives 502 with Lark's code after
// exactly one call. With the SDK's token cache on, the SDK would send the refused request a second
// time (it retries on an invalid-token code, expecting to fetch a fresh token itself). Neither the
// answer nor the log carries the token.
func TestRefusedTokenIsOneCallAndNoSecretLeaks(t *testing.T) {
	h := newHarness(t)
	const stale = "t-stale-token-value"
	render(t, h.tenantFile, stale)
	status, reply := h.do(t, http.MethodPost, "/notify", `{"text":"hello"}`)
	if status != http.StatusBadGateway || !strings.Contains(reply["error"].(string), "99991663") {
		t.Fatalf("/notify with a refused token: HTTP %d %v", status, reply)
	}
	if calls := h.lark.recorded(); len(calls) != 1 {
		t.Fatalf("Lark saw %d calls for one refused message, want 1: %+v", len(calls), calls)
	}
	raw, _ := json.Marshal(reply)
	if strings.Contains(string(raw), stale) || strings.Contains(h.logs.String(), stale) {
		t.Fatalf("the token leaked: answer %s, log %q", raw, h.logs)
	}
}

// TestTokenFileNotRenderedYet: without the file the service answers 503 and calls nothing.
func TestTokenFileNotRenderedYet(t *testing.T) {
	h := newHarness(t)
	for _, c := range []struct{ method, path, body string }{
		{http.MethodPost, "/notify", `{"text":"hello"}`},
		{http.MethodGet, "/me", ""},
	} {
		status, reply := h.do(t, c.method, c.path, c.body)
		if status != http.StatusServiceUnavailable || !strings.Contains(reply["error"].(string), "has Vault Agent rendered it yet?") {
			t.Errorf("%s %s without a token file: HTTP %d %v", c.method, c.path, status, reply)
		}
	}
	// An empty file (Agent not done, or a template that rendered nothing) is the same.
	if err := os.WriteFile(h.tenantFile, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if status, reply := h.do(t, http.MethodPost, "/notify", `{"text":"hello"}`); status != http.StatusServiceUnavailable {
		t.Errorf("/notify with an empty token file: HTTP %d %v", status, reply)
	}
	if calls := h.lark.recorded(); len(calls) != 0 {
		t.Fatalf("Lark saw %+v", calls)
	}
}

// TestBadRequests: a body that is not JSON, or lacks the text or any receiver, is a 400 and
// reaches neither the token file nor Lark.
func TestBadRequests(t *testing.T) {
	h := newHarness(t)
	render(t, h.tenantFile, "t-first")
	for _, body := range []string{`not json`, `{}`, `{"text":""}`, `{"text":"x","receive_id":1}`, `{"text":"` + strings.Repeat("a", maxBody) + `"}`} {
		if status, reply := h.do(t, http.MethodPost, "/notify", body); status != http.StatusBadRequest {
			t.Errorf("/notify %.40q: HTTP %d %v", body, status, reply)
		}
	}
	if calls := h.lark.recorded(); len(calls) != 0 {
		t.Fatalf("Lark saw %+v", calls)
	}
}

func TestConfigNeedsAppID(t *testing.T) {
	if _, err := configFromEnv(func(string) string { return "" }); err == nil {
		t.Fatal("no LARK_APP_ID: want an error")
	}
	cfg, err := configFromEnv(func(n string) string { return map[string]string{"LARK_APP_ID": "cli_x"}[n] })
	if err != nil || cfg.baseURL != "https://open.feishu.cn" || cfg.tenantTokenFile != "/run/lark/tenant-token" ||
		cfg.receiveIDType != "open_id" || cfg.listen != "127.0.0.1:8080" || cfg.userTokenFile != "" {
		t.Fatalf("defaults: %+v %v", cfg, err)
	}
}

// TestSDKSendsNothingWithoutAToken: the client as the service builds it (no secret, no token
// cache) refuses a call that carries no token itself, before anything reaches Lark; it never
// falls back to fetching a token of its own.
func TestSDKSendsNothingWithoutAToken(t *testing.T) {
	f := &fakeLark{accepted: map[string]string{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	client := newLarkClient(config{appID: "cli_fake", baseURL: srv.URL})
	_, err := client.Authen.UserInfo.Get(context.Background())
	if err == nil || !strings.Contains(err.Error(), "AppSecret is empty") {
		t.Fatalf("a call without a token: %v", err)
	}
	if calls := f.recorded(); len(calls) != 0 {
		t.Fatalf("Lark saw %+v", calls)
	}
}
