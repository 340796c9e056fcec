package larksecrets

import (
	"context"
	"encoding/json"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

// storedGrant reads a grant the way the next request would (a grant not yet stored wins).
func (e *testEnv) storedGrant(slot string) *grantEntry {
	e.t.Helper()
	g, err := e.b.grants.get(context.Background(), e.storage, grantID{testAppID, slot})
	require.NoError(e.t, err)
	return g
}

// onDisk reads a grant straight from storage, as a freshly started process would.
func (e *testEnv) onDisk(slot string) *grantEntry {
	e.t.Helper()
	raw, err := e.storage.Get(context.Background(), grantID{testAppID, slot}.storageKey())
	require.NoError(e.t, err)
	if raw == nil {
		return nil
	}
	var g grantEntry
	require.NoError(e.t, json.Unmarshal(raw.Value, &g))
	return &g
}

// writeGrant puts a grant into storage behind the plugin's back, as an earlier process (or a test
// arranging a situation) left it.
func (e *testEnv) writeGrant(g *grantEntry) {
	e.t.Helper()
	require.NoError(e.t, e.b.grants.withGrant(context.Background(), e.storage, g.id(), func(tx *grantTx) error {
		return tx.replace(g)
	}))
}

// writeGrantRaw stores a grant as it is, past the grant store and its indexes, as a version before
// the indexes (or a bug) would have left it.
func (e *testEnv) writeGrantRaw(g *grantEntry) {
	e.t.Helper()
	entry, err := logical.StorageEntryJSON(g.id().storageKey(), g)
	require.NoError(e.t, err)
	require.NoError(e.t, e.storage.Put(context.Background(), entry))
	e.b.grants.invalidate(g.id())
}
