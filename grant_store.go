package larksecrets

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/lark-vault/vault-plugin-secrets-lark/clock"
)

// storeAttempts is how many times save and saveMark try a grant write; after that, save keeps the
// grant in memory.
const storeAttempts = 5

// grantStore owns user grants: their locks, their storage, and the grants whose last write failed.
// A grant changes only inside withGrant, under its lock, through the grant's own methods; nothing
// else in the package touches the locks or the unsaved map.
type grantStore struct {
	logger func() hclog.Logger
	clock  clock.Clock
	// thresholds are the mount's level thresholds, which a grant's level and due time depend on.
	thresholds func(ctx context.Context, s logical.Storage) (levelThresholds, error)
	// counts are the per-app level counts, kept with every write (grant_index.go).
	counts *levelCounts

	locks []*locksutil.LockEntry

	mu sync.Mutex
	// unsaved holds grants whose newest state (a rotated refresh token, a new grant) Lark has
	// produced but storage refused even after retries. It wins over storage everywhere, and every
	// access of the grant tries to store it first.
	unsaved map[grantID]*grantEntry
	// unindexed holds grants stored without their due entry (storage refused it): the sweep looks
	// at them first on every run and writes the entry again. After a restart the walk finds them.
	unindexed map[grantID]bool
	// lowestDue is the earliest due-index minute this process wrote since the sweep last asked
	// (0: none): where the sweep starts if it is before where the sweep stands, as after the clock
	// went back.
	lowestDue int64

	// cache holds what storage holds for recently read grants, so a read with nothing due costs no
	// storage round trip (plugin → Vault → Raft). It stays coherent because every write of a grant
	// goes through this store, and Invalidate drops an entry when another node or a replication
	// stream changes the key. A new active node starts with an empty cache.
	cache grantCache
}

func newGrantStore(logger func() hclog.Logger, clk clock.Clock, thresholds func(context.Context, logical.Storage) (levelThresholds, error)) *grantStore {
	return &grantStore{logger: logger, clock: clk, thresholds: thresholds, counts: newLevelCounts(logger),
		locks: locksutil.CreateLocks(), unsaved: map[grantID]*grantEntry{}, unindexed: map[grantID]bool{},
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
	// stored is what the indexes hold for the grant as storage has it: what a write must move.
	stored indexed
}

// withGrant runs fn with the grant locked and freshly read. A grant left unsaved by an earlier
// request is stored first; if storage still refuses it, fn sees it anyway (it is the newest state).
func (gs *grantStore) withGrant(ctx context.Context, s logical.Storage, id grantID, fn func(tx *grantTx) error) error {
	lock := locksutil.LockForKey(gs.locks, id.storageKey())
	lock.Lock()
	defer lock.Unlock()
	tx := &grantTx{ctx: ctx, gs: gs, s: s, id: id}
	pending := gs.pending(id)
	stored, err := gs.load(ctx, s, id)
	switch {
	case err != nil && pending == nil:
		return err
	case err != nil:
		// What storage holds is unknown: index as if it held the pending grant (an entry left
		// behind is dropped when found, a count left wrong is recounted by the walk).
		stored = pending
	}
	tx.g, tx.stored = stored, indexedOf(stored)
	if pending != nil {
		tx.g = pending
		if err := tx.save(); err == nil {
			gs.logger().Info("stored a grant that an earlier write had failed to store", "grant", id.String())
		}
	}
	return fn(tx)
}

// grant is the locked grant (nil if none). Changes to it are kept by save.
func (tx *grantTx) grant() *grantEntry { return tx.g }

// save stores the grant with retries, on a context of its own: once Lark has acted, the outcome
// must be stored even if the request that caused it is gone. If storage still refuses, the grant is
// kept in memory (every later access tries again, and Clean does at shutdown) and a
// *notStoredError says so.
func (tx *grantTx) save() error { return tx.put(true, storeAttempts) }

// saveMark stores a state that only prepares a call to Lark (the in-flight mark). If storage refuses
// it, the call is not made, so nothing needs keeping in memory.
func (tx *grantTx) saveMark() error { return tx.put(false, storeAttempts) }

// saveSchedule stores what the sweep derived (the due entry, the recorded level, the notice it
// queued) for a grant whose tokens are unchanged: one attempt, and nothing kept in memory if it
// fails, since the grant stays due where it was and the next run tries again.
func (tx *grantTx) saveSchedule() error { return tx.put(false, 1) }

func (tx *grantTx) put(keep bool, attempts int) error {
	g := tx.g
	g.Version = grantEntryVersion
	ctx, cancel := detachedStore(tx.ctx)
	defer cancel()
	// The in-flight mark is indexed too: a crash before the outcome is stored leaves the grant due
	// at once, so the sweep settles the interrupted refresh.
	next := tx.indexFor(ctx, g)
	g.DueAt, g.Level = next.due, next.level
	indexed := tx.addIndex(ctx, next)
	entry, err := logical.StorageEntryJSON(tx.id.storageKey(), g)
	if err != nil {
		return err
	}
	var lastErr error
	delay := 50 * time.Millisecond
retry:
	for attempt := 1; attempt <= attempts; attempt++ {
		if lastErr = tx.s.Put(ctx, entry); lastErr == nil {
			tx.gs.mu.Lock()
			delete(tx.gs.unsaved, tx.id)
			if indexed {
				delete(tx.gs.unindexed, tx.id)
			} else {
				tx.gs.unindexed[tx.id] = true
			}
			tx.gs.mu.Unlock()
			tx.gs.cache.put(tx.id, g.clone())
			tx.dropIndex(ctx, tx.stored, next)
			tx.gs.counts.move(ctx, tx.s, tx.id, tx.stored.level, next.level)
			tx.stored = next
			return nil
		}
		if errors.Is(lastErr, logical.ErrReadOnly) || attempt == attempts {
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
	// Storage may or may not hold the write that failed: memory must not claim either. The new index
	// entries stay: an entry the grant does not name is dropped by whoever finds it.
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

// indexFor is what the indexes must hold for g now: its due time (sweepAt, never before now), its
// level and its user ids.
func (tx *grantTx) indexFor(ctx context.Context, g *grantEntry) indexed {
	now := tx.gs.clock.Now()
	th, err := tx.gs.thresholds(ctx, tx.s)
	if err != nil {
		// The grant is stored all the same; the sweep looks at it at once and indexes it then.
		tx.gs.logger().Warn("grant indexed as due now: the mount's settings could not be read", "grant", tx.id.String(), "error", err)
		return indexed{due: now, level: tx.stored.level, openID: g.OpenID, unionID: g.UnionID}
	}
	next := indexed{due: sweepAt(g, th, now), level: g.health(now, th).Level, openID: g.OpenID, unionID: g.UnionID}
	if !next.due.IsZero() && next.due.Before(now) {
		next.due = now
	}
	if !next.due.IsZero() && !tx.stored.due.IsZero() && dueBucketOf(next.due) == dueBucketOf(tx.stored.due) {
		next.due = tx.stored.due // the same entry
	}
	return next
}

// addIndex writes the entries next has that the stored grant's do not, before the grant itself, so
// that no crash leaves a stored grant without them. false: storage refused one.
func (tx *grantTx) addIndex(ctx context.Context, next indexed) bool {
	var keys []string
	if !next.due.IsZero() && (tx.stored.due.IsZero() || dueBucketOf(next.due) != dueBucketOf(tx.stored.due)) {
		keys = append(keys, dueKey(next.due, tx.id))
		tx.gs.mu.Lock()
		if b := dueBucketOf(next.due); tx.gs.lowestDue == 0 || b < tx.gs.lowestDue {
			tx.gs.lowestDue = b
		}
		tx.gs.mu.Unlock()
	}
	had := whoKeys(tx.id, tx.stored.openID, tx.stored.unionID)
	for _, k := range whoKeys(tx.id, next.openID, next.unionID) {
		if !slices.Contains(had, k) {
			keys = append(keys, k)
		}
	}
	ok := true
	for _, k := range keys {
		if err := tx.s.Put(ctx, &logical.StorageEntry{Key: k, Value: indexEntryValue}); err != nil {
			ok = false
			tx.gs.logger().Warn("an index entry of a grant was not stored; the sweep writes it again", "grant", tx.id.String(), "error", err)
		}
	}
	return ok
}

// dropIndex deletes, after the grant is stored, the entries from that next no longer has. One
// that stays (storage refused the delete, or a crash came first) is dropped by whoever finds it.
func (tx *grantTx) dropIndex(ctx context.Context, from, next indexed) {
	var keys []string
	if !from.due.IsZero() && (next.due.IsZero() || dueBucketOf(next.due) != dueBucketOf(from.due)) {
		keys = append(keys, dueKey(from.due, tx.id))
	}
	keep := whoKeys(tx.id, next.openID, next.unionID)
	for _, k := range whoKeys(tx.id, from.openID, from.unionID) {
		if !slices.Contains(keep, k) {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		if err := tx.s.Delete(ctx, k); err != nil {
			tx.gs.logger().Debug("a stale index entry of a grant was not deleted; it is dropped when found", "grant", tx.id.String(), "error", err)
		}
	}
}

// dropStaleDue deletes the grant's entry in the due index's minute bucket unless the grant (checked
// under its lock, so a write that has just named it is not undone) is due in that minute.
func (tx *grantTx) dropStaleDue(bucket int64) error {
	if g := tx.g; g != nil && !g.DueAt.IsZero() && dueBucketOf(g.DueAt) == bucket {
		return nil
	}
	return tx.s.Delete(tx.ctx, dueBucketKey(bucket)+tx.id.App+"/"+tx.id.Slot)
}

// reindex stores the grant with every index entry written again, present or not: the walk's
// repair of an entry found missing.
func (tx *grantTx) reindex() error {
	tx.stored.due, tx.stored.openID, tx.stored.unionID = time.Time{}, "", ""
	return tx.saveSchedule()
}

// replace puts a new grant into the slot and stores it.
func (tx *grantTx) replace(g *grantEntry) error {
	tx.g = g
	return tx.save()
}

// remove deletes the grant from storage and memory, and then its index entries.
func (tx *grantTx) remove() error {
	ctx, cancel := detachedStore(tx.ctx)
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
	delete(tx.gs.unindexed, tx.id)
	tx.gs.mu.Unlock()
	tx.dropIndex(ctx, tx.stored, indexed{})
	tx.gs.counts.move(ctx, tx.s, tx.id, tx.stored.level, "")
	tx.g, tx.stored = nil, indexed{}
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

// takeLowestDue returns the earliest due-index minute written since the last call (0: none).
func (gs *grantStore) takeLowestDue() int64 {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	b := gs.lowestDue
	gs.lowestDue = 0
	return b
}

// reindexUnindexed writes again the due entries storage refused (each sweep, and Cleanup: after a
// restart only the walk would find them).
func (gs *grantStore) reindexUnindexed(ctx context.Context, s logical.Storage) {
	for _, id := range gs.takeUnindexed() {
		if err := gs.withGrant(ctx, s, id, func(tx *grantTx) error {
			if tx.grant() == nil {
				return nil
			}
			return tx.reindex()
		}); err != nil {
			gs.logger().Warn("a grant's due entry could not be written; the sweep's walk writes it", "grant", id.String(), "error", err)
		}
	}
}

// takeUnindexed returns the grants stored without their due entry, and forgets them: the sweep
// writes their entries again (a failure puts them back).
func (gs *grantStore) takeUnindexed() []grantID {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	out := make([]grantID, 0, len(gs.unindexed))
	for id := range gs.unindexed {
		out = append(out, id)
	}
	clear(gs.unindexed)
	return out
}

// indexIntact reports whether the indexes hold what they should for the locked grant now: the due
// entry and level its schedule gives, and every entry present in storage.
func (tx *grantTx) indexIntact(ctx context.Context) (bool, error) {
	g := tx.g
	want := tx.indexFor(ctx, g)
	if want.level != tx.stored.level || want.due.IsZero() != tx.stored.due.IsZero() ||
		(!want.due.IsZero() && dueBucketOf(want.due) != dueBucketOf(tx.stored.due)) {
		return false, nil
	}
	keys := whoKeys(tx.id, tx.stored.openID, tx.stored.unionID)
	if tx.stored.openID != g.OpenID || tx.stored.unionID != g.UnionID {
		return false, nil
	}
	if !tx.stored.due.IsZero() {
		keys = append(keys, dueKey(tx.stored.due, tx.id))
	}
	for _, k := range keys {
		e, err := tx.s.Get(ctx, k)
		if err != nil {
			return false, err
		}
		if e == nil {
			return false, nil
		}
	}
	return true, nil
}

// slotsOfUser returns the slots of an app that may hold a grant of the Lark user with these ids,
// each to be confirmed on the grant itself: from the who index once built says it covers every
// grant (a walk has gone over all of them), and every slot of the app before.
func (gs *grantStore) slotsOfUser(ctx context.Context, s logical.Storage, appID, openID, unionID string,
	built func(context.Context, logical.Storage) (bool, error)) ([]string, error) {
	complete, err := built(ctx, s)
	if err != nil {
		return nil, err
	}
	if !complete {
		return gs.list(ctx, s, appID)
	}
	var slots []string
	for _, u := range []string{openID, unionID} {
		if u == "" {
			continue
		}
		found, err := s.List(ctx, whoPrefix(appID, u))
		if err != nil {
			return nil, err
		}
		slots = append(slots, found...)
	}
	gs.mu.Lock()
	for id, g := range gs.unsaved {
		if id.App == appID && g.revokedBy(openID, unionID) {
			slots = append(slots, id.Slot)
		}
	}
	gs.mu.Unlock()
	return dedupSorted(slots), nil
}
