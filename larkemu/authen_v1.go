package larkemu

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"
)

// The deprecated authen v1 user token endpoints (lark-api.md §6), which Lark's SDKs still call:
// the Node SDK's client.userAccessToken helper uses the two OIDC ones. They take the app's access
// token as a bearer token and the grant in a JSON body, and answer {code,msg,data}, errors on
// HTTP 200 except 20050 (HTTP 500). Their tokens are opaque: "u-…" access tokens and "ur-…"
// refresh tokens, single-use like v2's.

// DefaultV1RefreshTokenTTL is the life of a v1 refresh token unless the app has its own
// RefreshTokenTTL: Lark's v1 pages show refresh_expires_in of about 30 days.
const DefaultV1RefreshTokenTTL = 30 * 24 * time.Hour

// v1 error codes (lark-api.md §6). Lark documents what each means, not its exact msg, so the
// texts below are the documented meanings.
const (
	v1InvalidRequest      = 20001
	v1CodeInvalid         = 20003
	v1CodeExpired         = 20004
	v1AppTokenInvalid     = 20014
	v1AppMismatch         = 20024
	v1RefreshInvalid      = 20026
	v1GrantTypeNotAllowed = 20036
	v1RefreshExpired      = 20037
	v1RefreshNotFound     = 20038
	v1ServerError         = 20050
)

var v1ErrorText = map[int]string{
	20001:                 "invalid request",
	20002:                 "app_id or app_secret is incorrect",
	v1CodeInvalid:         "the code is invalid or has been used",
	v1CodeExpired:         "the code has expired",
	20007:                 "failed to generate token",
	20008:                 "user does not exist",
	20009:                 "the app is not installed",
	20013:                 "tenant access token invalid",
	v1AppTokenInvalid:     "app access token invalid",
	20021:                 "the user has resigned",
	20022:                 "the user is frozen",
	20023:                 "the user is not registered",
	v1AppMismatch:         "the code or refresh token does not belong to this app",
	20025:                 "app_id or app_secret is missing",
	v1RefreshInvalid:      "refresh token invalid",
	20028:                 "invalid app_id",
	20029:                 "invalid redirect_uri",
	20035:                 "app_id or app_secret is incorrect",
	v1GrantTypeNotAllowed: "grant_type not supported",
	v1RefreshExpired:      "refresh token expired",
	v1RefreshNotFound:     "refresh token not found: it was used already or has expired",
	20042:                 "the app is disabled",
	20046:                 "brand inconsistency",
	v1ServerError:         "internal server error, please retry",
}

// writeV1Error answers in the v1 dialect: {code,msg} on HTTP 200, 20050 on HTTP 500. status,
// when not 0, overrides the HTTP status (injected failures).
func writeV1Error(w http.ResponseWriter, code int, msg string, status int) {
	def := http.StatusOK
	if code == v1ServerError {
		def = http.StatusInternalServerError
	}
	writeJSON(w, orStatus(status, def), codeMsg{Code: code, Msg: orString(msg, orString(v1ErrorText[code], "error"))})
}

// v1TokenData is data of the OIDC endpoints.
type v1TokenData struct {
	AccessToken      string `json:"access_token"`
	TokenType        string `json:"token_type"`
	ExpiresIn        int64  `json:"expires_in"`
	RefreshToken     string `json:"refresh_token"`
	RefreshExpiresIn int64  `json:"refresh_expires_in"`
	Scope            string `json:"scope"`
}

// v1UserTokenData is data of the older non-OIDC endpoints: the tokens plus the user's profile.
type v1UserTokenData struct {
	v1TokenData
	userInfoData
}

type v1Reply struct {
	Code int    `json:"code"`
	Msg  string `json:"msg"`
	Data any    `json:"data"`
}

func (s *Server) handleV1OIDCAccessToken(w http.ResponseWriter, req *request) {
	s.serveV1Token(w, req, false, false)
}

func (s *Server) handleV1OIDCRefreshAccessToken(w http.ResponseWriter, req *request) {
	s.serveV1Token(w, req, true, false)
}

func (s *Server) handleV1AccessToken(w http.ResponseWriter, req *request) {
	s.serveV1Token(w, req, false, true)
}

func (s *Server) handleV1RefreshAccessToken(w http.ResponseWriter, req *request) {
	s.serveV1Token(w, req, true, true)
}

// v1Result is a successful v1 grant: its tokens and, for the non-OIDC endpoints, the profile.
type v1Result struct {
	pair    tokenPair
	profile userInfoData
}

// serveV1Token is the one handler behind the four v1 paths: refresh picks the grant type the path
// serves, withProfile adds the user's profile to data as the non-OIDC paths do.
func (s *Server) serveV1Token(w http.ResponseWriter, req *request, refresh, withProfile bool) {
	tok, ok := bearerToken(req.Request)
	if !ok {
		s.logf("%s: code=%d", EndpointAuthenV1, gwMissingToken)
		writeGatewayError(w, http.StatusBadRequest, gwMissingToken, msgMissingToken)
		return
	}
	// For a self-built app the app access token is the tenant token, so either is accepted.
	appID, ok := s.tenantTokenApp(tok)
	if !ok {
		s.logf("%s: code=%d", EndpointAuthenV1, v1AppTokenInvalid)
		writeV1Error(w, v1AppTokenInvalid, "", 0)
		return
	}
	p, code := parseV1Body(req)
	var res v1Result
	if code == 0 {
		if refresh {
			res, code = s.refreshV1(appID, p)
		} else {
			res, code = s.exchangeCodeV1(appID, p)
		}
	}
	if code != 0 {
		s.logf("%s: app_id=%s code=%d", EndpointAuthenV1, appID, code)
		writeV1Error(w, code, "", 0)
		return
	}
	s.logf("%s: app_id=%s code=0 refresh=%v", EndpointAuthenV1, appID, refresh)
	tokens := v1TokenData{
		AccessToken: res.pair.access, TokenType: "Bearer", ExpiresIn: res.pair.accessExpiresIn,
		RefreshToken: res.pair.refresh, RefreshExpiresIn: res.pair.refreshExpIn, Scope: strings.Join(res.pair.scopes, " "),
	}
	var data any = tokens
	if withProfile {
		data = v1UserTokenData{v1TokenData: tokens, userInfoData: res.profile}
	}
	writeJSON(w, http.StatusOK, v1Reply{Msg: "success", Data: data})
}

// parseV1Body reads the JSON object the v1 endpoints take into string fields (null ones are left
// out); any other body, or a field of another type, is an invalid request.
func parseV1Body(req *request) (map[string]string, int) {
	if req.bodyErr != nil {
		return nil, v1InvalidRequest
	}
	if ct := req.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return nil, v1InvalidRequest
		}
	}
	out := map[string]string{}
	if len(bytes.TrimSpace(req.body)) == 0 {
		return out, 0
	}
	var raw map[string]any
	if err := json.Unmarshal(req.body, &raw); err != nil {
		return nil, v1InvalidRequest
	}
	for k, v := range raw {
		switch v := v.(type) {
		case string:
			out[k] = v
		case nil:
		default:
			return nil, v1InvalidRequest
		}
	}
	return out, 0
}

func checkV1GrantType(p map[string]string, want string) int {
	switch p["grant_type"] {
	case "":
		return v1InvalidRequest
	case want:
		return 0
	default:
		return v1GrantTypeNotAllowed
	}
}

// exchangeCodeV1 redeems an authorization code from the authorize page at v1. v1 knows no PKCE and
// no redirect_uri check, so a code bound to a PKCE challenge cannot be redeemed here (20003): the
// challenge would be bypassed. v1 always issues a refresh token; offline_access came with v2.
func (s *Server) exchangeCodeV1(appID string, p map[string]string) (v1Result, int) {
	if code := checkV1GrantType(p, "authorization_code"); code != 0 {
		return v1Result{}, code
	}
	if p["code"] == "" {
		return v1Result{}, v1InvalidRequest
	}
	now := s.clk.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	ac := s.grants.codes[p["code"]]
	switch {
	case ac == nil:
		return v1Result{}, v1CodeInvalid
	case ac.appID != appID:
		return v1Result{}, v1AppMismatch
	case ac.used || ac.challenge != "":
		return v1Result{}, v1CodeInvalid
	case !now.Before(ac.expiresAt):
		return v1Result{}, v1CodeExpired
	}
	ac.used = true
	s.grants.seq++
	g := &grant{
		id: fmt.Sprintf("grant-%d", s.grants.seq), appID: appID, userID: ac.userID,
		scopes: slices.Clone(ac.scopes), authorizedAt: ac.issuedAt, v1: true,
	}
	s.grants.grants[g.id] = g
	s.grants.order = append(s.grants.order, g)
	return s.v1ResultLocked(g, now), 0
}

// refreshV1 rotates a v1 refresh token: the presented one dies at once (reuse: 20038), the access
// tokens issued before it live on until they expire. Only tokens issued at v1 are accepted.
func (s *Server) refreshV1(appID string, p map[string]string) (v1Result, int) {
	if code := checkV1GrantType(p, "refresh_token"); code != 0 {
		return v1Result{}, code
	}
	if p["refresh_token"] == "" {
		return v1Result{}, v1InvalidRequest
	}
	now := s.clk.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	rt := s.grants.tokens[p["refresh_token"]]
	if rt == nil || rt.kind != refreshToken || !rt.g.v1 {
		return v1Result{}, v1RefreshInvalid
	}
	g := rt.g
	switch {
	case g.appID != appID:
		return v1Result{}, v1AppMismatch
	case rt.used:
		g.reuseAttempts++
		return v1Result{}, v1RefreshNotFound
	case rt.revoked || g.revoked:
		// v1 has no "revoked" code; a revoked refresh token no longer exists for Lark.
		return v1Result{}, v1RefreshNotFound
	case !now.Before(rt.expiresAt) || s.grantEnded(g, now):
		return v1Result{}, v1RefreshExpired
	}
	rt.used = true
	g.refreshes++
	return s.v1ResultLocked(g, now), 0
}

// v1ResultLocked mints a v1 access and refresh token for g. The access token lives as long as a
// v2 one (the app's or the server's user token TTL); the refresh token DefaultV1RefreshTokenTTL
// or the app's RefreshTokenTTL, and never past the grant's end. Callers hold s.mu.
func (s *Server) v1ResultLocked(g *grant, now time.Time) v1Result {
	accessTTL, _ := s.userTokenTTLsLocked(g.appID)
	refreshTTL := DefaultV1RefreshTokenTTL
	if a := s.apps[g.appID]; a != nil && a.RefreshTokenTTL > 0 {
		refreshTTL = a.RefreshTokenTTL
	}
	pair := tokenPair{scopes: slices.Clone(g.scopes)}
	accessExp := now.Add(accessTTL)
	pair.access = "u-" + newOpaqueToken()
	pair.accessExpiresIn = remainingSeconds(accessExp, now)
	s.grants.tokens[pair.access] = &userToken{kind: accessToken, g: g, scopes: pair.scopes, expiresAt: accessExp}
	refreshExp := minTime(now.Add(refreshTTL), g.authorizedAt.Add(s.opts.GrantMaxAge))
	pair.refresh = "ur-" + newOpaqueToken()
	pair.refreshExpIn = remainingSeconds(refreshExp, now)
	rt := &userToken{kind: refreshToken, g: g, scopes: slices.Clone(g.scopes), expiresAt: refreshExp}
	s.grants.tokens[pair.refresh] = rt
	g.refresh = rt
	return v1Result{pair: pair, profile: s.profileLocked(g.appID, s.identity.users[g.userID], g.scopes)}
}

// newOpaqueToken is the random part of a v1 token: 32 bytes, base64url.
func newOpaqueToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
