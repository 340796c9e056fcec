package larksecrets

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
)

// This file holds the failures the services return and the "what to do next" text (remedies) their
// messages carry; http_errors.go turns them into HTTP statuses for the path handlers. Messages
// never contain secrets: the Lark client's errors are built without them.

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
