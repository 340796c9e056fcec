// Package larksecrets is a Vault secrets engine for Feishu / Lark. It keeps each Lark app's
// app_secret in Vault's storage and hands out the app's access tokens as short, non-renewable
// leases.
package larksecrets

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/sync/singleflight"

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
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}

// backend holds everything one mount needs. Multiplexing serves several mounts from one process,
// so nothing here may live in package globals.
type backend struct {
	*framework.Backend

	clock      clock.Clock
	httpClient *http.Client

	configMu sync.RWMutex
	config   *configEntry // cached; nil until first read, reset by Invalidate

	appsMu sync.RWMutex
	apps   map[string]*appEntry // cached app entries, dropped on write, delete and Invalidate

	tokens *tokenCache
	grants *grantLocks

	// stateMu makes redeeming an OAuth state (read, then delete) one step.
	stateMu sync.Mutex

	sweeper *sweeper
	metrics *metrics

	// mount is the path this backend is mounted at, as last seen on a request; notices sent by the
	// periodic sweep use it in the commands they suggest.
	mount atomic.Value
}

// HandleRequest notes the mount path of every request before the framework routes it.
func (b *backend) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	b.noteMount(req)
	return b.Backend.HandleRequest(ctx, req)
}

func (b *backend) noteMount(req *logical.Request) {
	if req != nil && req.MountPoint != "" {
		b.mount.Store(req.MountPoint)
	}
}

func (b *backend) mountName() string {
	if m, ok := b.mount.Load().(string); ok && m != "" {
		return m
	}
	return "<mount>/"
}

// newBackend builds a backend with an injectable clock and HTTP client (nil: a pooled default), so
// tests can drive time and point at the in-process emulator.
func newBackend(clk clock.Clock, httpClient *http.Client) *backend {
	if httpClient == nil {
		httpClient = newHTTPClient()
	}
	b := &backend{
		clock:      clk,
		httpClient: httpClient,
		tokens:     newTokenCache(),
		grants:     newGrantLocks(),
		apps:       map[string]*appEntry{},
		sweeper:    newSweeper(),
		metrics:    newMetrics(),
	}
	b.Backend = &framework.Backend{
		Help:           strings.TrimSpace(backendHelp),
		BackendType:    logical.TypeLogical,
		RunningVersion: Version,
		PathsSpecial: &logical.Paths{
			// Lark redirects a browser, which has no Vault token, to the callback; the single-use
			// state it carries is what authorizes the request.
			Unauthenticated: []string{callbackPath},
			// Seal wrap (Enterprise) adds a second layer over the barrier for the entries that hold
			// secrets: app secrets, cached access tokens and user grants.
			SealWrapStorage: []string{
				appStoragePrefix,
				tokenStoragePrefix,
				grantStoragePrefix,
				oauthStatePrefix,
				noticePrefix,
			},
		},
		Paths: framework.PathAppend(
			pathConfig(b),
			pathApps(b),
			pathAccessTokens(b),
			pathUserTokens(b),
			pathOAuth(b),
			pathReauth(b),
			pathSweep(b),
			pathMetrics(b),
		),
		Secrets: []*framework.Secret{
			secretAccessToken(b, kindApp),
			secretAccessToken(b, kindTenant),
			secretUserToken(),
		},
		Invalidate:   b.invalidate,
		PeriodicFunc: b.periodic,
	}
	return b
}

// newHTTPClient returns a client with its own pooled transport. Per-attempt timeouts are set by the
// Lark client; these bound the connection phases so a black-holed host fails fast.
func newHTTPClient() *http.Client {
	transport := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 15 * time.Second,
		MaxIdleConns:          32,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{Transport: transport}
}

// invalidate drops in-memory copies when another node (or a replication stream) changed storage.
func (b *backend) invalidate(_ context.Context, key string) {
	switch {
	case key == configStorageKey:
		b.configMu.Lock()
		b.config = nil
		b.configMu.Unlock()
	case strings.HasPrefix(key, appStoragePrefix):
		appID := strings.TrimPrefix(key, appStoragePrefix)
		b.forgetApp(appID)
		b.tokens.forgetApp(appID)
	case strings.HasPrefix(key, tokenStoragePrefix):
		rest := strings.TrimPrefix(key, tokenStoragePrefix)
		if appID, kind, ok := strings.Cut(rest, "/"); ok {
			b.tokens.forget(appID, tokenKind(kind))
		}
	}
}

// tokenCache is the in-memory layer in front of storage: the hot path of a token read touches only
// this map. The singleflight group makes concurrent cold reads share one upstream call.
type tokenCache struct {
	mu      sync.RWMutex
	entries map[string]*tokenEntry
	// generations counts changes to each app's settings, so a fetch that started with the old
	// secret cannot put its token back after the change dropped the cache.
	generations map[string]uint64
	flight      singleflight.Group
}

func newTokenCache() *tokenCache {
	return &tokenCache{entries: make(map[string]*tokenEntry), generations: make(map[string]uint64)}
}

func (c *tokenCache) generation(appID string) uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.generations[appID]
}

func (c *tokenCache) putIfGeneration(appID string, kind tokenKind, gen uint64, e *tokenEntry) {
	c.mu.Lock()
	if c.generations[appID] == gen {
		c.entries[tokenCacheKey(appID, kind)] = e
	}
	c.mu.Unlock()
}

func tokenCacheKey(appID string, kind tokenKind) string { return appID + "/" + string(kind) }

func (c *tokenCache) get(appID string, kind tokenKind) *tokenEntry {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.entries[tokenCacheKey(appID, kind)]
}

func (c *tokenCache) forget(appID string, kind tokenKind) {
	c.mu.Lock()
	delete(c.entries, tokenCacheKey(appID, kind))
	c.mu.Unlock()
}

func (c *tokenCache) forgetApp(appID string) {
	c.mu.Lock()
	c.generations[appID]++
	for _, k := range allTokenKinds {
		delete(c.entries, tokenCacheKey(appID, k))
	}
	c.mu.Unlock()
}
