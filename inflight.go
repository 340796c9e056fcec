package larksecrets

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	hclog "github.com/hashicorp/go-hclog"
)

// errStopping: the plugin is being stopped (reload, unmount, shutdown, step-down) and starts no new
// Lark call that could spend a single-use credential. Trying again in a few seconds reaches the new
// plugin (or the new active node).
var errStopping = errors.New("this plugin is stopping or being reloaded by Vault (a reload, upgrade, unmount, shutdown or leader change) and starts no new call to Lark that would spend a refresh token or an authorization code; try again in a few seconds")

// callTracker knows every Lark call in flight that can spend a single-use credential (a refresh
// token, an authorization code, an imported refresh token, a device code). A call is admitted before
// the credential leaves Vault and ends when its outcome is stored (or known to be unstorable). stop
// closes the door and waits for the calls inside: a stop that did not wait would end the process
// while Lark holds an answer whose refresh token nobody else has.
type callTracker struct {
	mu       sync.Mutex
	stopping bool
	next     uint64
	live     map[uint64]trackedCall
	changed  chan struct{} // closed and replaced whenever a call ends
}

// trackedCall is one call in flight, for the log while stop waits.
type trackedCall struct {
	what    string
	id      grantID
	started time.Time
	until   time.Time // by when the call has answered and its outcome is stored, at the latest
}

// callStoreSlack covers what a call does after Lark answers besides storing the grant (asking Lark
// who the user is, revoking a refused grant).
const callStoreSlack = 25 * time.Second

// begin admits a call that may take up to larkBudget at Lark, then storing its outcome. It returns
// the function that ends it, or errStopping once stop has begun.
func (c *callTracker) begin(what string, id grantID, larkBudget time.Duration) (end func(), err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		return nil, errStopping
	}
	if c.live == nil {
		c.live = map[uint64]trackedCall{}
	}
	if c.changed == nil {
		c.changed = make(chan struct{})
	}
	c.next++
	key := c.next
	now := time.Now()
	c.live[key] = trackedCall{what: what, id: id, started: now, until: now.Add(larkBudget + storeTimeout + callStoreSlack)}
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			delete(c.live, key)
			close(c.changed)
			c.changed = make(chan struct{})
			c.mu.Unlock()
		})
	}, nil
}

// admitting reports whether new calls are still admitted.
func (c *callTracker) admitting() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.stopping
}

// stop admits no new call and waits until every call in flight has ended: each is bounded by the
// Lark budget it was admitted with plus the store's retry budget, so the wait is too. It logs while
// it waits (every logEvery) and returns the calls still in flight when the bound or ctx ran out.
func (c *callTracker) stop(ctx context.Context, logger hclog.Logger, logEvery time.Duration) []trackedCall {
	c.mu.Lock()
	c.stopping = true
	c.mu.Unlock()
	logged := false
	var lastLog time.Time
	for {
		c.mu.Lock()
		if len(c.live) == 0 {
			c.mu.Unlock()
			if logged {
				logger.Info("every Lark call in flight has answered and its outcome is stored; stopping")
			}
			return nil
		}
		calls := make([]trackedCall, 0, len(c.live))
		var bound time.Time
		for _, tc := range c.live {
			calls = append(calls, tc)
			if tc.until.After(bound) {
				bound = tc.until
			}
		}
		changed := c.changed
		c.mu.Unlock()
		sort.Slice(calls, func(i, j int) bool { return calls[i].started.Before(calls[j].started) })
		wait := time.Until(bound)
		if wait <= 0 {
			return calls
		}
		if time.Since(lastLog) >= logEvery {
			oldest := calls[0]
			logger.Warn("waiting for Lark calls in flight before stopping, so no rotated refresh token or new grant is lost",
				"calls", len(calls), "oldest", oldest.what, "grant", oldest.id.String(),
				"waiting_since", time.Since(oldest.started).Round(time.Millisecond).String(),
				"at_most", wait.Round(time.Second).String())
			logged, lastLog = true, time.Now()
		}
		timer := time.NewTimer(min(wait, logEvery))
		select {
		case <-changed:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return calls
		}
		timer.Stop()
	}
}
