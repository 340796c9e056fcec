package larksecrets

import (
	"context"
	"errors"
	"fmt"
	"strings"
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

// tokenKind names an app-level token. The value is part of storage keys and secret types.
type tokenKind string

const (
	kindApp    tokenKind = "app"
	kindTenant tokenKind = "tenant"
)

// tokenKinds is the table of app-level token kinds, in the order the sweep warms them: a new kind is
// one entry here (and its Lark call in fetchEntry).
var tokenKinds = []struct {
	kind tokenKind
	// larkName is Lark's own name of the token, used in responses so readers can tell them apart.
	larkName string
}{
	{kindApp, "app_access_token"},
	{kindTenant, "tenant_access_token"},
}

// allTokenKinds is the kinds of tokenKinds.
var allTokenKinds = func() []tokenKind {
	out := make([]tokenKind, 0, len(tokenKinds))
	for _, k := range tokenKinds {
		out = append(out, k.kind)
	}
	return out
}()

// known reports whether k is in tokenKinds.
func (k tokenKind) known() bool {
	for _, e := range tokenKinds {
		if e.kind == k {
			return true
		}
	}
	return false
}

func (k tokenKind) larkName() string {
	for _, e := range tokenKinds {
		if e.kind == k {
			return e.larkName
		}
	}
	return string(k) + "_access_token"
}

// secretType is the Vault secret type of the kind's leases.
func (k tokenKind) secretType() string { return "lark_" + string(k) + "_token" }

func tokenStorageKey(appID string, kind tokenKind) string {
	return tokenRef{App: appID, Kind: kind}.storageKey()
}

// tokenRef names one cached token: an app token, a self-built app's tenant token, or the tenant
// token of one tenant of a store app (docs/lark-api.md §3: a store app has one per tenant).
type tokenRef struct {
	App    string
	Kind   tokenKind
	Tenant string // a store app's tenant key; "" otherwise
}

func tenantTokenRef(appID, tenantKey string) tokenRef {
	return tokenRef{App: appID, Kind: kindTenant, Tenant: tenantKey}
}

// key names the token in memory, in the singleflight and, under tokenStoragePrefix, in storage:
// "<app>/app", "<app>/tenant" or "<app>/tenant/<tenant_key>".
func (r tokenRef) key() string {
	if r.Tenant != "" {
		return r.App + "/" + string(r.Kind) + "/" + r.Tenant
	}
	return r.App + "/" + string(r.Kind)
}

func (r tokenRef) storageKey() string { return tokenStoragePrefix + r.key() }

// parseTokenRef reads a key as key() writes it.
func parseTokenRef(key string) (tokenRef, bool) {
	parts := strings.SplitN(key, "/", 3)
	if len(parts) < 2 || parts[0] == "" {
		return tokenRef{}, false
	}
	r := tokenRef{App: parts[0], Kind: tokenKind(parts[1])}
	if len(parts) == 3 {
		if r.Kind != kindTenant || parts[2] == "" {
			return tokenRef{}, false
		}
		r.Tenant = parts[2]
	}
	return r, r.Kind.known()
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
// path of a token read touches only the map; concurrent cold reads share one upstream call. Store
// apps add two things: their app token needs the app_ticket (tickets), and each tenant has a token
// of its own, cached under its own key.
type tokenService struct {
	clock    clock.Clock
	logger   func() hclog.Logger
	open     func(ctx context.Context, s logical.Storage, appID string) (*appSession, error)
	writable func() bool
	tickets  *ticketStore
	tenants  *tenantStore

	mu      sync.RWMutex
	entries map[string]*tokenEntry
	// generations counts changes to each app's settings, so a fetch that started with the old
	// secret cannot put its token back after the change dropped the cache.
	generations map[string]uint64
	flight      singleflight.Group
	// failing remembers a fetch that failed, per token key, so Lark is not asked again before
	// retryAt: Lark's x-ogw-ratelimit-reset when it gave one, else a short backoff. Readers in
	// between get a still-valid cached token or a backoffError, not one more call each.
	failing map[string]*fetchFailure
	// used remembers which tokens were read since the sweep last renewed them (key → struct{}):
	// the sweep keeps a store app's tokens warm only while someone reads them, so thousands of
	// tenants cost Lark calls only for the tenants in use.
	used sync.Map
}

type fetchResult struct {
	entry   *tokenEntry
	warning string
	// reissueAt is set by refreshEarly when Lark would not issue a new token before then.
	reissueAt time.Time
}

// get returns a fresh app or tenant token of a self-built app (or a store app's app token).
func (ts *tokenService) get(ctx context.Context, s logical.Storage, appID string, kind tokenKind) (*tokenEntry, string, error) {
	return ts.getRef(ctx, s, tokenRef{App: appID, Kind: kind})
}

// getRef returns a fresh token, fetching it from Lark at most once per lifetime however many
// readers arrive together. The warning is set when a stale but still valid token is served because
// Lark could not be asked for a new one.
func (ts *tokenService) getRef(ctx context.Context, s logical.Storage, ref tokenRef) (*tokenEntry, string, error) {
	key := ref.key()
	if _, seen := ts.used.Load(key); !seen {
		ts.used.Store(key, struct{}{})
	}
	if e := ts.cachedRef(ref); e != nil && e.fresh(ts.clock.Now()) {
		return e, "", nil
	}
	ch := ts.flight.DoChan(key, func() (interface{}, error) {
		// The fetch outlives any single reader: one reader giving up must not fail the others
		// waiting on the same flight.
		return ts.refresh(context.WithoutCancel(ctx), s, ref)
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

// getRefLasting is getRef for a reader that needs the token to stay valid for at least need (the
// min_ttl of a read plus the lease margin). A cached token that ends sooner is replaced first, when
// Lark would issue a new one: concurrent readers share one upstream call (a singleflight of its own,
// beside the ordinary one). When Lark would only hand back the same token (docs/lark-api.md §2: an
// app or tenant token is re-issued only in its last 30 minutes), nothing is asked of Lark and the
// answer is a *shortLifeError.
func (ts *tokenService) getRefLasting(ctx context.Context, s logical.Storage, ref tokenRef, need time.Duration) (*tokenEntry, string, error) {
	e, warning, err := ts.getRef(ctx, s, ref)
	if err != nil || need <= 0 || e.ExpiresAt.Sub(ts.clock.Now()) >= need {
		return e, warning, err
	}
	seen := e
	ch := ts.flight.DoChan(ref.key()+"#early", func() (interface{}, error) {
		return ts.refreshEarly(context.WithoutCancel(ctx), s, ref, seen)
	})
	var r *fetchResult
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, "", res.Err
		}
		r = res.Val.(*fetchResult)
	case <-ctx.Done():
		return nil, "", ctx.Err()
	}
	now := ts.clock.Now()
	if r.entry.ExpiresAt.Sub(now) >= need {
		return r.entry, "", nil
	}
	sl := &shortLifeError{ref: ref, expiresAt: r.entry.ExpiresAt}
	if !r.reissueAt.IsZero() && r.reissueAt.After(now) {
		sl.reissueAt = r.reissueAt
	}
	return nil, "", sl
}

// refreshEarly replaces the token seen before its time, inside the "#early" singleflight. It
// re-checks memory and storage (a token other than seen there is newer, and is the answer), then asks
// Lark only if Lark would issue a different token: not while seen has 30 minutes or more left, not
// within a minute of fetching seen, not during a failure backoff.
func (ts *tokenService) refreshEarly(ctx context.Context, s logical.Storage, ref tokenRef, seen *tokenEntry) (*fetchResult, error) {
	gen := ts.generation(ref.App)
	now := ts.clock.Now()
	if cur := ts.cachedRef(ref); cur != nil && cur.Token != seen.Token {
		return &fetchResult{entry: cur}, nil
	}
	if stored, err := ts.loadRef(ctx, s, ref); err != nil {
		return nil, err
	} else if stored != nil && stored.Token != seen.Token && stored.ExpiresAt.After(seen.ExpiresAt) {
		ts.putIfGeneration(ref, gen, stored)
		return &fetchResult{entry: stored}, nil
	}
	sess, err := ts.open(ctx, s, ref.App)
	if err != nil {
		return nil, err
	}
	if !alwaysReissued(sess, ref) && seen.ExpiresAt.Sub(now) >= larkReuseWindow {
		// Lark would hand back this very token; a new one comes once it enters its last 30 minutes.
		return &fetchResult{entry: seen, reissueAt: seen.ExpiresAt.Add(-larkReuseWindow)}, nil
	}
	if now.Sub(seen.FetchedAt) < minRefetchInterval {
		return &fetchResult{entry: seen}, nil
	}
	if f := ts.failure(ref.key()); f != nil && now.Before(f.retryAt) {
		return nil, &backoffError{ref: ref, retryAt: f.retryAt, last: f.last}
	}
	entry, err := ts.fetchEntry(ctx, s, sess, ref, gen)
	if err != nil {
		return nil, err
	}
	return &fetchResult{entry: entry}, nil
}

// alwaysReissued reports whether Lark issues a new token on every request for ref, whatever the
// current one's age. Only the v3 tenant token endpoint is treated so: whether the 30-minute reuse
// rule holds there is not documented (docs/lark-api.md §2b), and the emulator mints a new token
// each time.
func alwaysReissued(sess *appSession, ref tokenRef) bool {
	return ref.Kind == kindTenant && ref.Tenant == "" && sess.lark.Type() != lark.AppTypeStore &&
		sess.app.tenantTokenEndpoint() == lark.TenantTokenV3
}

// shortLifeError: the token Lark would give now does not last as long as a read's min_ttl asks.
type shortLifeError struct {
	ref       tokenRef
	expiresAt time.Time
	// reissueAt is when Lark will issue a new token (the current one's last 30 minutes begin);
	// zero when that is not known or already past.
	reissueAt time.Time
}

func (e *shortLifeError) Error() string {
	return fmt.Sprintf("the current %s expires at %s", e.ref.Kind.larkName(), e.expiresAt.UTC().Format(time.RFC3339))
}

// refresh runs inside the singleflight: it re-checks memory and storage (another flight or another
// node may just have filled them) before calling Lark.
func (ts *tokenService) refresh(ctx context.Context, s logical.Storage, ref tokenRef) (*fetchResult, error) {
	gen := ts.generation(ref.App)
	now := ts.clock.Now()
	cached := ts.cachedRef(ref)
	if cached != nil && cached.fresh(now) {
		return &fetchResult{entry: cached}, nil
	}
	if stored, err := ts.loadRef(ctx, s, ref); err != nil {
		return nil, err
	} else if stored != nil && (cached == nil || stored.ExpiresAt.After(cached.ExpiresAt)) {
		cached = stored
		if stored.fresh(now) {
			ts.putIfGeneration(ref, gen, stored)
			return &fetchResult{entry: stored}, nil
		}
	}

	sess, err := ts.open(ctx, s, ref.App)
	if err != nil {
		return nil, err
	}
	cfg := sess.cfg
	if f := ts.failure(ref.key()); f != nil && now.Before(f.retryAt) {
		if cached != nil && cached.servable(now, cfg.LeaseSafetyMargin) {
			return &fetchResult{entry: cached, warning: staleWarning(ref.Kind, cached, f.last)}, nil
		}
		return nil, &backoffError{ref: ref, retryAt: f.retryAt, last: f.last}
	}
	entry, err := ts.fetchEntry(ctx, s, sess, ref, gen)
	if err != nil {
		var gone *tenantUnavailableError
		if !errors.As(err, &gone) && cached != nil && cached.servable(ts.clock.Now(), cfg.LeaseSafetyMargin) {
			ts.logger().Warn("serving cached token because Lark could not issue a new one",
				"app_id", ref.App, "kind", ref.Kind, "tenant_key", ref.Tenant, "error", err)
			return &fetchResult{entry: cached, warning: staleWarning(ref.Kind, cached, err)}, nil
		}
		return nil, err
	}
	return &fetchResult{entry: entry}, nil
}

// fetchEntry asks Lark for a new token and keeps it (memory, and storage on a node that may write).
// A failure is recorded for the backoff, except waiting for a ticket; a tenant Lark no longer
// serves is forgotten.
func (ts *tokenService) fetchEntry(ctx context.Context, s logical.Storage, sess *appSession, ref tokenRef, gen uint64) (*tokenEntry, error) {
	cfg := sess.cfg
	// Bound the whole fetch, retries included, well below Vault's 90 s request limit. A store
	// app's tenant token may need the app token first, hence twice the budget there.
	budget := time.Duration(cfg.LarkMaxAttempts)*cfg.LarkRequestTimeout + 10*time.Second
	if ref.Tenant != "" {
		budget *= 2
	}
	fetchCtx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	start := ts.clock.Now()
	token, expiresIn, err := ts.fetch(fetchCtx, s, sess, ref)
	if err != nil {
		var gone *tenantUnavailableError
		if errors.As(err, &gone) {
			// The tenant removed the app or never had it: its old token is dead at Lark too, and
			// a made-up tenant key leaves nothing behind in memory.
			ts.dropRef(ctx, s, ref)
			ts.renewed(ref)
			return nil, err
		}
		// Waiting for a ticket asked nothing of Lark that needs spacing out (resends are paced
		// on their own), and the ticket may arrive any moment.
		var ticket *awaitTicketError
		if !errors.As(err, &ticket) {
			ts.recordFailure(ref.key(), err)
		}
		return nil, err
	}
	ts.clearFailure(ref.key())

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
	if ts.writable() && ts.generation(ref.App) == gen {
		if err := ts.store(ctx, s, ref, entry); err != nil {
			// The token is still good; losing the stored copy only costs one extra fetch later.
			ts.logger().Warn("could not store fetched token", "app_id", ref.App, "kind", ref.Kind, "tenant_key", ref.Tenant, "error", err)
		}
	}
	ts.putIfGeneration(ref, gen, entry)
	return entry, nil
}

func staleWarning(kind tokenKind, cached *tokenEntry, err error) string {
	return fmt.Sprintf("serving the cached %s, valid until %s, because Lark could not issue a new one: %v",
		kind.larkName(), cached.ExpiresAt.UTC().Format(time.RFC3339), err)
}

type fetchFailure struct {
	n       int
	retryAt time.Time
	last    error
	since   time.Time // the first failure of this streak
	at      time.Time // the latest failure
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
	now := ts.clock.Now()
	if f.n == 0 {
		f.since = now
	}
	f.n++
	f.last = err
	f.at = now
	f.retryAt = now.Add(max(wait, fetchBackoff(f.n)))
}

// appFailures returns copies of the app's current fetch failures (its app token, tenant token or
// a store app's tenants' tokens), keyed as tokenRef.key; a success clears a token's entry.
func (ts *tokenService) appFailures(appID string) map[string]fetchFailure {
	prefix := appID + "/"
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	var out map[string]fetchFailure
	for k, f := range ts.failing {
		if strings.HasPrefix(k, prefix) {
			if out == nil {
				out = map[string]fetchFailure{}
			}
			out[k] = *f
		}
	}
	return out
}

// tenantTokensHeld counts the per-tenant tokens of a store app held in memory.
func (ts *tokenService) tenantTokensHeld(appID string) int {
	prefix := appID + "/" + string(kindTenant) + "/"
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	n := 0
	for k := range ts.entries {
		if strings.HasPrefix(k, prefix) {
			n++
		}
	}
	return n
}

func (ts *tokenService) clearFailure(key string) {
	ts.mu.Lock()
	delete(ts.failing, key)
	ts.mu.Unlock()
}

// fetch asks Lark for the token ref names, through the endpoint the app's type calls for.
func (ts *tokenService) fetch(ctx context.Context, s logical.Storage, sess *appSession, ref tokenRef) (string, time.Duration, error) {
	store := sess.lark.Type() == lark.AppTypeStore
	switch {
	case ref.Kind == kindApp && store:
		return ts.fetchStoreAppToken(ctx, s, sess)
	case ref.Kind == kindApp:
		t, err := sess.lark.AppAccessToken(ctx)
		if err != nil {
			return "", 0, err
		}
		return t.AppAccessToken, t.ExpiresIn, nil
	case ref.Tenant != "":
		return ts.fetchStoreTenantToken(ctx, s, sess, ref)
	case ref.Kind == kindTenant:
		t, err := sess.lark.TenantAccessToken(ctx)
		if err != nil {
			return "", 0, err
		}
		return t.TenantAccessToken, t.ExpiresIn, nil
	}
	return "", 0, fmt.Errorf("unknown token kind %q", ref.Kind)
}

// fetchStoreAppToken turns the held app_ticket into an app token. Without a ticket Lark accepts, it
// asks Lark to push one and answers at once with awaitTicketError: the ticket arrives later, by the
// app_ticket event, and waiting for it inside a read would hold the reader for an unknown time.
func (ts *tokenService) fetchStoreAppToken(ctx context.Context, s logical.Storage, sess *appSession) (string, time.Duration, error) {
	appID := sess.app.AppID
	held, err := ts.tickets.get(ctx, s, appID)
	if err != nil {
		return "", 0, err
	}
	if held == nil {
		return "", 0, ts.tickets.awaitTicket(ctx, sess, "no app_ticket is held yet")
	}
	t, err := sess.lark.AppAccessTokenWithTicket(ctx, held.Ticket)
	if err != nil {
		if meaningOf(err) == lark.MeaningAwaitTicket {
			ts.tickets.rejected(ctx, s, appID, held.Ticket, ts.writable())
			return "", 0, ts.tickets.awaitTicket(ctx, sess, "Lark no longer accepts the held app_ticket")
		}
		return "", 0, err
	}
	return t.AppAccessToken, t.ExpiresIn, nil
}

// fetchStoreTenantToken gets one tenant's token with the app token. An app token Lark refuses is
// dropped and fetched again, once; a tenant Lark does not serve is tenantUnavailableError.
func (ts *tokenService) fetchStoreTenantToken(ctx context.Context, s logical.Storage, sess *appSession, ref tokenRef) (string, time.Duration, error) {
	appRef := tokenRef{App: ref.App, Kind: kindApp}
	for attempt := 1; ; attempt++ {
		appTok, _, err := ts.getRef(ctx, s, appRef)
		if err != nil {
			return "", 0, err
		}
		t, err := sess.lark.TenantAccessTokenFor(ctx, appTok.Token, ref.Tenant)
		if err == nil {
			if ts.writable() {
				if err := ts.tenants.seen(ctx, s, ref.App, ref.Tenant); err != nil {
					ts.logger().Warn("could not record a tenant", "app_id", ref.App, "tenant_key", ref.Tenant, "error", err)
				}
			}
			return t.TenantAccessToken, t.ExpiresIn, nil
		}
		switch meaningOf(err) {
		case lark.MeaningStaleToken:
			if attempt == 1 {
				ts.logger().Warn("Lark rejected the cached app token of a store app; fetching a new one", "app_id", ref.App)
				ts.rejectedRef(ctx, s, appRef, appTok.Token)
				continue
			}
		case lark.MeaningTenantUnavailable:
			return "", 0, &tenantUnavailableError{appID: ref.App, tenantKey: ref.Tenant, err: err}
		}
		return "", 0, err
	}
}

// rejectedRef drops a token that Lark refused on a business call (expired early, revoked), in memory
// and storage, so the next get fetches a new one. Only the rejected token is dropped: another
// caller may already have replaced it.
func (ts *tokenService) rejectedRef(ctx context.Context, s logical.Storage, ref tokenRef, token string) {
	ts.mu.Lock()
	if e := ts.entries[ref.key()]; e != nil && e.Token == token {
		delete(ts.entries, ref.key())
	}
	ts.mu.Unlock()
	if !ts.writable() {
		return
	}
	if stored, err := ts.loadRef(ctx, s, ref); err == nil && stored != nil && stored.Token == token {
		if err := s.Delete(ctx, ref.storageKey()); err != nil {
			ts.logger().Warn("could not drop a rejected token from storage", "app_id", ref.App, "kind", ref.Kind, "error", err)
		}
	}
}

// dropRef forgets one token in memory and (on a node that may write) storage.
func (ts *tokenService) dropRef(ctx context.Context, s logical.Storage, ref tokenRef) {
	ts.forgetRef(ref)
	if !ts.writable() {
		return
	}
	if err := s.Delete(ctx, ref.storageKey()); err != nil {
		ts.logger().Warn("could not drop a token from storage", "app_id", ref.App, "kind", ref.Kind, "tenant_key", ref.Tenant, "error", err)
	}
}

func (ts *tokenService) cached(appID string, kind tokenKind) *tokenEntry {
	return ts.cachedRef(tokenRef{App: appID, Kind: kind})
}

func (ts *tokenService) cachedRef(ref tokenRef) *tokenEntry {
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	return ts.entries[ref.key()]
}

func (ts *tokenService) generation(appID string) uint64 {
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	return ts.generations[appID]
}

func (ts *tokenService) putIfGeneration(ref tokenRef, gen uint64, e *tokenEntry) {
	ts.mu.Lock()
	if ts.generations[ref.App] == gen {
		ts.entries[ref.key()] = e
	}
	ts.mu.Unlock()
}

// forget drops one token from memory (another node changed it in storage).
func (ts *tokenService) forget(appID string, kind tokenKind) {
	ts.forgetRef(tokenRef{App: appID, Kind: kind})
}

func (ts *tokenService) forgetRef(ref tokenRef) {
	ts.mu.Lock()
	delete(ts.entries, ref.key())
	ts.mu.Unlock()
}

// forgetApp drops an app's tokens (its tenants' included) from memory and stops fetches that
// started before.
func (ts *tokenService) forgetApp(appID string) {
	prefix := appID + "/"
	ts.mu.Lock()
	ts.generations[appID]++
	for k := range ts.entries {
		if strings.HasPrefix(k, prefix) {
			delete(ts.entries, k)
		}
	}
	for k := range ts.failing {
		if strings.HasPrefix(k, prefix) {
			delete(ts.failing, k) // a new secret or host deserves a fresh try
		}
	}
	ts.mu.Unlock()
	ts.used.Range(func(k, _ any) bool {
		if strings.HasPrefix(k.(string), prefix) {
			ts.used.Delete(k)
		}
		return true
	})
}

// drop forgets an app's tokens in storage and memory, after its secret, host or type changed.
func (ts *tokenService) drop(ctx context.Context, s logical.Storage, appID string) error {
	for _, kind := range allTokenKinds {
		if err := s.Delete(ctx, tokenStorageKey(appID, kind)); err != nil {
			return fmt.Errorf("dropping cached %s token of %s: %w", kind, appID, err)
		}
	}
	tenants, err := s.List(ctx, tokenStoragePrefix+appID+"/"+string(kindTenant)+"/")
	if err != nil {
		return fmt.Errorf("listing cached tenant tokens of %s: %w", appID, err)
	}
	for _, tk := range tenants {
		if err := s.Delete(ctx, tenantTokenRef(appID, tk).storageKey()); err != nil {
			return fmt.Errorf("dropping the cached token of tenant %s of %s: %w", tk, appID, err)
		}
	}
	ts.forgetApp(appID)
	return nil
}

// storedApps lists the apps with a token in storage (the sweep keeps those warm).
func (ts *tokenService) storedApps(ctx context.Context, s logical.Storage) ([]string, error) {
	return s.List(ctx, tokenStoragePrefix)
}

// usedRefs lists the tokens read since the sweep last renewed them.
func (ts *tokenService) usedRefs() []tokenRef {
	var refs []tokenRef
	ts.used.Range(func(k, _ any) bool {
		if ref, ok := parseTokenRef(k.(string)); ok {
			refs = append(refs, ref)
		}
		return true
	})
	return refs
}

// renewed forgets that ref was read: the sweep renewed it, and renews it again only if someone
// reads it during its new life.
func (ts *tokenService) renewed(ref tokenRef) { ts.used.Delete(ref.key()) }

func (ts *tokenService) load(ctx context.Context, s logical.Storage, appID string, kind tokenKind) (*tokenEntry, error) {
	return ts.loadRef(ctx, s, tokenRef{App: appID, Kind: kind})
}

func (ts *tokenService) loadRef(ctx context.Context, s logical.Storage, ref tokenRef) (*tokenEntry, error) {
	raw, err := s.Get(ctx, ref.storageKey())
	if err != nil {
		return nil, fmt.Errorf("reading cached %s token of %s: %w", ref.Kind, ref.App, err)
	}
	if raw == nil {
		return nil, nil
	}
	var e tokenEntry
	if err := raw.DecodeJSON(&e); err != nil {
		// A damaged cache entry is not worth failing a read over: fetch a new token instead.
		ts.logger().Warn("ignoring unreadable cached token", "app_id", ref.App, "kind", ref.Kind, "error", err)
		return nil, nil
	}
	if e.Token == "" {
		return nil, nil
	}
	return &e, nil
}

func (ts *tokenService) store(ctx context.Context, s logical.Storage, ref tokenRef, e *tokenEntry) error {
	entry, err := logical.StorageEntryJSON(ref.storageKey(), e)
	if err != nil {
		return err
	}
	return s.Put(ctx, entry)
}

// backoffError: a token fetch failed moments ago, and Lark is not asked again before retryAt (as Lark
// asked with x-ogw-ratelimit-reset, or by the plugin's own backoff), so readers during an outage do
// not add up to a storm of calls.
type backoffError struct {
	ref     tokenRef
	retryAt time.Time
	last    error
}

func (e *backoffError) Error() string {
	what := e.ref.Kind.larkName()
	if e.ref.Tenant != "" {
		what += " of tenant " + e.ref.Tenant
	}
	return fmt.Sprintf("Lark could not issue the %s of app %s (%v); Vault asks again after %s, try again then",
		what, e.ref.App, e.last, formatTime(e.retryAt))
}

func (e *backoffError) Unwrap() error { return e.last }

// tenantUnavailableError: Lark does not serve this tenant for the store app (unknown tenant key, or
// the app is not installed or enabled there). The app and its other tenants are fine.
type tenantUnavailableError struct {
	appID, tenantKey string
	err              error
}

func (e *tenantUnavailableError) Error() string {
	return fmt.Sprintf("Lark does not serve tenant %q for store app %s (%v)", e.tenantKey, e.appID, e.err)
}
