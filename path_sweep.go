package larksecrets

import (
	"context"
	"errors"
	"fmt"

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
notified. It stops after sweep_budget and resumes where it stopped next time. The path
takes no parameters.

The sweep reads only the grants that are due: each grant's next keep-alive, level change
or unqueued notice is kept in a due index in storage, written with the grant.
grants_due counts the grants whose time had come in this run (flagged lists those of
them not at level ok); index_buckets the minutes of the index it listed; stale_entries
index entries their grant no longer names, dropped. repair_visited counts the grants the
walk checked: it goes through every grant slowly (a share every 15 minutes, all of them
in about a day) and writes again any index entry or level count it finds wrong, and at
full speed while the indexes are built (rebuilding: the first run of this version, or new
level thresholds). grants_total is the mount's grants by the level counts.`,
	}}
}

func (b *backend) pathSweepRun(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if !b.WriteSafeReplicationState() {
		return nil, logical.ErrReadOnly
	}
	r, err := b.sweeper.run(ctx, req.Storage)
	if errors.Is(err, errSweepRunning) {
		return logical.ErrorResponse("a sweep is already running; try again in a moment"), nil
	}
	if err != nil {
		return nil, err
	}
	flagged := make([]map[string]interface{}, 0, len(r.Flagged))
	resp := &logical.Response{}
	rem := remediesFor(req)
	for _, f := range r.Flagged {
		flagged = append(flagged, map[string]interface{}{
			"grant":           f.ID.String(),
			"level":           f.Health.Level,
			"deadline":        formatTime(f.Health.Deadline),
			"days_left":       f.Health.DaysLeft,
			"reauth_required": f.Health.reauthRequired(),
			"reason":          f.Health.Reason,
		})
		resp.AddWarning(f.Health.warning(f.ID, rem))
	}
	if r.UnsavedLeft > 0 {
		resp.AddWarning(fmt.Sprintf("%d grant(s) with rotated refresh tokens could not be stored yet; they are kept in memory and retried (see Vault's log)", r.UnsavedLeft))
	}
	resp.Data = map[string]interface{}{
		"grants_total":         r.GrantsTotal,
		"grants_visited":       r.GrantsVisited,
		"grants_due":           r.GrantsDue,
		"index_buckets":        r.IndexBuckets,
		"stale_entries":        r.StaleEntries,
		"repair_visited":       r.RepairVisited,
		"index_repaired":       r.IndexRepaired,
		"rebuilding":           r.Walk.Rebuild,
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
		"notices_left":         r.NoticesLeft,
		"unsaved_stored":       r.UnsavedStored,
		"unsaved_left":         r.UnsavedLeft,
	}
	return resp, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
