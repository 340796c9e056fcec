package lark

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// ErrorKind is what the backend branches on. Kinds are deliberately coarse: each one maps to a
// different operator action, while Code and Msg keep Lark's precise answer for the message.
type ErrorKind string

// Error kinds.
const (
	KindAppSecretRejected ErrorKind = "app_secret_rejected" // fix the stored app secret
	KindAppNotFound       ErrorKind = "app_not_found"       // wrong app id or wrong brand
	KindInvalidRequest    ErrorKind = "invalid_request"     // the request itself is malformed
	KindRateLimited       ErrorKind = "rate_limited"        // slow down; see RetryAfter
	KindUnavailable       ErrorKind = "unavailable"         // Lark or the network is down; retry later
	KindBadResponse       ErrorKind = "bad_response"        // something that is not Lark answered, or Lark broke its contract
	KindLarkError         ErrorKind = "lark_error"          // any other Lark code

	// User grants (oauth_*.go, user_info.go, messages.go).
	KindReauthRequired     ErrorKind = "reauth_required"      // the refresh token is dead; see GrantEnd and Reason
	KindUserRefused        ErrorKind = "user_refused"         // the user may not hold a grant for this app (gone, no permission, inactive)
	KindAppSetup           ErrorKind = "app_setup"            // the app's console settings or installation refuse it; see Reason
	KindUserChallenge      ErrorKind = "user_challenge"       // the user must pass a security check; see ChallengeURL
	KindCodeInvalid        ErrorKind = "code_invalid"         // the authorization code (or its PKCE/redirect binding) was refused
	KindUserTokenInvalid   ErrorKind = "user_token_invalid"   // refresh the user token, or re-authorize if that fails too
	KindTenantTokenInvalid ErrorKind = "tenant_token_invalid" // fetch a new tenant token
	KindCardRefused        ErrorKind = "card_refused"         // Lark would not build the message card: send plain text instead

	// Store apps (store_app.go).
	KindAppTicketInvalid ErrorKind = "app_ticket_invalid" // no app_ticket, or Lark refused it: resend and wait for the event
	KindTenantKeyInvalid ErrorKind = "tenant_key_invalid" // unknown tenant, or the app is not installed or enabled there
	KindAppTokenInvalid  ErrorKind = "app_token_invalid"  // fetch a new app token
	KindAppTypeMismatch  ErrorKind = "app_type_mismatch"  // Lark disagrees with the configured app type
)

// Error is the only error type the client returns (apart from none). Its text is meant for operators
// and audit logs, so it never contains app secrets, tokens or raw response bodies.
type Error struct {
	Endpoint   string // stable call name: "app_access_token", "tenant_access_token", ...
	Kind       ErrorKind
	HTTPStatus int // 0 when no response arrived
	Code       int // Lark's code, 0 if none
	Msg        string
	RetryAfter time.Duration
	LogID      string // quote this to Lark support
	// ChallengeURL is the https link Lark gives with a security-policy block (KindUserChallenge),
	// which the user must open; "" otherwise.
	ChallengeURL string
	Attempts     int
	Err          error

	// detail is a short, secret-free explanation (e.g. "timeout", "HTML page instead of JSON").
	detail string
	// retry says whether the retry loop may try again; it differs from Retryable() for failures
	// that are transient in kind but pointless to repeat at once, like a TLS certificate error.
	retry bool
	// status is the Observe label of the attempt that produced this error.
	status string
	// consumedMaybe: see ConsumedMaybe.
	consumedMaybe bool
}

// Error renders e.g.
//
//	lark: app_access_token: Lark rejected the app secret (code 10014: app secret invalid)
//	lark: tenant_access_token: Lark unreachable after 3 attempts: timeout
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("lark: ")
	if e.Endpoint != "" {
		b.WriteString(e.Endpoint)
		b.WriteString(": ")
	}
	switch e.Kind {
	case KindAppSecretRejected:
		b.WriteString("Lark rejected the app secret")
	case KindAppNotFound:
		b.WriteString("Lark does not know this app id (check the app id and the brand)")
	case KindInvalidRequest:
		b.WriteString("invalid request")
	case KindRateLimited:
		b.WriteString("rate limited by Lark")
	case KindUnavailable:
		if e.Attempts == 0 {
			b.WriteString("request not sent")
		} else {
			fmt.Fprintf(&b, "Lark unreachable after %d %s", e.Attempts, plural(e.Attempts, "attempt", "attempts"))
		}
	case KindBadResponse:
		b.WriteString("unexpected response from Lark")
	case KindReauthRequired, KindUserRefused, KindAppSetup, KindUserChallenge:
		b.WriteString(headline(e))
	case KindCodeInvalid:
		b.WriteString("Lark refused the authorization code; start the authorization again")
	case KindUserTokenInvalid:
		b.WriteString("Lark rejected the user access token (expired, revoked or not a user token)")
	case KindTenantTokenInvalid:
		b.WriteString("Lark rejected the tenant access token (expired or invalid)")
	case KindCardRefused:
		b.WriteString("Lark refused the message card")
	case KindAppTicketInvalid:
		b.WriteString("no app_ticket Lark accepts (missing, expired or replaced); ask Lark to resend it and wait for the app_ticket event")
	case KindTenantKeyInvalid:
		b.WriteString("Lark refused the tenant key (unknown tenant, or the app is not installed or enabled there)")
	case KindAppTokenInvalid:
		b.WriteString("Lark rejected the app access token (expired or invalid)")
	case KindAppTypeMismatch:
		b.WriteString("Lark says this is not a store app (self-built apps get no app_ticket); configure it as self_built")
	default:
		b.WriteString("Lark returned an error")
	}
	if e.Code != 0 || e.Msg != "" {
		b.WriteString(" (")
		if e.HTTPStatus != 0 && e.HTTPStatus != 200 {
			fmt.Fprintf(&b, "HTTP %d, ", e.HTTPStatus)
		}
		if e.Code != 0 {
			fmt.Fprintf(&b, "code %d", e.Code)
			if e.Msg != "" {
				b.WriteString(": ")
			}
		}
		b.WriteString(e.Msg)
		b.WriteString(")")
	}
	if e.detail != "" {
		b.WriteString(": ")
		b.WriteString(e.detail)
	}
	if e.Kind == KindRateLimited && e.RetryAfter > 0 {
		fmt.Fprintf(&b, "; retry after %s", e.RetryAfter)
	}
	if e.LogID != "" {
		fmt.Fprintf(&b, " [log_id %s]", e.LogID)
	}
	return b.String()
}

// Unwrap exposes the cause, so errors.Is(err, context.Canceled) works for callers.
func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether the same call may succeed later without any configuration change.
func (e *Error) Retryable() bool {
	return e.Kind == KindUnavailable || e.Kind == KindRateLimited
}

// IsKind reports whether err is, or wraps, a *Error of kind k.
func IsKind(err error, k ErrorKind) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == k
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// Lark codes with a meaning the backend acts on. Everything else becomes KindLarkError.
const (
	codeInvalidParam      = 10003    // legacy token endpoints: malformed or empty body
	codeAppCredentials    = 10014    // "app id not exists", "app secret invalid" or "app unauthorized", told apart by msg
	codeWrongAppSecret    = 10015    // generic error table's "wrong app secret"
	codeAppIDOrSecretGone = 99991543 // newer "app_id or app_secret does not exist"
	codeRateLimited       = 99991400
)

// classifyCode maps a non-zero Lark code to a kind. Endpoint files pass their own mapping first for
// codes that only mean something on that endpoint (OAuth's 20002, for example).
func classifyCode(code int, msg string) ErrorKind {
	switch code {
	case codeRateLimited:
		return KindRateLimited
	case codeInvalidParam:
		return KindInvalidRequest
	case codeAppCredentials:
		// Live Lark reuses 10014 for an unknown app id, a wrong secret and (per the generic error
		// table) a disabled app; only msg differs. Anything that names neither the app id nor
		// authorization is treated as a secret problem, matching the official CLI ("10014: invalid
		// app_secret").
		m := strings.ToLower(msg)
		switch {
		case strings.Contains(m, "app id not exist") || strings.Contains(m, "app_id not exist"):
			return KindAppNotFound
		case strings.Contains(m, "unauthorized") || strings.Contains(m, "not authorized"):
			return KindAppSetup
		}
		return KindAppSecretRejected
	case codeWrongAppSecret, codeAppIDOrSecretGone:
		return KindAppSecretRejected
	}
	return KindLarkError
}

const maxMsgLen = 200

// cleanMsg makes Lark's free-text message safe to show: known secrets are replaced first (so
// truncation cannot leave half a secret behind), then control characters are dropped and the
// result is shortened.
func cleanMsg(msg string, secrets []string) string {
	msg = redact(msg, secrets)
	msg = tokenLike.ReplaceAllString(msg, "[redacted]")
	msg = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, msg)
	msg = strings.TrimSpace(msg)
	if r := []rune(msg); len(r) > maxMsgLen {
		msg = string(r[:maxMsgLen]) + "..."
	}
	return msg
}

// tokenLike matches Lark token shapes (t-/a-/u-/ur- prefixes, JWTs) that a message might quote even
// though no response field named them, e.g. a token Lark is complaining about.
var tokenLike = regexp.MustCompile(`\b(?:(?:t|a|u|ur)-[A-Za-z0-9_-]{12,}|eyJ[A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]*){0,2})`)

func redact(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec != "" && strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}

// redactedError stands in for an underlying error whose text contained a secret. It keeps the
// (redacted) text but drops the chain, which is the price of never leaking the value.
type redactedError struct{ msg string }

func (r redactedError) Error() string { return r.msg }

// scrubErr returns err unchanged unless its text contains a secret.
func scrubErr(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	s := err.Error()
	if r := redact(s, secrets); r != s {
		return redactedError{msg: r}
	}
	return err
}
