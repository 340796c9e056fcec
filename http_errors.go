package larksecrets

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
)

// This file is where the path handlers turn a failure (failures.go, and the errors of the services)
// into an HTTP status and a message that says what to do next. The status says whose problem it is:
// 400 the request or this mount's setup, 403 not this requester's to do, 409 only the user can fix
// it, 502 Lark refused or answered nonsense, 503 Lark could not be reached (or Vault's storage
// failed) and trying later helps; the authorization exchange follows the same rule
// (exchangeAuthError in failures.go).

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
