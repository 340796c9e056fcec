package larksecrets

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/time/rate"
)

const sweepCursorKey = "sweep/cursor"

// sweepReport is what one sweep did; the sweep path returns it, because Vault does not audit the
// periodic run and these findings must be visible somewhere audited.
type sweepReport struct {
	StartedAt          time.Time
	Took               time.Duration
	GrantsTotal        int
	GrantsVisited      int
	FullPass           bool // every grant was visited in this run
	BudgetExhausted    bool
	Refreshed          []string
	RefreshFailed      []string
	Flagged            []flaggedGrant
	AppTokensRefreshed []string
	Notified           []string
	NotifyFailed       []string
	StatesDropped      int
}

type flaggedGrant struct {
	Key      string
	Health   grantHealth
	Notified bool
}

type sweeper struct {
	running  sync.Mutex
	limitsMu sync.Mutex
	limits   map[string]*rate.Limiter // per app: keep-alive refreshes per second
}

func newSweeper() *sweeper { return &sweeper{limits: map[string]*rate.Limiter{}} }

func (s *sweeper) limiter(appID string, perSecond int) *rate.Limiter {
	s.limitsMu.Lock()
	defer s.limitsMu.Unlock()
	l := s.limits[appID]
	if l == nil || l.Limit() != rate.Limit(perSecond) {
		l = rate.NewLimiter(rate.Limit(perSecond), 1)
		s.limits[appID] = l
	}
	return l
}

var errSweepRunning = errors.New("a sweep is already running")

// periodic is Vault's once-a-minute hook. Only a node that may write does the work: refreshing
// spends single-use tokens whose successors must be stored.
func (b *backend) periodic(ctx context.Context, req *logical.Request) error {
	b.noteMount(req)
	if !b.WriteSafeReplicationState() {
		return nil
	}
	_, err := b.sweep(ctx, req.Storage)
	if errors.Is(err, errSweepRunning) {
		return nil
	}
	return err
}

// sweep keeps grants alive, classifies them, queues and sends notices, refreshes cached app tokens
// and drops expired authorization states, within the configured time budget. A cursor in storage
// carries the position over to the next run, so any number of grants is covered.
func (b *backend) sweep(ctx context.Context, s logical.Storage) (*sweepReport, error) {
	if !b.sweeper.running.TryLock() {
		return nil, errSweepRunning
	}
	defer b.sweeper.running.Unlock()

	cfg, err := b.getConfig(ctx, s)
	if err != nil {
		return nil, err
	}
	start := b.clock.Now()
	r := &sweepReport{StartedAt: start}
	// Real time, not the injectable clock: the budget protects Vault's request deadline.
	realStart := time.Now()
	deadline := realStart.Add(cfg.SweepBudget)
	ctx, cancel := context.WithDeadline(ctx, deadline.Add(15*time.Second))
	defer cancel()

	b.sweepAppTokens(ctx, s, r)

	keys, err := b.listGrantKeys(ctx, s)
	if err != nil {
		return nil, err
	}
	r.GrantsTotal = len(keys)
	cursor := ""
	if e, err := s.Get(ctx, sweepCursorKey); err != nil {
		return nil, err
	} else if e != nil {
		cursor = string(e.Value)
	}
	first := sort.SearchStrings(keys, cursor)
	if first < len(keys) && keys[first] == cursor {
		first++
	}
	last := cursor
	for i := 0; i < len(keys); i++ {
		if time.Now().After(deadline) {
			r.BudgetExhausted = true
			break
		}
		key := keys[(first+i)%len(keys)]
		if err := b.visitGrant(ctx, s, cfg, key, deadline, r); err != nil {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errBudget) {
				r.BudgetExhausted = true
				break
			}
			b.Logger().Warn("sweep: grant not processed", "grant", key, "error", err)
		}
		r.GrantsVisited++
		last = key
	}
	r.FullPass = r.GrantsVisited == len(keys)
	if last != cursor {
		if err := s.Put(ctx, &logical.StorageEntry{Key: sweepCursorKey, Value: []byte(last)}); err != nil {
			return nil, fmt.Errorf("storing the sweep cursor: %w", err)
		}
	}

	if err := b.sendNotifications(ctx, s, cfg, deadline, r); err != nil {
		b.Logger().Warn("sweep: notifications", "error", err)
	}
	r.StatesDropped = b.dropExpiredStates(ctx, s, deadline)

	r.Took = time.Since(realStart)
	result := "complete"
	if r.BudgetExhausted {
		result = "budget_exhausted"
	}
	b.metrics.sweep(result, r.Took)
	b.Logger().Debug("sweep done", "grants", r.GrantsTotal, "visited", r.GrantsVisited, "refreshed", len(r.Refreshed),
		"failed", len(r.RefreshFailed), "flagged", len(r.Flagged), "notified", len(r.Notified), "took", r.Took)
	return r, nil
}

var errBudget = errors.New("sweep budget exhausted")

// listGrantKeys returns every grant as "app/slot", sorted, which is the cursor's order.
func (b *backend) listGrantKeys(ctx context.Context, s logical.Storage) ([]string, error) {
	apps, err := s.List(ctx, grantStoragePrefix)
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, a := range apps {
		appID := strings.TrimSuffix(a, "/")
		slots, err := s.List(ctx, grantStoragePrefix+appID+"/")
		if err != nil {
			return nil, err
		}
		for _, slot := range slots {
			keys = append(keys, appID+"/"+slot)
		}
	}
	sort.Strings(keys)
	return keys, nil
}

// keepaliveDue: refresh once about half of the refresh token's lifetime has passed. The point is a
// fraction of the lifetime Lark reported (7 days in production, minutes in tests), jittered per
// grant so grants authorized together do not all refresh in the same minute.
func keepaliveDue(g *grantEntry, key string, now time.Time) bool {
	if g.needsReauth() || g.RefreshToken == "" {
		return false
	}
	if g.InFlight != nil {
		return true
	}
	if g.RefreshExpiresAt.IsZero() || g.LastRefreshAt.IsZero() {
		return false
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	frac := 0.45 + float64(h.Sum32()%1000)/10000 // 0.45 .. 0.55
	lifetime := g.RefreshExpiresAt.Sub(g.LastRefreshAt)
	return !now.Before(g.LastRefreshAt.Add(time.Duration(float64(lifetime) * frac)))
}

func (b *backend) visitGrant(ctx context.Context, s logical.Storage, cfg *configEntry, key string, deadline time.Time, r *sweepReport) error {
	appID, slot, _ := strings.Cut(key, "/")
	g, err := b.loadGrant(ctx, s, appID, slot)
	if err != nil || g == nil {
		return err
	}
	if keepaliveDue(g, key, b.clock.Now()) {
		lim := b.sweeper.limiter(appID, cfg.KeepaliveRate)
		res := lim.Reserve()
		if wait := res.Delay(); time.Now().Add(wait).After(deadline) {
			res.Cancel()
			return errBudget
		} else if wait > 0 {
			time.Sleep(wait)
		}
		unlock := b.grants.lock(appID, slot)
		g, err = b.reloadGrantLocked(ctx, s, appID, slot)
		if err == nil && g != nil && keepaliveDue(g, key, b.clock.Now()) {
			var refreshed *grantEntry
			refreshed, _, err = b.refreshGrantLocked(ctx, s, g, cfg)
			if err == nil {
				g = refreshed
				r.Refreshed = append(r.Refreshed, key)
			} else {
				r.RefreshFailed = append(r.RefreshFailed, key)
				if reloaded, lerr := b.loadGrant(ctx, s, appID, slot); lerr == nil && reloaded != nil {
					g = reloaded
				}
			}
		}
		unlock()
		if g == nil {
			return err
		}
	}
	h := g.health(b.clock.Now(), cfg)
	b.metrics.setLevel(key, h.Level)
	if h.Level == levelOK {
		return nil
	}
	queued, err := b.queueNotice(ctx, s, g, h)
	r.Flagged = append(r.Flagged, flaggedGrant{Key: key, Health: h, Notified: !queued && g.Notified[noticeLevel(h.Level)] != (time.Time{})})
	return err
}

// sweepAppTokens refreshes cached app and tenant tokens that are due, so readers do not wait for
// Lark. Only tokens someone has read are kept warm; an idle app costs nothing.
func (b *backend) sweepAppTokens(ctx context.Context, s logical.Storage, r *sweepReport) {
	apps, err := s.List(ctx, tokenStoragePrefix)
	if err != nil {
		b.Logger().Warn("sweep: listing cached tokens", "error", err)
		return
	}
	now := b.clock.Now()
	for _, a := range apps {
		appID := strings.TrimSuffix(a, "/")
		for _, kind := range allTokenKinds {
			e, err := b.loadToken(ctx, s, appID, kind)
			if err != nil || e == nil || e.fresh(now) {
				continue
			}
			if _, _, err := b.accessToken(ctx, s, appID, kind); err != nil {
				b.Logger().Warn("sweep: refreshing a cached token failed", "app_id", appID, "kind", kind, "error", err)
				continue
			}
			r.AppTokensRefreshed = append(r.AppTokensRefreshed, appID+"/"+string(kind))
		}
	}
}

// dropExpiredStates deletes authorization states nobody redeemed.
func (b *backend) dropExpiredStates(ctx context.Context, s logical.Storage, deadline time.Time) int {
	keys, err := s.List(ctx, oauthStatePrefix)
	if err != nil {
		return 0
	}
	dropped := 0
	now := b.clock.Now()
	for _, k := range keys {
		if time.Now().After(deadline) {
			break
		}
		raw, err := s.Get(ctx, oauthStatePrefix+k)
		if err != nil || raw == nil {
			continue
		}
		var st oauthState
		if raw.DecodeJSON(&st) != nil || !now.Before(st.ExpiresAt) {
			b.stateMu.Lock()
			if s.Delete(ctx, oauthStatePrefix+k) == nil {
				dropped++
			}
			b.stateMu.Unlock()
		}
	}
	return dropped
}
