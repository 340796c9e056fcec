package larkemu

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"
)

// request is an incoming Lark call whose body has already been read, so that injected delays can
// happen before the handler runs and the connection still notices when the client gives up.
type request struct {
	*http.Request
	body []byte
	// bodyErr is errBodyTooLarge or a read error; handlers answer it in their own dialect.
	bodyErr error
}

var errBodyTooLarge = errors.New("request body too large")

func readRequest(w http.ResponseWriter, r *http.Request, limit int64) *request {
	req := &request{Request: r}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		req.bodyErr = errBodyTooLarge
	case err != nil:
		req.bodyErr = err
	default:
		req.body = body
	}
	return req
}

// codeMsg is Lark's plainest reply, used by the legacy token endpoints and the gateway.
type codeMsg struct {
	Code int    `json:"code"`
	Msg  string `json:"msg"`
}

// writeJSON answers the way Lark's gateway does: JSON with charset and a log id header.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Every value written here is built by the emulator itself; failing to encode one is a bug.
		panic("larkemu: encoding response: " + err.Error())
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Tt-Logid", newLogID())
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails since Go 1.24
	return hex.EncodeToString(b)
}

// newLogID mimics Lark's X-Tt-Logid: a timestamp followed by random hex.
func newLogID() string {
	return time.Now().UTC().Format("20060102150405") + randomHex(12)
}

// remainingSeconds is how Lark reports expire/expires_in: whole seconds left, never negative.
func remainingSeconds(until, now time.Time) int64 {
	d := until.Sub(now)
	if d < 0 {
		return 0
	}
	return int64(d / time.Second)
}
