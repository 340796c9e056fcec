package larksecrets

import "strings"

// storageArea is one prefix (or, with exact, one key) of the mount's storage: who owns it, whether
// it is seal-wrapped, what it holds, and how memory follows a change made elsewhere.
type storageArea struct {
	prefix string
	exact  bool
	owner  string
	// sealWrap declares the area to Vault's seal wrapping (Enterprise): a second layer over the
	// barrier for the entries that hold secrets.
	sealWrap bool
	holds    string
	// invalidate drops what memory holds for key (the storage key without prefix) after another
	// node or a replication stream changed it; nil where nothing is kept in memory.
	invalidate func(b *backend, key string)
}

// storageAreas is every storage prefix of the mount; nothing is stored anywhere else
// (TestEveryStoredKeyHasAnArea). backend.go derives the seal-wrap list and Invalidate from it.
var storageAreas = []storageArea{
	{prefix: configStorageKey, exact: true, owner: "configStore (config.go)",
		holds:      "the mount's settings",
		invalidate: func(b *backend, _ string) { b.config.invalidate() }},
	{prefix: appStoragePrefix, owner: "appStore (app.go)", sealWrap: true,
		holds: "apps/<app_id>: each app with its app_secret, verification token and encrypt key",
		invalidate: func(b *backend, appID string) {
			b.apps.invalidate(appID)
			b.sessions.forget(appID)
			b.tokens.forgetApp(appID) // a fetch with the old secret must not put its token back
		}},
	{prefix: tokenStoragePrefix, owner: "tokenService (tokens.go)", sealWrap: true,
		holds: "tokens/<app_id>/<kind>[/<tenant_key>]: cached app and tenant access tokens",
		invalidate: func(b *backend, key string) {
			if ref, ok := parseTokenRef(key); ok {
				b.tokens.forgetRef(ref)
			}
		}},
	{prefix: ticketStoragePrefix, owner: "ticketStore (ticket.go)", sealWrap: true,
		holds:      "tickets/<app_id>: a store app's newest app_ticket",
		invalidate: func(b *backend, appID string) { b.tickets.invalidate(appID) }},
	{prefix: tenantStoragePrefix, owner: "tenantStore (tenant.go)",
		holds:      "tenants/<app_id>/<tenant_key>: the tenants known to serve a store app",
		invalidate: func(b *backend, key string) { b.tenants.invalidate(key) }},
	{prefix: appStatusPrefix, owner: "appStatusStore (app_status.go)",
		holds:      "app-status/<app_id>: an app whose setup Lark refuses",
		invalidate: func(b *backend, appID string) { b.appStatus.invalidate(appID) }},
	{prefix: grantStoragePrefix, owner: "grantStore (grant_store.go)", sealWrap: true,
		holds: "users/<app_id>/<slot>: user grants with their access and single-use refresh tokens",
		invalidate: func(b *backend, key string) {
			if id, ok := parseGrantID(key); ok {
				b.grants.invalidate(id)
			}
		}},
	{prefix: slotStoragePrefix, owner: "slotStore (identity.go)",
		holds:      "slots/<app_id>/<slot>: the Lark user a slot is bound to",
		invalidate: func(b *backend, key string) { b.slots.invalidate(key) }},
	{prefix: oauthStatePrefix, owner: "stateStore (oauth_state.go)", sealWrap: true,
		holds: "oauth-state/<sha256 of state>: pending authorizations with their PKCE verifiers"},
	{prefix: devicePrefix, owner: "deviceLogins (device_login.go)", sealWrap: true,
		holds: "device/<app_id>/<slot>: device logins, pending ones with their device codes",
		invalidate: func(b *backend, key string) {
			if id, ok := parseGrantID(key); ok {
				b.devices.invalidate(id)
			}
		}},
	{prefix: rollbackPrefix, owner: "rollbackStore (rollback.go)",
		holds: "rollback/<app_id>: grants found holding refresh tokens Lark had already rotated (storage rollback)"},
	{prefix: noticePrefix, owner: "notifier (notify.go, notice.go)", sealWrap: true,
		holds: "notify/<app_id>/<slot>/<level>: queued notices"},
	{prefix: notifyStateKey, exact: true, owner: "notifier (notify.go)",
		holds: "where the notice schedule stands"},
	{prefix: dueIndexPrefix, owner: "grantStore (grant_store.go, grant_index.go)",
		holds: "due/<unix minute>/<app_id>/<slot>: the due index, each grant at the time the sweep must next look at it"},
	{prefix: whoIndexPrefix, owner: "grantStore (grant_store.go, grant_index.go)",
		holds: "who/<app_id>/<hash of a Lark user id>/<slot>: the grants of each user, for revocation events"},
	{prefix: levelCountsPrefix, owner: "levelCounts (grant_index.go)",
		holds:      "counts/<app_id>: the app's grants by level, for the status path and the grants gauge",
		invalidate: func(b *backend, _ string) { b.grants.counts.invalidate() }},
	{prefix: sweepStateKey, exact: true, owner: "sweeper (sweep_walk.go)",
		holds: "where the sweep stands: the due index drained up to a minute, the walk's position, the thresholds the indexes were built with"},
	{prefix: sweepCursorKey, exact: true, owner: "sweeper (sweep_walk.go)",
		holds: "the cursor of versions before the due index; deleted by the first run of this one"},
	{prefix: eventIDPrefix, owner: "seenEvents (event_ids.go)",
		holds: "event-ids/<app_id>/<hash of event id>: events acted on, for de-duplication"},
}

// owns reports whether storageKey is in the area, and the key without the prefix.
func (a *storageArea) owns(storageKey string) (string, bool) {
	if a.exact {
		return "", storageKey == a.prefix
	}
	return strings.CutPrefix(storageKey, a.prefix)
}

// areaOf is the area a storage key is in, or nil.
func areaOf(storageKey string) (*storageArea, string) {
	for i := range storageAreas {
		if key, ok := storageAreas[i].owns(storageKey); ok {
			return &storageAreas[i], key
		}
	}
	return nil, ""
}

// sealWrapPrefixes is the seal-wrapped areas, for the backend's PathsSpecial.
func sealWrapPrefixes() []string {
	var out []string
	for _, a := range storageAreas {
		if a.sealWrap {
			out = append(out, a.prefix)
		}
	}
	return out
}
