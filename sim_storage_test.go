package larksecrets

import (
	"context"
	"errors"
	"math/rand"
	"sync"

	"github.com/hashicorp/vault/sdk/logical"
)

// simStorage is the simulation's storage: one logical.InmemStorage shared by every "process" the
// harness starts, seen through a view per process. It injects write failures with a probability
// the harness sets for one step at a time, and it can kill a view: every later call of the dead
// process fails, as a process that no longer exists can neither write nor read.
//
// The failure decisions come from the storage's own random source, seeded from the simulation
// seed; the harness keeps at most one live goroutine touching storage at a time, so the sequence of
// decisions is the same on every run of a seed.
type simStorage struct {
	inner logical.InmemStorage

	mu       sync.Mutex
	rng      *rand.Rand
	failProb float64
	// dirty holds the keys whose last write failed: storage has an older value than the process
	// that tried to write (which keeps the newer one in memory).
	dirty map[string]bool
	// injected counts the write failures injected (not those of dead processes).
	injected int
	// failed lists the keys whose write storage refused since the harness last took them
	// (sim_index_test.go).
	failed []string
}

// takeFailed returns the keys whose write failed since the last call.
func (s *simStorage) takeFailed() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.failed
	s.failed = nil
	return out
}

var errSimStorageFault = errors.New("simulated storage failure: the write was refused")
var errSimProcessGone = errors.New("simulated crash: this process no longer exists")

func newSimStorage(seed int64) *simStorage {
	return &simStorage{rng: rand.New(rand.NewSource(seed)), dirty: map[string]bool{}}
}

// setFailProb makes each write fail with probability p from now on (0 turns failures off).
func (s *simStorage) setFailProb(p float64) {
	s.mu.Lock()
	s.failProb = p
	s.mu.Unlock()
}

func (s *simStorage) isDirty(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dirty[key]
}

func (s *simStorage) injectedFaults() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.injected
}

// view is the storage as one process sees it.
func (s *simStorage) view() *simStorageView {
	return &simStorageView{s: s}
}

// raw reads storage directly, as the harness's checks (and a freshly started process) see it.
func (s *simStorage) raw() logical.Storage { return &s.inner }

type simStorageView struct {
	s    *simStorage
	mu   sync.Mutex
	dead bool
	// writesLeft > 0: the process dies at that many writes from now, before the last one reaches
	// storage (a crash between two writes of one request). 0: no such death is planned.
	writesLeft int
}

// dieAt plans the process's death at its n-th write from now.
func (v *simStorageView) dieAt(n int) {
	v.mu.Lock()
	v.writesLeft = n
	v.mu.Unlock()
}

// write reports whether a write may go ahead: false when the process is gone or dies right now.
func (v *simStorageView) write(key string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.dead {
		return false
	}
	if v.writesLeft > 0 {
		v.writesLeft--
		if v.writesLeft == 0 {
			v.dead = true
			// Not in failed: a write order that never hides a grant survives a death at any write,
			// so nothing a death leaves behind is excused (sim_index_test.go).
			v.s.mu.Lock()
			v.s.dirty[key] = true
			v.s.mu.Unlock()
			return false
		}
	}
	return true
}

// kill cuts the process off: nothing it does reaches storage any more.
func (v *simStorageView) kill() {
	v.mu.Lock()
	v.dead = true
	v.mu.Unlock()
}

func (v *simStorageView) alive() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return !v.dead
}

func (v *simStorageView) List(ctx context.Context, prefix string) ([]string, error) {
	if !v.alive() {
		return nil, errSimProcessGone
	}
	return v.s.inner.List(ctx, prefix)
}

func (v *simStorageView) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if !v.alive() {
		return nil, errSimProcessGone
	}
	return v.s.inner.Get(ctx, key)
}

func (v *simStorageView) Put(ctx context.Context, e *logical.StorageEntry) error {
	if !v.write(e.Key) {
		return errSimProcessGone
	}
	v.s.mu.Lock()
	fail := v.s.failProb > 0 && v.s.rng.Float64() < v.s.failProb
	if fail {
		v.s.injected++
		v.s.dirty[e.Key] = true
		v.s.failed = append(v.s.failed, e.Key)
	} else {
		delete(v.s.dirty, e.Key)
	}
	v.s.mu.Unlock()
	if fail {
		return errSimStorageFault
	}
	return v.s.inner.Put(ctx, e)
}

func (v *simStorageView) Delete(ctx context.Context, key string) error {
	if !v.write(key) {
		return errSimProcessGone
	}
	v.s.mu.Lock()
	fail := v.s.failProb > 0 && v.s.rng.Float64() < v.s.failProb
	if fail {
		v.s.injected++
		v.s.failed = append(v.s.failed, key)
	} else {
		delete(v.s.dirty, key)
	}
	v.s.mu.Unlock()
	if fail {
		return errSimStorageFault
	}
	return v.s.inner.Delete(ctx, key)
}

// snapshot copies every key of storage, as `vault operator raft snapshot save` would.
func (s *simStorage) snapshot() map[string]*logical.StorageEntry {
	ctx := context.Background()
	keys, err := logical.CollectKeys(ctx, &s.inner)
	if err != nil {
		panic(err)
	}
	out := make(map[string]*logical.StorageEntry, len(keys))
	for _, k := range keys {
		e, err := s.inner.Get(ctx, k)
		if err != nil || e == nil {
			continue
		}
		out[k] = &logical.StorageEntry{Key: e.Key, Value: append([]byte(nil), e.Value...), SealWrap: e.SealWrap}
	}
	return out
}

// restore puts a snapshot back (`vault operator raft snapshot restore`): everything written since it
// was taken is gone. No process holds a newer value afterwards, so nothing is dirty.
func (s *simStorage) restore(snap map[string]*logical.StorageEntry) {
	ctx := context.Background()
	keys, err := logical.CollectKeys(ctx, &s.inner)
	if err != nil {
		panic(err)
	}
	for _, k := range keys {
		if err := s.inner.Delete(ctx, k); err != nil {
			panic(err)
		}
	}
	for _, e := range snap {
		if err := s.inner.Put(ctx, &logical.StorageEntry{Key: e.Key, Value: append([]byte(nil), e.Value...), SealWrap: e.SealWrap}); err != nil {
			panic(err)
		}
	}
	s.mu.Lock()
	s.dirty = map[string]bool{}
	s.mu.Unlock()
}
