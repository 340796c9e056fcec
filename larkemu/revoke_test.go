package larkemu

import (
	"net/http"
	"testing"
)

// The empty-200 revoke mode: the revocation happens, the answer is HTTP 200 with no body at all,
// and failures keep their OAuth error shape.
func TestRevokeEmptyReplyMode(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	ctl := ts.URL + ControlPrefix + "revoke-mode"
	creds := func(tok string) map[string]string {
		return map[string]string{"client_id": testApp, "client_secret": testSecret, "token": tok}
	}
	expectEqual(t, "default mode", get(t, ctl).body, `{"mode":"json"}`)
	expectEqual(t, "set empty", postJSON(t, ctl, `{"mode":"empty"}`).body, `{"ok":true}`)
	expectEqual(t, "mode now", get(t, ctl).body, `{"mode":"empty"}`)

	tr := exchangeNew(t, ts, fullScope)
	r := postForm(t, ts.URL+PathRevoke, creds(tr.RefreshToken))
	expectEqual(t, "status", r.status, http.StatusOK)
	expectEqual(t, "body", r.body, "")
	expectEqual(t, "content-length", r.header.Get("Content-Length"), "0")
	if r.header.Get("X-Tt-Logid") == "" {
		t.Error("no X-Tt-Logid on the empty answer")
	}
	// The revocation really happened: the chain is over.
	wantOAuthError(t, tokenV2(t, ts, refreshParams(tr.RefreshToken)), oauthRefreshRevoked)
	// Errors are unchanged.
	wantOAuthError(t, postForm(t, ts.URL+PathRevoke, withKV(creds(tr.AccessToken), "client_secret", "x")), oauthBadSecret)
	expectEqual(t, "unknown token", postForm(t, ts.URL+PathRevoke, creds("nope")).body, "")

	// Back to JSON by the control API, and by Reset.
	expectEqual(t, "set json", postJSON(t, ctl, `{"mode":"json"}`).body, `{"ok":true}`)
	expectEqual(t, "json again", postForm(t, ts.URL+PathRevoke, creds("nope")).body, `{"code":0}`)
	if err := s.SetRevokeMode(RevokeReplyEmpty); err != nil {
		t.Fatal(err)
	}
	s.Reset()
	expectEqual(t, "after reset", get(t, ctl).body, `{"mode":"json"}`)

	// Bad requests change nothing.
	expectEqual(t, "bad mode", postJSON(t, ctl, `{"mode":"silent"}`).status, http.StatusBadRequest)
	expectEqual(t, "unknown field", postJSON(t, ctl, `{"mode":"empty","x":1}`).status, http.StatusBadRequest)
	expectEqual(t, "wrong method", do(t, http.MethodDelete, ctl, "", nil).status, http.StatusMethodNotAllowed)
	expectEqual(t, "unchanged", get(t, ctl).body, `{"mode":"json"}`)
	if err := s.SetRevokeMode(""); err == nil {
		t.Error("SetRevokeMode accepted an empty mode")
	}
}
