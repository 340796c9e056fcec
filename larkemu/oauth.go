package larkemu

import (
	"net/http"
	"strings"
	"time"
)

// oauthTokenReply is the success shape of the v2/v3 token endpoint: "code":0 and no error fields.
type oauthTokenReply struct {
	Code                  int    `json:"code"`
	AccessToken           string `json:"access_token"`
	ExpiresIn             int64  `json:"expires_in"`
	RefreshToken          string `json:"refresh_token,omitempty"`
	RefreshTokenExpiresIn int64  `json:"refresh_token_expires_in,omitempty"`
	TokenType             string `json:"token_type"`
	Scope                 string `json:"scope"`
}

func (s *Server) handleOAuthTokenV2(w http.ResponseWriter, req *request) {
	s.serveOAuthToken(w, req, false)
}
func (s *Server) handleOAuthTokenV3(w http.ResponseWriter, req *request) {
	s.serveOAuthToken(w, req, true)
}

// serveOAuthToken is the one handler behind the v2 and v3 token paths; they differ only in v3
// serving client_credentials and being strict about a verifier sent without a challenge.
func (s *Server) serveOAuthToken(w http.ResponseWriter, req *request, v3 bool) {
	p, code := parseOAuthParams(req)
	var clientID, secret string
	if code == 0 {
		clientID, secret, code = clientCredentials(req, p)
	}
	if code != 0 {
		s.oauthFail(w, EndpointOAuthToken, clientID, "", code)
		return
	}
	grantType := p["grant_type"]
	switch {
	case grantType == "authorization_code":
		s.countFor(EndpointCodeExchange, clientID)
		s.withFailures(w, req, EndpointCodeExchange, false, func(w http.ResponseWriter) {
			pair, code := s.exchangeCode(p, clientID, secret, v3)
			s.writeTokenPair(w, EndpointCodeExchange, clientID, pair, code)
		})
	case grantType == "refresh_token":
		s.countFor(EndpointRefresh, clientID)
		s.withFailures(w, req, EndpointRefresh, false, func(w http.ResponseWriter) {
			pair, code := s.refreshGrant(p, clientID, secret)
			s.writeTokenPair(w, EndpointRefresh, clientID, pair, code)
		})
	case grantType == GrantTypeDeviceCode:
		s.serveDeviceToken(w, req, p, clientID, secret) // device.go
	case grantType == "client_credentials" && v3:
		s.serveClientCredentials(w, req, clientID, secret) // clientcredentials.go
	case grantType == "":
		s.oauthFail(w, EndpointOAuthToken, clientID, grantType, oauthMissingParam)
	default:
		s.oauthFail(w, EndpointOAuthToken, clientID, grantType, oauthBadGrantType)
	}
}

func (s *Server) oauthFail(w http.ResponseWriter, endpoint, clientID, grantType string, code int) {
	s.logf("%s: app_id=%s grant_type=%q code=%d", endpoint, logAppID(clientID), grantType, code)
	writeOAuthError(w, code)
}

func (s *Server) writeTokenPair(w http.ResponseWriter, endpoint, clientID string, pair tokenPair, code int) {
	if code != 0 {
		s.oauthFail(w, endpoint, clientID, "", code)
		return
	}
	s.logf("%s: app_id=%s code=0 refresh_token=%v", endpoint, clientID, pair.refresh != "")
	writeJSON(w, http.StatusOK, oauthTokenReply{
		AccessToken: pair.access, ExpiresIn: pair.accessExpiresIn,
		RefreshToken: pair.refresh, RefreshTokenExpiresIn: pair.refreshExpIn,
		TokenType: "Bearer", Scope: strings.Join(pair.scopes, " "),
	})
}

// exchangeCode redeems an authorization code (lark-api.md §12.3).
func (s *Server) exchangeCode(p map[string]string, clientID, secret string, v3 bool) (tokenPair, int) {
	now := s.clk.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, code := s.checkClientLocked(clientID, secret); code != 0 {
		return tokenPair{}, code
	}
	if p["code"] == "" {
		return tokenPair{}, oauthMissingParam
	}
	ac := s.grants.codes[p["code"]]
	switch {
	case ac == nil:
		return tokenPair{}, oauthCodeNotFound
	case ac.appID != clientID:
		return tokenPair{}, oauthClientMismatch
	case ac.used:
		return tokenPair{}, oauthCodeUsed
	case !now.Before(ac.expiresAt):
		return tokenPair{}, oauthCodeExpired
	}
	if ru := p["redirect_uri"]; ru != "" && ru != ac.redirectURI {
		return tokenPair{}, oauthRedirectMismatch
	}
	verifier := p["code_verifier"]
	switch {
	case ac.challenge != "" && verifier == "":
		return tokenPair{}, oauthMissingParam
	case ac.challenge != "" && !pkceMatches(ac.challenge, ac.method, verifier):
		return tokenPair{}, oauthPKCEFailed
	case ac.challenge == "" && verifier != "" && v3:
		return tokenPair{}, oauthPKCEFailed
	}
	scopes, code := narrowScopes(p["scope"], ac.scopes)
	if code != 0 {
		return tokenPair{}, code
	}
	ac.used = true
	_, pair := s.newGrant(ac.appID, ac.userID, scopes, ac.issuedAt, now)
	return pair, 0
}

// refreshGrant rotates a refresh token (lark-api.md §12.4): the presented token dies at once, the
// access tokens issued before it live on until they expire.
func (s *Server) refreshGrant(p map[string]string, clientID, secret string) (tokenPair, int) {
	now := s.clk.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	a, code := s.checkClientLocked(clientID, secret)
	if code != 0 {
		return tokenPair{}, code
	}
	if p["refresh_token"] == "" {
		return tokenPair{}, oauthMissingParam
	}
	rt := s.grants.tokens[p["refresh_token"]]
	if rt == nil || rt.kind != refreshToken || rt.g.v1 {
		// v2/v3 refresh only their own tokens; a v1 "ur-" token is invalid here (lark-api.md §5).
		return tokenPair{}, oauthRefreshInvalid
	}
	g := rt.g
	switch {
	case g.appID != clientID:
		return tokenPair{}, oauthClientMismatch
	case rt.used:
		g.reuseAttempts++
		s.counters[EndpointRefreshReuse]++
		s.countAppLocked(EndpointRefreshReuse, g.appID, time.Now())
		return tokenPair{}, oauthRefreshUsed
	case rt.revoked || g.revoked:
		return tokenPair{}, oauthRefreshRevoked
	case !now.Before(rt.expiresAt) || s.grantEnded(g, now):
		return tokenPair{}, oauthRefreshExpired
	case a.RefreshDisabled:
		return tokenPair{}, oauthRefreshDisabled
	}
	scopes, code := narrowScopes(p["scope"], rt.scopes)
	if code != 0 {
		return tokenPair{}, code
	}
	rt.used = true
	g.refreshes++
	return s.mintPair(g, scopes, now), 0
}
