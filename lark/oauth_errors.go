package lark

// OAuth error codes (lark-api.md §5). They share one numbering across the v2 and v3 token
// endpoints and revocation, but a code can mean something different per grant: 20024 is a code
// problem on an exchange and a dead grant on a refresh.
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
	oauthServerError      = 20050
	oauthMalformed        = 20063
	oauthRefreshRevoked   = 20064
	oauthCodeUsed         = 20065
	oauthDuplicateScope   = 20067
	oauthScopeNotAllowed  = 20068
	oauthMultipleAuth     = 20070
	oauthRedirectMismatch = 20071
	oauthUnavailable      = 20072
	oauthRefreshUsed      = 20073
	oauthRefreshDisabled  = 20074
)

// ReauthReason is a short operator-facing explanation of a refresh failure code, or "" for a code
// that does not end a grant. The backend stores it with a grant in reauth_required.
func ReauthReason(code int) string {
	switch code {
	case oauthRefreshExpired:
		return "refresh token expired (or the grant reached Lark's 365-day limit)"
	case oauthRefreshRevoked:
		return "refresh token revoked by the user, an administrator or Lark"
	case oauthRefreshUsed:
		return "refresh token already used"
	case oauthRefreshInvalid:
		return "refresh token invalid"
	case oauthClientMismatch:
		return "refresh token belongs to a different app"
	case oauthRefreshDisabled:
		// Not the user's doing: re-authorizing alone will not help until the app is changed.
		return `token refresh is disabled for this app: turn on "Refresh user_access_token" in the app's security settings on the Lark developer console and publish a new version`
	}
	return ""
}

// Reason is ReauthReason for a KindReauthRequired error and "" for any other.
func (e *Error) Reason() string {
	if e.Kind != KindReauthRequired {
		return ""
	}
	return ReauthReason(e.Code)
}

func reauthHeadline(code int) string {
	reason := ReauthReason(code)
	switch {
	case reason == "":
		return "the user must authorize again"
	case code == oauthRefreshDisabled:
		return "cannot refresh the user token: " + reason
	}
	return "the user must authorize again: " + reason
}

// classifyOAuthCommon covers the codes that mean the same on every OAuth call.
func classifyOAuthCommon(code int, errName string) ErrorKind {
	switch code {
	case oauthBadSecret:
		return KindAppSecretRejected
	case oauthNoSuchApp:
		return KindAppNotFound
	case oauthServerError, oauthUnavailable:
		return KindUnavailable
	case oauthMissingParam, oauthBadGrantType, oauthMalformed, oauthDuplicateScope, oauthScopeNotAllowed, oauthMultipleAuth:
		return KindInvalidRequest
	}
	// Some answers carry only the RFC 6749 error name; invalid_client is the one the backend must act
	// on. Codes that share the name (20048 app missing, 20069 app disabled) were settled above or
	// keep their own text as KindLarkError.
	if code == 0 && errName == "invalid_client" {
		return KindAppSecretRejected
	}
	return ""
}

func classifyCodeExchange(code int, errName string) ErrorKind {
	switch code {
	case oauthCodeNotFound, oauthCodeExpired, oauthCodeUsed, oauthPKCEFailed, oauthRedirectMismatch, oauthClientMismatch:
		return KindCodeInvalid
	}
	return classifyOAuthCommon(code, errName)
}

func classifyRefresh(code int, errName string) ErrorKind {
	if ReauthReason(code) != "" {
		return KindReauthRequired
	}
	return classifyOAuthCommon(code, errName)
}
