package larkemu

import (
	"fmt"
	"io"
	"net/http"
)

// More fault shapes, beside those of failures.go: the answers a client meets when something other
// than Lark answers (a proxy, a gateway, a half-rolled-out deployment) or when Lark acts on a
// request but its answer comes late. None of them is a Lark error: Lark's own errors are
// FailError's business.
const (
	// FailText is a plain-text body, neither JSON nor HTML, with HTTP 200 (or Status), as a
	// service mesh writes when its upstream resets. The handler does not run.
	FailText FailureMode = "text"
	// FailEmpty is HTTP 200 (or Status) with a JSON content type and no body at all. The handler
	// does not run.
	FailEmpty FailureMode = "empty"
	// FailWrongShape is well-formed JSON in Lark's envelope with code 0 but none of the endpoint's
	// fields: a success that carries no token. The handler does not run.
	FailWrongShape FailureMode = "wrong_shape"
	// FailWrongTypes is code 0 with every token and lifetime field of every token endpoint present
	// in the wrong JSON type (a number for a token, a string for a lifetime). The handler does not
	// run.
	FailWrongTypes FailureMode = "wrong_types"
	// FailGatewayTimeout holds the request for Delay (default 1 s) and then answers 504 (or Status,
	// 500–599) with a plain-text page: a gateway that gave up waiting for Lark. The handler does
	// not run, so nothing is spent.
	FailGatewayTimeout FailureMode = "gateway_timeout"
	// FailLateAnswer (lateanswer.go) is the other fault of this kind: Lark acts, its answer comes late.
)

var shapeModes = map[FailureMode]bool{
	FailText: true, FailEmpty: true, FailWrongShape: true, FailWrongTypes: true,
	FailGatewayTimeout: true,
}

const (
	textReply = "upstream connect error or disconnect/reset before headers. reset reason: connection termination"
	// wrongShapeReply is Lark's success envelope around nothing.
	wrongShapeReply = `{"code":0,"msg":"success","data":{}}`
	// wrongTypesReply covers the fields of the legacy app/tenant token answer and of the OAuth
	// token answer at once, so one shape serves every token endpoint.
	wrongTypesReply = `{"code":0,"msg":"success","app_access_token":7200,"tenant_access_token":7200,` +
		`"access_token":7200,"refresh_token":604800,"token_type":1,"expire":"7200","expires_in":"7200",` +
		`"refresh_token_expires_in":"604800","data":[]}`
)

// validateShape checks what failures.go's validate leaves to the shapes of this file, and the app
// a failure targets.
func (f *Failure) validateShape() error {
	if f.Mode == FailGatewayTimeout && f.Status != 0 && (f.Status < 500 || f.Status > 599) {
		return fmt.Errorf("status for mode %s must be 500-599, got %d", f.Mode, f.Status)
	}
	if f.AppID != "" && !wellFormedAppID(f.AppID) {
		return fmt.Errorf("app_id %q is not well-formed", f.AppID)
	}
	return nil
}

// failureAppID is the app a request names, worked out only while some failure targets an app: it
// costs a parse of the request body.
func (s *Server) failureAppID(req *request) string {
	s.mu.Lock()
	targeted := false
	for _, p := range s.failures {
		if p.f.AppID != "" {
			targeted = true
			break
		}
	}
	s.mu.Unlock()
	if !targeted {
		return ""
	}
	return s.requestAppID(req)
}

// ClearAppFailures drops the pending failures aimed at appID (those aimed at every app stay) and
// reports how many it dropped.
func (s *Server) ClearAppFailures(appID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.failures[:0]
	for _, p := range s.failures {
		if p.f.AppID != appID {
			kept = append(kept, p)
		}
	}
	dropped := len(s.failures) - len(kept)
	clear(s.failures[len(kept):])
	s.failures = kept
	return dropped
}

func (s *Server) ctlClearAppFailures(w http.ResponseWriter, appID string) error {
	if !wellFormedAppID(appID) {
		return badRequest("app_id %q is not well-formed", appID)
	}
	writeJSON(w, http.StatusOK, map[string]int{"cleared": s.ClearAppFailures(appID)})
	return nil
}

// serveShape answers with one of this file's shapes; withFailures hands over every mode it does
// not know itself.
func (s *Server) serveShape(w http.ResponseWriter, req *request, endpoint string, f Failure, next func(http.ResponseWriter)) {
	switch f.Mode {
	case FailText:
		writePlain(w, statusOr(f.Status, http.StatusOK), textReply)
	case FailEmpty:
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("X-Tt-Logid", newLogID())
		w.WriteHeader(statusOr(f.Status, http.StatusOK))
	case FailWrongShape:
		writeRawJSON(w, wrongShapeReply)
	case FailWrongTypes:
		writeRawJSON(w, wrongTypesReply)
	case FailGatewayTimeout:
		if !s.hold(req.Context(), orDefault(f.Delay, defaultSlowDelay)) {
			abortConnection(w)
			return
		}
		status := statusOr(f.Status, http.StatusGatewayTimeout)
		writePlain(w, status, fmt.Sprintf("%d %s\n", status, http.StatusText(status)))
	default:
		// validate lets only known modes in; reaching this is a bug in the emulator.
		panic(fmt.Sprintf("larkemu: no answer for failure mode %q", f.Mode))
	}
}

func statusOr(status, def int) int {
	if status != 0 {
		return status
	}
	return def
}

func writePlain(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func writeRawJSON(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Tt-Logid", newLogID())
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, body)
}
