package larkemu

import (
	"net/http/httptest"
	"testing"
)

// NewTestServer starts an emulator on a loopback httptest server for the duration of a test. Point
// the client under test at ts.URL for every Lark host (open and accounts alike).
func NewTestServer(t testing.TB, opts Options) (*Server, *httptest.Server) {
	t.Helper()
	s := New(opts)
	ts := httptest.NewServer(s)
	t.Cleanup(func() {
		// Release held requests first: httptest.Server.Close waits for every handler to return.
		s.Close()
		ts.Close()
	})
	return s, ts
}
