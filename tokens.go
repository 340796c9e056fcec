package larksecrets

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/sync/singleflight"

	"github.com/lark-vault/vault-plugin-secrets-lark/clock"
	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
)

const (
	tokenStoragePrefix = "tokens/"
	tokenEntryVersion  = 1

	// minRefetchInterval stops a read storm from turning into a Lark call storm when Lark keeps
	// answering with a token that is already inside our refresh window (clock skew between us and
	// Lark, or a misconfigured window).
	minRefetchInterval = time.Minute
)

func tokenStorageKey(appID string, kind tokenKind) string {
	return tokenStoragePrefix + appID + "/" + string(kind)
}

// tokenEntry is a cached app or tenant token. RefreshAt is decided when the token is fetched, so
// the hot read path is a single time comparison.
type tokenEntry struct {
	Version   int       `json:"version"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	FetchedAt time.Time `json:"fetched_at"`
	RefreshAt time.Time `json:"refresh_at"`
}

func (e *tokenEntry) fresh(now time.Time) bool { return now.Before(e.RefreshAt) }

// servable reports whether the token may still be handed out as a stale fallback: its lease must
// end before the token does.
func (e *tokenEntry) servable(now time.Time, margin time.Duration) bool {
	return e.ExpiresAt.Sub(now)-margin >= time.Second
}

// tokenService owns the app and tenant tokens: memory in front of storage in front of Lark. The hot
// path of a token read touches only the map; concurrent cold reads share one upstream call.
type tokenService struct {
	clock    clock.Clock
	logger   func() hclog.Logger
	open     func(ctx context.Context, s logical.Storage, appID string) (*appSession, error)
	writable func() bool

	mu      sync.RWMutex
	entries map[string]*tokenEntry
	// failing remembers a fetch that failed, per token, so Lark is not asked again before retryAt:
	// Lark's x-ogw-ratelimit-reset when it gave one, else a short backoff. Readers in between get a
	// still-valid cached token or a waitError, not one more call each.
	failing map[string]*fetchFailure
	// generations counts changes to each app's settings, so a fetch that started with the old
	// secret cannot put its token back after the change dropped the cache.
	generations map[string]uint64
	flight      singleflight.Group
}

func tokenCacheKey(appID string, kind tokenKind) string { return appID + "/" + string(kind) }

type fetchResult struct {
	entry   *tokenEntry
	warning string
}

// get returns a fresh app or tenant token, fetching it from Lark at most once per lifetime however
// many readers arrive together. The warning is set when a stale but still valid token is served
// because Lark could not be asked for a new one.
func (ts *tokenService) get(ctx context.Context, s logical.Storage, appID string, kind tokenKind) (*tokenEntry, string, error) {
	if e := ts.cached(appID, kind); e != nil && e.fresh(ts.clock.Now()) {
		return e, "", nil
	}
	ch := ts.flight.DoChan(tokenCacheKey(appID, kind), func() (interface{}, error) {
		// The fetch outlives any single reader: one reader giving up must not fail the others
		// waiting on the same flight.
		return ts.refresh(context.WithoutCancel(ctx), s, appID, kind)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, "", res.Err
		}
		r := res.Val.(*fetchResult)
		return r.entry, r.warning, nil
	case <-ctx.Done():
		return nil, "", ctx.Err()
	}
}

// refresh runs inside the singleflight: it re-checks memory and storage (another flight or another
// node may just have filled them) before calling Lark.
func (ts *tokenService) refresh(ctx context.Context, s logical.Storage, appID string, kind tokenKind) (*fetchResult, error) {
	gen := ts.generation(appID)
	now := ts.clock.Now()
	cached := ts.cached(appID, kind)
	if cached != nil && cached.fresh(now) {
		return &fetchResult{entry: cached}, nil
	}
	if stored, err := ts.load(ctx, s, appID, kind); err != nil {
		return nil, err
	} else if stored != nil && (cached == nil || stored.ExpiresAt.After(cached.ExpiresAt)) {
		cached = stored
		if stored.fresh(now) {
			ts.putIfGeneration(appID, kind, gen, stored)
			return &fetchResult{entry: stored}, nil
		}
	}

	sess, err := ts.open(ctx, s, appID)
	if err != nil {
		return nil, err
	}
	cfg := sess.cfg
	key := tokenCacheKey(appID, kind)
	if f := ts.failure(key); f != nil && now.Before(f.retryAt) {
		if cached != nil && cached.servable(now, cfg.LeaseSafetyMargin) {
			return &fetchResult{entry: cached, warning: staleWarning(kind, cached, f.last)}, nil
		}
		return nil, &waitError{appID: appID, kind: kind, retryAt: f.retryAt, last: f.last}
	}
	// Bound the whole fetch, retries included, well below Vault's 90 s request limit.
	fetchCtx, cancel := context.WithTimeout(ctx, time.Duration(cfg.LarkMaxAttempts)*cfg.LarkRequestTimeout+10*time.Second)
	defer cancel()
	start := ts.clock.Now()
	token, expiresIn, err := fetchFromLark(fetchCtx, sess.lark, kind)
	if err != nil {
		ts.recordFailure(key, err)
		if cached != nil && cached.servable(ts.clock.Now(), cfg.LeaseSafetyMargin) {
			ts.logger().Warn("serving cached token because Lark could not issue a new one",
				"app_id", appID, "kind", kind, "error", err)
			return &fetchResult{entry: cached, warning: staleWarning(kind, cached, err)}, nil
		}
		return nil, err
	}
	ts.clearFailure(key)

	// Expiry counts from the moment the request was sent, so the recorded expiry is never later
	// than Lark's.
	entry := &tokenEntry{Version: tokenEntryVersion, Token: token, ExpiresAt: start.Add(expiresIn), FetchedAt: start}
	entry.RefreshAt = entry.ExpiresAt.Add(-cfg.TokenRefreshWindow)
	if earliest := start.Add(minRefetchInterval); entry.RefreshAt.Before(earliest) {
		entry.RefreshAt = earliest
	}
	if latest := entry.ExpiresAt.Add(-cfg.LeaseSafetyMargin); entry.RefreshAt.After(latest) {
		entry.RefreshAt = latest
	}

	// Only a node that may write keeps the token in storage; any node may serve it from memory.
	if ts.writable() && ts.generation(appID) == gen {
		if err := ts.store(ctx, s, appID, kind, entry); err != nil {
			// The token is still good; losing the stored copy only costs one extra fetch later.
			ts.logger().Warn("could not store fetched token", "app_id", appID, "kind", kind, "error", err)
		}
	}
	ts.putIfGeneration(appID, kind, gen, entry)
	return &fetchResult{entry: entry}, nil
}

func staleWarning(kind tokenKind, cached *tokenEntry, err error) string {
	return fmt.Sprintf("serving the cached %s, valid until %s, because Lark could not issue a new one: %v",
		kind.larkName(), cached.ExpiresAt.UTC().Format(time.RFC3339), err)
}

type fetchFailure struct {
	n       int
	retryAt time.Time
	last    error
}

// fetchBackoff is the wait after n failed fetches in a row: 2 s doubling, at most 30 s, so a token
// comes back within half a minute of Lark recovering.
func fetchBackoff(n int) time.Duration {
	d := 2 * time.Second
	for i := 1; i < n && d < 30*time.Second; i++ {
		d *= 2
	}
	return min(d, 30*time.Second)
}

func (ts *tokenService) failure(key string) *fetchFailure {
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	return ts.failing[key]
}

func (ts *tokenService) recordFailure(key string, err error) {
	wait := time.Duration(0)
	var le *lark.Error
	if errors.As(err, &le) {
		wait = le.RetryAfter
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	f := ts.failing[key]
	if f == nil {
		f = &fetchFailure{}
		ts.failing[key] = f
	}
	f.n++
	f.last = err
	f.retryAt = ts.clock.Now().Add(max(wait, fetchBackoff(f.n)))
}

func (ts *tokenService) clearFailure(key string) {
	ts.mu.Lock()
	delete(ts.failing, key)
	ts.mu.Unlock()
}

func fetchFromLark(ctx context.Context, app *lark.App, kind tokenKind) (string, time.Duration, error) {
	switch kind {
	case kindApp:
		t, err := app.AppAccessToken(ctx)
		if err != nil {
			return "", 0, err
		}
		return t.AppAccessToken, t.ExpiresIn, nil
	case kindTenant:
		t, err := app.TenantAccessToken(ctx)
		if err != nil {
			return "", 0, err
		}
		return t.TenantAccessToken, t.ExpiresIn, nil
	}
	return "", 0, fmt.Errorf("unknown token kind %q", kind)
}

// rejected drops a token that Lark refused on a business call (expired early, revoked), in memory
// and storage, so the next get fetches a new one. Only the rejected token is dropped: another
// caller may already have replaced it.
func (ts *tokenService) rejected(ctx context.Context, s logical.Storage, appID string, kind tokenKind, token string) {
	ts.mu.Lock()
	if e := ts.entries[tokenCacheKey(appID, kind)]; e != nil && e.Token == token {
		delete(ts.entries, tokenCacheKey(appID, kind))
	}
	ts.mu.Unlock()
	if !ts.writable() {
		return
	}
	if stored, err := ts.load(ctx, s, appID, kind); err == nil && stored != nil && stored.Token == token {
		if err := s.Delete(ctx, tokenStorageKey(appID, kind)); err != nil {
			ts.logger().Warn("could not drop a rejected token from storage", "app_id", appID, "kind", kind, "error", err)
		}
	}
}

func (ts *tokenService) cached(appID string, kind tokenKind) *tokenEntry {
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	return ts.entries[tokenCacheKey(appID, kind)]
}

func (ts *tokenService) generation(appID string) uint64 {
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	return ts.generations[appID]
}

func (ts *tokenService) putIfGeneration(appID string, kind tokenKind, gen uint64, e *tokenEntry) {
	ts.mu.Lock()
	if ts.generations[appID] == gen {
		ts.entries[tokenCacheKey(appID, kind)] = e
	}
	ts.mu.Unlock()
}

// forget drops one token from memory (another node changed it in storage).
func (ts *tokenService) forget(appID string, kind tokenKind) {
	ts.mu.Lock()
	delete(ts.entries, tokenCacheKey(appID, kind))
	ts.mu.Unlock()
}

// forgetApp drops an app's tokens from memory and stops fetches that started before.
func (ts *tokenService) forgetApp(appID string) {
	ts.mu.Lock()
	ts.generations[appID]++
	for _, k := range allTokenKinds {
		delete(ts.entries, tokenCacheKey(appID, k))
		delete(ts.failing, tokenCacheKey(appID, k)) // a new secret or host deserves a fresh try
	}
	ts.mu.Unlock()
}

// drop forgets an app's tokens in storage and memory, after its secret or host changed.
func (ts *tokenService) drop(ctx context.Context, s logical.Storage, appID string) error {
	for _, kind := range allTokenKinds {
		if err := s.Delete(ctx, tokenStorageKey(appID, kind)); err != nil {
			return fmt.Errorf("dropping cached %s token of %s: %w", kind, appID, err)
		}
	}
	ts.forgetApp(appID)
	return nil
}

// storedApps lists the apps with a token in storage (the sweep keeps those warm).
func (ts *tokenService) storedApps(ctx context.Context, s logical.Storage) ([]string, error) {
	return s.List(ctx, tokenStoragePrefix)
}

func (ts *tokenService) load(ctx context.Context, s logical.Storage, appID string, kind tokenKind) (*tokenEntry, error) {
	raw, err := s.Get(ctx, tokenStorageKey(appID, kind))
	if err != nil {
		return nil, fmt.Errorf("reading cached %s token of %s: %w", kind, appID, err)
	}
	if raw == nil {
		return nil, nil
	}
	var e tokenEntry
	if err := raw.DecodeJSON(&e); err != nil {
		// A damaged cache entry is not worth failing a read over: fetch a new token instead.
		ts.logger().Warn("ignoring unreadable cached token", "app_id", appID, "kind", kind, "error", err)
		return nil, nil
	}
	if e.Token == "" {
		return nil, nil
	}
	return &e, nil
}

func (ts *tokenService) store(ctx context.Context, s logical.Storage, appID string, kind tokenKind, e *tokenEntry) error {
	entry, err := logical.StorageEntryJSON(tokenStorageKey(appID, kind), e)
	if err != nil {
		return err
	}
	return s.Put(ctx, entry)
}
