package larksecrets

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

type countingSystemView struct {
	*logical.StaticSystemView
	calls atomic.Int64
}

func (v *countingSystemView) ReplicationState() consts.ReplicationState {
	v.calls.Add(1)
	return v.StaticSystemView.ReplicationState()
}

// Token reads do not ask Vault for the replication state each time (a gRPC round trip to Vault on
// every read); whether this node may spend a refresh token is still asked every time.
func TestReadsDoNotAskVaultForTheReplicationStateEachTime(t *testing.T) {
	env := newTestEnv(t)
	counting := &countingSystemView{StaticSystemView: env.system}
	env.b = newBackend(env.clock, env.b.sessions.client)
	require.NoError(t, env.b.setup(context.Background(), &logical.BackendConfig{
		Logger: hclog.NewNullLogger(), System: counting, StorageView: env.storage}))
	env.addOAuthApp()
	env.grantUser("r")
	_, err := env.read("user-token/" + testAppID + "/r")
	require.NoError(t, err)

	before := counting.calls.Load()
	for i := 0; i < 50; i++ {
		_, err := env.read("tenant-token/" + testAppID)
		require.NoError(t, err)
		_, err = env.read("user-token/" + testAppID + "/r")
		require.NoError(t, err)
	}
	require.LessOrEqual(t, counting.calls.Load()-before, int64(2), "100 reads within a second")

	// The node becomes a performance standby: the very next refresh is forwarded, not done here.
	env.system.ReplicationStateVal = consts.ReplicationPerformanceStandby
	env.clock.Advance(2 * time.Hour)
	_, err = env.read("user-token/" + testAppID + "/r")
	require.ErrorIs(t, err, logical.ErrReadOnly)
}
