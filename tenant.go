package larksecrets

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/lark-vault/vault-plugin-secrets-lark/clock"
)

const (
	// tenantStoragePrefix lists the tenants of each store app: tenants/<app_id>/<tenant_key>.
	tenantStoragePrefix = "tenants/"
	tenantEntryVersion  = 1

	tenantSourceAppOpen = "app_open"
	tenantSourceRead    = "read"
)

// Tenant keys appear in paths, storage keys and policies. Lark's are 16 letters and digits; the
// pattern allows what such identifiers plausibly hold and nothing that could change a path's meaning.
var tenantKeyPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

func validateTenantKey(tk string) error {
	switch {
	case tk == "":
		return fmt.Errorf("tenant_key is required")
	case !tenantKeyPattern.MatchString(tk) || len(tk) > 128:
		return fmt.Errorf("tenant_key %q is not a Lark tenant key (1-128 letters, digits, '_', '.' or '-', such as 736588c92lxf175d)", truncateForMessage(tk))
	}
	return nil
}

// tenantEntry is one tenant known to serve a store app: it installed the app (app_open event) or
// Lark issued a tenant token for it.
type tenantEntry struct {
	Version         int       `json:"version"`
	TenantKey       string    `json:"tenant_key"`
	FirstSeenAt     time.Time `json:"first_seen_at"`
	Source          string    `json:"source"`
	InstalledAt     time.Time `json:"installed_at,omitempty"`
	InstallerOpenID string    `json:"installer_open_id,omitempty"`
}

// tenantStore owns the list of each store app's tenants. Recording a tenant that is already known
// costs nothing: memory (cachedStore, keyed "<app>/<tenant_key>") holds the tenants storage holds,
// up to tenantMemoryLimit of them, since a marketplace app can serve any number of tenants.
type tenantStore struct {
	clock clock.Clock

	mem cachedStore[tenantEntry, tenantLayout]
}

// tenantMemoryLimit bounds the tenants kept in memory; a tenant no longer there costs one storage
// read when it is next seen.
const tenantMemoryLimit = 10000

type tenantLayout struct{}

var tenantSpec = &storeSpec[tenantEntry]{
	prefix: tenantStoragePrefix,
	what: func(key string) string {
		appID, tk, _ := strings.Cut(key, "/")
		return "tenant " + tk + " of " + appID
	},
	version:   tenantEntryVersion,
	versionOf: func(e *tenantEntry) *int { return &e.Version },
	limit:     tenantMemoryLimit,
}

func (tenantLayout) spec() *storeSpec[tenantEntry] { return tenantSpec }

func newTenantStore(clk clock.Clock) *tenantStore {
	return &tenantStore{clock: clk}
}

func tenantKey(appID, tk string) string { return appID + "/" + tk }

func tenantStorageKey(appID, tk string) string { return tenantStoragePrefix + tenantKey(appID, tk) }

// load reads the stored entry, bypassing memory.
func (ts *tenantStore) load(ctx context.Context, s logical.Storage, appID, tk string) (*tenantEntry, error) {
	return ts.mem.load(ctx, s, tenantKey(appID, tk))
}

func (ts *tenantStore) put(ctx context.Context, s logical.Storage, appID string, e *tenantEntry) error {
	return ts.mem.put(ctx, s, tenantKey(appID, e.TenantKey), e)
}

// seen records a tenant Lark issued a token for, once.
func (ts *tenantStore) seen(ctx context.Context, s logical.Storage, appID, tk string) error {
	existing, err := ts.mem.get(ctx, s, tenantKey(appID, tk))
	if err != nil || existing != nil {
		return err
	}
	return ts.put(ctx, s, appID, &tenantEntry{TenantKey: tk, FirstSeenAt: ts.clock.Now().UTC(), Source: tenantSourceRead})
}

// installed records a tenant's app_open event: the installation time and installer are kept, also
// for a tenant first seen by a read.
func (ts *tenantStore) installed(ctx context.Context, s logical.Storage, appID, tk string, at time.Time, installer string) error {
	existing, err := ts.load(ctx, s, appID, tk)
	if err != nil {
		return err
	}
	e := &tenantEntry{TenantKey: tk, FirstSeenAt: ts.clock.Now().UTC()}
	if existing != nil {
		e.FirstSeenAt = existing.FirstSeenAt
	}
	e.Source, e.InstalledAt, e.InstallerOpenID = tenantSourceAppOpen, at.UTC(), installer
	return ts.put(ctx, s, appID, e)
}

// removed forgets a tenant that uninstalled the app.
func (ts *tenantStore) removed(ctx context.Context, s logical.Storage, appID, tk string) error {
	return ts.mem.delete(ctx, s, tenantKey(appID, tk))
}

// list returns the app's tenant keys with what is known about each.
func (ts *tenantStore) list(ctx context.Context, s logical.Storage, appID string) ([]string, map[string]interface{}, error) {
	keys, err := ts.mem.list(ctx, s, appID+"/")
	if err != nil {
		return nil, nil, err
	}
	info := make(map[string]interface{}, len(keys))
	for _, tk := range keys {
		e, err := ts.load(ctx, s, appID, tk)
		if err != nil {
			return nil, nil, err
		}
		if e == nil {
			continue
		}
		d := map[string]interface{}{"source": e.Source, "first_seen_at": formatTime(e.FirstSeenAt)}
		if !e.InstalledAt.IsZero() {
			d["installed_at"] = formatTime(e.InstalledAt)
		}
		if e.InstallerOpenID != "" {
			d["installer_open_id"] = e.InstallerOpenID
		}
		info[tk] = d
	}
	return keys, info, nil
}

// invalidate drops the memory of one tenant ("<app>/<tenant_key>") after storage changed elsewhere.
func (ts *tenantStore) invalidate(key string) { ts.mem.invalidate(key) }

// dropApp deletes every tenant of a deleted app.
func (ts *tenantStore) dropApp(ctx context.Context, s logical.Storage, appID string) error {
	keys, err := ts.mem.list(ctx, s, appID+"/")
	if err != nil {
		return err
	}
	for _, tk := range keys {
		if err := ts.removed(ctx, s, appID, tk); err != nil {
			return err
		}
	}
	return nil
}
