package larksecrets

import (
	"sync"
	"time"
)

// sweepRun is what one sweep run did, as the status path shows it.
type sweepRun struct {
	At              time.Time
	Took            time.Duration
	Budget          time.Duration
	FullPass        bool
	BudgetExhausted bool
	GrantsTotal     int
	GrantsVisited   int
	Refreshed       int
	RefreshFailed   int
	Flagged         int
	Err             string
}

// noticePass is the last notification pass that ran (at a scheduled time).
type noticePass struct {
	At        time.Time
	Sent      int
	Failed    int
	LastError string
	Left      bool
}

// sweepHistory keeps, in memory of the node that runs the sweep, what its runs did. It is not
// stored: after a restart or a leader change the status says that no sweep has run on this node
// yet, which the next run (within about a minute) corrects.
type sweepHistory struct {
	mu   sync.Mutex
	runs int
	last sweepRun
	// walk is where the walk over every grant stood after the last run (sweep_walk.go).
	walk    walkState
	notices *noticePass
}

func (h *sweepHistory) record(r *sweepReport, cfg *configEntry, err error, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.runs++
	h.last = sweepRun{At: r.StartedAt, Took: r.Took, FullPass: r.FullPass, BudgetExhausted: r.BudgetExhausted,
		GrantsTotal: r.GrantsTotal, GrantsVisited: r.GrantsVisited, Refreshed: len(r.Refreshed),
		RefreshFailed: len(r.RefreshFailed), Flagged: len(r.Flagged)}
	if cfg != nil {
		h.last.Budget = cfg.SweepBudget
	}
	if err != nil {
		h.last.Err = err.Error()
		return
	}
	h.walk = r.Walk
	if r.NoticePassRan {
		h.notices = &noticePass{At: r.StartedAt, Sent: len(r.Notified), Failed: len(r.NotifyFailed),
			LastError: r.NotifyLastError, Left: r.NoticesLeft}
	}
}

// sweepSnapshot is a copy of the history, taken under its lock.
type sweepSnapshot struct {
	Runs int
	Last sweepRun
	// CycleStart: the indexes are being built since then (a walk at full speed). LastCycleAt and
	// LastCycleTook: the walk's last completed cycle over every grant.
	CycleStart    time.Time
	LastCycleAt   time.Time
	LastCycleTook time.Duration
	Notices       *noticePass
}

func (h *sweepHistory) snapshot() sweepSnapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := sweepSnapshot{Runs: h.runs, Last: h.last, LastCycleAt: h.walk.LastCycleAt, LastCycleTook: h.walk.LastCycleTook}
	if h.walk.Rebuild {
		s.CycleStart = h.walk.CycleStart
	}
	if h.notices != nil {
		n := *h.notices
		s.Notices = &n
	}
	return s
}
