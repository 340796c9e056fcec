package larksecrets

import (
	"context"
	"sort"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// statusFields describes every field of the status answer, for path-help and OpenAPI.
var statusFields = map[string]*framework.FieldSchema{
	"healthy":         {Type: framework.TypeBool, Description: "True when nothing below needs an operator; otherwise reasons says what and what to do."},
	"reasons":         {Type: framework.TypeStringSlice, Description: "Why the mount is not healthy, worst first: one short sentence each, ending with what to do. Also returned as response warnings, which Vault's audit log keeps in plain text. At most 20."},
	"reasons_omitted": {Type: framework.TypeInt, Description: "Reasons left out past the first 20."},
	"checked_at":      {Type: framework.TypeString, Description: "When this answer was computed (RFC 3339)."},
	"node_started_at": {Type: framework.TypeString, Description: "When this plugin process started serving the mount; the sweep and Lark fields cover only the time since."},
	"apps_total":      {Type: framework.TypeInt, Description: "Apps configured under apps/."},
	"apps_unhealthy":  {Type: framework.TypeInt, Description: "Apps with at least one reason."},
	"apps_omitted":    {Type: framework.TypeInt, Description: "Apps left out of apps past the first 20 (unhealthy apps come first); vault list -detailed <mount>apps/ shows every app's health."},
	"apps": {Type: framework.TypeMap, Description: "Per app (at most 20, unhealthy first): app_type (self_built or store); healthy; grants (slots holding a grant); grants_by_level " +
		"(ok, warning, critical, expired, reauth_required); grants_unclassified (grants whose level this node has not computed yet); secret (accepted, rejected or unknown: " +
		"whether Lark last accepted the app's credentials), secret_accepted_at, secret_rejected_at; lark (reachable, unreachable or unknown: whether this node's latest " +
		"call reached Lark), lark_reached_at, lark_last_error, lark_last_error_at; tokens (the cached app and tenant tokens with expires_at and fetched_at; never a token); " +
		"tenant_tokens_held (store apps: per-tenant tokens held in memory); setup_problem (a refusal of the app's setup recorded by a refresh: reason, code, kind, since)."},
	"grants_total":                {Type: framework.TypeInt, Description: "User grants of all configured apps: the sum of the level counts once grant_levels_complete, before that the grants listed in storage."},
	"grants_ok":                   {Type: framework.TypeInt, Description: "Grants at level ok."},
	"grants_warning":              {Type: framework.TypeInt, Description: "Grants at level warning (at most warning_days left)."},
	"grants_critical":             {Type: framework.TypeInt, Description: "Grants at level critical (at most critical_days left); makes the mount unhealthy."},
	"grants_expired":              {Type: framework.TypeInt, Description: "Grants that have ended; makes the mount unhealthy."},
	"grants_reauth_required":      {Type: framework.TypeInt, Description: "Grants Lark no longer refreshes; makes the mount unhealthy."},
	"grants_unclassified":         {Type: framework.TypeInt, Description: "Grants the level counts do not cover yet: only while the grant indexes are being built (the first sweep of this version on a mount, or after level thresholds changed)."},
	"grant_levels_complete":       {Type: framework.TypeBool, Description: "True once the grant indexes are built, so the level counts (kept in storage with every grant write) cover every grant."},
	"sweep_runs":                  {Type: framework.TypeInt, Description: "Sweeps run on this node since it started (Vault's periodic runs and writes to sweep)."},
	"sweep_last_at":               {Type: framework.TypeString, Description: "When the last sweep started; empty before the first."},
	"sweep_last_took_ms":          {Type: framework.TypeInt, Description: "How long the last sweep took."},
	"sweep_budget":                {Type: framework.TypeString, Description: "sweep_budget, how long one sweep may run (config)."},
	"sweep_last_full_pass":        {Type: framework.TypeBool, Description: "The last sweep got through every grant that was due (the due index up to now)."},
	"sweep_last_budget_exhausted": {Type: framework.TypeBool, Description: "The last sweep stopped at its budget; the next one goes on where it stopped."},
	"sweep_last_grants_visited":   {Type: framework.TypeInt, Description: "Grants the last sweep read: those the due index named whose time had come, and the walk's share."},
	"sweep_last_refreshed":        {Type: framework.TypeInt, Description: "Grants the last sweep refreshed (keep-alive)."},
	"sweep_last_refresh_failed":   {Type: framework.TypeInt, Description: "Keep-alive refreshes of the last sweep that failed (each grant records why)."},
	"sweep_last_error":            {Type: framework.TypeString, Description: "Why the last sweep stopped early, if it did."},
	"sweep_last_full_cycle_at":    {Type: framework.TypeString, Description: "When the walk (which checks every grant's index entries, a share every 15 minutes) last finished a cycle over every grant; empty before the first on this node."},
	"sweep_last_full_cycle_ms":    {Type: framework.TypeInt, Description: "How long that cycle took (about a day normally; one or a few runs while the indexes are built)."},
	"sweep_cycle_started_at":      {Type: framework.TypeString, Description: "While the grant indexes are being built: when that started; building for over an hour makes the mount unhealthy."},
	"notice_schedule":             {Type: framework.TypeString, Description: "notify_schedule, the cron schedule of notices."},
	"notice_timezone":             {Type: framework.TypeString, Description: "notify_timezone."},
	"notice_next_at":              {Type: framework.TypeString, Description: "The next scheduled time at which queued notices are sent."},
	"notice_last_pass_at":         {Type: framework.TypeString, Description: "When queued notices were last tried on this node."},
	"notice_last_pass_sent":       {Type: framework.TypeInt, Description: "Notices sent in that pass."},
	"notice_last_pass_failed":     {Type: framework.TypeInt, Description: "Notices that failed in that pass (they stay queued); makes the mount unhealthy until a pass sends them."},
	"notice_last_error":           {Type: framework.TypeString, Description: "The last error of that pass."},
	"unsaved_grants":              {Type: framework.TypeInt, Description: "Grants with rotated refresh tokens that storage refused, kept in memory and retried; makes the mount unhealthy."},
}

func pathStatus(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern:      "status$",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "status"},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback: b.pathStatusRead,
				Summary:  "Whether the mount is healthy, and why not.",
				// The sweep's history and the Lark contacts live in the active node's memory.
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
				Responses: map[int][]framework.Response{
					200: {{Description: "OK", Fields: statusFields}},
				},
			},
		},
		HelpSynopsis:    "The mount's health at a glance.",
		HelpDescription: statusHelp(),
	}}
}

func statusHelp() string {
	var b strings.Builder
	b.WriteString(`One read that says whether everything is fine: "healthy" is true or false, and
"reasons" says why not, each with what to do. The mount is not healthy when Lark rejects
an app's secret or refuses its setup, when Lark cannot be reached, when a grant is
critical, expired or reauth_required, when the sweep has not run for 5 minutes, failed,
took over twice its budget or has not visited every grant for an hour, when notices
failed at their last scheduled time, or when storage refused a rotated refresh token.

The answer is bounded: at most 20 apps in detail (unhealthy first) and 20 reasons; the
rest are counted. It reads no grant: grant levels come from what the sweep and reads
computed (grants_unclassified counts the grants this node has not classified yet), and
each app costs one list and at most three reads of storage. The sweep's history and Lark
reachability are kept in memory only, on the node that runs the sweep: after a restart
or a leader change they start empty (the read is forwarded to the active node).
"vault list -detailed <mount>apps/" shows every app's type, grants and health.

The path takes no parameters. Fields:
`)
	names := make([]string, 0, len(statusFields))
	for n := range statusFields {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		b.WriteString("\n  " + n + ": " + statusFields[n].Description)
	}
	return b.String()
}

func (b *backend) pathStatusRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	m, err := b.status.mountStatus(ctx, req.Storage, remediesFor(req))
	if err != nil {
		return nil, err
	}
	sw := m.Sweep
	data := map[string]interface{}{
		"healthy":                     m.healthy(),
		"reasons":                     nonNil(m.Reasons),
		"reasons_omitted":             m.ReasonsTotal - len(m.Reasons),
		"checked_at":                  formatTime(m.At),
		"node_started_at":             formatTime(m.Started),
		"apps_total":                  m.AppsTotal,
		"apps_unhealthy":              m.AppsUnhealthy,
		"apps_omitted":                m.AppsTotal - len(m.Apps),
		"grants_total":                m.GrantsTotal,
		"grants_unclassified":         m.Unclassified,
		"grant_levels_complete":       m.levelsComplete(),
		"sweep_runs":                  sw.Runs,
		"sweep_last_at":               formatTime(sw.Last.At),
		"sweep_last_took_ms":          sw.Last.Took.Milliseconds(),
		"sweep_budget":                m.Budget.String(),
		"sweep_last_full_pass":        sw.Last.FullPass,
		"sweep_last_budget_exhausted": sw.Last.BudgetExhausted,
		"sweep_last_grants_visited":   sw.Last.GrantsVisited,
		"sweep_last_refreshed":        sw.Last.Refreshed,
		"sweep_last_refresh_failed":   sw.Last.RefreshFailed,
		"sweep_last_error":            sw.Last.Err,
		"sweep_last_full_cycle_at":    formatTime(sw.LastCycleAt),
		"sweep_last_full_cycle_ms":    sw.LastCycleTook.Milliseconds(),
		"sweep_cycle_started_at":      formatTime(sw.CycleStart),
		"notice_schedule":             m.Schedule,
		"notice_timezone":             m.Timezone,
		"notice_next_at":              formatTime(m.NextNotice),
		"notice_last_pass_at":         "",
		"notice_last_pass_sent":       0,
		"notice_last_pass_failed":     0,
		"notice_last_error":           "",
		"unsaved_grants":              m.Unsaved,
	}
	if n := sw.Notices; n != nil {
		data["notice_last_pass_at"] = formatTime(n.At)
		data["notice_last_pass_sent"] = n.Sent
		data["notice_last_pass_failed"] = n.Failed
		data["notice_last_error"] = clip(n.LastError)
	}
	for level, n := range m.Levels {
		data["grants_"+level] = n
	}
	apps := make(map[string]interface{}, len(m.Apps))
	for _, a := range m.Apps {
		apps[a.AppID] = a.info()
	}
	data["apps"] = apps
	resp := &logical.Response{Data: data}
	for _, r := range m.Reasons {
		resp.AddWarning(r)
	}
	return resp, nil
}

// info is one app's part of the answer. No token, secret or grant is in it.
func (a *appHealth) info() map[string]interface{} {
	tokens := map[string]interface{}{}
	for k, e := range a.Tokens {
		tokens[string(k)] = map[string]interface{}{"expires_at": formatTime(e.ExpiresAt), "fetched_at": formatTime(e.FetchedAt)}
	}
	levels := make(map[string]interface{}, len(a.Levels))
	for l, n := range a.Levels {
		levels[l] = n
	}
	out := map[string]interface{}{
		"app_type":            a.Type,
		"healthy":             a.healthy(),
		"grants":              a.Grants,
		"grants_by_level":     levels,
		"grants_unclassified": a.Unclassified,
		"secret":              a.Secret,
		"secret_accepted_at":  formatTime(a.SecretAcceptedAt),
		"secret_rejected_at":  formatTime(a.SecretRejectedAt),
		"lark":                a.Lark,
		"lark_reached_at":     formatTime(a.LarkReachedAt),
		"lark_last_error":     a.LarkError,
		"lark_last_error_at":  formatTime(a.LarkErrorAt),
		"tokens":              tokens,
	}
	if a.Type == "store" {
		out["tenant_tokens_held"] = a.TenantTokens
	}
	if p := a.Problem; p != nil {
		out["setup_problem"] = map[string]interface{}{"reason": clip(p.Reason), "code": p.Code, "kind": p.Kind, "since": formatTime(p.Since)}
	}
	return out
}

// appsListInfo is the key_info of vault list -detailed <mount>apps/: each app's type, grants and
// health, narrow enough for a terminal.
func (b *backend) appsListInfo(ctx context.Context, req *logical.Request, ids []string) (map[string]interface{}, error) {
	counted, err := b.status.levelsCounted(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	m, err := b.status.appsHealth(ctx, req.Storage, ids, counted, remediesFor(req))
	if err != nil {
		return nil, err
	}
	info := make(map[string]interface{}, len(m))
	for _, a := range m {
		health := "ok"
		if !a.healthy() {
			health = "unhealthy"
		}
		info[a.AppID] = map[string]interface{}{
			"app_type": a.Type,
			"grants":   a.Grants,
			"health":   health,
			"problems": len(a.Reasons),
		}
	}
	return info, nil
}
