package larkemu

import "net/http"

type revokeReply struct {
	Code int `json:"code"`
}

// handleRevoke is POST /oauth/v1/revoke as the official CLI uses it: client credentials plus the
// token, form or JSON. As RFC 7009 asks, an unknown token is not an error. Revoking a refresh
// token ends the chain (the next refresh gets 20064); revoking an access token kills only it.
func (s *Server) handleRevoke(w http.ResponseWriter, req *request) {
	p, code := parseOAuthParams(req, true)
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
	s.logf("%s: app_id=%s code=0", EndpointRevoke, clientID)
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
