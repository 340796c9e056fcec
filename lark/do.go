package lark

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"
)

// request is one Lark API call as an endpoint file describes it.
type request struct {
	endpoint string // stable name for errors and metrics
	method   string
	url      string
	body     any         // nil: no body; url.Values: form-encoded; anything else: JSON
	header   http.Header // extra headers, e.g. Authorization
	// secrets are request values (app secret, refresh token, code, ...) that must never surface in
	// an error, even if Lark echoes them back in a message.
	secrets []string
	// maxAttempts overrides Config.MaxAttempts. A call that must not be repeated blindly, such as an
	// OAuth refresh whose refresh token is single use, sets 1.
	maxAttempts int
	// classify maps codes that mean something only on this endpoint (OAuth's 20002, say). errName is
	// the OAuth "error" string ("invalid_client"), which may come without a code. Returning ""
	// falls back to classifyCode.
	classify func(code int, errName string) ErrorKind
}

// validator lets a response struct reject a well-formed but unusable answer (missing token,
// expire <= 0). The error text must not contain the values themselves.
type validator interface{ validate() error }

// do runs r with retries and decodes a successful JSON answer into out. Every failure is a *Error.
func (c *Client) do(ctx context.Context, r request, out any) error {
	payload, contentType, err := encodeBody(r.body)
	if err != nil {
		return &Error{Endpoint: r.endpoint, Kind: KindInvalidRequest, detail: "cannot encode request body", Err: scrubErr(err, r.secrets)}
	}
	maxAttempts := r.maxAttempts
	if maxAttempts <= 0 {
		maxAttempts = c.maxAttempts
	}
	var last *Error
	consumedMaybe := false
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			if last == nil {
				return &Error{Endpoint: r.endpoint, Kind: KindUnavailable, detail: ctxReason(err), Err: err}
			}
			// Keep the failure that made us wait: it is what the operator needs to see.
			last.detail = joinDetail(last.detail, "gave up before retrying: "+ctxReason(err))
			last.Err = errors.Join(last.Err, err)
			return last
		}
		last = c.attempt(ctx, r, payload, contentType, out)
		if last == nil {
			return nil
		}
		last.Attempts = attempt
		// One uncertain attempt is enough to make the whole call uncertain.
		consumedMaybe = consumedMaybe || last.consumedMaybe
		last.consumedMaybe = consumedMaybe
		if !last.retry || attempt >= maxAttempts || ctx.Err() != nil {
			return last
		}
		wait := c.backoff(attempt)
		if last.Kind == KindRateLimited && last.RetryAfter > 0 {
			if last.RetryAfter > maxRateLimitWait {
				return last
			}
			wait = last.RetryAfter
		}
		// Sleeping into the caller's deadline only to fail there would hide the real cause.
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return last
		}
		_ = sleep(ctx, wait) // a cancellation is picked up at the top of the loop
	}
}

func (c *Client) attempt(ctx context.Context, r request, payload []byte, contentType string, out any) *Error {
	start := time.Now()
	e := c.roundTrip(ctx, r, payload, contentType, out)
	if c.observe != nil {
		status := StatusOK
		if e != nil {
			status = e.status
		}
		c.observe(Call{Endpoint: r.endpoint, Status: status, Duration: time.Since(start)})
	}
	return e
}

func (c *Client) roundTrip(ctx context.Context, r request, payload []byte, contentType string, out any) *Error {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var sent sendTrace
	actx = sent.attach(actx)
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(actx, r.method, r.url, body)
	if err != nil {
		return &Error{Endpoint: r.endpoint, Kind: KindInvalidRequest, status: StatusNetwork, detail: "cannot build request", Err: scrubErr(err, r.secrets)}
	}
	for k, vs := range r.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		e := transportError(ctx, r, err)
		e.consumedMaybe = sent.maybeSent(err)
		return e
	}
	defer func() { _ = resp.Body.Close() }()
	logID := cleanField(resp.Header.Get("X-Tt-Logid"), 128)
	data, err := readLimited(resp, c.maxBody)
	if err != nil {
		var e *Error
		switch {
		case errors.Is(err, errBodyTooLarge) && resp.StatusCode >= 500:
			e = &Error{Kind: KindUnavailable, status: StatusHTTP5xx, detail: fmt.Sprintf("HTTP %d", resp.StatusCode), retry: true}
		case errors.Is(err, errBodyTooLarge):
			e = &Error{Kind: KindBadResponse, status: StatusBadResponse, detail: fmt.Sprintf("response body larger than %d bytes", c.maxBody), Err: err}
		default:
			e = transportError(ctx, r, err)
		}
		// Lark started answering, so it had the whole request; the answer is what got lost.
		e.Endpoint, e.HTTPStatus, e.LogID, e.consumedMaybe = r.endpoint, resp.StatusCode, safeLogID(logID, r.secrets), true
		return e
	}
	return interpret(r, resp, data, logID, out)
}

// transportError classifies a failure that left no complete response.
func transportError(ctx context.Context, r request, err error) *Error {
	e := &Error{Endpoint: r.endpoint, Kind: KindUnavailable, status: StatusNetwork, retry: true, Err: scrubErr(err, r.secrets)}
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	switch {
	case ctx.Err() != nil:
		// The caller gave up, not Lark: stop at once.
		e.detail, e.retry = ctxReason(ctx.Err()), false
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			e.status = StatusTimeout
		}
	case isTimeout(err):
		e.detail, e.status = "timeout", StatusTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		e.detail = "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		e.detail = "connection reset"
	case errors.As(err, &dnsErr):
		e.detail = "DNS lookup failed"
		e.retry = !dnsErr.IsNotFound
	case errors.As(err, &certErr):
		// Transient in kind (someone may fix the certificate) but not within this call.
		e.detail, e.retry = "TLS certificate verification failed", false
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		e.detail = "connection closed before a full response"
	default:
		e.detail = "network error"
	}
	return e
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func ctxReason(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "caller's deadline exceeded"
	}
	return "canceled by caller"
}

func joinDetail(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// backoff is exponential with full jitter, so many Vault nodes or requests failing together do not
// retry in lockstep.
func (c *Client) backoff(attempt int) time.Duration {
	d := backoffCap
	if attempt-1 < 16 {
		if x := c.backoffBase << (attempt - 1); x > 0 && x < backoffCap {
			d = x
		}
	}
	return rand.N(d + 1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func encodeBody(body any) ([]byte, string, error) {
	switch b := body.(type) {
	case nil:
		return nil, "", nil
	case url.Values:
		return []byte(b.Encode()), "application/x-www-form-urlencoded", nil
	default:
		data, err := json.Marshal(b)
		return data, "application/json; charset=utf-8", err
	}
}
