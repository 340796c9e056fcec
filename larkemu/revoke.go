package larkemu

import (
	"fmt"
	"net/http"
)

type revokeReply struct {
	Code int `json:"code"`
}

// RevokeMode decides how POST /oauth/v1/revoke answers a successful revocation.
type RevokeMode string

const (
	// RevokeReplyJSON answers {"code":0}, what the official CLI reads (the default).
	RevokeReplyJSON RevokeMode = "json"
	// RevokeReplyEmpty answers HTTP 200 with an empty body, which RFC 7009 allows (a client is to
	// ignore the body of a 200): clients must take it as success too.
	RevokeReplyEmpty RevokeMode = "empty"
)

// SetRevokeMode chooses how revoke answers a success from now on; errors keep their OAuth shape.
func (s *Server) SetRevokeMode(m RevokeMode) error {
	if m != RevokeReplyJSON && m != RevokeReplyEmpty {
		return fmt.Errorf("revoke mode must be %q or %q, got %q", RevokeReplyJSON, RevokeReplyEmpty, m)
	}
	s.mu.Lock()
	s.revokeMode = m
	s.mu.Unlock()
	return nil
}

func (s *Server) currentRevokeMode() RevokeMode {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.revokeMode == "" {
		return RevokeReplyJSON
	}
	return s.revokeMode
}

// handleRevoke is POST /oauth/v1/revoke as the official CLI uses it: client credentials plus the
// token, form or JSON. As RFC 7009 asks, an unknown token is not an error. Revoking a refresh
// token ends the chain (the next refresh gets 20064); revoking an access token kills only it.
func (s *Server) handleRevoke(w http.ResponseWriter, req *request) {
	p, code := parseOAuthParams(req)
	var clientID, secret string
	if code == 0 {
		clientID, secret, code = clientCredentials(req, p)
	}
	if code == 0 {
		code = s.revokeToken(clientID, secret, p["token"])
	}
	if code != 0 {
		s.oauthFail(w, EndpointRevoke, clientID, "", code)
		return
	}
	mode := s.currentRevokeMode()
	s.logf("%s: app_id=%s code=0 reply=%s", EndpointRevoke, clientID, mode)
	if mode == RevokeReplyEmpty {
		w.Header().Set("X-Tt-Logid", newLogID())
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return
	}
	writeJSON(w, http.StatusOK, revokeReply{})
}

func (s *Server) revokeToken(clientID, secret, tok string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, code := s.checkClientLocked(clientID, secret); code != 0 {
		return code
	}
	if tok == "" {
		return oauthMissingParam
	}
	ut := s.grants.tokens[tok]
	if ut == nil {
		return 0
	}
	if ut.g.appID != clientID {
		return oauthClientMismatch
	}
	ut.revoked = true
	return 0
}

type revokeModeBody struct {
	Mode RevokeMode `json:"mode"`
}

func (s *Server) ctlGetRevokeMode(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, revokeModeBody{Mode: s.currentRevokeMode()})
	return nil
}

func (s *Server) ctlSetRevokeMode(w http.ResponseWriter, r *http.Request) error {
	var b revokeModeBody
	if err := decodeControl(r, &b); err != nil {
		return err
	}
	if err := s.SetRevokeMode(b.Mode); err != nil {
		return badRequest("%v", err)
	}
	writeOK(w)
	return nil
}
