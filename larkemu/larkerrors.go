package larkemu

import (
	"net/http"
)

// oauthErrorInfo is one row of the OAuth error table in lark-api.md §5. Lark documents the exact
// error_description of each code but the "error" string only for 20050 (and 20002 via the CLI);
// the others follow RFC 6749 as the reference infers.
type oauthErrorInfo struct {
	status      int
	err         string
	description string
}

var oauthErrors = map[int]oauthErrorInfo{
	20001: {400, "invalid_request", "The request is missing a required parameter."},
	20002: {400, "invalid_client", "The client secret is invalid."},
	20003: {400, "invalid_grant", "The authorization code is not found. Please note that an authorization code can only be used once."},
	20004: {400, "invalid_grant", "The authorization code has expired."},
	20008: {400, "invalid_grant", "The user does not exist."},
	20009: {400, "unauthorized_client", "The specified app is not installed."},
	20010: {400, "invalid_grant", "The user does not have permission to use this app."},
	20024: {400, "invalid_grant", "The provided authorization code or refresh token does not match the provided client ID."},
	20026: {400, "invalid_grant", "The refresh token passed is invalid. Please check the value."},
	20036: {400, "unsupported_grant_type", "The specified grant_type is not supported."},
	20037: {400, "invalid_grant", "The refresh token passed has expired. Please generate a new one."},
	20048: {400, "invalid_client", "The specified app does not exist."},
	20049: {400, "invalid_grant", "PKCE code challenge failed."},
	20050: {500, "server_error", "An unexpected server error occurred. Please retry your request."},
	20063: {400, "invalid_request", "The request is malformed. Please check your request."},
	20064: {400, "invalid_grant", "The refresh token has been revoked. Please note that a refresh token can only be used once."},
	20065: {400, "invalid_grant", "The authorization code has been used. Please note that an authorization code can only be used once."},
	20066: {400, "invalid_grant", "The user status is invalid."},
	20067: {400, "invalid_request", "The provided scope list contains duplicate scopes. Please ensure all scopes are unique."},
	20068: {400, "invalid_scope", "The provided scope list contains scopes that are not permitted. Please ensure all scopes are allowed."},
	20069: {400, "invalid_client", "The specified app is not enabled."},
	20070: {400, "invalid_client", "Multiple authentication methods were provided. Please only use one to proceed."},
	20071: {400, "invalid_grant", "The provided redirect URI does not match the one used during authorization."},
	20072: {503, "temporarily_unavailable", "The server is temporarily unavailable. Please retry your request."},
	20073: {400, "invalid_grant", "The refresh token has been used. Please note that a refresh token can only be used once."},
	20074: {400, "unauthorized_client", "The specified app is not allowed to refresh token."},
}

// OAuth error codes the handlers produce (names for readability at the call sites).
const (
	oauthMissingParam     = 20001
	oauthBadSecret        = 20002
	oauthCodeNotFound     = 20003
	oauthCodeExpired      = 20004
	oauthClientMismatch   = 20024
	oauthRefreshInvalid   = 20026
	oauthBadGrantType     = 20036
	oauthRefreshExpired   = 20037
	oauthNoSuchApp        = 20048
	oauthPKCEFailed       = 20049
	oauthMalformed        = 20063
	oauthRefreshRevoked   = 20064
	oauthCodeUsed         = 20065
	oauthDuplicateScope   = 20067
	oauthScopeNotAllowed  = 20068
	oauthMultipleAuth     = 20070
	oauthRedirectMismatch = 20071
	oauthRefreshUsed      = 20073
	oauthRefreshDisabled  = 20074
)

// oauthError is the exact OAuth failure shape: no msg, no data.
type oauthError struct {
	Code             int    `json:"code"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

func writeOAuthError(w http.ResponseWriter, code int) {
	info := oauthErrors[code]
	writeJSON(w, info.status, oauthError{Code: code, Error: info.err, ErrorDescription: info.description})
}

// Gateway errors (lark-api.md §9) carry a log id inside an "error" object.
const (
	gwMissingToken      = 99991661
	gwInvalidAppToken   = 99991663
	gwInvalidUserToken  = 99991668
	gwUserTokenExpired  = 99991677
	msgMissingToken     = "Missing access token for authorization. Please make a request with token attached."
	msgInvalidToken     = "Invalid access token for authorization. Please make a request with token attached."
	msgUserTokenExpired = "token expire"
)

var gatewayMessages = map[int]string{
	codeRateLimited:    msgRateLimited,
	gwMissingToken:     msgMissingToken,
	gwInvalidAppToken:  msgInvalidToken,
	gwInvalidUserToken: msgInvalidToken,
	gwUserTokenExpired: msgUserTokenExpired,
}

type gatewayError struct {
	Code  int          `json:"code"`
	Msg   string       `json:"msg"`
	Error gatewayLogID `json:"error"`
}

type gatewayLogID struct {
	LogID string `json:"log_id"`
}

func writeGatewayError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, gatewayError{Code: code, Msg: msg, Error: gatewayLogID{LogID: newLogID()}})
}

// writeInjectedError renders a FailError failure in the dialect of the endpoint it hit.
func (s *Server) writeInjectedError(w http.ResponseWriter, endpoint string, f Failure) {
	switch endpoint {
	case EndpointAppAccessToken, EndpointTenantAccessToken,
		EndpointAppTicketResend, EndpointStoreAppAccessToken, EndpointStoreTenantAccessToken:
		status := orStatus(f.Status, http.StatusOK)
		if f.Code == codeInvalidParam && f.Msg == "" {
			writeJSON(w, status, invalidParamReply)
			return
		}
		writeJSON(w, status, codeMsg{Code: f.Code, Msg: orString(f.Msg, "error")})
	case EndpointOAuthToken, EndpointCodeExchange, EndpointRefresh, EndpointClientCredentials, EndpointRevoke,
		EndpointDeviceAuthorization, EndpointDeviceToken:
		info, ok := oauthErrors[f.Code]
		if !ok {
			info = oauthErrorInfo{status: http.StatusBadRequest, err: "invalid_request"}
		}
		writeJSON(w, orStatus(f.Status, info.status), oauthError{
			Code: f.Code, Error: info.err, ErrorDescription: orString(f.Msg, info.description),
		})
	case EndpointAuthenV1:
		writeV1Error(w, f.Code, f.Msg, f.Status)
	case EndpointAuthorize:
		writeAuthorizeErrorPage(w, orStatus(f.Status, http.StatusBadRequest), f.Code, orString(f.Msg, "error"))
	default:
		status := http.StatusBadRequest
		switch f.Code {
		case codeRateLimited:
			status = http.StatusTooManyRequests
		case 20050:
			status = http.StatusInternalServerError
		}
		writeGatewayError(w, orStatus(f.Status, status), f.Code, orString(f.Msg, orString(gatewayMessages[f.Code], "error")))
	}
}

func orStatus(status, def int) int {
	if status != 0 {
		return status
	}
	return def
}

func orString(s, def string) string {
	if s != "" {
		return s
	}
	return def
}
