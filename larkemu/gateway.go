package larkemu

import (
	"net/http"
	"strings"
	"time"
)

// bearerToken extracts the token of an "Authorization: Bearer …" header. Lark's gateway treats a
// missing header and a token without the Bearer prefix alike (99991661).
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// userTokenStatus is what the gateway and the user services make of a user access token.
type userTokenStatus int

const (
	userTokenOK      userTokenStatus = iota
	userTokenUnknown                 // never issued, a refresh token, or its app is gone: 99991668
	userTokenExpired                 // past its expiry or its grant was expired by the control API: 99991677
	userTokenRevoked                 // revoked by user, admin or /oauth/v1/revoke
)

// lookupUserToken classifies an access token. Lark's user tokens are signed JWTs, so the gateway
// can tell expired from unknown by itself; revocation is only known to the service behind it.
// Callers hold s.mu.
func (s *Server) lookupUserToken(tok string, now time.Time) (*userToken, userTokenStatus) {
	ut := s.grants.tokens[tok]
	if ut == nil || ut.kind != accessToken {
		return nil, userTokenUnknown
	}
	if _, ok := s.apps[ut.g.appID]; !ok {
		return nil, userTokenUnknown
	}
	if !now.Before(ut.expiresAt) || ut.g.forceExpired {
		return ut, userTokenExpired
	}
	if ut.revoked || ut.g.revoked {
		return ut, userTokenRevoked
	}
	return ut, userTokenOK
}
