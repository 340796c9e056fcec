package larksecrets

import (
	"context"
	"errors"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// publishEvent publishes an event on Vault's event bus where Vault delivers them (Enterprise 1.16+).
// Nothing depends on it: the same facts are in storage, on reads, on reauth and in the log. It is
// best effort on purpose: OpenBao serves no events service to plugins, so there every send fails
// ("unknown service pb.Events") and is only logged at debug level (openbao_test.go). Send events
// only through here (the backend's sendEvent).
func publishEvent(ctx context.Context, bus logical.EventSender, logger hclog.Logger, eventType string, id grantID, operation string) {
	err := logical.SendEvent(ctx, bus, eventType,
		logical.EventMetadataPath, "user-token/"+id.String(),
		logical.EventMetadataOperation, operation,
		"app_id", id.App, "user", id.Slot)
	if err != nil && !errors.Is(err, framework.ErrNoEvents) {
		logger.Debug("event not sent", "type", eventType, "error", err)
	}
}
