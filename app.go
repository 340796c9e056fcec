package larksecrets

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
	"github.com/lark-vault/vault-plugin-secrets-lark/lark/larkevent"
)

const (
	appStoragePrefix = "apps/"
	appEntryVersion  = 1
	operationPrefix  = "lark"
	maxSecretBytes   = 256
)

// appEntry is one Lark app as stored. AppSecret never leaves the backend except in the request
// body sent to Lark.
type appEntry struct {
	Version         int      `json:"version"`
	AppID           string   `json:"app_id"`
	AppSecret       string   `json:"app_secret"`
	Brand           string   `json:"brand"`
	BaseURL         string   `json:"base_url,omitempty"`
	AccountsBaseURL string   `json:"accounts_base_url,omitempty"`
	RedirectURI     string   `json:"redirect_uri,omitempty"`
	Scopes          []string `json:"scopes,omitempty"`
	TokenEndpoint   string   `json:"token_endpoint,omitempty"`
	LeaseMode       string   `json:"lease_mode,omitempty"`
	NotifyOpenIDs   []string `json:"notify_open_ids,omitempty"`
	NotifyUsers     bool     `json:"notify_users,omitempty"`
	// NotifyLocale is the language of this app's notices ("" means the brand's default).
	NotifyLocale    string    `json:"notify_locale,omitempty"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
	SecretUpdatedAt time.Time `json:"secret_updated_at"`

	// Where a requester's own Lark identity comes from, so that a self-service authorization can
	// only be completed by that person (see identity.go).
	IdentityMetadataKey string `json:"identity_metadata_key,omitempty"`
	IdentityAliasMount  string `json:"identity_alias_mount,omitempty"`

	// AppType is lark.AppType ("" means self_built); TenantTokenEndpoint a self-built app's
	// lark.TenantTokenEndpoint ("" means legacy).
	AppType             string `json:"app_type,omitempty"`
	TenantTokenEndpoint string `json:"tenant_token_endpoint,omitempty"`
	// NotifyTenantKey is the tenant of a store app's NotifyOpenIDs: a store app messages a person
	// only with the tenant token of that person's organisation (docs/lark-api.md §3, §8).
	NotifyTenantKey string `json:"notify_tenant_key,omitempty"`
	// The event subscription's secrets, from the developer console. Write-only like AppSecret:
	// the Verification Token authenticates events, the Encrypt Key decrypts them (path_events.go).
	VerificationToken string `json:"verification_token,omitempty"`
	EncryptKey        string `json:"encrypt_key,omitempty"`
}

// appType is the app's type after the default.
func (a *appEntry) appType() lark.AppType {
	if a.AppType == "" {
		return lark.AppTypeSelfBuilt
	}
	return lark.AppType(a.AppType)
}

func (a *appEntry) isStore() bool { return a.appType() == lark.AppTypeStore }

// tenantTokenEndpoint is a self-built app's tenant-token endpoint after the default.
func (a *appEntry) tenantTokenEndpoint() lark.TenantTokenEndpoint {
	if a.TenantTokenEndpoint == "" {
		return lark.TenantTokenLegacy
	}
	return lark.TenantTokenEndpoint(a.TenantTokenEndpoint)
}

func (a *appEntry) tokenEndpoint() lark.TokenEndpoint {
	if a.TokenEndpoint == "" {
		return lark.TokenEndpointV3
	}
	return lark.TokenEndpoint(a.TokenEndpoint)
}

// Notice languages (notify_locale): Feishu users read Chinese, Lark users mostly English.
const (
	localeZhCN = "zh_cn"
	localeEnUS = "en_us"
)

// notifyLocale is the language of the app's notices after the default: zh_cn for the Feishu brand,
// en_us for Lark.
func (a *appEntry) notifyLocale() string {
	if a.NotifyLocale != "" {
		return a.NotifyLocale
	}
	if lark.Brand(a.Brand) == lark.BrandLark {
		return localeEnUS
	}
	return localeZhCN
}

// leaseMode is the app's override, or the mount's setting.
func (a *appEntry) leaseMode(cfg *configEntry) string {
	if a != nil && a.LeaseMode != "" {
		return a.LeaseMode
	}
	return cfg.LeaseMode
}

// openBaseURL is where this app's OpenAPI calls go: the override if set, else the brand's host.
func (a *appEntry) openBaseURL() string {
	if a.BaseURL != "" {
		return a.BaseURL
	}
	return lark.Brand(a.Brand).OpenBaseURL()
}

// credentials are what the Lark client needs to act as the app.
func (a *appEntry) credentials() lark.AppCredentials {
	return lark.AppCredentials{AppID: a.AppID, AppSecret: a.AppSecret, UserTokenEndpoint: a.tokenEndpoint(),
		Type: a.appType(), TenantTokenEndpoint: a.tenantTokenEndpoint()}
}

// maxEventBodyBytes bounds an event body. The events the plugin acts on are under 4 KB; the rest of
// an app's events share the URL and are only answered. Vault's listener refuses any JSON string over
// 1 MiB itself (with HTTP 500), and an encrypted body is one string a third larger than the event,
// so the plugin's own bound must sit well below that to ever be the one that answers.
const maxEventBodyBytes = 512 << 10

// eventConfig is what the event receiver needs; ok is false while no Verification Token is set,
// since then no event can be authenticated.
func (a *appEntry) eventConfig() (larkevent.Config, bool) {
	return larkevent.Config{AppID: a.AppID, VerificationToken: a.VerificationToken, EncryptKey: a.EncryptKey,
		MaxBodyBytes: maxEventBodyBytes}, a.VerificationToken != ""
}

// fingerprintIfSet is secretFingerprint for an optional secret: "" while it is not set.
func fingerprintIfSet(secret string) string {
	if secret == "" {
		return ""
	}
	return secretFingerprint(secret)
}

// secretFingerprint lets an operator check which secret is stored without reading it: the first 8
// hex digits of its SHA-256, comparable with `printf %s "$SECRET" | sha256sum | cut -c1-8`.
func secretFingerprint(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(sum[:])[:8]
}

// appStore owns the app entries. Every token read needs its app, so entries are kept in memory
// (cachedStore: a read that raced a write or Invalidate is not kept) and dropped on write, delete
// and Invalidate. Cached entries are shared: nobody changes one in place; a write stores a new entry.
type appStore struct {
	mem cachedStore[appEntry, appLayout]
}

type appLayout struct{}

var appSpec = &storeSpec[appEntry]{
	prefix:    appStoragePrefix,
	what:      func(appID string) string { return "app " + appID },
	version:   appEntryVersion,
	versionOf: func(a *appEntry) *int { return &a.Version },
}

func (appLayout) spec() *storeSpec[appEntry] { return appSpec }

func newAppStore() *appStore { return &appStore{} }

func (as *appStore) get(ctx context.Context, s logical.Storage, appID string) (*appEntry, error) {
	return as.mem.get(ctx, s, appID)
}

// load reads the stored entry, bypassing memory, for a read-modify-write.
func (as *appStore) load(ctx context.Context, s logical.Storage, appID string) (*appEntry, error) {
	return as.mem.load(ctx, s, appID)
}

// put stores the app; the next read loads it (the caller keeps using app, so memory does not
// share it).
func (as *appStore) put(ctx context.Context, s logical.Storage, app *appEntry) error {
	return as.mem.store(ctx, s, app.AppID, app)
}

func (as *appStore) delete(ctx context.Context, s logical.Storage, appID string) error {
	return as.mem.delete(ctx, s, appID)
}

func (as *appStore) list(ctx context.Context, s logical.Storage) ([]string, error) {
	return as.mem.list(ctx, s, "")
}

// invalidate forgets the memory copy after storage changed elsewhere.
func (as *appStore) invalidate(appID string) { as.mem.invalidate(appID) }
