package larkemu

import (
	"net/http"
	"slices"
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
	if status == userTokenOK {
		data = s.profileLocked(ut.g.appID, s.identity.users[ut.g.userID], ut.scopes)
	}
	s.mu.Unlock()

	switch {
	case isTenant:
		s.logf("%s: code=%d (tenant token)", EndpointUserInfo, gwInvalidAppToken)
		writeGatewayError(w, http.StatusBadRequest, gwInvalidAppToken, msgInvalidToken)
	case status == userTokenUnknown:
		s.logf("%s: code=%d", EndpointUserInfo, gwInvalidUserToken)
		writeGatewayError(w, http.StatusBadRequest, gwInvalidUserToken, msgInvalidToken)
	case status == userTokenExpired:
		s.logf("%s: code=%d", EndpointUserInfo, gwUserTokenExpired)
		writeGatewayError(w, http.StatusBadRequest, gwUserTokenExpired, msgUserTokenExpired)
	case status == userTokenRevoked:
		s.logf("%s: code=%d", EndpointUserInfo, codeUserTokenInvalid)
		writeJSON(w, http.StatusOK, codeMsg{Code: codeUserTokenInvalid, Msg: msgUserTokenInvalid})
	default:
		s.logf("%s: app_id=%s code=0", EndpointUserInfo, ut.g.appID)
		writeJSON(w, http.StatusOK, userInfoReply{Msg: "success", Data: data})
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
