package larksecrets

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
)

// This file is the one place where failures become HTTP statuses and "what to do next" text. The
// status says whose problem it is: 400 the request or this mount's setup, 403 not this requester's
// to do, 409 only the user can fix it, 502 Lark refused or answered nonsense, 503 Lark could not be
// reached (or Vault's storage failed) and trying later helps. Messages never contain secrets: the
// Lark client's errors are built without them.

var (
	errAppNotConfigured = errors.New("app not configured")
	errGrantNotFound    = errors.New("no grant")
)

// remedies builds the commands that messages suggest, for the mount the request came through (or,
// in the periodic sweep, the mount last seen on a request).
type remedies struct{ mount string }

func remediesFor(req *logical.Request) remedies {
	if req == nil || req.MountPoint == "" {
		return remedies{mount: "lark/"}
	}
	return remedies{mount: req.MountPoint}
}

func (r remedies) authorizeCommand(id grantID) string {
	return fmt.Sprintf("vault write %soauth/%s/authorize user=%s", r.mount, id.App, id.Slot)
}

func (r remedies) reauthorize(id grantID) string {
	return "The user must authorize again: " + r.authorizeCommand(id)
}

func (r remedies) fixSecret(appID string) string {
	return fmt.Sprintf("Check the App Secret in the developer console and store it with: vault write %sapps/%s app_secret=...", r.mount, appID)
}

func (r remedies) bindSlot(id grantID) string {
	return fmt.Sprintf("vault write %sslots/%s/%s open_id=ou_... (or union_id=on_...)", r.mount, id.App, id.Slot)
}

func (r remedies) replaceCommand(id grantID) string {
	return fmt.Sprintf("vault write %soauth/%s/replace user=%s", r.mount, id.App, id.Slot)
}

// notStoredError: Lark acted (rotated a refresh token, issued a grant) but Vault's storage refused
// the outcome even after retries. The outcome is kept in memory and stored at the next chance.
type notStoredError struct {
	id  grantID
	err error
}

func (e *notStoredError) Error() string {
	return fmt.Sprintf("Lark issued new tokens for %s but Vault could not store them (kept in memory; the next access of the grant stores them first): %v", e.id, e.err)
}

func (e *notStoredError) Unwrap() error { return e.err }

// lateError: the outcome is stored, but the request that asked for it ended while Lark answered.
type lateError struct {
	id    grantID
	cause error
}

func (e *lateError) Error() string {
	return fmt.Sprintf("Lark rotated the refresh token of %s and it is stored, but your request ended first (%v); read again", e.id, e.cause)
}

// failedRefreshError replays a stored refresh failure to a reader who finds no servable token while
// the failure's backoff runs.
type failedRefreshError struct {
	id      grantID
	meaning lark.Meaning
	msg     string
	retryAt string
	url     string
}

func (e *failedRefreshError) Error() string {
	s := fmt.Sprintf("refreshing the Lark user token of %s failed (%s); the grant is kept and the next attempt is at %s: try again after that", e.id, e.msg, e.retryAt)
	if e.url != "" {
		s += "; the user must first complete Lark's verification at " + e.url
	}
	return s
}

// backoffError: a token fetch failed moments ago, and Lark is not asked again before retryAt (as Lark
// asked with x-ogw-ratelimit-reset, or by the plugin's own backoff), so readers during an outage do
// not add up to a storm of calls.
type backoffError struct {
	ref     tokenRef
	retryAt time.Time
	last    error
}

func (e *backoffError) Error() string {
	what := e.ref.Kind.larkName()
	if e.ref.Tenant != "" {
		what += " of tenant " + e.ref.Tenant
	}
	return fmt.Sprintf("Lark could not issue the %s of app %s (%v); Vault asks again after %s, try again then",
		what, e.ref.App, e.last, formatTime(e.retryAt))
}

func (e *backoffError) Unwrap() error { return e.last }

// tenantUnavailableError: Lark does not serve this tenant for the store app (unknown tenant key, or
// the app is not installed or enabled there). The app and its other tenants are fine.
type tenantUnavailableError struct {
	appID, tenantKey string
	err              error
}

func (e *tenantUnavailableError) Error() string {
	return fmt.Sprintf("Lark does not serve tenant %q for store app %s (%v)", e.tenantKey, e.appID, e.err)
}

// httpError maps a failure of a request about appID to an error with a status and a remedy.
func (r remedies) httpError(appID string, err error) error {
	var (
		le      *lark.Error
		re      *reauthError
		fe      *failedRefreshError
		ne      *notStoredError
		late    *lateError
		backoff *backoffError
		wait    *awaitTicketError
		gone    *tenantUnavailableError
		short   *shortUserTokenError
	)
	switch {
	case errors.Is(err, logical.ErrReadOnly):
		return err
	case errors.Is(err, errStopping):
		return logical.CodedError(http.StatusServiceUnavailable, err.Error())
	case errors.As(err, &short):
		return logical.CodedError(http.StatusConflict, short.Error()+"; ask for a shorter min_ttl")
	case errors.Is(err, errAppNotConfigured):
		// 400 rather than 404: the vault CLI prints "No value found" for a 404 and drops the message.
		return logical.CodedError(http.StatusBadRequest, fmt.Sprintf("app %s is not configured in this mount; add it with: vault write %sapps/%s app_secret=...", appID, r.mount, appID))
	case errors.As(err, &re):
		return logical.CodedError(http.StatusConflict, fmt.Sprintf("%s. %s", re.Error(), r.reauthorize(re.id)))
	case errors.As(err, &fe):
		return logical.CodedError(statusOfMeaning(fe.meaning), fe.Error())
	case errors.As(err, &ne):
		return logical.CodedError(http.StatusServiceUnavailable, ne.Error())
	case errors.As(err, &late):
		return logical.CodedError(http.StatusServiceUnavailable, late.Error())
	case errors.As(err, &backoff):
		// The status of the failure being waited out: a proxy's garbage stays a 502 while Vault
		// waits to ask again, an outage a 503.
		status := http.StatusServiceUnavailable
		if errors.As(backoff.last, &le) {
			status = statusOf(le)
		}
		return logical.CodedError(status, backoff.Error())
	case errors.As(err, &wait):
		return logical.CodedError(http.StatusServiceUnavailable, fmt.Sprintf("%s. If this lasts, check that the app's event Request URL in the developer console is https://<vault address>/v1/%sevents/%s and that its verification_token and encrypt_key match, or forward tickets with: vault write %sapps/%s/ticket app_ticket=...",
			wait.Error(), r.mount, appID, r.mount, appID))
	case errors.As(err, &gone):
		return logical.CodedError(http.StatusBadRequest, fmt.Sprintf("%s. Known tenants: vault list %stenants/%s/", gone.Error(), r.mount, appID))
	case errors.As(err, &le):
		return logical.CodedError(statusOf(le), r.larkMessage(appID, le))
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return logical.CodedError(http.StatusServiceUnavailable, fmt.Sprintf("gave up waiting for Lark (app %s): %v; try again", appID, err))
	}
	return err
}

func statusOfMeaning(m lark.Meaning) int {
	switch m {
	case lark.MeaningTransient:
		return http.StatusServiceUnavailable
	case lark.MeaningUserAction, lark.MeaningGrantOver:
		return http.StatusConflict
	}
	return http.StatusBadGateway
}

func statusOf(le *lark.Error) int {
	switch le.Kind {
	case lark.KindRateLimited, lark.KindUnavailable:
		return http.StatusServiceUnavailable
	case lark.KindUserChallenge, lark.KindReauthRequired:
		return http.StatusConflict
	case lark.KindUserRefused:
		return http.StatusForbidden
	}
	return http.StatusBadGateway
}

// larkMessage says what a Lark failure means for app appID and what to do about it.
func (r remedies) larkMessage(appID string, le *lark.Error) string {
	switch le.Kind {
	case lark.KindAppSecretRejected:
		return fmt.Sprintf("Lark rejected the app secret of %s (%s). %s", appID, larkDetail(le), r.fixSecret(appID))
	case lark.KindAppNotFound:
		return fmt.Sprintf("Lark does not know app %s (%s). Check the app id and the brand (feishu or lark) in %sapps/%s", appID, larkDetail(le), r.mount, appID)
	case lark.KindAppSetup:
		return fmt.Sprintf("Lark refuses this for app %s: %s (%s). Fix it in the app's settings on the Lark developer console; user grants are kept and work again after the fix", appID, le.Reason(), larkDetail(le))
	case lark.KindUserChallenge:
		msg := fmt.Sprintf("Lark asks the user to act first: %s (%s)", le.Reason(), larkDetail(le))
		if le.ChallengeURL != "" {
			msg += "; they should open " + le.ChallengeURL
		}
		return msg
	case lark.KindRateLimited:
		msg := fmt.Sprintf("Lark is rate-limiting app %s: %v", appID, le)
		if le.RetryAfter > 0 {
			return msg + fmt.Sprintf(". Vault waits as Lark asked; try again in %s", le.RetryAfter.Round(time.Second))
		}
		return msg + ". Try again in a minute; if it persists, something else uses the app heavily"
	case lark.KindUnavailable:
		return fmt.Sprintf("Lark unreachable for app %s: %v. Vault retries by itself; try again in a minute, and check that Vault reaches Lark (proxy: HTTPS_PROXY) if it persists", appID, le)
	case lark.KindBadResponse:
		return fmt.Sprintf("Lark failed the request for app %s with an answer that is not Lark's: %v. Check the app's base_url and any proxy in the way; try again later", appID, le)
	}
	return fmt.Sprintf("Lark failed the request for app %s: %v. Quote the log_id to Lark support if it persists; try again later", appID, le)
}

// larkDetail is the part of a Lark error an operator quotes to Lark support: code, message, log id.
func larkDetail(le *lark.Error) string {
	d := fmt.Sprintf("code %d: %s", le.Code, le.Msg)
	if le.LogID != "" {
		d += ", log_id " + le.LogID
	}
	return d
}

// meaningOf is lark's reading of any error; failures that never reached Lark are transient.
func meaningOf(err error) lark.Meaning {
	var le *lark.Error
	if errors.As(err, &le) {
		return le.Meaning()
	}
	return lark.MeaningTransient
}

// authError is a failed authorization with a message meant for the person at the browser (and the
// operator reading the exchange response). It never contains a token.
type authError struct {
	status int
	msg    string
}

func (e *authError) Error() string { return e.msg }

func exchangeAuthError(err error) error {
	var le *lark.Error
	if !errors.As(err, &le) {
		return err
	}
	switch le.Kind {
	case lark.KindCodeInvalid:
		return &authError{http.StatusBadRequest, fmt.Sprintf("Lark refused the authorization code (code %d: %s). Codes work once and for 5 minutes; ask for a new link. Nothing was stored.", le.Code, strings.TrimSuffix(le.Msg, "."))}
	case lark.KindAppSecretRejected:
		return &authError{http.StatusBadGateway, "Lark rejected the app's secret, so the authorization could not be completed. An administrator must update the app secret in Vault. Nothing was stored."}
	case lark.KindUserRefused:
		return &authError{http.StatusForbidden, fmt.Sprintf("Lark refused you for this app: %s. Nothing was stored.", le.Reason())}
	case lark.KindUserChallenge:
		msg := fmt.Sprintf("Lark asks you to complete a verification first: %s.", le.Reason())
		if le.ChallengeURL != "" {
			msg += " Open " + le.ChallengeURL + ", then ask for a new link."
		}
		return &authError{http.StatusConflict, msg + " Nothing was stored."}
	case lark.KindAppSetup:
		return &authError{http.StatusBadGateway, fmt.Sprintf("Lark refuses the app's setup: %s. An administrator must fix it in the Lark developer console. Nothing was stored.", le.Reason())}
	}
	if le.Meaning() == lark.MeaningTransient {
		return &authError{http.StatusServiceUnavailable, "Lark could not be reached to complete the authorization. Try again in a few minutes with a new link. Nothing was stored."}
	}
	return &authError{http.StatusBadGateway, fmt.Sprintf("Lark could not complete the authorization (code %d: %s). Nothing was stored.", le.Code, le.Msg)}
}
