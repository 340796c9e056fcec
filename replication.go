package larksecrets

import (
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
)

// forwardCheckTTL is how long the framework's per-request forwarding check may reuse a replication
// state. The framework asks Vault for it, over gRPC, on every request to a path with Operations,
// although only writes marked ForwardPerformance* act on it; for token reads it is a wasted round
// trip to Vault. Whether this node may write is never taken from the cache (mayWrite below): a
// check that comes a second late only means a marked write is refused with ErrReadOnly by
// the handler (and then forwarded) instead of by the framework.
const forwardCheckTTL = time.Second

// cachedReplicationView is the system view the framework gets: Vault's own, except that
// ReplicationState is reused for forwardCheckTTL.
type cachedReplicationView struct {
	logical.SystemView
	last atomic.Pointer[replicationSample]
}

type replicationSample struct {
	state consts.ReplicationState
	at    time.Time
}

func (v *cachedReplicationView) ReplicationState() consts.ReplicationState {
	now := time.Now()
	if s := v.last.Load(); s != nil && now.Sub(s.at) < forwardCheckTTL {
		return s.state
	}
	state := v.SystemView.ReplicationState()
	v.last.Store(&replicationSample{state: state, at: now})
	return state
}

// mayWrite is whether this node may write by Vault's own system view, asked every time (never
// of cachedReplicationView): it decides whether a single-use refresh token may be spent. The
// backend's WriteSafeReplicationState (wiring.go) asks it.
func mayWrite(sys logical.SystemView) bool {
	state := sys.ReplicationState()
	return (sys.LocalMount() || !state.HasState(consts.ReplicationPerformanceSecondary)) &&
		!state.HasState(consts.ReplicationDRSecondary) &&
		!state.HasState(consts.ReplicationPerformanceStandby)
}
