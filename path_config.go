package larksecrets

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const (
	configStorageKey     = "config"
	configEntryVersion   = 1
	defaultLeaseMargin   = 5 * time.Minute
	defaultRefreshWindow = 25 * time.Minute
	defaultLarkTimeout   = 10 * time.Second
	defaultLarkAttempts  = 3

	// Lark re-issues an app or tenant token only in the last 30 minutes of its life; a refresh
	// window above that would make every read in between a wasted upstream call.
	larkReuseWindow = 30 * time.Minute
)

// configEntry holds the mount-wide settings. Durations are stored as time.Duration and shown in
// seconds, the way Vault's own engines show them.
type configEntry struct {
	Version            int           `json:"version"`
	LeaseSafetyMargin  time.Duration `json:"lease_safety_margin"`
	TokenRefreshWindow time.Duration `json:"token_refresh_window"`
	LarkRequestTimeout time.Duration `json:"lark_request_timeout"`
	LarkMaxAttempts    int           `json:"lark_max_attempts"`
	LeaseMode          string        `json:"lease_mode,omitempty"`

	WarningDays    int           `json:"warning_days,omitempty"`
	CriticalDays   int           `json:"critical_days,omitempty"`
	NotifySchedule string        `json:"notify_schedule,omitempty"`
	NotifyTimezone string        `json:"notify_timezone,omitempty"`
	KeepaliveRate  int           `json:"keepalive_rate,omitempty"`
	SweepBudget    time.Duration `json:"sweep_budget,omitempty"`
}

const (
	defaultWarningDays    = 7
	defaultCriticalDays   = 3
	defaultNotifySchedule = "0 9,21 * * *"
	defaultNotifyTimezone = "UTC"
	defaultKeepaliveRate  = 5
	defaultSweepBudget    = 20 * time.Second
)

// fillDefaults gives entries stored by older versions the settings they did not have yet.
func (c *configEntry) fillDefaults() {
	if c.LeaseMode == "" {
		c.LeaseMode = leaseModeLease
	}
	if c.WarningDays == 0 {
		c.WarningDays = defaultWarningDays
	}
	if c.CriticalDays == 0 {
		c.CriticalDays = defaultCriticalDays
	}
	if c.NotifySchedule == "" {
		c.NotifySchedule = defaultNotifySchedule
	}
	if c.NotifyTimezone == "" {
		c.NotifyTimezone = defaultNotifyTimezone
	}
	if c.KeepaliveRate == 0 {
		c.KeepaliveRate = defaultKeepaliveRate
	}
	if c.SweepBudget == 0 {
		c.SweepBudget = defaultSweepBudget
	}
}

const (
	leaseModeLease = "lease"
	leaseModeNone  = "none"
)

func validLeaseMode(m string) bool { return m == leaseModeLease || m == leaseModeNone }

func defaultConfig() *configEntry {
	c := &configEntry{
		Version:            configEntryVersion,
		LeaseSafetyMargin:  defaultLeaseMargin,
		TokenRefreshWindow: defaultRefreshWindow,
		LarkRequestTimeout: defaultLarkTimeout,
		LarkMaxAttempts:    defaultLarkAttempts,
	}
	c.fillDefaults()
	return c
}

func (c *configEntry) validate() error {
	switch {
	case c.LeaseSafetyMargin < 10*time.Second || c.LeaseSafetyMargin > 20*time.Minute:
		return fmt.Errorf("lease_safety_margin must be between 10s and 20m, got %s", c.LeaseSafetyMargin)
	case c.TokenRefreshWindow > larkReuseWindow:
		return fmt.Errorf("token_refresh_window must be at most 30m: Lark hands out the same token until its last 30 minutes, got %s", c.TokenRefreshWindow)
	case c.TokenRefreshWindow < c.LeaseSafetyMargin+time.Minute:
		return fmt.Errorf("token_refresh_window (%s) must exceed lease_safety_margin (%s) by at least 1m, or a served lease could be shorter than a minute", c.TokenRefreshWindow, c.LeaseSafetyMargin)
	case c.LarkRequestTimeout < time.Second || c.LarkRequestTimeout > time.Minute:
		return fmt.Errorf("lark_request_timeout must be between 1s and 1m, got %s", c.LarkRequestTimeout)
	case c.LarkMaxAttempts < 1 || c.LarkMaxAttempts > 10:
		return fmt.Errorf("lark_max_attempts must be between 1 and 10, got %d", c.LarkMaxAttempts)
	case !validLeaseMode(c.LeaseMode):
		return fmt.Errorf(`lease_mode must be "lease" or "none", got %q`, c.LeaseMode)
	case c.CriticalDays < 1 || c.WarningDays > 60 || c.CriticalDays >= c.WarningDays:
		return fmt.Errorf("need 1 <= critical_days < warning_days <= 60, got critical_days=%d warning_days=%d", c.CriticalDays, c.WarningDays)
	case c.KeepaliveRate < 1 || c.KeepaliveRate > 40:
		return fmt.Errorf("keepalive_rate must be between 1 and 40 refreshes per second per app (Lark allows 50), got %d", c.KeepaliveRate)
	case c.SweepBudget < time.Second || c.SweepBudget > time.Minute:
		return fmt.Errorf("sweep_budget must be between 1s and 1m (Vault cancels periodic work after 90s), got %s", c.SweepBudget)
	}
	if _, err := parseSchedule(c.NotifySchedule, c.NotifyTimezone); err != nil {
		return err
	}
	return nil
}

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
		Description:   `"lease" (default): every token read creates a non-renewable Vault lease. "none": reads create no lease and carry numeric "ttl" and "rotation_period" fields instead, which Vault Agent uses to re-read just in time; use it for heavy readers, since every lease lives in Vault until its TTL ends. Apps can override it.`,
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
	if resp := rejectUnknownFields(req, d); resp != nil {
		return resp, nil
	}
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]interface{}{
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
	if resp := rejectUnknownFields(req, d); resp != nil {
		return resp, nil
	}
	current, err := b.getConfig(ctx, req.Storage)
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
	if err := next.validate(); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	next.Version = configEntryVersion
	entry, err := logical.StorageEntryJSON(configStorageKey, &next)
	if err != nil {
		return nil, err
	}
	if err := req.Storage.Put(ctx, entry); err != nil {
		return nil, err
	}
	b.configMu.Lock()
	b.config = &next
	b.configMu.Unlock()
	return nil, nil
}

// getConfig returns the cached settings, loading them (or the defaults) on first use.
func (b *backend) getConfig(ctx context.Context, s logical.Storage) (*configEntry, error) {
	b.configMu.RLock()
	cfg := b.config
	b.configMu.RUnlock()
	if cfg != nil {
		return cfg, nil
	}
	entry, err := s.Get(ctx, configStorageKey)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cfg = defaultConfig()
	if entry != nil {
		if err := entry.DecodeJSON(cfg); err != nil {
			return nil, fmt.Errorf("decoding config: %w", err)
		}
		cfg.fillDefaults()
	}
	b.configMu.Lock()
	b.config = cfg
	b.configMu.Unlock()
	return cfg, nil
}
