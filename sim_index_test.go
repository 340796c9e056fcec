package larksecrets

import (
	"context"
	"encoding/json"
	"time"
)

// The grant indexes in the simulation (grant_index.go, sweep_walk.go). After every step:
//
//   - every stored grant with a due time has its due entry in storage, at a minute the sweep has
//     not yet drained past, and that time is never later than the grant needs the sweep;
//   - the level counts equal the levels the stored grants record.
//
// A write storage refused, a crash or a reload may leave an entry or a count missing or wrong: that
// is excused only until the walk has completed a cycle after the fault, and never while the
// grant is in the process's own list of grants to index again.
func (s *sim) checkIndex() {
	ctx := context.Background()
	raw := s.store.raw()
	now := s.clk.Now()
	cfg, err := s.proc.b.config.get(ctx, raw)
	if err != nil {
		s.t.Fatal(err)
	}
	th := cfg.thresholds()
	var st sweepState
	if e, err := raw.Get(ctx, sweepStateKey); err != nil {
		s.t.Fatal(err)
	} else if e != nil {
		if err := json.Unmarshal(e.Value, &st); err != nil {
			s.t.Fatal(err)
		}
	}
	if st.Version != sweepStateVersion || st.Walk.Rebuild || st.Thresholds != th {
		return // being built: the walk reads every grant
	}
	excused := !st.Walk.LastCycleAt.After(s.indexDisturbedAt)
	s.proc.b.grants.mu.Lock()
	pendingIndex := map[grantID]bool{}
	for id := range s.proc.b.grants.unindexed {
		pendingIndex[id] = true
	}
	lowest := s.proc.b.grants.lowestDue
	s.proc.b.grants.mu.Unlock()

	counted := map[string]int{}
	for _, name := range simSlots {
		id := grantID{simAppID, name}
		e, err := raw.Get(ctx, id.storageKey())
		if err != nil {
			s.t.Fatal(err)
		}
		if e == nil {
			continue
		}
		var g grantEntry
		if err := json.Unmarshal(e.Value, &g); err != nil {
			s.t.Fatal(err)
		}
		if g.Level != "" {
			counted[g.Level]++
		}
		if excused || pendingIndex[id] || s.store.isDirty(id.storageKey()) {
			continue
		}
		want := sweepAt(&g, th, now)
		if g.DueAt.IsZero() {
			if !want.IsZero() {
				s.fail("every grant due some time is indexed", "grant %s needs the sweep at %s but has no due entry", name, want.Format(time.RFC3339))
			}
			continue
		}
		entry, err := raw.Get(ctx, dueKey(g.DueAt, id))
		if err != nil {
			s.t.Fatal(err)
		}
		if entry == nil {
			s.fail("every grant due some time is indexed", "grant %s records its due entry at %s, which storage does not hold", name, g.DueAt.Format(time.RFC3339))
		}
		if b := dueBucketOf(g.DueAt); b < st.DueBucket && (lowest == 0 || b < lowest) {
			s.fail("no due entry behind the sweep", "grant %s is due at minute %d, before minute %d the sweep has drained", name, b, st.DueBucket)
		}
		if now.Before(g.DueAt) && !want.IsZero() && dueBucketOf(laterOf(want, now)) < dueBucketOf(g.DueAt) {
			s.fail("a due entry is never late", "grant %s needs the sweep at %s but its due entry is at %s", name, want.Format(time.RFC3339), g.DueAt.Format(time.RFC3339))
		}
		s.held("grant_indexed")
	}
	if excused {
		return
	}
	var counts map[string]int
	if e, err := raw.Get(ctx, levelCountsPrefix+simAppID); err != nil {
		s.t.Fatal(err)
	} else if e != nil {
		if err := json.Unmarshal(e.Value, &counts); err != nil {
			s.t.Fatal(err)
		}
	}
	if !sameCounts(counts, counted) {
		s.fail("level counts match the grants", "counts/%s holds %v, the stored grants record %v", simAppID, counts, counted)
	}
	s.held("level_counts")
}
