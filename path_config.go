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
}

const (
	leaseModeLease = "lease"
	leaseModeNone  = "none"
)

func validLeaseMode(m string) bool { return m == leaseModeLease || m == leaseModeNone }

func defaultConfig() *configEntry {
	return &configEntry{
		Version:            configEntryVersion,
		LeaseSafetyMargin:  defaultLeaseMargin,
		TokenRefreshWindow: defaultRefreshWindow,
		LarkRequestTimeout: defaultLarkTimeout,
		LarkMaxAttempts:    defaultLarkAttempts,
		LeaseMode:          leaseModeLease,
	}
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
	if next.LeaseMode == "" {
		next.LeaseMode = leaseModeLease
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
		if cfg.LeaseMode == "" {
			cfg.LeaseMode = leaseModeLease
		}
	}
	b.configMu.Lock()
	b.config = cfg
	b.configMu.Unlock()
	return cfg, nil
}
