package larksecrets

import (
	"context"
	"fmt"
	"time"

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
	// FailureGrace is how long refreshes may keep failing before the grant's level follows its
	// refresh token's expiry; a pointer so that 0 (count the first failure) can be stored.
	FailureGrace *time.Duration `json:"failure_grace,omitempty"`
}

const (
	defaultWarningDays    = 7
	defaultCriticalDays   = 3
	defaultNotifySchedule = "0 9,21 * * *"
	defaultNotifyTimezone = "UTC"
	defaultKeepaliveRate  = 5
	defaultSweepBudget    = 20 * time.Second
	defaultFailureGrace   = 6 * time.Hour
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
	if c.FailureGrace == nil {
		g := defaultFailureGrace
		c.FailureGrace = &g
	}
}

// failureGrace is FailureGrace with its default.
// levelThresholds are the settings a grant's level depends on.
type levelThresholds struct {
	WarningDays, CriticalDays int
	FailureGrace              time.Duration
}

// thresholds are the mount's level thresholds.
func (c *configEntry) thresholds() levelThresholds {
	return levelThresholds{WarningDays: c.WarningDays, CriticalDays: c.CriticalDays, FailureGrace: c.failureGrace()}
}

func (c *configEntry) failureGrace() time.Duration {
	if c.FailureGrace == nil {
		return defaultFailureGrace
	}
	return *c.FailureGrace
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
	case c.failureGrace() < 0 || c.failureGrace() > 7*24*time.Hour:
		return fmt.Errorf("failure_grace must be between 0s and 168h, got %s", c.failureGrace())
	}
	if _, err := parseSchedule(c.NotifySchedule, c.NotifyTimezone); err != nil {
		return err
	}
	return nil
}

// configStore owns the mount's settings: every token read needs them, so they are kept in memory
// (cachedStore) and dropped when another node changes them (Invalidate). Its zero value is ready.
type configStore struct {
	mem cachedStore[configEntry, configLayout]
}

type configLayout struct{}

var configSpec = &storeSpec[configEntry]{
	prefix:    configStorageKey,
	single:    true,
	what:      func(string) string { return "config" },
	version:   configEntryVersion,
	versionOf: func(c *configEntry) *int { return &c.Version },
	fresh:     defaultConfig,
	finish: func(c *configEntry) *configEntry {
		if c == nil {
			return defaultConfig()
		}
		c.fillDefaults()
		return c
	},
}

func (configLayout) spec() *storeSpec[configEntry] { return configSpec }

// get returns the settings, loading them (or the defaults) on first use. The entry is shared:
// callers never change it.
func (cs *configStore) get(ctx context.Context, s logical.Storage) (*configEntry, error) {
	return cs.mem.get(ctx, s, "")
}

// put stores the settings and keeps cfg in memory: the caller hands it over.
func (cs *configStore) put(ctx context.Context, s logical.Storage, cfg *configEntry) error {
	return cs.mem.put(ctx, s, "", cfg)
}

func (cs *configStore) invalidate() { cs.mem.invalidate("") }
