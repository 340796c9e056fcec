package larksecrets

import (
	"context"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

var configFields = map[string]*framework.FieldSchema{
	"lease_safety_margin": {
		Type:        framework.TypeDurationSecond,
		Description: "How much shorter than the token's real remaining life a lease is. A reader whose lease ends holds a token that is still valid for at least this long. Between 10s and 20m.",
		Default:     int(defaultLeaseMargin.Seconds()),
	},
	"token_refresh_window": {
		Type:        framework.TypeDurationSecond,
		Description: "Fetch a new app or tenant token once the cached one has less than this left. Lark only issues a new token in the last 30 minutes of a token's life, so at most 30m; it must exceed lease_safety_margin by at least 1m.",
		Default:     int(defaultRefreshWindow.Seconds()),
	},
	"lark_request_timeout": {
		Type:        framework.TypeDurationSecond,
		Description: "Timeout of one HTTP request to Lark. Between 1s and 1m.",
		Default:     int(defaultLarkTimeout.Seconds()),
	},
	"lease_mode": {
		Type:          framework.TypeString,
		Description:   `"lease" (default): every token read creates a non-renewable Vault lease. "none": reads create no lease and carry numeric "ttl" and "rotation_period" fields and the issue time "last_vault_rotation" (RFC 3339) instead, which Vault Agent and Vault Secrets Operator (allowStaticCreds) use to re-read just in time; use it for heavy readers, since every lease lives in Vault until its TTL ends. Apps can override it.`,
		Default:       leaseModeLease,
		AllowedValues: []interface{}{leaseModeLease, leaseModeNone},
	},
	"warning_days": {
		Type:        framework.TypeInt,
		Description: "A user grant with this many days or fewer left is at level \"warning\" (reads warn, reauth lists it, admins are notified once).",
		Default:     defaultWarningDays,
	},
	"critical_days": {
		Type:        framework.TypeInt,
		Description: "A user grant with this many days or fewer left is at level \"critical\". Must be below warning_days.",
		Default:     defaultCriticalDays,
	},
	"notify_schedule": {
		Type:        framework.TypeString,
		Description: "When re-authorization notices are sent as Lark messages: a 5-field cron expression (minute hour day month weekday) in notify_timezone. Each level is sent once per grant, at the first scheduled time after it is reached.",
		Default:     defaultNotifySchedule,
	},
	"notify_timezone": {
		Type:        framework.TypeString,
		Description: `IANA time zone of notify_schedule, e.g. "Asia/Shanghai".`,
		Default:     defaultNotifyTimezone,
	},
	"keepalive_rate": {
		Type:        framework.TypeInt,
		Description: "At most this many keep-alive refreshes per second per app (Lark allows 50 token requests per second). Between 1 and 40.",
		Default:     defaultKeepaliveRate,
	},
	"failure_grace": {
		Type:        framework.TypeDurationSecond,
		Description: "How long refreshes of a grant may keep failing (Lark down, the app's settings broken) before its level follows its refresh token's expiry instead of the 365-day end. A brief Lark outage should not page anyone. Between 0s and 168h; default 6h.",
		Default:     int(defaultFailureGrace.Seconds()),
	},
	"sweep_budget": {
		Type:        framework.TypeDurationSecond,
		Description: "How long one sweep (run every minute by Vault, or by writing to sweep) may work before it stops and leaves the rest for the next run. Between 1s and 1m; Vault cancels periodic work after 90s.",
		Default:     int(defaultSweepBudget.Seconds()),
	},
	"lark_max_attempts": {
		Type:        framework.TypeInt,
		Description: "How many times a request to Lark is tried when Lark is unreachable, times out, answers 5xx or rate-limits. Rejections (such as a wrong app secret) are never retried. Between 1 and 10.",
		Default:     defaultLarkAttempts,
	},
}

func pathConfig(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern:      "config",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "configuration"},
		Fields:       configFields,
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback: b.pathConfigRead,
				Summary:  "Read the mount-wide settings (defaults included).",
			},
			logical.UpdateOperation: &framework.PathOperation{
				Callback: b.pathConfigWrite,
				Summary:  "Change mount-wide settings; fields left out keep their current value.",
			},
		},
		HelpSynopsis:    "Mount-wide settings of the Lark secrets engine.",
		HelpDescription: "Lease safety margin, token refresh window and the Lark HTTP client's timeout and retries. Every field has a default; a write changes only the fields it names.",
	}}
}

func (b *backend) pathConfigRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	cfg, err := b.config.get(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]interface{}{
		"failure_grace":        int64(cfg.failureGrace().Seconds()),
		"lease_safety_margin":  int64(cfg.LeaseSafetyMargin.Seconds()),
		"token_refresh_window": int64(cfg.TokenRefreshWindow.Seconds()),
		"lark_request_timeout": int64(cfg.LarkRequestTimeout.Seconds()),
		"lark_max_attempts":    cfg.LarkMaxAttempts,
		"lease_mode":           cfg.LeaseMode,
		"warning_days":         cfg.WarningDays,
		"critical_days":        cfg.CriticalDays,
		"notify_schedule":      cfg.NotifySchedule,
		"notify_timezone":      cfg.NotifyTimezone,
		"keepalive_rate":       cfg.KeepaliveRate,
		"sweep_budget":         int64(cfg.SweepBudget.Seconds()),
	}}, nil
}

func (b *backend) pathConfigWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	current, err := b.config.get(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	next := *current
	if v, ok := d.GetOk("lease_safety_margin"); ok {
		next.LeaseSafetyMargin = time.Duration(v.(int)) * time.Second
	}
	if v, ok := d.GetOk("token_refresh_window"); ok {
		next.TokenRefreshWindow = time.Duration(v.(int)) * time.Second
	}
	if v, ok := d.GetOk("lark_request_timeout"); ok {
		next.LarkRequestTimeout = time.Duration(v.(int)) * time.Second
	}
	if v, ok := d.GetOk("lark_max_attempts"); ok {
		next.LarkMaxAttempts = v.(int)
	}
	if v, ok := d.GetOk("lease_mode"); ok {
		next.LeaseMode = v.(string)
	}
	if v, ok := d.GetOk("warning_days"); ok {
		next.WarningDays = v.(int)
	}
	if v, ok := d.GetOk("critical_days"); ok {
		next.CriticalDays = v.(int)
	}
	if v, ok := d.GetOk("notify_schedule"); ok {
		next.NotifySchedule = v.(string)
	}
	if v, ok := d.GetOk("notify_timezone"); ok {
		next.NotifyTimezone = v.(string)
	}
	if v, ok := d.GetOk("keepalive_rate"); ok {
		next.KeepaliveRate = v.(int)
	}
	if v, ok := d.GetOk("sweep_budget"); ok {
		next.SweepBudget = time.Duration(v.(int)) * time.Second
	}
	if v, ok := d.GetOk("failure_grace"); ok {
		g := time.Duration(v.(int)) * time.Second
		next.FailureGrace = &g
	}
	if err := next.validate(); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	if err := b.config.put(ctx, req.Storage, &next); err != nil {
		return nil, err
	}
	return nil, nil
}
