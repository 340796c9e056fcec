package larkemu

import (
	"context"
	"log"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Lark acts at once and its answer comes late: while the answer is on its way the refresh token is
// already spent, and the answer, when it comes, is the real one.
func TestLateAnswerActsFirstAnswersLater(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	tr := exchangeNew(t, ts, fullScope)
	const delay = 400 * time.Millisecond
	inject(t, s, Failure{Endpoint: EndpointRefresh, Mode: FailLateAnswer, Delay: delay})

	type answer struct {
		r       response
		elapsed time.Duration
	}
	late := make(chan answer, 1)
	start := time.Now()
	go func() {
		resp, err := http.Post(ts.URL+PathOAuthTokenV2, "application/json", strings.NewReader(mustJSON(t, refreshParams(tr.RefreshToken))))
		if err != nil {
			late <- answer{}
			return
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = ioCopy(&b, resp)
		late <- answer{response{status: resp.StatusCode, header: resp.Header, body: b.String()}, time.Since(start)}
	}()

	// Lark has rotated before answering: the grant counts the refresh and the token is used.
	waitUntil(t, func() bool { return s.Grants()[0].Refreshes == 1 })
	wantOAuthError(t, tokenV2(t, ts, refreshParams(tr.RefreshToken)), 20073)

	a := <-late
	if a.elapsed < delay {
		t.Fatalf("the answer came after %s, want at least %s", a.elapsed, delay)
	}
	next := okTokens(t, a.r)
	// The late answer carries the live successor.
	okTokens(t, tokenV2(t, ts, refreshParams(next.RefreshToken)))
	expectEqual(t, "refresh calls", s.Calls(EndpointRefresh), 3)
	expectEqual(t, "reuse", s.Calls(EndpointRefreshReuse), 1)
}

// A client that is gone before the answer (a killed Vault node) never gets it, yet the token is
// spent; the emulator lets go of the request instead of waiting out the delay.
func TestLateAnswerClientGoneBeforeTheAnswer(t *testing.T) {
	var logged syncLog
	s, ts, _ := newFakeEmu(t, Options{Logger: log.New(&logged, "", 0)})
	tr := exchangeNew(t, ts, fullScope)
	inject(t, s, Failure{Endpoint: EndpointRefresh, Mode: FailLateAnswer, Delay: time.Minute})

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+PathOAuthTokenV2, strings.NewReader(mustJSON(t, refreshParams(tr.RefreshToken))))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("got an answer (HTTP %d) before the delay", resp.StatusCode)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatal("the client waited far past its own deadline")
	}
	// The retry with the same token is the probe that finds it used.
	wantOAuthError(t, tokenV2(t, ts, refreshParams(tr.RefreshToken)), 20073)
	expectEqual(t, "refreshes", s.Grants()[0].Refreshes, 1)
	expectEqual(t, "reuse attempts", s.Grants()[0].ReuseAttempts, 1)
	waitUntil(t, func() bool { return strings.Contains(logged.String(), "late answer not delivered") })
}

func TestLateAnswerIsAValidMode(t *testing.T) {
	s, _, _ := newFakeEmu(t, Options{})
	inject(t, s, Failure{Endpoint: EndpointRefresh, Mode: FailLateAnswer, Count: -1, Delay: 2 * time.Second})
	p := s.PendingFailures()
	if len(p) != 1 || p[0].Mode != FailLateAnswer || p[0].Delay != 2*time.Second || p[0].Count != -1 {
		t.Fatalf("pending failures: %+v", p)
	}
}

// syncLog is a log destination the test reads while the server writes it.
type syncLog struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
