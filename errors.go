package larksecrets

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
)

// operatorError turns a failure into an error whose HTTP status says whose problem it is (400: the
// app is not configured here; 502: Lark refused or answered nonsense; 503: Lark could not be
// reached or is rate-limiting) and whose message says what to do. Messages never contain secrets:
// the Lark client's errors are built without them.
func (b *backend) operatorError(req *logical.Request, appID string, err error) error {
	mount := req.MountPoint
	if mount == "" {
		mount = "lark/"
	}
	var le *lark.Error
	switch {
	case errors.Is(err, errAppNotConfigured):
		// 400 rather than 404: the vault CLI prints "No value found" for a 404 and drops the message.
		return logical.CodedError(http.StatusBadRequest, fmt.Sprintf(
			"app %s is not configured in this mount; add it with: vault write %sapps/%s app_secret=...", appID, mount, appID))
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return logical.CodedError(http.StatusServiceUnavailable, fmt.Sprintf(
			"gave up waiting for Lark to issue a token for %s: %v", appID, err))
	case errors.As(err, &le):
		switch le.Kind {
		case lark.KindAppSecretRejected:
			return logical.CodedError(http.StatusBadGateway, fmt.Sprintf(
				"Lark rejected the app secret of %s (%s). Check the App Secret in the developer console and store it with: vault write %sapps/%s app_secret=...", appID, larkDetail(le), mount, appID))
		case lark.KindAppNotFound:
			return logical.CodedError(http.StatusBadGateway, fmt.Sprintf(
				"Lark does not know app %s (%s). Check the app id and the brand (feishu or lark) in %sapps/%s", appID, larkDetail(le), mount, appID))
		case lark.KindRateLimited, lark.KindUnavailable:
			return logical.CodedError(http.StatusServiceUnavailable, fmt.Sprintf(
				"Lark unreachable while fetching a token for %s: %v", appID, le))
		default:
			return logical.CodedError(http.StatusBadGateway, fmt.Sprintf(
				"Lark failed to issue a token for %s: %v", appID, le))
		}
	}
	return err
}

// larkDetail is the part of a Lark error an operator quotes to Lark support: code, message, log id.
func larkDetail(le *lark.Error) string {
	d := fmt.Sprintf("code %d: %s", le.Code, le.Msg)
	if le.LogID != "" {
		d += ", log_id " + le.LogID
	}
	return d
}
