package larkemu

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func inject(t *testing.T, s *Server, f Failure) {
	t.Helper()
	if err := s.InjectFailure(f); err != nil {
		t.Fatal(err)
	}
}

// tryPost posts credentials and returns the transport error, if any.
func tryPost(client *http.Client, url string) (*http.Response, []byte, error) {
	resp, err := client.Post(url, "application/json", strings.NewReader(credentials(testApp, testSecret)))
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func TestFailure5xx(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	inject(t, s, Failure{Endpoint: EndpointTenantAccessToken, Mode: Fail5xx, Count: 2})
	inject(t, s, Failure{Endpoint: EndpointTenantAccessToken, Mode: Fail5xx, Status: 500})
	for i, want := range []int{503, 503, 500} {
		r := postJSON(t, ts.URL+PathTenantAccessToken, credentials(testApp, testSecret))
		expectEqual(t, "status", r.status, want)
		expectEqual(t, "content type", r.header.Get("Content-Type"), "text/plain; charset=utf-8")
		if json.Valid([]byte(r.body)) || !strings.Contains(r.body, http.StatusText(want)) {
			t.Errorf("request %d: want a plain %d page, got %q", i, want, r.body)
		}
	}
	fetchToken(t, ts, PathTenantAccessToken)
	expectEqual(t, "calls", s.Calls(EndpointTenantAccessToken), 4)
}

func TestFailure429(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	inject(t, s, Failure{Endpoint: EndpointAppAccessToken, Mode: Fail429})
	inject(t, s, Failure{Endpoint: EndpointAppAccessToken, Mode: Fail429, ResetSeconds: 7})
	for _, reset := range []string{"1", "7"} {
		r := postJSON(t, ts.URL+PathAppAccessToken, credentials(testApp, testSecret))
		expectEqual(t, "status", r.status, http.StatusTooManyRequests)
		expectEqual(t, "body", r.body, `{"code":99991400,"msg":"request trigger frequency limit"}`)
		expectEqual(t, "reset header", r.header.Get("x-ogw-ratelimit-reset"), reset)
		expectEqual(t, "limit header", r.header.Get("x-ogw-ratelimit-limit"), "50")
	}
	fetchToken(t, ts, PathAppAccessToken)
}

func TestFailureGarbage(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	inject(t, s, Failure{Endpoint: EndpointTenantAccessToken, Mode: FailGarbage})
	r := postJSON(t, ts.URL+PathTenantAccessToken, credentials(testApp, testSecret))
	expectEqual(t, "status", r.status, http.StatusOK)
	expectEqual(t, "content type", r.header.Get("Content-Type"), "text/html")
	if !strings.HasPrefix(r.body, "<html>") || !strings.Contains(r.body, "502 Bad Gateway") {
		t.Fatalf("body %q", r.body)
	}
}

func TestFailureTruncatedRunsHandler(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	inject(t, s, Failure{Endpoint: EndpointTenantAccessToken, Mode: FailTruncated})
	r := postJSON(t, ts.URL+PathTenantAccessToken, credentials(testApp, testSecret))
	expectEqual(t, "status", r.status, http.StatusOK)
	if json.Valid([]byte(r.body)) {
		t.Fatalf("truncated body is valid JSON: %q", r.body)
	}
	full := fetchToken(t, ts, PathTenantAccessToken)
	fullBody := `{"code":0,"msg":"ok","tenant_access_token":"` + full.TenantAccessToken + `","expire":7200}`
	// The cut response was for the very token that is now current: the handler really ran.
	expectEqual(t, "truncated body", r.body, fullBody[:len(fullBody)/2])
}

func TestFailureHuge(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	inject(t, s, Failure{Endpoint: EndpointTenantAccessToken, Mode: FailHuge})
	resp, body, err := tryPost(http.DefaultClient, ts.URL+PathTenantAccessToken)
	if err != nil {
		t.Fatal(err)
	}
	expectEqual(t, "status", resp.StatusCode, http.StatusOK)
	expectEqual(t, "content length (streamed)", resp.ContentLength, int64(-1))
	if len(body) <= 8<<20 {
		t.Fatalf("body has %d bytes, want more than 8 MiB", len(body))
	}
	if !json.Valid(body) {
		t.Fatal("huge body is not JSON")
	}
}

func TestFailureHugeClientStopsEarly(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	inject(t, s, Failure{Endpoint: EndpointTenantAccessToken, Mode: FailHuge})
	resp, err := http.Post(ts.URL+PathTenantAccessToken, "application/json", strings.NewReader(credentials(testApp, testSecret)))
	if err != nil {
		t.Fatal(err)
	}
	// A careful client reads a bounded prefix and hangs up; the emulator must not get stuck.
	n, _ := io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	expectEqual(t, "read", n, int64(1<<20))
	fetchToken(t, ts, PathTenantAccessToken)
}

func TestFailureTimeoutUntilClientGivesUp(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	inject(t, s, Failure{Endpoint: EndpointTenantAccessToken, Mode: FailTimeout})
	client := &http.Client{Timeout: 200 * time.Millisecond}
	start := time.Now()
	_, _, err := tryPost(client, ts.URL+PathTenantAccessToken)
	var netErr interface{ Timeout() bool }
	if !errors.As(err, &netErr) || !netErr.Timeout() {
		t.Fatalf("want a client timeout, got %v", err)
	}
	if time.Since(start) < 200*time.Millisecond {
		t.Fatal("timeout returned too early")
	}
	fetchToken(t, ts, PathTenantAccessToken) // consumed
}

func TestFailureTimeoutDropsConnectionAfterDelay(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	inject(t, s, Failure{Endpoint: EndpointTenantAccessToken, Mode: FailTimeout, Delay: 100 * time.Millisecond})
	start := time.Now()
	_, _, err := tryPost(http.DefaultClient, ts.URL+PathTenantAccessToken)
	if err == nil {
		t.Fatal("want a transport error, the connection should have been dropped")
	}
	if el := time.Since(start); el < 100*time.Millisecond || el > 10*time.Second {
		t.Fatalf("dropped after %v, want about 100ms", el)
	}
}

func TestCloseReleasesHeldRequests(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	inject(t, s, Failure{Endpoint: EndpointTenantAccessToken, Mode: FailTimeout})
	done := make(chan error, 1)
	go func() {
		_, _, err := tryPost(http.DefaultClient, ts.URL+PathTenantAccessToken)
		done <- err
	}()
	waitFor(t, func() bool { return s.Calls(EndpointTenantAccessToken) == 1 })
	s.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a held request got an answer")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not release the held request")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFailureSlow(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	inject(t, s, Failure{Endpoint: EndpointTenantAccessToken, Mode: FailSlow, Delay: 150 * time.Millisecond})
	start := time.Now()
	tok := fetchToken(t, ts, PathTenantAccessToken)
	if time.Since(start) < 150*time.Millisecond {
		t.Fatal("slow answer came too fast")
	}
	expectEqual(t, "expire", tok.Expire, int64(7200))
}

func TestFailureSlowClientGivesUpFirst(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	inject(t, s, Failure{Endpoint: EndpointTenantAccessToken, Mode: FailSlow, Delay: 5 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+PathTenantAccessToken, strings.NewReader(credentials(testApp, testSecret)))
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("want the client to give up")
	}
	// The abandoned request must not mint a token behind the client's back.
	waitFor(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.tenantTokens) == 0
	})
}

func TestFailureLostResponseRunsHandler(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	inject(t, s, Failure{Endpoint: EndpointTenantAccessToken, Mode: FailLostResponse})
	if _, _, err := tryPost(http.DefaultClient, ts.URL+PathTenantAccessToken); err == nil {
		t.Fatal("want a transport error")
	}
	s.mu.Lock()
	minted := s.currentToken[testApp]
	s.mu.Unlock()
	if minted == nil {
		t.Fatal("the handler did not run before the connection was dropped")
	}
	expectEqual(t, "next call gets the minted token", fetchToken(t, ts, PathTenantAccessToken).TenantAccessToken, minted.token)
}

func TestFailureErrorMode(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	inject(t, s, Failure{Endpoint: EndpointTenantAccessToken, Mode: FailError, Code: 10014, Msg: "app secret invalid"})
	inject(t, s, Failure{Endpoint: EndpointTenantAccessToken, Mode: FailError, Code: 10003})
	inject(t, s, Failure{Endpoint: EndpointTenantAccessToken, Mode: FailError, Code: 99991400, Status: 400})
	for _, want := range []struct {
		status int
		body   string
	}{
		{200, `{"code":10014,"msg":"app secret invalid"}`},
		{200, `{"code":10003,"data":{},"msg":"invalid param"}`},
		{400, `{"code":99991400,"msg":"error"}`},
	} {
		r := postJSON(t, ts.URL+PathTenantAccessToken, credentials(testApp, testSecret))
		expectEqual(t, "status", r.status, want.status)
		expectEqual(t, "body", r.body, want.body)
	}
}

func TestFailureOrderAndTargeting(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	inject(t, s, Failure{Endpoint: EndpointTenantAccessToken, Mode: Fail5xx})
	inject(t, s, Failure{Endpoint: EndpointAll, Mode: Fail429})
	inject(t, s, Failure{Endpoint: EndpointTenantAccessToken, Mode: FailGarbage})

	status := func(path string) int {
		return postJSON(t, ts.URL+path, credentials(testApp, testSecret)).status
	}
	// The app endpoint skips the tenant-only failure and takes the wildcard.
	expectEqual(t, "app #1", status(PathAppAccessToken), 429)
	expectEqual(t, "app #2", status(PathAppAccessToken), 200)
	expectEqual(t, "tenant #1", status(PathTenantAccessToken), 503)
	r := postJSON(t, ts.URL+PathTenantAccessToken, credentials(testApp, testSecret))
	expectEqual(t, "tenant #2 is garbage", r.header.Get("Content-Type"), "text/html")
	expectEqual(t, "tenant #3", status(PathTenantAccessToken), 200)
	if len(s.PendingFailures()) != 0 {
		t.Fatalf("failures left: %+v", s.PendingFailures())
	}
}

func TestFailureUntilCleared(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	inject(t, s, Failure{Endpoint: EndpointAll, Mode: Fail5xx, Count: -1})
	for i := 0; i < 5; i++ {
		expectEqual(t, "status", postJSON(t, ts.URL+PathTenantAccessToken, credentials(testApp, testSecret)).status, 503)
	}
	expectEqual(t, "pending count", s.PendingFailures()[0].Count, -1)
	s.ClearFailures()
	fetchToken(t, ts, PathTenantAccessToken)
}

func TestInjectFailureValidation(t *testing.T) {
	s := New(Options{})
	for _, f := range []Failure{
		{Endpoint: "nope", Mode: Fail5xx},
		{Endpoint: EndpointRefreshReuse, Mode: Fail5xx},
		{Endpoint: EndpointAll, Mode: "explode"},
		{Endpoint: EndpointAll, Mode: Fail5xx, Count: -2},
		{Endpoint: EndpointAll, Mode: Fail5xx, Status: 404},
		{Endpoint: EndpointAll, Mode: FailError},
		{Endpoint: EndpointAll, Mode: FailSlow, Delay: -time.Second},
		{Endpoint: EndpointAll, Mode: Fail429, ResetSeconds: -1},
	} {
		if err := s.InjectFailure(f); err == nil {
			t.Errorf("InjectFailure(%+v) accepted", f)
		}
	}
	if len(s.PendingFailures()) != 0 {
		t.Fatal("a rejected failure was queued")
	}
}
