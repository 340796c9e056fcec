package larksecrets

import (
	"context"
	"fmt"
	"regexp"
	"sync"
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
// costs nothing: memory remembers which tenants storage holds.
type tenantStore struct {
	clock clock.Clock

	mu    sync.Mutex
	known map[string]bool // "<app>/<tenant_key>" → stored
}

func newTenantStore(clk clock.Clock) *tenantStore {
	return &tenantStore{clock: clk, known: map[string]bool{}}
}

func tenantStorageKey(appID, tk string) string { return tenantStoragePrefix + appID + "/" + tk }

func (ts *tenantStore) isKnown(appID, tk string) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.known[appID+"/"+tk]
}

func (ts *tenantStore) setKnown(appID, tk string, known bool) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if known {
		ts.known[appID+"/"+tk] = true
	} else {
		delete(ts.known, appID+"/"+tk)
	}
}

func (ts *tenantStore) load(ctx context.Context, s logical.Storage, appID, tk string) (*tenantEntry, error) {
	raw, err := s.Get(ctx, tenantStorageKey(appID, tk))
	if err != nil || raw == nil {
		return nil, err
	}
	var e tenantEntry
	if err := raw.DecodeJSON(&e); err != nil {
		return nil, fmt.Errorf("decoding tenant %s of %s: %w", tk, appID, err)
	}
	return &e, nil
}

func (ts *tenantStore) put(ctx context.Context, s logical.Storage, appID string, e *tenantEntry) error {
	e.Version = tenantEntryVersion
	entry, err := logical.StorageEntryJSON(tenantStorageKey(appID, e.TenantKey), e)
	if err != nil {
		return err
	}
	if err := s.Put(ctx, entry); err != nil {
		return err
	}
	ts.setKnown(appID, e.TenantKey, true)
	return nil
}

// seen records a tenant Lark issued a token for, once.
func (ts *tenantStore) seen(ctx context.Context, s logical.Storage, appID, tk string) error {
	if ts.isKnown(appID, tk) {
		return nil
	}
	existing, err := ts.load(ctx, s, appID, tk)
	if err != nil {
		return err
	}
	if existing != nil {
		ts.setKnown(appID, tk, true)
		return nil
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
	if err := s.Delete(ctx, tenantStorageKey(appID, tk)); err != nil {
		return err
	}
	ts.setKnown(appID, tk, false)
	return nil
}

// list returns the app's tenant keys with what is known about each.
func (ts *tenantStore) list(ctx context.Context, s logical.Storage, appID string) ([]string, map[string]interface{}, error) {
	keys, err := s.List(ctx, tenantStoragePrefix+appID+"/")
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

// forget drops the memory of one tenant after storage changed elsewhere.
func (ts *tenantStore) forget(appID, tk string) { ts.setKnown(appID, tk, false) }

// dropApp deletes every tenant of a deleted app.
func (ts *tenantStore) dropApp(ctx context.Context, s logical.Storage, appID string) error {
	keys, err := s.List(ctx, tenantStoragePrefix+appID+"/")
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
