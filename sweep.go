package larksecrets

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/time/rate"

	"github.com/lark-vault/vault-plugin-secrets-lark/clock"
)

// sweepStateKey holds where the sweep stands (sweepState). sweepCursorKey is where versions before
// the due index kept their cursor; the first run of this version deletes it.
const (
	sweepStateKey  = "sweep/state"
	sweepCursorKey = "sweep/cursor"
)

// Shares of sweep_budget. Visiting grants stops at its share so that the notification pass and the
// dropping of expired authorization states always get time of their own, however many grants there
// are (the cursor carries the rest of the grants to the next sweep).
const (
	grantShare  = 0.6
	noticeShare = 0.3
	// warmShare bounds keeping store apps' tenant tokens warm (thousands of tenants, paced by
	// keepalive_rate), carved out of the grant share: what is left waits for the next sweep.
	warmShare = 0.2
)

// sweeper runs the periodic work: keep grants alive, classify them, notify, keep app tokens warm,
// drop expired authorization states.
type sweeper struct {
	clock    clock.Clock
	logger   func() hclog.Logger
	config   *configStore
	grants   *grantStore
	apps     *appStore
	sessions *sessions
	tokens   *tokenService
	states   *stateStore
	notifier *notifier
	metrics  *metrics
	// refresher runs every refresh (refresh.go): keep-alives are its calls like any reader's.
	refresher  *refresher
	seenEvents *seenEvents
	// history keeps what the runs did, for the status path (status.go).
	history sweepHistory

	running  sync.Mutex
	limitsMu sync.Mutex
	limits   map[string]*rate.Limiter // per app: keep-alive refreshes per second
}

func (sw *sweeper) limiter(appID string, perSecond int) *rate.Limiter {
	sw.limitsMu.Lock()
	defer sw.limitsMu.Unlock()
	l := sw.limits[appID]
	if l == nil || l.Limit() != rate.Limit(perSecond) {
		l = rate.NewLimiter(rate.Limit(perSecond), 1)
		sw.limits[appID] = l
	}
	return l
}

var (
	errSweepRunning = errors.New("a sweep is already running")
	errBudget       = errors.New("sweep budget exhausted")
)

// run does one sweep within the configured budget. A cursor in storage carries the position over to
// the next run, so any number of grants is covered.
func (sw *sweeper) run(ctx context.Context, s logical.Storage) (*sweepReport, error) {
	if !sw.running.TryLock() {
		return nil, errSweepRunning
	}
	defer sw.running.Unlock()
	r := &sweepReport{StartedAt: sw.clock.Now()}
	var cfg *configEntry
	var err error
	defer func() { sw.history.record(r, cfg, err, sw.clock.Now()) }()

	cfg, err = sw.config.get(ctx, s)
	if err != nil {
		return nil, err
	}
	// Real time, not the injectable clock: the budget protects Vault's request deadline.
	realStart := time.Now()
	budget := cfg.SweepBudget
	grantsDeadline := realStart.Add(time.Duration(float64(budget) * grantShare))

	var lost []*grantEntry
	r.UnsavedStored, lost = sw.grants.flushUnsaved(ctx, s)
	r.UnsavedLeft = len(lost)
	sw.warmAppTokens(ctx, s, r)
	sw.warmStoreTokens(ctx, s, cfg, realStart.Add(time.Duration(float64(budget)*warmShare)), r)
	if err = sw.visitGrants(ctx, s, cfg, grantsDeadline, r); err != nil {
		return nil, err
	}

	// The notification pass gets its share even when visiting overran (a slow Lark, a keep-alive
	// started near the end): it never depends on how many grants there are.
	noticesDeadline := laterOf(realStart.Add(time.Duration(float64(budget)*(grantShare+noticeShare))), time.Now().Add(time.Duration(float64(budget)*noticeShare)))
	if err := sw.notifier.send(ctx, s, cfg, noticesDeadline, r); err != nil {
		sw.logger().Warn("sweep: notifications", "error", err)
	}
	statesDeadline := laterOf(realStart.Add(budget), time.Now().Add(time.Duration(float64(budget)*(1-grantShare-noticeShare))))
	r.StatesDropped = sw.states.dropExpired(ctx, s, statesDeadline)
	if n, err := sw.seenEvents.prune(ctx, s, statesDeadline); err != nil {
		sw.logger().Warn("sweep: forgetting old event ids", "error", err)
	} else {
		r.EventIDsDropped = n
	}

	r.Took = time.Since(realStart)
	result := "complete"
	if r.BudgetExhausted || r.NoticesLeft {
		result = "budget_exhausted"
	}
	sw.metrics.sweep(result, r.Took)
	sw.logger().Debug("sweep done", "grants", r.GrantsTotal, "due", r.GrantsDue, "walked", r.RepairVisited, "refreshed", len(r.Refreshed),
		"failed", len(r.RefreshFailed), "flagged", len(r.Flagged), "notified", len(r.Notified), "took", r.Took)
	return r, nil
}

// visitGrants looks at the grants that need it: those stored without their due entry, those the
// due index names up to now (sweepAt), and the walk's share (sweep_walk.go). What the budget leaves
// waits for the next run: the due index keeps its place in storage.
func (sw *sweeper) visitGrants(ctx context.Context, s logical.Storage, cfg *configEntry, deadline time.Time, r *sweepReport) error {
	st, err := sw.loadState(ctx, s)
	if err != nil {
		return err
	}
	th := cfg.thresholds()
	now := sw.clock.Now()
	if old, err := s.Get(ctx, sweepCursorKey); err != nil {
		return err
	} else if old != nil {
		// A version before the indexes swept this mount (a downgrade, then this upgrade again): it
		// wrote grants without their entries, so the indexes are built anew.
		st.Version = 0
	}
	if st.Version != sweepStateVersion || st.Thresholds != th {
		sw.startRebuild(ctx, s, st, th, now)
	}
	if err := sw.grants.counts.load(ctx, s); err != nil {
		sw.logger().Warn("sweep: reading the level counts", "error", err)
	}
	sw.grants.counts.flush(ctx, s)
	sw.grants.reindexUnindexed(ctx, s)
	r.FullPass = sw.visitDue(ctx, s, cfg, th, st, deadline, r)
	if r.FullPass {
		sw.walk(ctx, s, th, st, deadline, r)
	}
	r.Walk = st.Walk
	r.GrantsVisited = r.GrantsDue + r.RepairVisited
	for _, n := range sw.grants.counts.total() {
		r.GrantsTotal += n
	}
	return sw.storeState(ctx, s, st)
}

// visitDue goes through the due index from the first minute not yet drained to now. It reports
// whether it got to the end.
func (sw *sweeper) visitDue(ctx context.Context, s logical.Storage, cfg *configEntry, th levelThresholds, st *sweepState, deadline time.Time, r *sweepReport) bool {
	nowBucket := dueBucketOf(sw.clock.Now())
	start := st.DueBucket
	switch {
	case start == 0:
		start = nowBucket - dueFirstLookback
	case start > nowBucket:
		start = nowBucket // the clock went back (another node's): look from now
	}
	if lowest := sw.grants.takeLowestDue(); lowest != 0 && lowest < start {
		start = lowest // written while the clock was behind where the sweep stood
	}
	for b := start; b <= nowBucket; b++ {
		st.DueBucket = b
		if time.Now().After(deadline) {
			// After a long stop there are many minutes to list, each one call to storage.
			r.BudgetExhausted = true
			return false
		}
		apps, err := s.List(ctx, dueBucketKey(b))
		if err != nil {
			sw.logger().Warn("sweep: listing the due index", "error", err)
			return false
		}
		r.IndexBuckets++
		for _, app := range apps {
			slots, err := s.List(ctx, dueBucketKey(b)+app)
			if err != nil {
				sw.logger().Warn("sweep: listing the due index", "error", err)
				return false
			}
			for _, slot := range slots {
				if time.Now().After(deadline) {
					r.BudgetExhausted = true
					return false
				}
				id := grantID{strings.TrimSuffix(app, "/"), slot}
				if err := sw.visitDueEntry(ctx, s, cfg, th, id, b, deadline, r); err != nil {
					if errors.Is(err, errBudget) || errors.Is(err, errStopping) {
						r.BudgetExhausted = true
						return false
					}
					sw.logger().Warn("sweep: grant not processed", "grant", id.String(), "error", err)
				}
			}
		}
	}
	return true
}

// dueFirstLookback is how many minutes of the due index the first run on a mount looks back.
const dueFirstLookback = 24 * 60

// visitDueEntry looks at one entry of the due index: a grant whose time has come is settled, an
// entry its grant no longer names is dropped, and one due later this minute is left for the next run.
func (sw *sweeper) visitDueEntry(ctx context.Context, s logical.Storage, cfg *configEntry, th levelThresholds, id grantID, bucket int64, deadline time.Time, r *sweepReport) error {
	g, err := sw.grants.peek(ctx, s, id)
	if err != nil {
		return err
	}
	if g == nil || g.DueAt.IsZero() || dueBucketOf(g.DueAt) != bucket {
		r.StaleEntries++
		return sw.dropStale(ctx, s, id, bucket)
	}
	if g.DueAt.After(sw.clock.Now()) {
		return nil
	}
	r.GrantsDue++
	return sw.settle(ctx, s, cfg, th, id, g, deadline, r)
}

// dropStale deletes a due entry its grant does not name (grantTx.dropStaleDue).
func (sw *sweeper) dropStale(ctx context.Context, s logical.Storage, id grantID, bucket int64) error {
	return sw.grants.withGrant(ctx, s, id, func(tx *grantTx) error { return tx.dropStaleDue(bucket) })
}

// settle does what is due for one grant: keep-alive, the notice of a new level, and its next due
// entry and recorded level, stored with it.
func (sw *sweeper) settle(ctx context.Context, s logical.Storage, cfg *configEntry, th levelThresholds, id grantID, g *grantEntry, deadline time.Time, r *sweepReport) error {
	if g.keepaliveDue(sw.clock.Now()) {
		if err := sw.keepAlive(ctx, s, cfg, id, deadline, r); err != nil {
			return err
		}
	}
	return sw.grants.withGrant(ctx, s, id, func(tx *grantTx) error {
		g := tx.grant()
		if g == nil {
			return nil
		}
		h := g.health(sw.clock.Now(), th)
		if h.Level != levelOK {
			queued, err := sw.notifier.queue(ctx, s, g, h)
			r.Flagged = append(r.Flagged, flaggedGrant{ID: id, Health: h, Notified: !queued && g.notified(noticeLevel(h.Level))})
			if err != nil {
				sw.logger().Warn("sweep: queueing a notice; tried again next run", "grant", id.String(), "error", err)
			} else {
				g.markQueued(noticeLevel(h.Level))
			}
		}
		return tx.saveSchedule()
	})
}

// keepAlive refreshes a grant nobody read, paced by the app's keepalive_rate. A refresh is started
// only while the grant share of the budget lasts; once started it runs to its end and its outcome is
// stored whatever the sweep's deadline (refresh.go).
func (sw *sweeper) keepAlive(ctx context.Context, s logical.Storage, cfg *configEntry, id grantID, deadline time.Time, r *sweepReport) error {
	res := sw.limiter(id.App, cfg.KeepaliveRate).Reserve()
	if wait := res.Delay(); time.Now().Add(wait).After(deadline) {
		res.Cancel()
		return errBudget
	} else if wait > 0 {
		time.Sleep(wait)
	}
	sess, err := sw.sessions.open(ctx, s, id.App)
	if err != nil {
		return err
	}
	refreshed, err := sw.refresher.keepAlive(ctx, s, sess, id)
	switch {
	case errors.Is(err, errStopping):
		return err
	case err != nil:
		r.RefreshFailed = append(r.RefreshFailed, id.String())
		return nil // recorded on the grant; its level says the rest
	case refreshed:
		r.Refreshed = append(r.Refreshed, id.String())
	}
	return nil
}

// warmAppTokens refreshes cached app and tenant tokens that are due, so readers do not wait for
// Lark. Only tokens someone has read are kept warm; an idle app costs nothing.
func (sw *sweeper) warmAppTokens(ctx context.Context, s logical.Storage, r *sweepReport) {
	apps, err := sw.tokens.storedApps(ctx, s)
	if err != nil {
		sw.logger().Warn("sweep: listing cached tokens", "error", err)
		return
	}
	now := sw.clock.Now()
	for _, a := range apps {
		appID := strings.TrimSuffix(a, "/")
		if sess, err := sw.sessions.open(ctx, s, appID); err == nil && sess.app.isStore() {
			continue // warmStoreTokens: only what is read, paced
		}
		for _, kind := range allTokenKinds {
			e, err := sw.tokens.load(ctx, s, appID, kind)
			if err != nil || e == nil || e.fresh(now) {
				continue
			}
			if _, _, err := sw.tokens.get(ctx, s, appID, kind); err != nil {
				sw.logger().Warn("sweep: refreshing a cached token failed", "app_id", appID, "kind", kind, "error", err)
				continue
			}
			r.AppTokensRefreshed = append(r.AppTokensRefreshed, appID+"/"+string(kind))
		}
	}
}

// warmStoreTokens renews store apps' app and tenant tokens that are due and that someone read during
// their current life, so busy tenants never wait for Lark while idle ones cost nothing. Each app's
// Lark calls are paced by keepalive_rate, and the work stops at deadline (the rest is still due at
// the next sweep, and a reader meanwhile fetches it itself).
func (sw *sweeper) warmStoreTokens(ctx context.Context, s logical.Storage, cfg *configEntry, deadline time.Time, r *sweepReport) {
	refs := sw.tokens.usedRefs()
	// App tokens first: every tenant token is fetched with one.
	sort.Slice(refs, func(i, j int) bool {
		if (refs[i].Tenant == "") != (refs[j].Tenant == "") {
			return refs[i].Tenant == ""
		}
		return refs[i].key() < refs[j].key()
	})
	now := sw.clock.Now()
	for _, ref := range refs {
		sess, err := sw.sessions.open(ctx, s, ref.App)
		if err != nil || !sess.app.isStore() {
			continue
		}
		e := sw.tokens.cachedRef(ref)
		if e == nil {
			sw.tokens.renewed(ref) // a read that got no token (an unknown tenant): nothing to keep warm
			continue
		}
		if e.fresh(now) {
			continue
		}
		if !e.servable(now, 0) {
			// Expired unrenewed (Lark kept failing): the next reader fetches it; until then it
			// costs nothing.
			sw.tokens.renewed(ref)
			continue
		}
		res := sw.limiter(ref.App, cfg.KeepaliveRate).Reserve()
		if wait := res.Delay(); time.Now().Add(wait).After(deadline) {
			res.Cancel()
			return
		} else if wait > 0 {
			time.Sleep(wait)
		}
		if _, _, err := sw.tokens.getRef(ctx, s, ref); err != nil {
			sw.logger().Warn("sweep: renewing a store app's token failed", "app_id", ref.App, "tenant_key", ref.Tenant, "error", err)
			continue
		}
		sw.tokens.renewed(ref)
		r.AppTokensRefreshed = append(r.AppTokensRefreshed, ref.key())
	}
}
