package larksecrets

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

// testItem is an entry kind for the tests of cachedStore itself.
type testItem struct {
	Version int    `json:"version"`
	Value   string `json:"value"`
}

type testItemLayout struct{}

var testItemSpec = &storeSpec[testItem]{
	prefix:    "test-items/",
	what:      func(key string) string { return "test item " + key },
	version:   2,
	versionOf: func(i *testItem) *int { return &i.Version },
	limit:     8,
}

func (testItemLayout) spec() *storeSpec[testItem] { return testItemSpec }

type testItems = cachedStore[testItem, testItemLayout]

// A read that loaded an entry before the key changed (a put, store, delete, memory-only swap or
// Invalidate) does not keep what it loaded: the next read sees the change.
func TestCachedStoreRefusesAFillThatRacedAChange(t *testing.T) {
	ctx := context.Background()
	for _, how := range []string{"put", "store", "delete", "swap", "invalidate"} {
		t.Run(how, func(t *testing.T) {
			inner := &logical.InmemStorage{}
			var c testItems
			require.NoError(t, c.put(ctx, inner, "k", &testItem{Value: "old"}))
			c.invalidate("k") // nothing in memory

			raceAFill(t, inner, "test-items/k", func(s logical.Storage) error {
				_, err := c.get(ctx, s, "k")
				return err
			}, func() {
				switch how {
				case "put":
					require.NoError(t, c.put(ctx, inner, "k", &testItem{Value: "new"}))
				case "store":
					require.NoError(t, c.store(ctx, inner, "k", &testItem{Value: "new"}))
				case "delete":
					require.NoError(t, c.delete(ctx, inner, "k"))
				case "swap":
					// Memory says "new" while storage still holds "old" (what a refused
					// ticket does): the racing read must not replace it with "old".
					c.swap("k", func(*testItem, bool) (*testItem, bool) { return &testItem{Value: "new"}, true })
				case "invalidate":
					putBehindTheBack(t, inner, "test-items/k", &testItem{Version: 2, Value: "new"})
					c.invalidate("k")
				}
			})

			got, err := c.get(ctx, inner, "k")
			require.NoError(t, err)
			if how == "delete" {
				require.Nil(t, got, "a deleted entry is still served from memory")
				return
			}
			require.NotNil(t, got)
			require.Equal(t, "new", got.Value, "the entry from before the %s stayed in memory", how)
		})
	}
}

// putGate holds the first Put of one key after it reached storage, until the test lets it go.
type putGate struct {
	logical.Storage
	key     string
	once    sync.Once
	stored  chan struct{}
	proceed chan struct{}
}

func (g *putGate) Put(ctx context.Context, e *logical.StorageEntry) error {
	err := g.Storage.Put(ctx, e)
	hold := false
	if e.Key == g.key {
		g.once.Do(func() { hold = true })
	}
	if hold {
		close(g.stored)
		<-g.proceed
	}
	return err
}

// Two puts of one key at once: storage keeps the later write, so memory must not keep the earlier
// one. The first put learns the key changed during its write and leaves memory empty.
func TestCachedStorePutRacingAPutLeavesNoStaleCopy(t *testing.T) {
	ctx := context.Background()
	inner := &logical.InmemStorage{}
	var c testItems
	gate := &putGate{Storage: inner, key: "test-items/k", stored: make(chan struct{}), proceed: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- c.put(ctx, gate, "k", &testItem{Value: "first"}) }()
	<-gate.stored
	require.NoError(t, c.put(ctx, inner, "k", &testItem{Value: "second"}))
	close(gate.proceed)
	require.NoError(t, <-done)

	got, err := c.get(ctx, inner, "k")
	require.NoError(t, err)
	require.Equal(t, "second", got.Value, "memory kept the write storage no longer holds")
}

// A fill stays refused even after the epochs of keys no longer in memory were pruned: a pruned
// epoch must not look like "never changed".
func TestCachedStoreRefusesAStaleFillAfterEpochsArePruned(t *testing.T) {
	var c testItems
	_, seen, ok := c.lookupForTest("gone")
	require.False(t, ok)
	c.invalidate("gone") // the entry changed while a reader loaded it
	for i := 0; i < 4*testItemSpec.limit+minEpochs+8; i++ {
		c.invalidate(fmt.Sprintf("other-%d", i)) // enough changes to prune epochs
	}
	require.LessOrEqual(t, len(c.epochs), 4*testItemSpec.limit+minEpochs+1, "epochs are bounded")
	c.fill("gone", &testItem{Value: "from before the change"}, seen)
	_, _, ok = c.lookupForTest("gone")
	require.False(t, ok, "a fill that raced a change was kept after epochs were pruned")
}

func (c *cachedStore[T, L]) lookupForTest(key string) (*T, uint64, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	v, ok := c.entries[key]
	return v, c.epochLocked(key), ok
}

// Memory is bounded where the spec says so, and absence is remembered only where it says so.
func TestCachedStoreBoundAndAbsence(t *testing.T) {
	ctx := context.Background()
	inner := &counting{Storage: &logical.InmemStorage{}}
	var c testItems
	for i := 0; i < 3*testItemSpec.limit; i++ {
		require.NoError(t, c.put(ctx, inner, fmt.Sprintf("k%d", i), &testItem{Value: "v"}))
		_, err := c.get(ctx, inner, fmt.Sprintf("k%d", i))
		require.NoError(t, err)
	}
	require.LessOrEqual(t, c.len(), testItemSpec.limit)

	// testItemSpec does not keep absence: every read of a missing key asks storage.
	inner.gets = 0
	for i := 0; i < 3; i++ {
		got, err := c.get(ctx, inner, "missing")
		require.NoError(t, err)
		require.Nil(t, got)
	}
	require.Equal(t, 3, inner.gets)

	// The tickets keep absence: a second read of a missing ticket asks nobody.
	var tickets cachedStore[ticketEntry, ticketLayout]
	inner.gets = 0
	for i := 0; i < 3; i++ {
		got, err := tickets.get(ctx, inner, testAppID)
		require.NoError(t, err)
		require.Nil(t, got)
	}
	require.Equal(t, 1, inner.gets)
}

type counting struct {
	logical.Storage
	gets int
}

func (s *counting) Get(ctx context.Context, k string) (*logical.StorageEntry, error) {
	s.gets++
	return s.Storage.Get(ctx, k)
}

// An entry stored by a newer plugin (a higher entry version) is refused, not misread, and not kept.
func TestCachedStoreRefusesANewerEntryVersion(t *testing.T) {
	ctx := context.Background()
	inner := &logical.InmemStorage{}
	var c testItems
	putBehindTheBack(t, inner, "test-items/k", &testItem{Version: 3, Value: "from the future"})
	_, err := c.get(ctx, inner, "k")
	require.ErrorContains(t, err, "newer version of the plugin")
	require.Zero(t, c.len())

	putBehindTheBack(t, inner, "test-items/k", &testItem{Version: 1, Value: "older"})
	got, err := c.get(ctx, inner, "k")
	require.NoError(t, err)
	require.Equal(t, "older", got.Value, "older versions are read")

	// put writes the version it knows.
	require.NoError(t, c.put(ctx, inner, "k", &testItem{Value: "now"}))
	raw, err := inner.Get(ctx, "test-items/k")
	require.NoError(t, err)
	require.Contains(t, string(raw.Value), `"version":2`)
}

// Every store with memory follows a change made on another node: storage changes, Vault calls
// Invalidate with the key, and the next read, even one that raced the change, sees it.
func TestEveryStoreFollowsInvalidate(t *testing.T) {
	ctx := context.Background()
	type store struct {
		key   string
		write func(s logical.Storage, v string) // through the store
		entry func(v string) interface{}        // as another node stores it
		read  func(s logical.Storage) (string, error)
	}
	stores := map[string]func(b *backend) store{
		"tickets": func(b *backend) store {
			return store{key: ticketStorageKey(testAppID),
				write: func(s logical.Storage, v string) {
					_, err := b.tickets.offer(ctx, s, testAppID, &ticketEntry{Ticket: v, Source: ticketSourceWrite})
					require.NoError(t, err)
				},
				entry: func(v string) interface{} { return &ticketEntry{Version: ticketEntryVersion, Ticket: v} },
				read: func(s logical.Storage) (string, error) {
					e, err := b.tickets.get(ctx, s, testAppID)
					if e == nil {
						return "", err
					}
					return e.Ticket, err
				}}
		},
		"tenants": func(b *backend) store {
			return store{key: tenantStorageKey(testAppID, tenantA),
				write: func(s logical.Storage, v string) {
					require.NoError(t, b.tenants.put(ctx, s, testAppID, &tenantEntry{TenantKey: tenantA, Source: v}))
				},
				entry: func(v string) interface{} {
					return &tenantEntry{Version: tenantEntryVersion, TenantKey: tenantA, Source: v}
				},
				read: func(s logical.Storage) (string, error) {
					e, err := b.tenants.mem.get(ctx, s, tenantKey(testAppID, tenantA))
					if e == nil {
						return "", err
					}
					return e.Source, err
				}}
		},
		"app status": func(b *backend) store {
			return store{key: appStatusPrefix + testAppID,
				write: func(s logical.Storage, v string) {
					require.NoError(t, b.appStatus.put(ctx, s, testAppID, &appProblem{Reason: v}))
				},
				entry: func(v string) interface{} { return &appProblem{Version: appProblemVersion, Reason: v} },
				read: func(s logical.Storage) (string, error) {
					p, err := b.appStatus.load(ctx, s, testAppID)
					if p == nil {
						return "", err
					}
					return p.Reason, err
				}}
		},
		"slots": func(b *backend) store {
			id := grantID{testAppID, "bound"}
			return store{key: slotStorageKey(id),
				write: func(s logical.Storage, v string) {
					require.NoError(t, b.slots.put(ctx, s, id, &slotBinding{BoundBy: v}))
				},
				entry: func(v string) interface{} { return &slotBinding{Version: slotBindingVersion, BoundBy: v} },
				read: func(s logical.Storage) (string, error) {
					sb, err := b.slots.get(ctx, s, id)
					if sb == nil {
						return "", err
					}
					return sb.BoundBy, err
				}}
		},
		"apps": func(b *backend) store {
			return store{key: appStoragePrefix + testAppID,
				write: func(s logical.Storage, v string) {
					require.NoError(t, b.apps.put(ctx, s, &appEntry{AppID: testAppID, RedirectURI: v}))
				},
				entry: func(v string) interface{} {
					return &appEntry{Version: appEntryVersion, AppID: testAppID, RedirectURI: v}
				},
				read: func(s logical.Storage) (string, error) {
					a, err := b.apps.get(ctx, s, testAppID)
					if a == nil {
						return "", err
					}
					return a.RedirectURI, err
				}}
		},
		"config": func(b *backend) store {
			return store{key: configStorageKey,
				write: func(s logical.Storage, v string) {
					cfg := defaultConfig()
					cfg.NotifyTimezone = v
					require.NoError(t, b.config.put(ctx, s, cfg))
				},
				entry: func(v string) interface{} {
					cfg := defaultConfig()
					cfg.NotifyTimezone = v
					return cfg
				},
				read: func(s logical.Storage) (string, error) {
					cfg, err := b.config.get(ctx, s)
					if cfg == nil {
						return "", err
					}
					return cfg.NotifyTimezone, err
				}}
		},
	}
	for name, mk := range stores {
		t.Run(name, func(t *testing.T) {
			env := newTestEnv(t)
			st := mk(env.b)
			inner := env.storage
			st.write(inner, "before")
			got, err := st.read(inner)
			require.NoError(t, err)
			require.Equal(t, "before", got)

			// Changed elsewhere, announced: the next read sees it.
			putBehindTheBack(t, inner, st.key, st.entry("elsewhere"))
			env.b.invalidate(ctx, st.key)
			got, err = st.read(inner)
			require.NoError(t, err)
			require.Equal(t, "elsewhere", got)

			// Changed elsewhere while a read was loading the key: the read's copy is not kept.
			env.b.invalidate(ctx, st.key)
			raceAFill(t, inner, st.key, func(s logical.Storage) error {
				_, err := st.read(s)
				return err
			}, func() {
				putBehindTheBack(t, inner, st.key, st.entry("after the race"))
				env.b.invalidate(ctx, st.key)
			})
			got, err = st.read(inner)
			require.NoError(t, err)
			require.Equal(t, "after the race", got)
		})
	}
}

// Every cached store's prefix is an area of storage.go, with an invalidate; the seal-wrap list is
// exactly the areas holding secrets.
func TestStorageAreasCoverTheStores(t *testing.T) {
	for _, prefix := range []string{appSpec.prefix, configSpec.prefix, ticketSpec.prefix, tenantSpec.prefix,
		appStatusSpec.prefix, slotSpec.prefix, tokenStoragePrefix, grantStoragePrefix, devicePrefix} {
		a, _ := areaOf(prefix + "x")
		if prefix == configSpec.prefix {
			a, _ = areaOf(prefix)
		}
		require.NotNil(t, a, prefix)
		require.Equal(t, prefix, a.prefix)
		require.NotNil(t, a.invalidate, "%s keeps memory but Invalidate passes it by", prefix)
	}
	require.ElementsMatch(t, []string{appStoragePrefix, tokenStoragePrefix, ticketStoragePrefix, grantStoragePrefix,
		oauthStatePrefix, devicePrefix, noticePrefix}, newTestEnv(t).b.PathsSpecial.SealWrapStorage)

	// No area hides inside another: each key has exactly one owner.
	for i, a := range storageAreas {
		for j, o := range storageAreas {
			if i != j {
				require.False(t, strings.HasPrefix(a.prefix, o.prefix) && !o.exact, "%s lies inside %s", a.prefix, o.prefix)
			}
		}
	}
}

// areaCheck fails the test when anything is stored outside the areas of storage.go. newTestEnv
// puts it in front of every test's storage, so every flow the tests drive is checked.
type areaCheck struct {
	logical.Storage
	t testing.TB
}

func (s *areaCheck) Put(ctx context.Context, e *logical.StorageEntry) error {
	if a, _ := areaOf(e.Key); a == nil {
		s.t.Errorf("stored %q, outside every area of storage.go", e.Key)
	}
	return s.Storage.Put(ctx, e)
}
