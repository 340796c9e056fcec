package larksecrets

import (
	"context"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// tokenResponse answers a token read either with a non-renewable lease or, in lease-free mode,
// without one. A lease-free answer carries three fields that readers without a lease schedule
// their next read by:
//
//   - "ttl" (seconds): the time until the reader should come back, i.e. the token's remaining life
//     minus the safety margin. Vault Agent re-reads a lease-free secret ttl+1 seconds later when
//     the data carries numeric "ttl" and "rotation_period" (otherwise only every
//     static_secret_render_interval, 5 minutes).
//   - "rotation_period" (seconds): the token's whole lifetime, from issue to expiry.
//   - "last_vault_rotation" (RFC 3339): when the token was issued. Vault Secrets Operator treats a
//     lease-free answer as a rotating ("static") credential, and re-syncs it just after ttl, only
//     when this field is present beside a rotation_period of at least one second.
//
// The three agree: last_vault_rotation + rotation_period is expires_at (to the second), and the
// time of the read + ttl + the safety margin is expires_at too (ttl is rounded down to whole
// seconds and never below one).
func (b *backend) tokenResponse(ctx context.Context, s logical.Storage, appID, secretType string,
	data, internal map[string]interface{}, expiresAt, issuedAt time.Time) (*logical.Response, error) {
	cfg, err := b.config.get(ctx, s)
	if err != nil {
		return nil, err
	}
	app, err := b.apps.get(ctx, s, appID)
	if err != nil {
		return nil, err
	}
	now := b.clock.Now()
	ttl := expiresAt.Sub(now) - cfg.LeaseSafetyMargin
	if ttl < time.Second {
		// A lease TTL of 0 would mean "the mount default" (32 days): never hand one out.
		ttl = time.Second
	}
	if app.leaseMode(cfg) == leaseModeNone {
		data["ttl"] = int64(ttl.Seconds())
		issued, period := rotationOf(issuedAt, expiresAt, ttl, now)
		data["rotation_period"] = int64(period.Seconds())
		data["last_vault_rotation"] = issued.UTC().Format(time.RFC3339)
		return &logical.Response{Data: data}, nil
	}
	resp := b.Secret(secretType).Response(data, internal)
	resp.Secret.TTL = ttl
	resp.Secret.MaxTTL = ttl
	return resp, nil
}

// rotationOf gives a lease-free answer's issue time and rotation period, in whole seconds, such
// that issued + period is the expiry (as expires_at shows it, to the second). A token without a
// known issue time (never the case for tokens fetched by this version) or one issued in the future
// by a clock step counts as issued now. The period is never shorter than ttl.
func rotationOf(issuedAt, expiresAt time.Time, ttl time.Duration, now time.Time) (time.Time, time.Duration) {
	if issuedAt.IsZero() || issuedAt.After(now) {
		issuedAt = now
	}
	expires := expiresAt.Truncate(time.Second)
	issued := issuedAt.Truncate(time.Second)
	period := expires.Sub(issued)
	if period < ttl.Truncate(time.Second) {
		period = ttl.Truncate(time.Second)
		issued = expires.Add(-period)
	}
	return issued, period
}
