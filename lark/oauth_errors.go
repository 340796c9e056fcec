package lark

import "strings"

// OAuth error codes (docs/lark-api.md §5). They share one numbering across the v2 and v3 token
// endpoints and revocation, but a code can mean something different per grant: 20024 is a code
// problem on an exchange and a dead grant on a refresh.
const (
	oauthMissingParam      = 20001
	oauthBadSecret         = 20002
	oauthCodeNotFound      = 20003
	oauthCodeExpired       = 20004
	oauthUserNotFound      = 20008
	oauthAppNotInstalled   = 20009
	oauthUserNoPermission  = 20010
	oauthClientMismatch    = 20024
	oauthRefreshInvalid    = 20026
	oauthBadGrantType      = 20036
	oauthRefreshExpired    = 20037
	oauthRefreshNotFoundV1 = 20038 // authen v1's "refresh token not found (reused or expired)"
	oauthNoSuchApp         = 20048
	oauthPKCEFailed        = 20049
	oauthServerError       = 20050
	oauthMalformed         = 20063
	oauthRefreshRevoked    = 20064
	oauthCodeUsed          = 20065
	oauthUserStatusInvalid = 20066
	oauthDuplicateScope    = 20067
	oauthScopeNotAllowed   = 20068
	oauthAppNotEnabled     = 20069
	oauthMultipleAuth      = 20070
	oauthRedirectMismatch  = 20071
	oauthUnavailable       = 20072
	oauthRefreshUsed       = 20073
	oauthRefreshDisabled   = 20074

	// Security policy blocks (docs/lark-api.md §5, from the official CLI): the answer carries a
	// challenge_url the user must open; 21001 is a hard block by an access policy.
	policyChallenge = 21000
	policyBlocked   = 21001
)

// GrantEnd says why a user's grant is over. The values are stable: they are stored with a grant and
// used as metric labels.
type GrantEnd string

// Why a grant ended, one per Lark answer that proves it.
const (
	GrantEndExpired      GrantEnd = "expired"       // 20037 (also the 365-day cap), v1 20038
	GrantEndRevoked      GrantEnd = "revoked"       // 20064
	GrantEndUsed         GrantEnd = "already_used"  // 20073
	GrantEndInvalid      GrantEnd = "invalid"       // 20026
	GrantEndOtherApp     GrantEnd = "other_app"     // 20024 on a refresh
	GrantEndUserGone     GrantEnd = "user_gone"     // 20008
	GrantEndNoPermission GrantEnd = "no_permission" // 20010
	GrantEndUserInactive GrantEnd = "user_inactive" // 20066
	GrantEndInvalidGrant GrantEnd = "invalid_grant" // an RFC 6749 invalid_grant without a code
)

var grantEnds = map[int]GrantEnd{
	oauthRefreshExpired:    GrantEndExpired,
	oauthRefreshNotFoundV1: GrantEndExpired,
	oauthRefreshRevoked:    GrantEndRevoked,
	oauthRefreshUsed:       GrantEndUsed,
	oauthRefreshInvalid:    GrantEndInvalid,
	oauthClientMismatch:    GrantEndOtherApp,
	oauthUserNotFound:      GrantEndUserGone,
	oauthUserNoPermission:  GrantEndNoPermission,
	oauthUserStatusInvalid: GrantEndUserInactive,
}

var grantEndReasons = map[GrantEnd]string{
	GrantEndExpired:      "refresh token expired (or the grant reached Lark's 365-day limit)",
	GrantEndRevoked:      "refresh token revoked by the user, an administrator or Lark",
	GrantEndUsed:         "refresh token already used",
	GrantEndInvalid:      "refresh token invalid",
	GrantEndOtherApp:     "refresh token belongs to a different app",
	GrantEndUserGone:     "the Lark user no longer exists",
	GrantEndNoPermission: "the user no longer has permission to use this app",
	GrantEndUserInactive: "the user's Lark account is not active (frozen, resigned or deactivated)",
	GrantEndInvalidGrant: "Lark refused the grant (invalid_grant)",
}

// Text says in a few words why the grant ended, for operators and users.
func (g GrantEnd) Text() string {
	if r, ok := grantEndReasons[g]; ok {
		return r
	}
	return "Lark refused the grant"
}

// appSetupReasons explain refusals that are about the app's own setup, not the user's grant: the
// grant and its tokens stay intact and work again once the app is fixed.
var appSetupReasons = map[int]string{
	oauthRefreshDisabled: `token refresh is disabled for this app: turn on "Refresh user_access_token" in the app's security settings on the Lark developer console and publish a new version`,
	oauthAppNotEnabled:   "the app is not enabled at Lark (disabled, or no version published yet)",
	oauthAppNotInstalled: "the app is not installed in the user's tenant",
	codeAppCredentials:   "Lark says the app is not authorized (disabled by the tenant's administrator?)",
}

var challengeReasons = map[int]string{
	policyChallenge: "Lark's security policy asks the user to complete a verification before the app may act for them",
	policyBlocked:   "Lark's access policy blocks this app from acting for the user",
}

// GrantEnd is why the grant ended for a KindReauthRequired or KindUserRefused error, "" otherwise.
func (e *Error) GrantEnd() GrantEnd {
	if e.Kind != KindReauthRequired && e.Kind != KindUserRefused {
		return ""
	}
	if g, ok := grantEnds[e.Code]; ok {
		return g
	}
	return GrantEndInvalidGrant
}

// Reason is a short operator-facing explanation for failures that have one beyond the kind: why a
// grant ended, what about the app's setup is wrong, which challenge the user faces. "" otherwise.
func (e *Error) Reason() string {
	switch e.Kind {
	case KindReauthRequired, KindUserRefused:
		return e.GrantEnd().Text()
	case KindAppSetup:
		if r, ok := appSetupReasons[e.Code]; ok {
			return r
		}
		return "the app's setup at Lark refuses this"
	case KindUserChallenge:
		if r, ok := challengeReasons[e.Code]; ok {
			return r
		}
		return "Lark's security policy stops this"
	}
	return ""
}

// classifyOAuthCommon covers the codes that mean the same on every OAuth call.
func classifyOAuthCommon(code int, errName string) ErrorKind {
	switch code {
	case oauthBadSecret:
		return KindAppSecretRejected
	case oauthNoSuchApp:
		return KindAppNotFound
	case oauthAppNotEnabled, oauthAppNotInstalled:
		return KindAppSetup
	case oauthServerError, oauthUnavailable:
		return KindUnavailable
	case policyChallenge, policyBlocked:
		return KindUserChallenge
	case oauthMissingParam, oauthBadGrantType, oauthMalformed, oauthDuplicateScope, oauthScopeNotAllowed, oauthMultipleAuth:
		return KindInvalidRequest
	}
	// Some answers carry only the RFC 6749 error name; invalid_client is the one the backend must act
	// on. Codes that share the name (20048 app missing, 20069 app disabled) were settled above.
	if code == 0 && errName == "invalid_client" {
		return KindAppSecretRejected
	}
	return ""
}

func classifyCodeExchange(code int, errName string) ErrorKind {
	switch code {
	case oauthCodeNotFound, oauthCodeExpired, oauthCodeUsed, oauthPKCEFailed, oauthRedirectMismatch, oauthClientMismatch:
		return KindCodeInvalid
	case oauthUserNotFound, oauthUserNoPermission, oauthUserStatusInvalid:
		return KindUserRefused
	}
	if code == 0 && errName == "invalid_grant" {
		return KindCodeInvalid
	}
	return classifyOAuthCommon(code, errName)
}

func classifyRefresh(code int, errName string) ErrorKind {
	if _, ok := grantEnds[code]; ok {
		return KindReauthRequired
	}
	switch code {
	case oauthRefreshDisabled:
		return KindAppSetup
	}
	if code == 0 && errName == "invalid_grant" {
		return KindReauthRequired
	}
	return classifyOAuthCommon(code, errName)
}

// headline is the start of Error() for the kinds whose text depends on the reason.
func headline(e *Error) string {
	switch e.Kind {
	case KindReauthRequired:
		return "the user must authorize again: " + e.Reason()
	case KindUserRefused:
		return "Lark refused the user: " + e.Reason()
	case KindAppSetup:
		return "the app's setup at Lark must change: " + e.Reason()
	case KindUserChallenge:
		return "the user must act: " + e.Reason()
	}
	return ""
}

// validChallengeURL keeps only an https link of sane size: the user is told to open it, so a
// non-https or control-character value from a garbled answer must never be passed on.
func validChallengeURL(s string) string {
	s = strings.Trim(s, " `")
	if len(s) > 2048 || !strings.HasPrefix(s, "https://") || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return ""
	}
	return s
}
