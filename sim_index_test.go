package larksecrets

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/lark-vault/vault-plugin-secrets-lark/larkemu"
)

// crashMidWrite makes the process die at one of its next few storage writes, during one request,
// between two writes that belong together (a grant and its index entries, a grant and the counts).
func (s *sim) crashMidWrite(slot string) {
	n := 1 + s.rng.Intn(6)
	died := s.stats.Faults["crash_midwrite"]
	s.midwriteBefore = map[string]larkemu.GrantInfo{}
	for _, g := range s.emu.Grants() {
		s.midwriteBefore[g.GrantID] = g
	}
	defer func() { s.midwriteBefore = nil }()
	s.proc.view.dieAt(n)
	s.logf("process %d will die at its write number %d from now", s.proc.id, n)
	s.someWrite(slot)
	s.reviveIfDead()
	if s.stats.Faults["crash_midwrite"] == died {
		s.proc.view.dieAt(0)
		s.logf("process %d made fewer writes and lives on", s.proc.id)
	}
}

// reviveIfDead replaces a process that died in the middle of a request (crashMidWrite) before the
// harness asks anything of it.
func (s *sim) reviveIfDead() bool {
	if s.proc.view.alive() {
		return false
	}
	s.stats.Faults["crash_midwrite"]++
	s.countsFaultAt = s.clk.Now()
	// Whatever Lark did for the request (a refresh, a new grant) may have an answer only the dead
	// process knew: its reuse, or its grant left at Lark, is this crash's.
	for _, g := range s.emu.Grants() {
		if was, ok := s.midwriteBefore[g.GrantID]; !ok || was.Refreshes != g.Refreshes || was.Status != g.Status {
			s.taint(g.GrantID)
			if sl := s.slots[g.UserID]; sl != nil {
				sl.tainted = true
			}
			s.logf("process %d died at a write: Lark's %s (user %s) changed during its request", s.proc.id, g.GrantID, g.UserID)
		}
	}
	s.logf("process %d died at a write", s.proc.id)
	s.crash()
	return true
}

// The grant indexes in the simulation (grant_index.go, sweep_walk.go). After every step:
//
//   - every stored grant with a due time has its due entry in storage, at a minute the sweep has
//     not yet drained past, and that time is never later than the grant needs the sweep;
//   - the level counts equal the levels the stored grants record.
//
// A due entry whose write storage refused may stay missing, and the counts after a refused counts
// write or a death in the middle of a request may stay wrong, each only until the walk has completed
// a cycle after the failure; nothing else excuses them. A death at a due entry's write is not
// excused: the write order (entry first, then the grant) must make it harmless, so a grant written
// before its due entry, with the process dying in between, breaks the first check.
func (s *sim) checkIndex() {
	ctx := context.Background()
	raw := s.store.raw()
	now := s.clk.Now()
	for _, key := range s.store.takeFailed() {
		if rest, ok := strings.CutPrefix(key, dueIndexPrefix); ok {
			if _, id, ok := parseDueKey(rest); ok {
				s.indexFaultAt[id] = now
			}
		}
		if strings.HasPrefix(key, levelCountsPrefix) {
			s.countsFaultAt = now
		}
	}
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
		if !st.Walk.LastCycleAt.After(s.indexFaultAt[id]) || pendingIndex[id] || s.store.isDirty(id.storageKey()) {
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
	if !st.Walk.LastCycleAt.After(s.countsFaultAt) {
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
