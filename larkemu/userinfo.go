package larkemu

import (
	"net/http"
	"slices"
	"time"
)

// Scopes that unlock optional user_info fields (lark-api.md §7).
const (
	ScopeUserEmail      = "contact:user.email:readonly"
	ScopeUserEmployeeID = "contact:user.employee_id:readonly"
)

const (
	codeUserTokenInvalid = 20005
	msgUserTokenInvalid  = "The user access token passed is invalid. Please check the value"
)

type userInfoData struct {
	Name         string `json:"name"`
	EnName       string `json:"en_name"`
	AvatarURL    string `json:"avatar_url"`
	AvatarThumb  string `json:"avatar_thumb"`
	AvatarMiddle string `json:"avatar_middle"`
	AvatarBig    string `json:"avatar_big"`
	OpenID       string `json:"open_id"`
	UnionID      string `json:"union_id"`
	Email        string `json:"email,omitempty"`
	UserID       string `json:"user_id,omitempty"`
	TenantKey    string `json:"tenant_key"`
}

type userInfoReply struct {
	Code int          `json:"code"`
	Msg  string       `json:"msg"`
	Data userInfoData `json:"data"`
}

// UserInfoCall is one call of GET /open-apis/authen/v1/user_info that carried a bearer token,
// recorded so that a test can tell which token a client used (by its SHA-256; the emulator never
// hands tokens out) and what it was answered.
type UserInfoCall struct {
	AppID       string    `json:"app_id,omitempty"`  // the app the token was issued to; empty for an unknown token
	OpenID      string    `json:"open_id,omitempty"` // whose profile was answered; empty unless code is 0
	TokenSHA256 string    `json:"token_sha256"`
	Code        int       `json:"code"` // the Lark code answered: 0, a gateway code, or 20005
	At          time.Time `json:"at"`
}

// handleUserInfo answers GET /open-apis/authen/v1/user_info for user access tokens only. Errors:
// gateway codes on HTTP 400 for a missing, unknown or expired token (or a tenant token), and the
// service's own 20005 on HTTP 200 for a revoked one.
func (s *Server) handleUserInfo(w http.ResponseWriter, req *request) {
	tok, ok := bearerToken(req.Request)
	if !ok {
		s.logf("%s: code=%d", EndpointUserInfo, gwMissingToken)
		writeGatewayError(w, http.StatusBadRequest, gwMissingToken, msgMissingToken)
		return
	}
	now := s.clk.Now()
	s.mu.Lock()
	ut, status := s.lookupUserToken(tok, now)
	_, isTenant := s.tenantTokens[tok]
	var data userInfoData
	call := UserInfoCall{TokenSHA256: tokenSHA256(tok), At: now}
	if ut != nil && ut.g != nil {
		call.AppID = ut.g.appID
	}
	switch {
	case isTenant:
		call.Code = gwInvalidAppToken
	case status == userTokenUnknown:
		call.Code = gwInvalidUserToken
	case status == userTokenExpired:
		call.Code = gwUserTokenExpired
	case status == userTokenRevoked:
		call.Code = codeUserTokenInvalid
	default:
		data = s.profileLocked(ut.g.appID, s.identity.users[ut.g.userID], ut.scopes)
		call.OpenID = data.OpenID
	}
	s.userInfoCalls = append(s.userInfoCalls, call)
	s.mu.Unlock()

	switch call.Code {
	case 0:
		s.logf("%s: app_id=%s code=0", EndpointUserInfo, call.AppID)
		writeJSON(w, http.StatusOK, userInfoReply{Msg: "success", Data: data})
	case codeUserTokenInvalid:
		s.logf("%s: code=%d", EndpointUserInfo, call.Code)
		writeJSON(w, http.StatusOK, codeMsg{Code: codeUserTokenInvalid, Msg: msgUserTokenInvalid})
	case gwUserTokenExpired:
		s.logf("%s: code=%d", EndpointUserInfo, call.Code)
		writeGatewayError(w, http.StatusBadRequest, gwUserTokenExpired, msgUserTokenExpired)
	default: // a tenant token, or a token Lark never issued
		s.logf("%s: code=%d", EndpointUserInfo, call.Code)
		writeGatewayError(w, http.StatusBadRequest, call.Code, msgInvalidToken)
	}
}

// profileLocked is what app appID may see of user u with a token of these scopes: the optional
// fields only behind their contact scopes. The authen v1 token endpoints return it too. Callers
// hold s.mu.
func (s *Server) profileLocked(appID string, u User, scopes []string) userInfoData {
	data := userInfoData{
		Name: u.Name, EnName: u.EnName,
		OpenID: openIDOf(appID, u), UnionID: unionIDOf(u), TenantKey: s.tenantOfLocked(u),
	}
	avatar := "https://larkemu.invalid/avatar/" + digest("avatar", u.UserID)
	data.AvatarURL, data.AvatarThumb = avatar+"~72x72", avatar+"~72x72"
	data.AvatarMiddle, data.AvatarBig = avatar+"~240x240", avatar+"~640x640"
	if slices.Contains(scopes, ScopeUserEmail) {
		data.Email = u.Email
	}
	if slices.Contains(scopes, ScopeUserEmployeeID) {
		data.UserID = u.UserID
	}
	return data
}

// UserInfoCalls returns every recorded user_info call, oldest first.
func (s *Server) UserInfoCalls() []UserInfoCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.userInfoCalls)
}

// ClearUserInfoCalls forgets the recorded user_info calls.
func (s *Server) ClearUserInfoCalls() {
	s.mu.Lock()
	s.userInfoCalls = nil
	s.mu.Unlock()
}

func (s *Server) ctlListUserInfoCalls(w http.ResponseWriter, _ *http.Request) error {
	calls := s.UserInfoCalls()
	if calls == nil {
		calls = []UserInfoCall{}
	}
	writeJSON(w, http.StatusOK, map[string][]UserInfoCall{"calls": calls})
	return nil
}

func (s *Server) ctlClearUserInfoCalls(w http.ResponseWriter, _ *http.Request) error {
	s.ClearUserInfoCalls()
	writeOK(w)
	return nil
}
