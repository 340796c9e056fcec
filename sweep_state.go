package larksecrets

import "time"

// sweepStateVersion is the version of the indexes' layout; another in storage starts a rebuild.
const sweepStateVersion = 1

// sweepState is where the sweep stands, in storage (sweepStateKey): it is what makes the first run
// after a restart or a leader change as cheap as any other.
type sweepState struct {
	Version int `json:"version"`
	// Thresholds are the level thresholds the due entries and recorded levels were computed with;
	// other thresholds start a rebuild.
	Thresholds levelThresholds `json:"thresholds"`
	// DueBucket is the first minute of the due index not yet drained.
	DueBucket int64     `json:"due_bucket"`
	Walk      walkState `json:"walk"`
}

// walkState is where the walk stands.
type walkState struct {
	// Rebuild: the indexes are being built, so the walk runs at full speed. Built: a walk has gone
	// over every grant since the indexes were last incomplete, so the who index and the level
	// counts cover every grant.
	Rebuild bool `json:"rebuild"`
	Built   bool `json:"built"`
	// App and Slot: the walk has checked every grant up to this one.
	App           string        `json:"app,omitempty"`
	Slot          string        `json:"slot,omitempty"`
	CycleStart    time.Time     `json:"cycle_start,omitempty"`
	Walked        int           `json:"walked"`
	LastStep      time.Time     `json:"last_step,omitempty"`
	LastCycleAt   time.Time     `json:"last_cycle_at,omitempty"`
	LastCycleTook time.Duration `json:"last_cycle_took,omitempty"`
}

// whoIndexBuilt: a walk has gone over every grant since the indexes were last incomplete, so the
// who index covers every grant.
func (st *sweepState) whoIndexBuilt() bool { return st.Version == sweepStateVersion && st.Walk.Built }

// countsComplete: the level counts cover every grant, computed with the thresholds in use (no
// rebuild under way).
func (st *sweepState) countsComplete() bool { return st.whoIndexBuilt() && !st.Walk.Rebuild }
