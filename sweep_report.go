package larksecrets

import (
	"time"
)

// sweepReport is what one sweep did; the sweep path returns it, because Vault does not audit the
// periodic run and these findings must be visible somewhere audited.
type sweepReport struct {
	StartedAt time.Time
	Took      time.Duration
	// GrantsTotal is the mount's grants as the level counts have them.
	GrantsTotal int
	// GrantsVisited is GrantsDue and RepairVisited together: every grant this run read.
	GrantsVisited int
	// GrantsDue is the grants the due index named whose time had come; IndexBuckets the minutes of
	// the index listed; StaleEntries the entries found that their grant no longer names (dropped).
	GrantsDue    int
	IndexBuckets int
	StaleEntries int
	// RepairVisited is the grants the walk read (sweep_walk.go), IndexRepaired those whose index
	// entries or recorded level it had to write again; Walk is where the walk stands after the
	// run (Walk.Rebuild: at full speed, because the indexes are being built).
	RepairVisited      int
	IndexRepaired      int
	Walk               walkState
	FullPass           bool // every grant that was due has been looked at
	BudgetExhausted    bool
	Refreshed          []string
	RefreshFailed      []string
	Flagged            []flaggedGrant
	AppTokensRefreshed []string
	Notified           []string
	NotifyFailed       []string
	NoticesLeft        bool // the notification pass ran out of time; the next sweep goes on
	NoticePassRan      bool // a scheduled time had passed, so queued notices were tried
	NotifyLastError    string
	StatesDropped      int
	EventIDsDropped    int
	UnsavedStored      int
	UnsavedLeft        int
}

type flaggedGrant struct {
	ID       grantID
	Health   grantHealth
	Notified bool
}
