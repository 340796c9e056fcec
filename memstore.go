package larksecrets

import (
	"context"
	"fmt"
	"sync"

	"github.com/hashicorp/vault/sdk/logical"
)

// storeSpec says where one kind of entry lives in storage and how it is read. Each kind has one,
// in the file of the store that owns it, and storage.go lists every prefix of the mount.
type storeSpec[T any] struct {
	// prefix is the storage prefix; a key k is stored at prefix+k. With single, prefix is the
	// whole storage key and the store holds one entry, under the key "".
	prefix string
	single bool
	// what names the entry of key k in errors ("app cli_…").
	what func(key string) string
	// version is written into every entry put, through versionOf; an entry stored with a higher
	// version (by a newer plugin, before a downgrade) is refused rather than misread.
	version   int
	versionOf func(*T) *int
	// fresh is the value an entry is decoded into (nil: a zero T); config starts from its defaults.
	fresh func() *T
	// finish runs on every entry loaded, and on a missing one (nil): defaults, "none usable".
	finish func(*T) *T
	// limit bounds the entries kept in memory where the key space is unbounded (tenants, slot
	// bindings); 0 keeps every entry (one per app, or the single config entry).
	limit int
	// keepAbsent remembers that storage holds nothing for a key (a nil entry), so asking again
	// costs no storage read.
	keepAbsent bool
}

// layout hands cachedStore its spec. It is a type parameter so that the zero value of a store is
// ready to use: a layout is an empty struct whose spec method returns a package-level spec.
type layout[T any] interface{ spec() *storeSpec[T] }

// cachedStore is memory in front of storage for one kind of entry. Memory only ever holds what
// storage held at some moment after the last change of the key that this process knows of (or
// what swap set, for what storage cannot say): every
// key has an epoch that moves on every put, delete, memory-only change and invalidate, and a read
// that loaded from storage keeps its result only if the epoch it saw before loading has not moved
// (else a put or an Invalidate raced it, and what it loaded may be older than storage). Entries
// are shared: nobody changes one in place; a write stores a new one.
type cachedStore[T any, L layout[T]] struct {
	mu      sync.RWMutex
	entries map[string]*T // key → the entry storage holds; nil: none (keepAbsent, or swap)
	epochs  map[string]uint64
	next    uint64
	// floor is the epoch of every key without one of its own. Pruning epochs raises it past every
	// epoch handed out before, so a reader that saw a pruned epoch is refused, never taken for one
	// that saw the key untouched.
	floor uint64
}

func (c *cachedStore[T, L]) spec() *storeSpec[T] {
	var l L
	return l.spec()
}

func (c *cachedStore[T, L]) storageKey(key string) string {
	if c.spec().single {
		return c.spec().prefix
	}
	return c.spec().prefix + key
}

// get returns the entry from memory, or loads it from storage and keeps it unless the key changed
// while it was being loaded. A missing entry is nil (or what finish makes of nil).
func (c *cachedStore[T, L]) get(ctx context.Context, s logical.Storage, key string) (*T, error) {
	c.mu.RLock()
	v, ok := c.entries[key]
	var seen uint64
	if !ok {
		seen = c.epochLocked(key)
	}
	c.mu.RUnlock()
	if ok {
		return v, nil
	}
	v, err := c.load(ctx, s, key)
	if err != nil {
		return nil, err
	}
	c.fill(key, v, seen)
	return v, nil
}

// load reads the stored entry, bypassing memory, for a read-modify-write or a listing.
func (c *cachedStore[T, L]) load(ctx context.Context, s logical.Storage, key string) (*T, error) {
	sp := c.spec()
	raw, err := s.Get(ctx, c.storageKey(key))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", sp.what(key), err)
	}
	var v *T
	if raw != nil {
		if sp.fresh != nil {
			v = sp.fresh()
		} else {
			v = new(T)
		}
		if err := raw.DecodeJSON(v); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", sp.what(key), err)
		}
		if got := *sp.versionOf(v); got > sp.version {
			return nil, fmt.Errorf("%s was stored by a newer version of the plugin (entry version %d; this version reads up to %d)",
				sp.what(key), got, sp.version)
		}
	}
	if sp.finish != nil {
		v = sp.finish(v)
	}
	return v, nil
}

// put stores v and keeps it in memory. If anything else changed the key while v was being stored
// (another put, an Invalidate), which of the two storage holds is unknown: memory forgets the key
// and the next read loads it.
func (c *cachedStore[T, L]) put(ctx context.Context, s logical.Storage, key string, v *T) error {
	seen, err := c.write(ctx, s, key, v)
	if err != nil {
		return err
	}
	c.settle(key, v, true, seen)
	return nil
}

// store stores v and drops the memory copy: the next read loads what storage returns. For callers
// that keep using v after the write.
func (c *cachedStore[T, L]) store(ctx context.Context, s logical.Storage, key string, v *T) error {
	if _, err := c.write(ctx, s, key, v); err != nil {
		return err
	}
	c.invalidate(key)
	return nil
}

func (c *cachedStore[T, L]) write(ctx context.Context, s logical.Storage, key string, v *T) (uint64, error) {
	sp := c.spec()
	*sp.versionOf(v) = sp.version
	entry, err := logical.StorageEntryJSON(c.storageKey(key), v)
	if err != nil {
		return 0, err
	}
	seen := c.epoch(key)
	if err := s.Put(ctx, entry); err != nil {
		return 0, fmt.Errorf("storing %s: %w", sp.what(key), err)
	}
	return seen, nil
}

// delete removes the stored entry; memory then knows it is absent (keepAbsent) or forgets the key.
func (c *cachedStore[T, L]) delete(ctx context.Context, s logical.Storage, key string) error {
	seen := c.epoch(key)
	if err := s.Delete(ctx, c.storageKey(key)); err != nil {
		return err
	}
	c.settle(key, nil, c.spec().keepAbsent, seen)
	return nil
}

// list lists the stored keys under prefix+sub.
func (c *cachedStore[T, L]) list(ctx context.Context, s logical.Storage, sub string) ([]string, error) {
	return s.List(ctx, c.spec().prefix+sub)
}

// swap changes memory only, for what storage cannot say (a ticket Lark refused is remembered as
// none usable). change gets the memory copy (ok false: none) and returns the new one, or false to
// leave memory as it is. Like a write it moves the key's epoch.
func (c *cachedStore[T, L]) swap(key string, change func(cur *T, ok bool) (*T, bool)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur, ok := c.entries[key]
	next, apply := change(cur, ok)
	if !apply {
		return
	}
	c.bumpLocked(key)
	c.insertLocked(key, next)
}

// invalidate forgets the key: storage changed elsewhere (Invalidate) or here in a way memory does
// not follow. A read of the key that started before is not kept.
func (c *cachedStore[T, L]) invalidate(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bumpLocked(key)
	delete(c.entries, key)
}

// count is the number of entries in memory that are not nil.
func (c *cachedStore[T, L]) count() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n := 0
	for _, v := range c.entries {
		if v != nil {
			n++
		}
	}
	return n
}

func (c *cachedStore[T, L]) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

func (c *cachedStore[T, L]) epoch(key string) uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.epochLocked(key)
}

func (c *cachedStore[T, L]) epochLocked(key string) uint64 {
	if e, ok := c.epochs[key]; ok {
		return e
	}
	return c.floor
}

// fill keeps what a read loaded, if nothing changed the key since the read saw epoch seen.
func (c *cachedStore[T, L]) fill(key string, v *T, seen uint64) {
	if v == nil && !c.spec().keepAbsent {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epochLocked(key) != seen {
		return
	}
	c.insertLocked(key, v)
}

// settle records a write that started at epoch seen: keep v (if keep) when nothing else changed
// the key meanwhile, else forget the key.
func (c *cachedStore[T, L]) settle(key string, v *T, keep bool, seen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	raced := c.epochLocked(key) != seen
	c.bumpLocked(key)
	if raced || !keep {
		delete(c.entries, key)
		return
	}
	c.insertLocked(key, v)
}

func (c *cachedStore[T, L]) bumpLocked(key string) {
	if c.epochs == nil {
		c.epochs = map[string]uint64{}
	}
	c.next++
	c.epochs[key] = c.next
	// Epochs of evicted and forgotten keys are kept so a stale fill stays refused; bound them too.
	if len(c.epochs) > 4*len(c.entries)+minEpochs {
		c.next++
		c.floor = c.next
		for k := range c.epochs {
			if _, live := c.entries[k]; !live {
				delete(c.epochs, k)
			}
		}
	}
}

// minEpochs is how many epochs of keys no longer in memory are kept before they are pruned.
const minEpochs = 256

func (c *cachedStore[T, L]) insertLocked(key string, v *T) {
	if c.entries == nil {
		c.entries = map[string]*T{}
	}
	if limit := c.spec().limit; limit > 0 {
		if _, ok := c.entries[key]; !ok && len(c.entries) >= limit {
			// Evict an arbitrary entry (map order is random): cheap, and an entry read again is
			// simply loaded again.
			for victim := range c.entries {
				delete(c.entries, victim)
				break
			}
		}
	}
	c.entries[key] = v
}

// putJSON writes v as JSON at key, for the entries kept with no memory in front of them (device
// logins, rollback records, notices and where their schedule stands).
func putJSON(ctx context.Context, s logical.Storage, key string, v interface{}) error {
	e, err := logical.StorageEntryJSON(key, v)
	if err != nil {
		return err
	}
	return s.Put(ctx, e)
}
