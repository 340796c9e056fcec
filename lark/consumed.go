package lark

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http/httptrace"
	"sync/atomic"
	"syscall"
)

// ConsumedMaybe reports whether the request may have reached Lark even though no usable answer came
// back: a timeout or a dropped connection after sending, a 5xx or HTML page that is not Lark's error
// shape, a cut-off body, a success answer that failed validation. It matters for single-use
// credentials (refresh tokens, authorization codes): when it is true Lark may already have spent the
// credential, and a blind retry could lose the grant. It is false when Lark answered with one of its
// own error codes (it refused, nothing was spent) or when the request was never sent (dial failure,
// connection refused, DNS, TLS certificate, a local validation error, a caller that gave up first).
func (e *Error) ConsumedMaybe() bool { return e.consumedMaybe }

// sendTrace watches one attempt to learn whether any of the request went out. Callbacks may run on
// transport goroutines, hence the atomics.
type sendTrace struct {
	traced atomic.Bool // the transport reports through httptrace at all
	wrote  atomic.Bool // request headers were handed to the connection
}

func (t *sendTrace) attach(ctx context.Context) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GetConn:      func(string) { t.traced.Store(true) },
		WroteHeaders: func() { t.wrote.Store(true) },
	})
}

// maybeSent decides for a failed round trip. Headers in the buffer count as sent: the transport may
// flush them with the body at any moment, and erring towards "maybe" only costs a careful retry.
// A transport that does not report through httptrace (a caller's custom RoundTripper) leaves us
// with the error alone, and only a dial failure proves nothing left.
func (t *sendTrace) maybeSent(err error) bool {
	if t.traced.Load() {
		return t.wrote.Load()
	}
	return !isDialFailure(err)
}

func isDialFailure(err error) bool {
	var op *net.OpError
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.As(err, &op) && (op.Op == "dial" || op.Op == "proxyconnect"):
		return true
	case errors.As(err, &dnsErr), errors.As(err, &certErr), errors.Is(err, syscall.ECONNREFUSED):
		return true
	}
	return false
}
