package larkemu

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"time"
)

// Results of the store-app endpoints (lark-api.md §3). They answer in the legacy dialect: HTTP 200
// and {code,msg}. Only 10003 and 10014 are observed on the real service; the others are the best
// known codes, marked in the package documentation.
const (
	// codeTicketInvalid: the official SDKs treat 10012 as "app_ticket invalid" and ask for a resend.
	codeTicketInvalid = 10012
	msgTicketInvalid  = "app ticket invalid" // inferred wording
	// codeAppTypeMismatch: lark-api.md §3 (from Lark's generic table) says a self-built app calling
	// app_ticket/resend gets 10016; the emulator also answers it when a store app calls a
	// self-built endpoint or the reverse (inferred).
	codeAppTypeMismatch = 10016
	msgAppTypeMismatch  = "app type not supported" // inferred wording
	// codeInvalidAppToken / codeInvalidTenantKey: the gateway codes for a bad app token and a bad
	// tenant (lark-api.md §9), used for the store tenant endpoint's two inputs (inferred).
	codeInvalidAppToken  = 99991664
	msgInvalidAppToken   = "invalid app token"
	codeInvalidTenantKey = 99991665
	msgInvalidTenantKey  = "invalid tenant code"
	// Store endpoints answer "success" where the /internal ones say "ok" (their documented examples).
	msgStoreSuccess = "success"
)

type storeAppTokenReply struct {
	Code           int    `json:"code"`
	Msg            string `json:"msg"`
	AppAccessToken string `json:"app_access_token"`
	Expire         int64  `json:"expire"`
}

type storeTenantTokenReply struct {
	Code              int    `json:"code"`
	Msg               string `json:"msg"`
	TenantAccessToken string `json:"tenant_access_token"`
	Expire            int64  `json:"expire"`
}

// parseStringFields reads a JSON object whose named fields must all be non-empty strings; anything
// else is Lark's "invalid param". Other fields are ignored, as Lark does.
func parseStringFields(req *request, names ...string) (map[string]string, bool) {
	if req.bodyErr != nil {
		return nil, false
	}
	var raw map[string]json.RawMessage
	if json.Unmarshal(req.body, &raw) != nil || raw == nil {
		return nil, false
	}
	out := make(map[string]string, len(names))
	for _, name := range names {
		var v string
		if json.Unmarshal(raw[name], &v) != nil || v == "" {
			return nil, false
		}
		out[name] = v
	}
	return out, true
}

// checkStoreAppLocked authenticates a store-app request: unknown app and wrong secret answer as the
// /internal endpoints do (10014), a self-built app gets 10016. Callers hold s.mu.
func (s *Server) checkStoreAppLocked(appID, secret string) (*app, int, string) {
	a, ok := s.apps[appID]
	switch {
	case !ok:
		return nil, codeAppAuth, msgAppNotExists
	case subtle.ConstantTimeCompare([]byte(a.Secret), []byte(secret)) != 1:
		return nil, codeAppAuth, msgSecretInvalid
	case a.AppType != AppTypeStore:
		return nil, codeAppTypeMismatch, msgAppTypeMismatch
	}
	return a, 0, ""
}

// handleAppTicketResend is POST /open-apis/auth/v3/app_ticket/resend: Lark mints a new ticket and
// pushes it to the app's event URL in the background; the answer does not wait for the push.
func (s *Server) handleAppTicketResend(w http.ResponseWriter, req *request) {
	appID, secret, ok := parseLegacyCredentials(req)
	if !ok {
		s.logf("%s: code=%d (invalid param)", EndpointAppTicketResend, codeInvalidParam)
		writeJSON(w, http.StatusOK, invalidParamReply)
		return
	}
	now := s.clk.Now()
	s.mu.Lock()
	a, code, msg := s.checkStoreAppLocked(appID, secret)
	var rec *eventRecord
	if code == 0 {
		t := s.mintTicketLocked(appID, now)
		rec = s.ticketEventLocked(&a.App, t, now)
	}
	s.mu.Unlock()
	if code != 0 {
		s.logf("%s: app_id=%s code=%d (%s)", EndpointAppTicketResend, appID, code, msg)
		writeJSON(w, http.StatusOK, codeMsg{Code: code, Msg: msg})
		return
	}
	if rec != nil {
		s.launch(rec)
	}
	s.logf("%s: app_id=%s code=0 pushed=%v", EndpointAppTicketResend, appID, rec != nil)
	writeJSON(w, http.StatusOK, codeMsg{Code: 0, Msg: msgStoreSuccess})
}

// handleStoreAppAccessToken is POST /open-apis/auth/v3/app_access_token {app_id, app_secret,
// app_ticket}: the store app token, with the same reuse rule as the /internal endpoints.
func (s *Server) handleStoreAppAccessToken(w http.ResponseWriter, req *request) {
	p, ok := parseStringFields(req, "app_id", "app_secret", "app_ticket")
	if !ok || !wellFormedAppID(p["app_id"]) {
		s.logf("%s: code=%d (invalid param)", EndpointStoreAppAccessToken, codeInvalidParam)
		writeJSON(w, http.StatusOK, invalidParamReply)
		return
	}
	appID := p["app_id"]
	tok, expire, code, msg := s.issueStoreAppToken(appID, p["app_secret"], p["app_ticket"])
	if code != 0 {
		s.logf("%s: app_id=%s code=%d (%s)", EndpointStoreAppAccessToken, appID, code, msg)
		writeJSON(w, http.StatusOK, codeMsg{Code: code, Msg: msg})
		return
	}
	s.logf("%s: app_id=%s code=0 expire=%d", EndpointStoreAppAccessToken, appID, expire)
	writeJSON(w, http.StatusOK, storeAppTokenReply{Msg: msgStoreSuccess, AppAccessToken: tok, Expire: expire})
}

func (s *Server) issueStoreAppToken(appID, secret, ticket string) (string, int64, int, string) {
	now := s.clk.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, code, msg := s.checkStoreAppLocked(appID, secret); code != 0 {
		return "", 0, code, msg
	}
	if !s.ticketValidLocked(appID, ticket, now) {
		return "", 0, codeTicketInvalid, msgTicketInvalid
	}
	if cur := s.store.currentApp[appID]; cur != nil && cur.expiresAt.Sub(now) >= s.opts.ReuseWindow {
		return cur.token, remainingSeconds(cur.expiresAt, now), 0, ""
	}
	for tok, t := range s.store.appTokens {
		if !now.Before(t.expiresAt) {
			delete(s.store.appTokens, tok)
		}
	}
	t := &appToken{token: "a-" + randomHex(20), appID: appID, expiresAt: now.Add(s.opts.AppTokenTTL)}
	s.store.appTokens[t.token] = t
	s.store.currentApp[appID] = t
	return t.token, remainingSeconds(t.expiresAt, now), 0, ""
}

// storeAppTokenLocked returns the unexpired store app token tok of an app that still exists and is
// still a store app. Callers hold s.mu.
func (s *Server) storeAppTokenLocked(tok string, now time.Time) (*appToken, bool) {
	t, ok := s.store.appTokens[tok]
	if !ok || !now.Before(t.expiresAt) {
		return nil, false
	}
	if a, ok := s.apps[t.appID]; !ok || a.AppType != AppTypeStore {
		return nil, false
	}
	return t, true
}

// StoreAppTokenApp names the store app a valid app_access_token ("a-…") was issued to. Endpoints
// that take an app token (authen v1) accept these beside the self-built apps' tokens.
func (s *Server) StoreAppTokenApp(tok string) (string, bool) {
	now := s.clk.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.storeAppTokenLocked(tok, now)
	if !ok {
		return "", false
	}
	return t.appID, true
}

// handleStoreTenantAccessToken is POST /open-apis/auth/v3/tenant_access_token {app_access_token,
// tenant_key}: one current token per (app, tenant), each with the 2 h / 30 min rule of its own.
func (s *Server) handleStoreTenantAccessToken(w http.ResponseWriter, req *request) {
	p, ok := parseStringFields(req, "app_access_token", "tenant_key")
	if !ok {
		s.logf("%s: code=%d (invalid param)", EndpointStoreTenantAccessToken, codeInvalidParam)
		writeJSON(w, http.StatusOK, invalidParamReply)
		return
	}
	appID, tok, expire, code, msg := s.issueStoreTenantToken(p["app_access_token"], p["tenant_key"])
	if code != 0 {
		s.logf("%s: app_id=%s code=%d (%s)", EndpointStoreTenantAccessToken, logAppID(appID), code, msg)
		writeJSON(w, http.StatusOK, codeMsg{Code: code, Msg: msg})
		return
	}
	s.logf("%s: app_id=%s code=0 expire=%d", EndpointStoreTenantAccessToken, appID, expire)
	writeJSON(w, http.StatusOK, storeTenantTokenReply{Msg: msgStoreSuccess, TenantAccessToken: tok, Expire: expire})
}

func (s *Server) issueStoreTenantToken(appTok, tenantKey string) (appID, tok string, expire int64, code int, msg string) {
	now := s.clk.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.storeAppTokenLocked(appTok, now)
	if !ok {
		return "", "", 0, codeInvalidAppToken, msgInvalidAppToken
	}
	appID = at.appID
	in := s.store.installs[appID][tenantKey]
	if in == nil {
		return appID, "", 0, codeInvalidTenantKey, msgInvalidTenantKey
	}
	in.calls++
	key := [2]string{appID, tenantKey}
	if cur := s.store.currentTenant[key]; cur != nil && cur.expiresAt.Sub(now) >= s.opts.ReuseWindow {
		return appID, cur.token, remainingSeconds(cur.expiresAt, now), 0, ""
	}
	s.pruneAppTokens(now)
	t := &appToken{token: "t-" + randomHex(20), appID: appID, tenantKey: tenantKey, expiresAt: now.Add(s.opts.AppTokenTTL)}
	s.tenantTokens[t.token] = t
	s.store.currentTenant[key] = t
	in.issued++
	return appID, t.token, remainingSeconds(t.expiresAt, now), 0, ""
}
