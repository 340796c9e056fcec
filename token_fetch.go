package larksecrets

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

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

var errAppNotConfigured = errors.New("app not configured")

type fetchResult struct {
	entry   *tokenEntry
	warning string
}

// accessToken returns a fresh app or tenant token, fetching it from Lark at most once per lifetime
// however many readers arrive together. The warning is set when a stale but still valid token is
// served because Lark could not be asked for a new one.
func (b *backend) accessToken(ctx context.Context, s logical.Storage, appID string, kind tokenKind) (*tokenEntry, string, error) {
	if e := b.tokens.get(appID, kind); e != nil && e.fresh(b.clock.Now()) {
		return e, "", nil
	}
	ch := b.tokens.flight.DoChan(tokenCacheKey(appID, kind), func() (interface{}, error) {
		// The fetch outlives any single reader: one reader giving up must not fail the others
		// waiting on the same flight.
		return b.refreshAccessToken(context.WithoutCancel(ctx), s, appID, kind)
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

// refreshAccessToken runs inside the singleflight: it re-checks memory and storage (another flight
// or another node may just have filled them) before calling Lark.
func (b *backend) refreshAccessToken(ctx context.Context, s logical.Storage, appID string, kind tokenKind) (*fetchResult, error) {
	gen := b.tokens.generation(appID)
	now := b.clock.Now()
	cached := b.tokens.get(appID, kind)
	if cached != nil && cached.fresh(now) {
		return &fetchResult{entry: cached}, nil
	}
	if stored, err := b.loadToken(ctx, s, appID, kind); err != nil {
		return nil, err
	} else if stored != nil && (cached == nil || stored.ExpiresAt.After(cached.ExpiresAt)) {
		cached = stored
		if stored.fresh(now) {
			b.tokens.putIfGeneration(appID, kind, gen, stored)
			return &fetchResult{entry: stored}, nil
		}
	}

	cfg, err := b.getConfig(ctx, s)
	if err != nil {
		return nil, err
	}
	app, err := b.getApp(ctx, s, appID)
	if err != nil {
		return nil, err
	}
	if app == nil {
		return nil, errAppNotConfigured
	}
	client, err := b.larkClient(app, cfg)
	if err != nil {
		return nil, err
	}

	// Bound the whole fetch, retries included, well below Vault's 90 s request limit.
	fetchCtx, cancel := context.WithTimeout(ctx, time.Duration(cfg.LarkMaxAttempts)*cfg.LarkRequestTimeout+10*time.Second)
	defer cancel()
	start := b.clock.Now()
	token, expiresIn, err := fetchFromLark(fetchCtx, client, app, kind)
	if err != nil {
		if cached != nil && cached.servable(b.clock.Now(), cfg.LeaseSafetyMargin) {
			b.Logger().Warn("serving cached token because Lark could not issue a new one",
				"app_id", appID, "kind", kind, "error", err)
			return &fetchResult{entry: cached, warning: fmt.Sprintf(
				"serving the cached %s, valid until %s, because Lark could not issue a new one: %v",
				kind.larkName(), cached.ExpiresAt.UTC().Format(time.RFC3339), err)}, nil
		}
		return nil, err
	}

	// Expiry counts from the moment the request was sent, so the recorded expiry is never later
	// than Lark's.
	entry := &tokenEntry{
		Version:   tokenEntryVersion,
		Token:     token,
		ExpiresAt: start.Add(expiresIn),
		FetchedAt: start,
	}
	entry.RefreshAt = entry.ExpiresAt.Add(-cfg.TokenRefreshWindow)
	if earliest := start.Add(minRefetchInterval); entry.RefreshAt.Before(earliest) {
		entry.RefreshAt = earliest
	}
	if latest := entry.ExpiresAt.Add(-cfg.LeaseSafetyMargin); entry.RefreshAt.After(latest) {
		entry.RefreshAt = latest
	}

	// Only a node that may write keeps the token in storage; any node may serve it from memory.
	if b.WriteSafeReplicationState() && b.tokens.generation(appID) == gen {
		if err := b.storeToken(ctx, s, appID, kind, entry); err != nil {
			// The token is still good; losing the stored copy only costs one extra fetch later.
			b.Logger().Warn("could not store fetched token", "app_id", appID, "kind", kind, "error", err)
		}
	}
	b.tokens.putIfGeneration(appID, kind, gen, entry)
	return &fetchResult{entry: entry}, nil
}

func fetchFromLark(ctx context.Context, client *lark.App, app *appEntry, kind tokenKind) (string, time.Duration, error) {
	switch kind {
	case kindApp:
		t, err := client.AppAccessToken(ctx)
		if err != nil {
			return "", 0, err
		}
		return t.AppAccessToken, t.ExpiresIn, nil
	case kindTenant:
		t, err := client.TenantAccessToken(ctx)
		if err != nil {
			return "", 0, err
		}
		return t.TenantAccessToken, t.ExpiresIn, nil
	}
	return "", 0, fmt.Errorf("unknown token kind %q", kind)
}

func (b *backend) larkClient(app *appEntry, cfg *configEntry) (*lark.App, error) {
	c, err := lark.New(lark.Config{
		Brand:           lark.Brand(app.Brand),
		BaseURL:         app.BaseURL,
		AccountsBaseURL: app.AccountsBaseURL,
		HTTPClient:      b.httpClient,
		Timeout:         cfg.LarkRequestTimeout,
		MaxAttempts:     cfg.LarkMaxAttempts,
		UserAgent:       "vault-plugin-secrets-lark/" + Version,
		Observe:         b.metrics.observeCall,
	})
	if err != nil {
		return nil, err
	}
	return c.App(lark.AppCredentials{AppID: app.AppID, AppSecret: app.AppSecret, UserTokenEndpoint: app.tokenEndpoint()}), nil
}

func (b *backend) loadToken(ctx context.Context, s logical.Storage, appID string, kind tokenKind) (*tokenEntry, error) {
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
		b.Logger().Warn("ignoring unreadable cached token", "app_id", appID, "kind", kind, "error", err)
		return nil, nil
	}
	if e.Token == "" {
		return nil, nil
	}
	return &e, nil
}

func (b *backend) storeToken(ctx context.Context, s logical.Storage, appID string, kind tokenKind, e *tokenEntry) error {
	entry, err := logical.StorageEntryJSON(tokenStorageKey(appID, kind), e)
	if err != nil {
		return err
	}
	return s.Put(ctx, entry)
}
