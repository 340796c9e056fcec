package larksecrets

import (
	"context"
	"strings"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/lark-vault/vault-plugin-secrets-lark/clock"
	"github.com/lark-vault/vault-plugin-secrets-lark/larkemu"
)

// A user-token read with nothing due is served from memory: no storage call at all (issue 9).
func TestUserTokenReadWithNothingDueMakesNoStorageCall(t *testing.T) {
	env := newTestEnv(t)
	counting := &countingStorage{Storage: env.storage}
	env.storage = counting
	env.addOAuthApp()
	env.grantUser("cached")
	_, err := env.read("user-token/" + testAppID + "/cached") // the first read may load the grant
	require.NoError(t, err)

	counting.reset()
	for i := 0; i < 10; i++ {
		resp, err := env.read("user-token/" + testAppID + "/cached")
		require.NoError(t, err)
		require.NotEmpty(t, resp.Data["access_token"])
	}
	require.Empty(t, counting.reset(), "reads with nothing due touched storage")

	// So is an app-token read.
	_, err = env.read("app-token/" + testAppID)
	require.NoError(t, err)
	counting.reset()
	_, err = env.read("app-token/" + testAppID)
	require.NoError(t, err)
	require.Empty(t, counting.reset())
}

// Every change of a grant is seen by the next read: delete, import, re-authorization, a reauth
// flag, a change on another node (Invalidate) and a new active node.
func TestGrantCacheStaysCoherent(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	env.grantUser("c")
	read := func() (*logical.Response, error) { return env.read("user-token/" + testAppID + "/c") }
	first, err := read()
	require.NoError(t, err)

	// Re-authorization: the new token is served at once.
	env.grantUser("c")
	resp, err := read()
	require.NoError(t, err)
	require.NotEqual(t, first.Data["access_token"], resp.Data["access_token"])

	// Import.
	minted, err := env.emu.MintGrant(larkemu.MintRequest{AppID: testAppID})
	require.NoError(t, err)
	env.mustWrite("user-token/"+testAppID+"/c", map[string]interface{}{"refresh_token": minted.RefreshToken})
	resp, err = read()
	require.NoError(t, err)
	require.Equal(t, env.onDisk("c").AccessToken, resp.Data["access_token"])

	// A reauth flag: revoked at Lark, found at the next refresh; reads refuse from then on.
	_, err = env.emu.RevokeGrants(larkemu.GrantSelector{AppID: testAppID})
	require.NoError(t, err)
	env.clock.Advance(2 * time.Hour)
	_, err = read()
	require.ErrorContains(t, err, "needs re-authorization")
	_, err = read()
	require.ErrorContains(t, err, "needs re-authorization", "nothing served after the flag")

	// Delete: nothing served.
	env.grantUser("c")
	_, err = read()
	require.NoError(t, err)
	_, err = env.do(logical.DeleteOperation, "user-token/"+testAppID+"/c", nil)
	require.NoError(t, err)
	_, err = read()
	require.ErrorContains(t, err, "no Lark grant")

	// Another node (or a replication stream) changes the key: Invalidate drops the memory copy.
	env.grantUser("c")
	_, err = read()
	require.NoError(t, err)
	g := env.onDisk("c")
	g.markReauth(env.clock.Now(), 20064, "revoked", "changed on another node")
	env.writeGrant(g)
	env.b.invalidate(context.Background(), g.id().storageKey())
	_, err = read()
	require.ErrorContains(t, err, "changed on another node")

	// A new active node starts with nothing in memory.
	env.grantUser("c")
	_, err = read()
	require.NoError(t, err)
	g = env.onDisk("c")
	g.markReauth(env.clock.Now(), 20064, "revoked", "changed while this node was a standby")
	env.writeGrant(g)
	env.b = env.newBackend(nil)
	_, err = read()
	require.ErrorContains(t, err, "changed while this node was a standby")
}

// A read racing a refresh never puts the older copy back into memory.
func TestGrantCacheRefusesAStaleFill(t *testing.T) {
	var c grantCache
	c.limit, c.entries, c.epochs = 10, map[grantID]*grantEntry{}, map[grantID]uint64{}
	id := grantID{testAppID, "r"}
	_, seen, ok := c.lookup(id)
	require.False(t, ok)
	c.put(id, &grantEntry{RefreshToken: "new"}) // a refresh stored meanwhile
	c.fill(id, &grantEntry{RefreshToken: "old"}, seen)
	g, _, ok := c.lookup(id)
	require.True(t, ok)
	require.Equal(t, "new", g.RefreshToken)

	for i := 0; i < 25; i++ {
		c.put(grantID{testAppID, strings.Repeat("x", i+1)}, &grantEntry{})
	}
	require.LessOrEqual(t, c.len(), 10, "bounded")
}

// A fill whose grant was written (or dropped) meanwhile stays refused even after the epochs of
// entries no longer in memory were pruned: a pruned epoch must not look like "never written".
func TestGrantCacheRefusesAStaleFillAfterEpochsArePruned(t *testing.T) {
	var c grantCache
	c.limit, c.entries, c.epochs = 2, map[grantID]*grantEntry{}, map[grantID]uint64{}
	id := grantID{testAppID, "deleted"}
	_, seen, ok := c.lookup(id) // a reader starts loading the grant from storage
	require.False(t, ok)
	c.drop(id) // the grant is deleted meanwhile
	for i := 0; i < 12; i++ {
		c.put(grantID{testAppID, strings.Repeat("p", i+1)}, &grantEntry{}) // enough writes to prune epochs
	}
	c.fill(id, &grantEntry{RefreshToken: "from before the delete"}, seen)
	_, _, ok = c.lookup(id)
	require.False(t, ok, "a grant deleted while a reader loaded it was put back into memory")
}

// deleteGate holds a grant's storage Delete until the test lets it go, so a read can load the
// grant in between, as a concurrent reader can.
type deleteGate struct {
	logical.Storage
	deleting chan struct{}
	proceed  chan struct{}
}

func (s *deleteGate) Delete(ctx context.Context, k string) error {
	if !strings.HasPrefix(k, grantStoragePrefix) {
		return s.Storage.Delete(ctx, k) // an index entry, deleted after the grant
	}
	close(s.deleting)
	<-s.proceed
	return s.Storage.Delete(ctx, k)
}

// A read that loads a grant while it is being deleted does not leave it in memory: the next read
// sees it gone.
func TestGrantDeleteRacingAReadLeavesNothingInMemory(t *testing.T) {
	ctx := context.Background()
	gs := newGrantStore(hclog.NewNullLogger, clock.NewFake(t0), func(context.Context, logical.Storage) (levelThresholds, error) {
		return defaultConfig().thresholds(), nil
	})
	inner := &logical.InmemStorage{}
	id := grantID{testAppID, "racing"}
	require.NoError(t, gs.withGrant(ctx, inner, id, func(tx *grantTx) error {
		return tx.replace(&grantEntry{AppID: id.App, Slot: id.Slot, RefreshToken: "r"})
	}))
	gs.invalidate(id) // start with nothing in memory, as after a restart

	gate := &deleteGate{Storage: inner, deleting: make(chan struct{}), proceed: make(chan struct{})}
	removed := make(chan error, 1)
	go func() {
		removed <- gs.withGrant(ctx, gate, id, func(tx *grantTx) error { return tx.remove() })
	}()
	<-gate.deleting
	g, err := gs.get(ctx, inner, id) // storage still holds it: the read loads it
	require.NoError(t, err)
	require.NotNil(t, g)
	close(gate.proceed)
	require.NoError(t, <-removed)

	g, err = gs.get(ctx, inner, id)
	require.NoError(t, err)
	require.Nil(t, g, "a deleted grant is still served from memory")
}
