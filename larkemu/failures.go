package larkemu

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"time"
)

// FailureMode says how an injected failure breaks a response.
type FailureMode string

// Failure modes. Each imitates something a client of Lark must survive.
const (
	// Fail5xx answers with a plain-text 5xx page (Status, default 503), as a load balancer would.
	Fail5xx FailureMode = "5xx"
	// FailTimeout holds the request until the client gives up or Delay (default 60 s) passes, then
	// drops the connection without a response. Note that Go's http.Transport quietly retries an
	// idempotent request (GET) once when a reused connection drops, so such a request may count twice.
	FailTimeout FailureMode = "timeout"
	// FailSlow answers correctly after Delay (default 1 s).
	FailSlow FailureMode = "slow"
	// Fail429 is Lark's rate limit: HTTP 429, code 99991400 and the x-ogw-ratelimit-* headers.
	Fail429 FailureMode = "429"
	// FailGarbage is HTTP 200 with an HTML 502 page, as when a proxy answers instead of Lark.
	FailGarbage FailureMode = "garbage"
	// FailTruncated runs the real handler (so its side effects happen) and sends the first half of
	// its body with HTTP 200: invalid JSON.
	FailTruncated FailureMode = "truncated"
	// FailHuge streams an HTTP 200 JSON body of more than 8 MiB, to test a client's read cap.
	FailHuge FailureMode = "huge"
	// FailLostResponse runs the real handler (a refresh token really gets used up) and then drops
	// the connection: the client never learns the result.
	FailLostResponse FailureMode = "lost_response"
	// FailError answers with a Lark error of the given Code in the endpoint's own dialect (legacy
	// {code,msg} on HTTP 200, the OAuth error shape, or a gateway error).
	FailError FailureMode = "error"
)

var failureModes = map[FailureMode]bool{
	Fail5xx: true, FailTimeout: true, FailSlow: true, Fail429: true, FailGarbage: true,
	FailTruncated: true, FailHuge: true, FailLostResponse: true, FailError: true, FailLateAnswer: true,
}

const (
	defaultTimeoutHold = 60 * time.Second
	defaultSlowDelay   = time.Second
	// hugeBodySize is past the 8 MiB a sane client reads from a token endpoint.
	hugeBodySize     = 9 << 20
	rateLimitPerSec  = 50
	codeRateLimited  = 99991400
	msgRateLimited   = "request trigger frequency limit"
	garbageHTMLReply = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n" +
		"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)

// Failure is one injected fault. Failures wait in a queue and are consumed in the order they were
// injected: each matching request takes the first pending failure for its endpoint.
type Failure struct {
	// Endpoint is an Endpoint* constant; EndpointAll matches every endpoint.
	Endpoint string
	Mode     FailureMode
	// Count is how many requests fail (0 means 1; -1 means until cleared).
	Count int
	// Delay is how long FailTimeout holds, FailSlow waits and FailLateAnswer holds the answer.
	Delay time.Duration
	// Status overrides the HTTP status of Fail5xx (500–599) and FailError.
	Status int
	// ResetSeconds is the x-ogw-ratelimit-reset header of Fail429 (default 1).
	ResetSeconds int
	// Code and Msg are the Lark error of FailError; Msg defaults to the documented text for Code.
	Code int
	Msg  string
	// AppID, when set, limits the failure to requests that name this app (as AppCounters counts
	// them), so tests sharing one emulator can break one app's Lark and leave the others alone.
	AppID string
}

type pendingFailure struct {
	f         Failure
	remaining int // -1: forever
}

func (f *Failure) validate() error {
	if !failureTargets[f.Endpoint] {
		return fmt.Errorf("unknown endpoint %q", f.Endpoint)
	}
	if !failureModes[f.Mode] && !shapeModes[f.Mode] {
		return fmt.Errorf("unknown failure mode %q", f.Mode)
	}
	if f.Count < -1 {
		return fmt.Errorf("count must be positive or -1, got %d", f.Count)
	}
	if f.Delay < 0 {
		return fmt.Errorf("delay must not be negative")
	}
	if f.Mode == Fail5xx && f.Status != 0 && (f.Status < 500 || f.Status > 599) {
		return fmt.Errorf("status for mode 5xx must be 500-599, got %d", f.Status)
	}
	if f.Mode == FailError && f.Code == 0 {
		return fmt.Errorf("mode error needs a non-zero code")
	}
	if f.Status != 0 && (f.Status < 100 || f.Status > 599) {
		return fmt.Errorf("status %d is not an HTTP status", f.Status)
	}
	if f.ResetSeconds < 0 {
		return fmt.Errorf("reset_seconds must not be negative")
	}
	return f.validateShape()
}

// InjectFailure queues a failure behind those already pending.
func (s *Server) InjectFailure(f Failure) error {
	if err := f.validate(); err != nil {
		return fmt.Errorf("larkemu: %w", err)
	}
	remaining := f.Count
	if remaining == 0 {
		remaining = 1
	}
	f.Count = remaining
	s.mu.Lock()
	s.failures = append(s.failures, &pendingFailure{f: f, remaining: remaining})
	s.mu.Unlock()
	return nil
}

// ClearFailures drops every pending failure.
func (s *Server) ClearFailures() {
	s.mu.Lock()
	s.failures = nil
	s.mu.Unlock()
}

// PendingFailures lists the failures not yet consumed, Count being what is left of each.
func (s *Server) PendingFailures() []Failure {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Failure, 0, len(s.failures))
	for _, p := range s.failures {
		f := p.f
		f.Count = p.remaining
		out = append(out, f)
	}
	return out
}

// takeFailure consumes the first pending failure for endpoint (or, with wildcard, for EndpointAll)
// that targets every app or appID.
func (s *Server) takeFailure(endpoint string, wildcard bool, appID string) (Failure, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, p := range s.failures {
		if p.f.Endpoint != endpoint && (!wildcard || p.f.Endpoint != EndpointAll) {
			continue
		}
		if p.f.AppID != "" && p.f.AppID != appID {
			continue
		}
		if p.remaining > 0 {
			p.remaining--
			if p.remaining == 0 {
				s.failures = append(s.failures[:i:i], s.failures[i+1:]...)
			}
		}
		return p.f, true
	}
	return Failure{}, false
}

// withFailures runs next unless a failure is pending for endpoint, in which case the failure decides
// what the client sees (and whether next runs at all).
func (s *Server) withFailures(w http.ResponseWriter, req *request, endpoint string, wildcard bool, next func(http.ResponseWriter)) {
	f, ok := s.takeFailure(endpoint, wildcard, s.failureAppID(req))
	if !ok {
		next(w)
		return
	}
	s.logf("%s: injected failure mode=%s", endpoint, f.Mode)
	switch f.Mode {
	case Fail5xx:
		status := f.Status
		if status == 0 {
			status = http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		_, _ = fmt.Fprintf(w, "%d %s\n", status, http.StatusText(status))
	case Fail429:
		reset := f.ResetSeconds
		if reset == 0 {
			reset = 1
		}
		w.Header().Set("x-ogw-ratelimit-limit", strconv.Itoa(rateLimitPerSec))
		w.Header().Set("x-ogw-ratelimit-reset", strconv.Itoa(reset))
		writeJSON(w, http.StatusTooManyRequests, codeMsg{Code: codeRateLimited, Msg: msgRateLimited})
	case FailGarbage:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, garbageHTMLReply)
	case FailHuge:
		writeHuge(w)
	case FailTimeout:
		s.hold(req.Context(), orDefault(f.Delay, defaultTimeoutHold))
		abortConnection(w)
	case FailSlow:
		if s.hold(req.Context(), orDefault(f.Delay, defaultSlowDelay)) {
			next(w)
		}
	case FailTruncated:
		rec := httptest.NewRecorder()
		next(rec)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		body := rec.Body.Bytes()
		_, _ = w.Write(body[:len(body)/2])
	case FailLostResponse:
		next(httptest.NewRecorder())
		abortConnection(w)
	case FailLateAnswer:
		s.answerLate(w, req, f.Delay, next)
	case FailError:
		s.writeInjectedError(w, endpoint, f)
	default:
		s.serveShape(w, req, endpoint, f, next)
	}
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// hold waits for d and reports whether it ran its course; it gives up early when the client leaves
// or the server is closed.
func (s *Server) hold(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.done:
		return false
	}
}

// abortConnection drops the connection without a response. Hijacking closes the TCP connection
// right away; where that is impossible (HTTP/2, recorders) net/http's own abort signal does it.
func abortConnection(w http.ResponseWriter) {
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		_ = conn.Close()
		return
	}
	panic(http.ErrAbortHandler)
}

// writeHuge streams the body in chunks so the emulator never holds 9 MiB per request.
func writeHuge(w http.ResponseWriter) {
	// A client that stops reading but keeps the connection open would otherwise pin this handler
	// (and Close of the HTTP server) forever.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Minute))
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	if _, err := io.WriteString(w, `{"code":0,"msg":"ok","padding":"`); err != nil {
		return
	}
	chunk := bytes.Repeat([]byte("x"), 32<<10)
	for written := 0; written < hugeBodySize; written += len(chunk) {
		if _, err := w.Write(chunk); err != nil {
			return
		}
	}
	_, _ = io.WriteString(w, `"}`)
}
