package larksecrets

import (
	"context"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// tokenResponse answers a token read either with a non-renewable lease or, in lease-free mode,
// without one. Without a lease, Vault Agent re-reads a secret only every
// static_secret_render_interval (5 minutes) unless the data carries numeric "rotation_period" and
// "ttl": then it re-reads exactly ttl+1 seconds later. ttl is therefore the time until the reader
// should come back (the token's remaining life minus the safety margin), and rotation_period the
// token's whole lifetime.
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
		period := expiresAt.Sub(issuedAt)
		if period < ttl {
			period = ttl
		}
		data["rotation_period"] = int64(period.Seconds())
		return &logical.Response{Data: data}, nil
	}
	resp := b.Secret(secretType).Response(data, internal)
	resp.Secret.TTL = ttl
	resp.Secret.MaxTTL = ttl
	return resp, nil
}
