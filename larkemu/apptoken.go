package larkemu

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"time"
)

// Legacy token endpoint results (lark-api.md §2). Lark answers them all with HTTP 200 and branches on code.
const (
	codeInvalidParam = 10003
	codeAppAuth      = 10014
	msgAppNotExists  = "app id not exists"
	msgSecretInvalid = "app secret invalid"
)

// appToken is an app/tenant access token. For self-built apps Lark hands out one token that serves
// as both, so one record covers both endpoints.
type appToken struct {
	token string
	appID string
	// tenantKey is the tenant a store app's tenant token is for; "" for self-built apps, whose
	// tokens belong to Options.TenantKey.
	tenantKey string
	expiresAt time.Time
}

// invalidParam is the exact 10003 body, the only legacy error that carries an empty data object.
type invalidParam struct {
	Code int      `json:"code"`
	Data struct{} `json:"data"`
	Msg  string   `json:"msg"`
}

var invalidParamReply = invalidParam{Code: codeInvalidParam, Msg: "invalid param"}

type appTokenReply struct {
	Code              int    `json:"code"`
	Msg               string `json:"msg"`
	AppAccessToken    string `json:"app_access_token,omitempty"`
	TenantAccessToken string `json:"tenant_access_token"`
	Expire            int64  `json:"expire"`
}

func (s *Server) handleAppAccessToken(w http.ResponseWriter, req *request) {
	s.serveLegacyToken(w, req, EndpointAppAccessToken)
}

func (s *Server) handleTenantAccessToken(w http.ResponseWriter, req *request) {
	s.serveLegacyToken(w, req, EndpointTenantAccessToken)
}

func (s *Server) serveLegacyToken(w http.ResponseWriter, req *request, endpoint string) {
	appID, secret, ok := parseLegacyCredentials(req)
	if !ok {
		s.logf("%s: code=%d (invalid param)", endpoint, codeInvalidParam)
		writeJSON(w, http.StatusOK, invalidParamReply)
		return
	}
	tok, expire, code, msg := s.issueAppToken(appID, secret)
	if code != 0 {
		s.logf("%s: app_id=%s code=%d (%s)", endpoint, appID, code, msg)
		writeJSON(w, http.StatusOK, codeMsg{Code: code, Msg: msg})
		return
	}
	s.logf("%s: app_id=%s code=0 expire=%d", endpoint, appID, expire)
	reply := appTokenReply{Msg: "ok", TenantAccessToken: tok, Expire: expire}
	if endpoint == EndpointAppAccessToken {
		reply.AppAccessToken = tok
	}
	writeJSON(w, http.StatusOK, reply)
}

// parseLegacyCredentials accepts only a JSON object with a well-formed app_id and a non-empty
// app_secret; anything else is what Lark calls "invalid param".
func parseLegacyCredentials(req *request) (appID, secret string, ok bool) {
	if req.bodyErr != nil {
		return "", "", false
	}
	var body struct {
		AppID     *string `json:"app_id"`
		AppSecret *string `json:"app_secret"`
	}
	if err := json.Unmarshal(req.body, &body); err != nil || body.AppID == nil || body.AppSecret == nil {
		return "", "", false
	}
	if !wellFormedAppID(*body.AppID) || *body.AppSecret == "" {
		return "", "", false
	}
	return *body.AppID, *body.AppSecret, true
}

// issueAppToken applies Lark's reuse rule: the current token comes back while at least ReuseWindow of
// it remains; after that a new one is minted and the old one simply runs out. On failure it returns
// the Lark code and message. A store app has no token here: it needs its app_ticket (10016).
func (s *Server) issueAppToken(appID, secret string) (tok string, expire int64, code int, errMsg string) {
	now := s.clk.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[appID]
	if !ok {
		return "", 0, codeAppAuth, msgAppNotExists
	}
	if subtle.ConstantTimeCompare([]byte(a.Secret), []byte(secret)) != 1 {
		return "", 0, codeAppAuth, msgSecretInvalid
	}
	if a.AppType == AppTypeStore {
		return "", 0, codeAppTypeMismatch, msgAppTypeMismatch
	}
	if cur := s.currentToken[appID]; cur != nil && cur.expiresAt.Sub(now) >= s.opts.ReuseWindow {
		return cur.token, remainingSeconds(cur.expiresAt, now), 0, ""
	}
	s.pruneAppTokens(now)
	t := &appToken{token: "t-g" + randomHex(20), appID: appID, expiresAt: now.Add(s.opts.AppTokenTTL)}
	s.currentToken[appID] = t
	s.tenantTokens[t.token] = t
	return t.token, remainingSeconds(t.expiresAt, now), 0, ""
}

// pruneAppTokens drops expired tokens so a long-running emulator does not grow without bound.
// Callers hold s.mu.
func (s *Server) pruneAppTokens(now time.Time) {
	for tok, t := range s.tenantTokens {
		if !now.Before(t.expiresAt) {
			delete(s.tenantTokens, tok)
		}
	}
}

// TenantTokenValid reports whether tok is an unexpired tenant (or app) access token issued by this
// server to an app that still exists.
func (s *Server) TenantTokenValid(tok string) bool {
	_, ok := s.tenantTokenApp(tok)
	return ok
}

// tenantTokenApp returns the app a valid tenant token belongs to.
func (s *Server) tenantTokenApp(tok string) (string, bool) {
	now := s.clk.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tenantTokens[tok]
	if !ok || !now.Before(t.expiresAt) {
		return "", false
	}
	if _, ok := s.apps[t.appID]; !ok {
		return "", false
	}
	return t.appID, true
}
