package larksecrets

import (
	"context"
	"sort"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// The walk goes through every grant, app by app, and checks what the indexes hold for it against
// the grant: its due entry, its who entries, its recorded level and the app's level counts. It is
// what bounds how long a missing index entry (a write storage refused, a crash, a bug) can hide a
// grant. It runs at full speed within the sweep's budget while the indexes are being built (the
// first run of this version on a mount, new level thresholds), and otherwise slowly: a step every
// repairStepEvery, sized so that a cycle over every grant takes about repairCycle.

const (
	repairCycle     = 24 * time.Hour
	repairStepEvery = 15 * time.Minute
	// repairMinStep keeps a small mount's cycle short.
	repairMinStep = 200
)

func (sw *sweeper) loadState(ctx context.Context, s logical.Storage) (*sweepState, error) {
	raw, err := s.Get(ctx, sweepStateKey)
	if err != nil {
		return nil, err
	}
	st := &sweepState{}
	if raw != nil {
		if err := raw.DecodeJSON(st); err != nil {
			return nil, err
		}
	}
	return st, nil
}

func (sw *sweeper) storeState(ctx context.Context, s logical.Storage, st *sweepState) error {
	e, err := logical.StorageEntryJSON(sweepStateKey, st)
	if err != nil {
		return err
	}
	return s.Put(ctx, e)
}

// startRebuild begins a walk at full speed: on the first run of this version (nothing is indexed
// yet) and when the level thresholds change (every due time and level was computed with the old).
func (sw *sweeper) startRebuild(ctx context.Context, s logical.Storage, st *sweepState, th levelThresholds, now time.Time) {
	if st.Version != sweepStateVersion {
		sw.logger().Info("building the grant indexes: the sweep reads every grant once, within its budget")
		st.Walk.Built = false
		if err := s.Delete(ctx, sweepCursorKey); err != nil {
			sw.logger().Debug("sweep: the old cursor was not deleted", "error", err)
		}
	} else {
		sw.logger().Info("level thresholds changed: the sweep reads every grant once to compute its level and due time anew")
	}
	st.Version, st.Thresholds = sweepStateVersion, th
	st.Walk.Rebuild, st.Walk.App, st.Walk.Slot, st.Walk.CycleStart, st.Walk.Walked = true, "", "", now, 0
	sw.grants.counts.dropRecount()
}

// walk takes the walk's share of this run.
func (sw *sweeper) walk(ctx context.Context, s logical.Storage, th levelThresholds, st *sweepState, deadline time.Time, r *sweepReport) {
	w := &st.Walk
	now := sw.clock.Now()
	if !w.Rebuild && now.Sub(w.LastStep) < repairStepEvery {
		return
	}
	w.LastStep = now
	if w.CycleStart.IsZero() {
		w.CycleStart, w.Walked, w.App, w.Slot = now, 0, "", ""
	}
	step := -1 // no limit but the budget
	if !w.Rebuild {
		total := 0
		for _, n := range sw.grants.counts.total() {
			total += n
		}
		step = max(repairMinStep, total*int(repairStepEvery/time.Minute)/int(repairCycle/time.Minute)+1)
	}
	apps, err := sw.apps.list(ctx, s)
	if err != nil {
		sw.logger().Warn("sweep: listing apps for the walk", "error", err)
		return
	}
	sort.Strings(apps)
	for i := sort.SearchStrings(apps, w.App); i < len(apps); i++ {
		app := apps[i]
		if app != w.App {
			w.App, w.Slot = app, ""
		}
		if w.Slot == "" {
			sw.grants.counts.startRecount(app)
		}
		slots, err := sw.grants.list(ctx, s, app)
		if err != nil {
			sw.logger().Warn("sweep: listing grants for the walk", "app_id", app, "error", err)
			return
		}
		j := sort.SearchStrings(slots, w.Slot)
		if j < len(slots) && slots[j] == w.Slot {
			j++
		}
		for ; j < len(slots); j++ {
			if step == 0 || time.Now().After(deadline) {
				r.BudgetExhausted = r.BudgetExhausted || w.Rebuild
				return
			}
			id := grantID{app, slots[j]}
			if err := sw.walkOne(ctx, s, th, id, r); err != nil {
				sw.logger().Warn("sweep: the walk could not check a grant", "grant", id.String(), "error", err)
			}
			w.Slot = slots[j]
			w.Walked++
			r.RepairVisited++
			step--
		}
		sw.grants.counts.finishRecount(ctx, s, app)
	}
	sw.grants.counts.dropOthers(ctx, s, apps)
	if w.Rebuild {
		sw.logger().Info("the grant indexes are built", "grants", w.Walked, "took", now.Sub(w.CycleStart).String())
	}
	w.LastCycleAt, w.LastCycleTook = now, now.Sub(w.CycleStart)
	w.Rebuild, w.Built = false, true
	w.App, w.Slot, w.CycleStart = "", "", time.Time{}
}

// walkOne checks one grant, under its lock: its recorded level and due time as they are now, and
// its index entries present. Anything off is written again.
func (sw *sweeper) walkOne(ctx context.Context, s logical.Storage, th levelThresholds, id grantID, r *sweepReport) error {
	return sw.grants.withGrant(ctx, s, id, func(tx *grantTx) error {
		g := tx.grant()
		if g == nil {
			return nil
		}
		ok, err := tx.indexIntact(ctx)
		if err != nil {
			return err
		}
		if !ok {
			r.IndexRepaired++
			if err := tx.reindex(); err != nil {
				return err
			}
		}
		sw.grants.counts.recounted(id, tx.grant().Level)
		return nil
	})
}

// indexBuilt reports whether the who index and the level counts cover every grant.
func (sw *sweeper) indexBuilt(ctx context.Context, s logical.Storage) (bool, error) {
	st, err := sw.loadState(ctx, s)
	if err != nil {
		return false, err
	}
	return st.whoIndexBuilt(), nil
}
