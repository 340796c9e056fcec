package larksecrets

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strings"
	"sync"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"
)

const (
	// storeTimeout bounds storing the outcome of a call Lark has answered. It is detached from the
	// request: a client that gives up, a Vault request timeout or the end of a sweep's budget must not
	// stop Vault from keeping a single-use refresh token that Lark has already replaced.
	storeTimeout  = 30 * time.Second
	storeAttempts = 5
)

// grantStore owns user grants: their locks, their storage, and the grants whose last write failed.
// A grant changes only inside withGrant, under its lock, through the grant's own methods; nothing
// else in the package touches the locks or the unsaved map.
type grantStore struct {
	logger func() hclog.Logger
	levels func(id grantID, level string) // reports each grant's level to the metrics gauge

	locks []*locksutil.LockEntry

	mu sync.Mutex
	// unsaved holds grants whose newest state (a rotated refresh token, a new grant) Lark has
	// produced but storage refused even after retries. It wins over storage everywhere, and every
	// access of the grant tries to store it first.
	unsaved map[grantID]*grantEntry

	// cache holds what storage holds for recently read grants, so a read with nothing due costs no
	// storage round trip (plugin → Vault → Raft). It stays coherent because every write of a grant
	// goes through this store, and Invalidate drops an entry when another node or a replication
	// stream changes the key. A new active node starts with an empty cache.
	cache grantCache
}

func newGrantStore(logger func() hclog.Logger, levels func(grantID, string)) *grantStore {
	return &grantStore{logger: logger, levels: levels, locks: locksutil.CreateLocks(), unsaved: map[grantID]*grantEntry{},
		cache: grantCache{limit: grantCacheLimit, entries: map[grantID]*grantEntry{}, epochs: map[grantID]uint64{}}}
}

// get reads a grant without its lock, for decisions that a locked re-read confirms. A grant that
// could not be stored wins over what storage holds. The result is shared and read-only: changes go
// through withGrant.
func (gs *grantStore) get(ctx context.Context, s logical.Storage, id grantID) (*grantEntry, error) {
	return gs.read(ctx, s, id, true)
}

// peek is get for a caller that visits many grants once (the sweep): it does not fill the cache, so
// a sweep over 100,000 grants does not hold them all in memory.
func (gs *grantStore) peek(ctx context.Context, s logical.Storage, id grantID) (*grantEntry, error) {
	return gs.read(ctx, s, id, false)
}

func (gs *grantStore) read(ctx context.Context, s logical.Storage, id grantID, fill bool) (*grantEntry, error) {
	if g := gs.pending(id); g != nil {
		return g, nil
	}
	g, epoch, ok := gs.cache.lookup(id)
	if ok {
		return g, nil
	}
	g, err := gs.load(ctx, s, id)
	if err != nil || g == nil || !fill {
		return g, err
	}
	gs.cache.fill(id, g, epoch)
	return g, nil
}

// peekSeen is peek for the sweep: it also returns the epoch to hand back to rememberQuiet, which
// a grant changed meanwhile makes void. A grant waiting in the unsaved map gets an epoch that never
// matches: the sweep looks at it every time.
func (gs *grantStore) peekSeen(ctx context.Context, s logical.Storage, id grantID) (*grantEntry, uint64, error) {
	if g := gs.pending(id); g != nil {
		return g, neverEpoch, nil
	}
	g, epoch, ok := gs.cache.lookup(id)
	if ok {
		return g, epoch, nil
	}
	g, err := gs.load(ctx, s, id)
	return g, epoch, err
}

// quiet reports whether the sweep may pass this grant by without reading it: it found nothing due
// when it last read it, nothing has written the grant since, and the time it computed has not come.
func (gs *grantStore) quiet(id grantID, now time.Time, thresholds levelThresholds) bool {
	return gs.cache.quietAt(id, now, thresholds)
}

// rememberRead records what the sweep found in a grant it has just read (seen is the epoch
// peekSeen returned): until when nothing is due for it (zero: look every time) and whose it is.
// Any write or drop of the grant forgets it.
func (gs *grantStore) rememberRead(id grantID, seen uint64, g *grantEntry, quietUntil time.Time, thresholds levelThresholds) {
	sum := grantSummary{openID: idHash(g.OpenID), unionID: idHash(g.UnionID)}
	if !quietUntil.IsZero() {
		sum.quietUntil = quietUntil.UnixNano()
	}
	gs.cache.setSummary(id, seen, sum, thresholds)
}

// mayBelongTo is false only when memory proves the grant is not the user's (by open_id or
// union_id, as grantEntry.revokedBy matches): a revocation event then need not read it. A grant
// memory knows nothing about may belong to anyone.
func (gs *grantStore) mayBelongTo(id grantID, openID, unionID string) bool {
	sum, ok := gs.cache.summary(id)
	if !ok {
		return true
	}
	return (openID != "" && sum.openID == idHash(openID)) || (unionID != "" && sum.unionID == idHash(unionID))
}

// idHash is FNV-1a of a Lark user id; 0 for none. Equal ids give equal hashes, so a hash that
// differs proves the ids differ; a hash that matches is confirmed on the grant itself.
func idHash(id string) uint64 {
	if id == "" {
		return 0
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	return h.Sum64() | 1 // never 0
}

// invalidate drops a grant from memory after its key changed elsewhere.
func (gs *grantStore) invalidate(id grantID) { gs.cache.drop(id) }

func (gs *grantStore) pending(id grantID) *grantEntry {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if g := gs.unsaved[id]; g != nil {
		return g.clone()
	}
	return nil
}

func (gs *grantStore) load(ctx context.Context, s logical.Storage, id grantID) (*grantEntry, error) {
	raw, err := s.Get(ctx, id.storageKey())
	if err != nil {
		return nil, fmt.Errorf("reading grant %s: %w", id, err)
	}
	if raw == nil {
		return nil, nil
	}
	var g grantEntry
	if err := raw.DecodeJSON(&g); err != nil {
		return nil, fmt.Errorf("decoding grant %s: %w", id, err)
	}
	return &g, nil
}

// list returns the slots of an app that hold a grant, stored or not yet stored.
func (gs *grantStore) list(ctx context.Context, s logical.Storage, appID string) ([]string, error) {
	slots, err := s.List(ctx, grantStoragePrefix+appID+"/")
	if err != nil {
		return nil, err
	}
	gs.mu.Lock()
	for id := range gs.unsaved {
		if id.App == appID {
			slots = append(slots, id.Slot)
		}
	}
	gs.mu.Unlock()
	return dedupSorted(slots), nil
}

// listAll returns every grant, sorted by app then slot: the sweep cursor's order.
func (gs *grantStore) listAll(ctx context.Context, s logical.Storage) ([]grantID, error) {
	apps, err := s.List(ctx, grantStoragePrefix)
	if err != nil {
		return nil, err
	}
	gs.mu.Lock()
	for id := range gs.unsaved {
		apps = append(apps, id.App+"/")
	}
	gs.mu.Unlock()
	var ids []grantID
	for _, a := range dedupSorted(apps) {
		appID := strings.TrimSuffix(a, "/")
		slots, err := gs.list(ctx, s, appID)
		if err != nil {
			return nil, err
		}
		for _, slot := range slots {
			ids = append(ids, grantID{appID, slot})
		}
	}
	return ids, nil
}

func dedupSorted(in []string) []string {
	sort.Strings(in)
	out := in[:0]
	for i, v := range in {
		if i == 0 || v != in[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// grantTx is one grant held under its lock: the only way to read a grant and then change it.
type grantTx struct {
	ctx context.Context
	gs  *grantStore
	s   logical.Storage
	id  grantID
	g   *grantEntry // nil when the slot holds no grant
}

// withGrant runs fn with the grant locked and freshly read. A grant left unsaved by an earlier
// request is stored first; if storage still refuses it, fn sees it anyway (it is the newest state).
func (gs *grantStore) withGrant(ctx context.Context, s logical.Storage, id grantID, fn func(tx *grantTx) error) error {
	lock := locksutil.LockForKey(gs.locks, id.storageKey())
	lock.Lock()
	defer lock.Unlock()
	tx := &grantTx{ctx: ctx, gs: gs, s: s, id: id}
	if pending := gs.pending(id); pending != nil {
		tx.g = pending
		if err := tx.save(); err == nil {
			gs.logger().Info("stored a grant that an earlier write had failed to store", "grant", id.String())
		}
	} else {
		g, err := gs.load(ctx, s, id)
		if err != nil {
			return err
		}
		tx.g = g
	}
	return fn(tx)
}

// grant is the locked grant (nil if none). Changes to it are kept by save.
func (tx *grantTx) grant() *grantEntry { return tx.g }

// save stores the grant with retries, on a context of its own: once Lark has acted, the outcome
// must be stored even if the request that caused it is gone. If storage still refuses, the grant is
// kept in memory (every later access tries again, and Clean does at shutdown) and a
// *notStoredError says so.
func (tx *grantTx) save() error { return tx.put(true) }

// saveMark stores a state that only prepares a call to Lark (the in-flight mark). If storage refuses
// it, the call is not made, so nothing needs keeping in memory.
func (tx *grantTx) saveMark() error { return tx.put(false) }

func (tx *grantTx) put(keep bool) error {
	g := tx.g
	g.Version = grantEntryVersion
	entry, err := logical.StorageEntryJSON(tx.id.storageKey(), g)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(tx.ctx), storeTimeout)
	defer cancel()
	var lastErr error
	delay := 50 * time.Millisecond
retry:
	for attempt := 1; attempt <= storeAttempts; attempt++ {
		if lastErr = tx.s.Put(ctx, entry); lastErr == nil {
			tx.gs.mu.Lock()
			delete(tx.gs.unsaved, tx.id)
			tx.gs.mu.Unlock()
			tx.gs.cache.put(tx.id, g.clone())
			return nil
		}
		if errors.Is(lastErr, logical.ErrReadOnly) || attempt == storeAttempts {
			break // a node that lost the right to write will not regain it by retrying
		}
		tx.gs.logger().Warn("storing grant failed; retrying", "grant", tx.id.String(), "attempt", attempt, "error", lastErr)
		select {
		case <-ctx.Done():
			break retry
		case <-time.After(delay):
		}
		delay *= 2
	}
	// Storage may or may not hold the write that failed: memory must not claim either.
	tx.gs.cache.drop(tx.id)
	if !keep {
		return lastErr
	}
	tx.gs.mu.Lock()
	tx.gs.unsaved[tx.id] = g.clone()
	tx.gs.mu.Unlock()
	tx.gs.logger().Error("Vault could not store a grant; it is kept in memory and stored at its next access or at shutdown",
		"grant", tx.id.String(), "error", lastErr)
	return &notStoredError{id: tx.id, err: lastErr}
}

// replace puts a new grant into the slot and stores it.
func (tx *grantTx) replace(g *grantEntry) error {
	tx.g = g
	return tx.save()
}

// remove deletes the grant from storage and memory.
func (tx *grantTx) remove() error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(tx.ctx), storeTimeout)
	defer cancel()
	tx.gs.cache.drop(tx.id)
	err := tx.s.Delete(ctx, tx.id.storageKey())
	// Again after the delete: a read that loaded the grant while the delete was under way must not
	// leave it in memory.
	tx.gs.cache.drop(tx.id)
	if err != nil {
		return err
	}
	tx.gs.mu.Lock()
	delete(tx.gs.unsaved, tx.id)
	tx.gs.mu.Unlock()
	tx.g = nil
	tx.gs.levels(tx.id, "")
	return nil
}

// flushUnsaved stores every grant left in memory. It runs at the start of each sweep and when the
// backend is cleaned up; what still fails is logged, loudly, with the grant it belongs to.
func (gs *grantStore) flushUnsaved(ctx context.Context, s logical.Storage) (stored int, left []*grantEntry) {
	gs.mu.Lock()
	ids := make([]grantID, 0, len(gs.unsaved))
	for id := range gs.unsaved {
		ids = append(ids, id)
	}
	gs.mu.Unlock()
	for _, id := range ids {
		err := gs.withGrant(ctx, s, id, func(*grantTx) error { return nil })
		if g := gs.pending(id); g != nil {
			left = append(left, g)
			gs.logger().Error("a grant with a rotated refresh token is still not stored; it is lost if this process ends now",
				"grant", id.String(), "error", err)
			continue
		}
		stored++
	}
	return stored, left
}

// unsavedCount is for tests and metrics.
func (gs *grantStore) unsavedCount() int {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	return len(gs.unsaved)
}

// grantCacheLimit bounds the memory the cache takes: grants hold two tokens of 1-2 KB each, and
// only grants that readers ask for are cached at all.
const grantCacheLimit = 20000

// grantCache is a bounded map of grant snapshots. Each id has an epoch that moves on every put and
// drop, so a read that loaded from storage before a concurrent write cannot put its older copy back
// (fill checks the epoch it saw before loading).
type grantCache struct {
	limit   int
	mu      sync.RWMutex
	entries map[grantID]*grantEntry
	epochs  map[grantID]uint64
	next    uint64
	// floor is the epoch of every id whose own epoch was pruned. It moves past every epoch handed
	// out before the prune, so a reader that saw an older epoch is refused, never taken for one
	// that saw "never written".
	floor uint64

	// summaries holds, for grants the sweep has read, what it found: until when nothing can fall
	// due (grantEntry.quietUntil, under the thresholds in quietFor) and whose grant it is. It is
	// not bounded by limit: one small entry per grant (about 300 B of resident memory measured,
	// BENCHMARKS.md), so that a pass over 100,000 quiet grants, or a revocation event of one user
	// among them, reads almost none of them from storage. Every put and drop forgets the entry.
	summaries map[grantID]grantSummary
	quietFor  levelThresholds
}

// grantSummary is what the sweep last found in a grant.
type grantSummary struct {
	quietUntil      int64  // Unix ns; 0: the sweep looks at the grant on every pass
	openID, unionID uint64 // idHash of the grant's user ids
}

// neverEpoch is an epoch no grant ever has.
const neverEpoch = ^uint64(0)

func (c *grantCache) quietAt(id grantID, now time.Time, thresholds levelThresholds) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.quietFor != thresholds {
		return false
	}
	sum, ok := c.summaries[id]
	return ok && now.UnixNano() < sum.quietUntil
}

func (c *grantCache) summary(id grantID) (grantSummary, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	sum, ok := c.summaries[id]
	return sum, ok
}

func (c *grantCache) setSummary(id grantID, seen uint64, sum grantSummary, thresholds levelThresholds) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epochLocked(id) != seen {
		return
	}
	if c.summaries == nil || c.quietFor != thresholds {
		// Quiet times computed under other thresholds are void; the next pass reads every grant
		// again and records them anew.
		c.summaries, c.quietFor = map[grantID]grantSummary{}, thresholds
	}
	c.summaries[id] = sum
}

func (c *grantCache) lookup(id grantID) (*grantEntry, uint64, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	g, ok := c.entries[id]
	return g, c.epochLocked(id), ok
}

func (c *grantCache) epochLocked(id grantID) uint64 {
	if e, ok := c.epochs[id]; ok {
		return e
	}
	return c.floor
}

func (c *grantCache) fill(id grantID, g *grantEntry, seen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epochLocked(id) != seen {
		return
	}
	c.insertLocked(id, g)
}

func (c *grantCache) put(id grantID, g *grantEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bumpLocked(id)
	c.insertLocked(id, g)
}

func (c *grantCache) drop(id grantID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bumpLocked(id)
	delete(c.entries, id)
}

func (c *grantCache) bumpLocked(id grantID) {
	c.next++
	c.epochs[id] = c.next
	delete(c.summaries, id)
}

func (c *grantCache) insertLocked(id grantID, g *grantEntry) {
	if _, ok := c.entries[id]; !ok && len(c.entries) >= c.limit {
		// Evict an arbitrary entry (map order is random): cheap, and a grant read again is simply
		// loaded again.
		for victim := range c.entries {
			delete(c.entries, victim)
			break
		}
	}
	c.entries[id] = g
	// Epochs of evicted or dropped ids are kept so a stale fill stays refused; bound them too.
	if len(c.epochs) > 4*c.limit {
		c.next++
		c.floor = c.next
		for k := range c.epochs {
			if _, live := c.entries[k]; !live {
				delete(c.epochs, k)
			}
		}
	}
}

func (c *grantCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
