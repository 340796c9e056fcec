package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
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
			"-app-token-ttl", "10m", "-reuse-window", "1m", "-verbose"}, &stderr)
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
	resp.Body.Close()
	if err != nil || got.Code != 0 || got.Expire > 600 || got.Expire < 598 {
		t.Fatalf("token call: %+v, %v", got, err)
	}

	// The process serves the per-app control endpoints too.
	resp, err = http.Post(base+"/_emulator/apps", "application/json",
		strings.NewReader(`{"app_id":"cli_short","app_secret":"short-secret","refresh_token_ttl_seconds":180}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("register an app with its own lifetime: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = http.Get(base + "/_emulator/apps/cli_demo/counters")
	if err != nil {
		t.Fatal(err)
	}
	var perApp map[string]int
	err = json.NewDecoder(resp.Body).Decode(&perApp)
	resp.Body.Close()
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
	resp.Body.Close()
	held := make(chan error, 1)
	go func() {
		resp, err := http.Post(base+"/open-apis/auth/v3/tenant_access_token/internal", "application/json",
			strings.NewReader(`{"app_id":"cli_demo","app_secret":"demo-secret"}`))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
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
