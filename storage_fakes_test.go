package larksecrets

// The storage fakes of the unit tests, in one place: each wraps logical.Storage (usually
// logical.InmemStorage) and changes one thing about it.

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// ctxStorage fails a call whose context is done, as Vault's gRPC storage does for a plugin whose
// request has ended; logical.InmemStorage ignores contexts.
type ctxStorage struct{ logical.Storage }

func (s ctxStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.Storage.Put(ctx, e)
}

// countingStorage counts the storage calls a backend makes, by operation.
type countingStorage struct {
	logical.Storage
	mu    sync.Mutex
	calls map[string]int
}

func (s *countingStorage) count(op string) {
	s.mu.Lock()
	if s.calls == nil {
		s.calls = map[string]int{}
	}
	s.calls[op]++
	s.mu.Unlock()
}

func (s *countingStorage) Get(ctx context.Context, k string) (*logical.StorageEntry, error) {
	s.count("get")
	if strings.HasPrefix(k, grantStoragePrefix) {
		s.count("get:grant")
	}
	return s.Storage.Get(ctx, k)
}

func (s *countingStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	s.count("put")
	return s.Storage.Put(ctx, e)
}

func (s *countingStorage) List(ctx context.Context, p string) ([]string, error) {
	s.count("list")
	if strings.HasPrefix(p, grantStoragePrefix) {
		s.count("list:grant")
	}
	return s.Storage.List(ctx, p)
}

func (s *countingStorage) Delete(ctx context.Context, k string) error {
	s.count("delete")
	return s.Storage.Delete(ctx, k)
}

// grantGets returns the reads of grants since the last reset or grantGets, and resets the counts.
func (s *countingStorage) grantGets() int { return s.reset()["get:grant"] }

func (s *countingStorage) reset() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls
	s.calls = nil
	return c
}

// flakyStorage fails every Put while failing is set, to check that a rotated refresh token is not
// lost when Vault cannot store it.
type flakyStorage struct {
	logical.Storage
	mu      sync.Mutex
	failing bool
}

func (s *flakyStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	s.mu.Lock()
	failing := s.failing
	s.mu.Unlock()
	if failing && strings.HasPrefix(e.Key, grantStoragePrefix) {
		return errors.New("storage unavailable")
	}
	return s.Storage.Put(ctx, e)
}

// failAfterStorage lets okPuts grant writes through, then fails the rest.
type failAfterStorage struct {
	logical.Storage
	mu     sync.Mutex
	okPuts int
}

func (s *failAfterStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	if strings.HasPrefix(e.Key, grantStoragePrefix) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.okPuts == 0 {
			return errors.New("storage unavailable")
		}
		s.okPuts--
	}
	return s.Storage.Put(ctx, e)
}

// failGetStorage fails every Get of one key.
type failGetStorage struct {
	logical.Storage
	key string
}

func (s *failGetStorage) Get(ctx context.Context, k string) (*logical.StorageEntry, error) {
	if k == s.key {
		return nil, errors.New("reading broke")
	}
	return s.Storage.Get(ctx, k)
}

// slowPutStorage takes delay over every write of a key under prefix: storage that is slow to store
// one kind of entry, so a test can see whether anything waited for that write.
type slowPutStorage struct {
	logical.Storage
	prefix string
	delay  time.Duration
}

func (s slowPutStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	if strings.HasPrefix(e.Key, s.prefix) {
		time.Sleep(s.delay)
	}
	return s.Storage.Put(ctx, e)
}
