package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer lets the test read stderr while run writes it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestRunServesAndShutsDown(t *testing.T) {
	addrFile := filepath.Join(t.TempDir(), "addr")
	if err := os.WriteFile(addrFile, []byte("http://stale:1"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, []string{"-listen", "127.0.0.1:0", "-app", "cli_demo:demo-secret", "-addr-file", addrFile,
			"-app-token-ttl", "10m", "-reuse-window", "1m", "-device-code-ttl", "90s", "-device-interval", "2s", "-verbose"}, &stderr)
	}()

	var base string
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(addrFile)
		if s := string(b); strings.HasPrefix(s, "http://127.0.0.1:") {
			base = s
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no address written; stderr:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(stderr.String(), "lark-emulator listening on "+base+"\n") {
		t.Fatalf("stderr lacks the listening line:\n%s", stderr.String())
	}

	resp, err := http.Post(base+"/open-apis/auth/v3/tenant_access_token/internal", "application/json",
		strings.NewReader(`{"app_id":"cli_demo","app_secret":"demo-secret"}`))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Code   int   `json:"code"`
		Expire int64 `json:"expire"`
	}
	err = json.NewDecoder(resp.Body).Decode(&got)
	_ = resp.Body.Close()
	if err != nil || got.Code != 0 || got.Expire > 600 || got.Expire < 598 {
		t.Fatalf("token call: %+v, %v", got, err)
	}

	// Device login answers with the lifetimes given on the command line.
	req, _ := http.NewRequest(http.MethodPost, base+"/oauth/v1/device_authorization", strings.NewReader("client_id=cli_demo"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("cli_demo", "demo-secret")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var dev struct {
		ExpiresIn int64 `json:"expires_in"`
		Interval  int64 `json:"interval"`
	}
	err = json.NewDecoder(resp.Body).Decode(&dev)
	_ = resp.Body.Close()
	if err != nil || dev.ExpiresIn != 90 || dev.Interval != 2 {
		t.Fatalf("device authorization: %+v, %v", dev, err)
	}

	// The process serves the per-app control endpoints too.
	resp, err = http.Post(base+"/_emulator/apps", "application/json",
		strings.NewReader(`{"app_id":"cli_short","app_secret":"short-secret","refresh_token_ttl_seconds":180}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("register an app with its own lifetime: %v %v", resp, err)
	}
	_ = resp.Body.Close()
	resp, err = http.Get(base + "/_emulator/apps/cli_demo/counters")
	if err != nil {
		t.Fatal(err)
	}
	var perApp map[string]int
	err = json.NewDecoder(resp.Body).Decode(&perApp)
	_ = resp.Body.Close()
	if err != nil || perApp["tenant_access_token"] != 1 || perApp["refresh"] != 0 {
		t.Fatalf("per-app counters: %v, %v", perApp, err)
	}
	if _, ok := perApp["max_refresh_per_second"]; !ok {
		t.Fatalf("per-app counters lack max_refresh_per_second: %v", perApp)
	}

	// A request held open by an injected timeout must not block shutdown.
	resp, err = http.Post(base+"/_emulator/failures", "application/json",
		strings.NewReader(`{"endpoint":"tenant_access_token","mode":"timeout"}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("inject: %v %v", resp, err)
	}
	_ = resp.Body.Close()
	held := make(chan error, 1)
	go func() {
		resp, err := http.Post(base+"/open-apis/auth/v3/tenant_access_token/internal", "application/json",
			strings.NewReader(`{"app_id":"cli_demo","app_secret":"demo-secret"}`))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			held <- errors.New("held request was answered")
			return
		}
		held <- nil
	}()
	time.Sleep(100 * time.Millisecond)

	cancel()
	select {
	case code := <-exit:
		if code != 0 {
			t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancellation")
	}
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(addrFile); !os.IsNotExist(err) {
		t.Fatalf("addr file not removed on exit: %v", err)
	}
	if strings.Contains(stderr.String(), "demo-secret") {
		t.Fatalf("stderr contains the app secret:\n%s", stderr.String())
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-app", "cli_demo"},
		{"-app", "not-an-app:secret"},
		{"-listen", "127.0.0.1:0", "extra"},
		{"-nope"},
		{"-event-retry-delays", "5s,soon"},
		{"-event-retry-delays", "-1s"},
		{"-ticket-interval", "hourly"},
	} {
		var stderr syncBuffer
		if code := run(context.Background(), args, &stderr); code != 2 {
			t.Errorf("run(%q) = %d, want 2", args, code)
		}
	}
	var stderr syncBuffer
	if code := run(context.Background(), []string{"-h"}, &stderr); code != 0 || !strings.Contains(stderr.String(), "/_emulator/clock/advance") ||
		!strings.Contains(stderr.String(), "/_emulator/apps/{app_id}/counters") {
		t.Errorf("-h: code %d, usage:\n%s", code, stderr.String())
	}
}

func TestRunListenError(t *testing.T) {
	var stderr syncBuffer
	if code := run(context.Background(), []string{"-listen", "256.0.0.1:0"}, &stderr); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
}

// TestRunPushesTicketsToStoreApps runs the process with a short ticket interval and a store app
// registered over the control API, and waits for the scheduled app_ticket at the app's event URL.
func TestRunPushesTicketsToStoreApps(t *testing.T) {
	got := make(chan []byte, 10)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		select {
		case got <- b:
		default: // a ticket every 100 ms: the test needs only the first
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer receiver.Close()
	addrFile := filepath.Join(t.TempDir(), "addr")
	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuffer
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, []string{"-listen", "127.0.0.1:0", "-addr-file", addrFile, "-ticket-interval", "100ms",
			"-ticket-ttl", "1m", "-event-timeout", "5s", "-event-retry-delays", "none", "-verbose"}, &stderr)
	}()
	defer func() {
		cancel()
		<-exit
	}()
	var base string
	deadline := time.Now().Add(10 * time.Second)
	for base == "" {
		b, _ := os.ReadFile(addrFile)
		base = string(b)
		if time.Now().After(deadline) {
			t.Fatalf("no address written; stderr:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := http.Post(base+"/_emulator/apps", "application/json", strings.NewReader(`{"app_id":"cli_store","app_secret":"store-secret",`+
		`"app_type":"store","event_url":"`+receiver.URL+`/events","verification_token":"vt","tenants":["tenant_a","tenant_b"]}`))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("register: %v %v", resp, err)
	}
	_ = resp.Body.Close()
	var ev struct {
		Token string `json:"token"`
		Event struct {
			AppID     string `json:"app_id"`
			AppTicket string `json:"app_ticket"`
		} `json:"event"`
	}
	select {
	case b := <-got:
		if err := json.Unmarshal(b, &ev); err != nil || ev.Token != "vt" || ev.Event.AppID != "cli_store" || ev.Event.AppTicket == "" {
			t.Fatalf("ticket event: %s (%v)", b, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no app_ticket within 10 s; stderr:\n%s", stderr.String())
	}
	resp, err = http.Post(base+"/open-apis/auth/v3/app_access_token", "application/json",
		strings.NewReader(`{"app_id":"cli_store","app_secret":"store-secret","app_ticket":"`+ev.Event.AppTicket+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		Code           int    `json:"code"`
		AppAccessToken string `json:"app_access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	_ = resp.Body.Close()
	if tok.Code != 0 || !strings.HasPrefix(tok.AppAccessToken, "a-") {
		t.Fatalf("store app token: %+v", tok)
	}
	if strings.Contains(stderr.String(), ev.Event.AppTicket) || strings.Contains(stderr.String(), "store-secret") {
		t.Fatalf("the log shows a ticket or secret:\n%s", stderr.String())
	}
}
