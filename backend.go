// Package larksecrets is a Vault secrets engine for Feishu / Lark. It keeps each Lark app's
// app_secret and its users' grants in Vault's storage and hands out app, tenant and user access
// tokens as short, non-renewable leases.
package larksecrets

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/lark-vault/vault-plugin-secrets-lark/clock"
)

const backendHelp = `
The Lark secrets engine keeps Feishu / Lark app secrets inside Vault and hands out
fresh app and tenant access tokens as non-renewable leases.

Register an app with "apps/<app_id>", then read "app-token/<app_id>" or
"tenant-token/<app_id>". People authorize once through "oauth/<app_id>/authorize";
services then read "user-token/<app_id>/<user>". Mount-wide settings live in "config".
`

// Factory is what Vault calls to create one backend per mount.
func Factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	b := newBackend(clock.Real{}, nil)
	if err := b.setup(ctx, conf); err != nil {
		return nil, err
	}
	// Device logins are polled every second on the active node, by a loop Cleanup stops.
	b.devices.startLoop(b.storage)
	return b, nil
}

// newBackend builds a backend with an injectable clock and HTTP client (nil: the backend's own
// transport), so tests can drive time and point at the in-process emulator.
func newBackend(clk clock.Clock, httpClient *http.Client) *backend {
	b := wire(clk, httpClient)
	b.Backend = &framework.Backend{
		Help:           strings.TrimSpace(backendHelp),
		BackendType:    logical.TypeLogical,
		RunningVersion: Version,
		PathsSpecial: &logical.Paths{
			// Lark redirects a browser, which has no Vault token, to the callback; the single-use
			// state it carries is what authorizes the request. Lark's event subscription has no
			// token either: an event authenticates itself (path_events.go).
			Unauthenticated: []string{callbackPath, eventsPath},
			// Seal wrap (Enterprise) adds a second layer over the barrier for the entries that hold
			// secrets: app secrets, cached access tokens, store apps' app_tickets, user grants,
			// pending authorizations and notices (storage.go lists every area).
			SealWrapStorage: sealWrapPrefixes(),
		},
		// The framework tries each path's pattern in this order for every request, so the token
		// reads, which are nearly all requests, come first.
		Paths: refuseUnknownFields(framework.PathAppend(
			pathAccessTokens(b),
			pathUserTokens(b),
			pathConfig(b),
			// Before pathApps, whose apps/(.+) would take apps/<app_id>/ticket.
			pathStoreApps(b),
			pathApps(b),
			pathEvents(b),
			pathSlots(b),
			pathOAuth(b),
			pathDevice(b),
			pathReauth(b),
			pathSweep(b),
			pathMetrics(b),
			pathStatus(b),
		)),
		Secrets: []*framework.Secret{
			secretAccessToken(kindApp),
			secretAccessToken(kindTenant),
			secretUserToken(),
		},
		Invalidate:   b.invalidate,
		PeriodicFunc: b.periodic,
		Clean:        b.clean,
	}
	return b
}

// setup is framework setup plus keeping the storage view for work outside requests, and Vault's
// system view for the checks that must not come from a cache (replication.go).
func (b *backend) setup(ctx context.Context, conf *logical.BackendConfig) error {
	b.storage = conf.StorageView
	b.rawSystem = conf.System
	wrapped := *conf
	if conf.System != nil {
		wrapped.System = &cachedReplicationView{SystemView: conf.System}
	}
	return b.Setup(ctx, &wrapped)
}

// HandleRequest notes the mount path of every request before the framework routes it.
func (b *backend) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	b.noteMount(req)
	if name := b.mistypedSecret(req); name != "" {
		return logical.ErrorResponse("%s must be a string", name), nil
	}
	return b.Backend.HandleRequest(ctx, req)
}

// HandleExistenceCheck leaves a request with a mistyped secret to HandleRequest, which refuses it
// without quoting it; the framework's own type error would, and Vault logs existence-check errors.
func (b *backend) HandleExistenceCheck(ctx context.Context, req *logical.Request) (bool, bool, error) {
	if b.mistypedSecret(req) != "" {
		return false, false, nil
	}
	return b.Backend.HandleExistenceCheck(ctx, req)
}

// mistypedSecret names a sensitive field of the request's path whose value is not a string. The
// framework's conversion error quotes the value it could not convert (a map holding the secret,
// a list of tokens), so such a value must never reach it.
func (b *backend) mistypedSecret(req *logical.Request) string {
	if req == nil || len(req.Data) == 0 {
		return ""
	}
	p := b.Route(req.Path)
	if p == nil {
		return ""
	}
	for name, f := range p.Fields {
		if f.DisplayAttrs == nil || !f.DisplayAttrs.Sensitive {
			continue
		}
		if v, ok := req.Data[name]; ok {
			if _, isString := v.(string); !isString {
				return name
			}
		}
	}
	return ""
}

// invalidate drops in-memory copies when another node (or a replication stream) changed storage:
// the owner of the key's area (storage.go) forgets it.
func (b *backend) invalidate(_ context.Context, key string) {
	if a, k := areaOf(key); a != nil && a.invalidate != nil {
		a.invalidate(b, k)
	}
}

// periodic is Vault's once-a-minute hook. Only a node that may write does the work: refreshing
// spends single-use tokens whose successors must be stored.
func (b *backend) periodic(ctx context.Context, req *logical.Request) error {
	b.noteMount(req)
	if !b.WriteSafeReplicationState() {
		return nil
	}
	// Pending device logins are learnt from storage again and polled, should the loop be behind.
	if err := b.devices.fill(ctx, req.Storage); err == nil {
		b.devices.pollDue(ctx, req.Storage)
	}
	_, err := b.sweeper.run(ctx, req.Storage)
	if errors.Is(err, errSweepRunning) {
		return nil
	}
	return err
}

// clean runs when Vault unmounts, reloads or shuts the plugin down, and when this node steps down.
// The refresher admits no new Lark call that could spend a single-use credential and waits for the
// calls in flight to answer and be stored; only then may Vault end the process (refresh.go).
func (b *backend) clean(ctx context.Context) {
	b.devices.stopLoop()
	b.refresher.stop(ctx, b.storage)
	if b.storage != nil {
		// Due entries storage refused earlier: after the process ends only the walk finds them.
		b.grants.reindexUnindexed(context.WithoutCancel(ctx), b.storage)
		// Level counts storage refused: after the process ends only the walk's recount mends them.
		b.grants.counts.flush(context.WithoutCancel(ctx), b.storage)
	}
}

// refuseUnknownFields makes every operation of every path refuse a request that carries a field the
// path does not declare (or a path parameter repeated differently in the body), before its handler
// runs (path_fields.go, rejectUnknownFields): a typo can never leave a setting silently unchanged. The
// OAuth callback and Lark's events read their raw input themselves.
func refuseUnknownFields(paths []*framework.Path) []*framework.Path {
	for _, p := range paths {
		if p.Pattern == callbackPath+"$" || strings.HasPrefix(p.Pattern, "events/") {
			continue
		}
		for _, h := range p.Operations {
			op, ok := h.(*framework.PathOperation)
			if !ok || op.Callback == nil {
				continue
			}
			handler := op.Callback
			op.Callback = func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
				if resp := rejectUnknownFields(req, d); resp != nil {
					return resp, nil
				}
				return handler(ctx, req, d)
			}
		}
	}
	return paths
}
