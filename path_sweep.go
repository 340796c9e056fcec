package larksecrets

import (
	"context"
	"errors"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathSweep(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern:      "sweep$",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationVerb: "sweep"},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{
				Callback: b.pathSweepRun,
				Summary:  "Run the periodic work now and report what it did.",
				// Refreshing spends single-use tokens: only the active node may do it.
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
			},
		},
		HelpSynopsis: "Run the keep-alive sweep now.",
		HelpDescription: `Vault runs the sweep about once a minute on the active node, unaudited. Writing here
runs it at once, as an audited request, and returns what it refreshed, flagged and
notified. It stops after sweep_budget and resumes from a stored cursor next time.`,
	}}
}

func (b *backend) pathSweepRun(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	if !b.WriteSafeReplicationState() {
		return nil, logical.ErrReadOnly
	}
	r, err := b.sweep(ctx, req.Storage)
	if errors.Is(err, errSweepRunning) {
		return logical.ErrorResponse("a sweep is already running; try again in a moment"), nil
	}
	if err != nil {
		return nil, err
	}
	flagged := make([]map[string]interface{}, 0, len(r.Flagged))
	resp := &logical.Response{}
	for _, f := range r.Flagged {
		flagged = append(flagged, map[string]interface{}{
			"grant":           f.Key,
			"level":           f.Health.Level,
			"deadline":        formatTime(f.Health.Deadline),
			"days_left":       f.Health.DaysLeft,
			"reauth_required": f.Health.Level == levelExpired || f.Health.Level == levelReauthRequired,
			"reason":          f.Health.Reason,
		})
		appID, slot := splitGrantKey(f.Key)
		resp.AddWarning(f.Health.warning(appID, slot, mountOf(req)))
	}
	resp.Data = map[string]interface{}{
		"grants_total":         r.GrantsTotal,
		"grants_visited":       r.GrantsVisited,
		"full_pass":            r.FullPass,
		"budget_exhausted":     r.BudgetExhausted,
		"took_ms":              r.Took.Milliseconds(),
		"refreshed":            nonNil(r.Refreshed),
		"refresh_failed":       nonNil(r.RefreshFailed),
		"flagged":              flagged,
		"app_tokens_refreshed": nonNil(r.AppTokensRefreshed),
		"notified":             nonNil(r.Notified),
		"notify_failed":        nonNil(r.NotifyFailed),
		"states_dropped":       r.StatesDropped,
	}
	return resp, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func splitGrantKey(key string) (string, string) {
	for i := 0; i < len(key); i++ {
		if key[i] == '/' {
			return key[:i], key[i+1:]
		}
	}
	return key, ""
}
