package larksecrets

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/lark-vault/vault-plugin-secrets-lark/clock"
)

// getGate lets the first Get of one key read storage, then holds that answer back until the test
// lets it go: the reader has loaded the old entry, and the test changes storage (a write on this
// node, or a write elsewhere announced by Invalidate) before the reader puts it into memory.
type getGate struct {
	logical.Storage
	key     string
	once    sync.Once
	loaded  chan struct{}
	proceed chan struct{}
}

func newGetGate(inner logical.Storage, key string) *getGate {
	return &getGate{Storage: inner, key: key, loaded: make(chan struct{}), proceed: make(chan struct{})}
}

func (g *getGate) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	e, err := g.Storage.Get(ctx, key)
	if key != g.key {
		return e, err
	}
	hold := false
	g.once.Do(func() { hold = true })
	if hold {
		close(g.loaded)
		<-g.proceed
	}
	return e, err
}

// raceAFill starts read in the background on a gate over key, runs change while that read holds
// the entry it loaded, then lets the read finish.
func raceAFill(t *testing.T, inner logical.Storage, key string, read func(s logical.Storage) error, change func()) {
	t.Helper()
	gate := newGetGate(inner, key)
	done := make(chan error, 1)
	go func() { done <- read(gate) }()
	select {
	case <-gate.loaded:
	case <-time.After(10 * time.Second):
		t.Fatal("the read never reached storage")
	}
	change()
	close(gate.proceed)
	require.NoError(t, <-done)
}

// putBehindTheBack writes an entry straight into storage, as another node (or a replication
// stream) does before Vault calls Invalidate.
func putBehindTheBack(t *testing.T, s logical.Storage, key string, v interface{}) {
	t.Helper()
	e, err := logical.StorageEntryJSON(key, v)
	require.NoError(t, err)
	require.NoError(t, s.Put(context.Background(), e))
}

// An app read that loaded the entry before a write (here, or on another node) must not put that
// older entry into memory: the next read sees the new secret, not the old one.
func TestAppFillRacingAWriteIsNotKept(t *testing.T) {
	const oldSecret, newSecret = "oldS3cr3tOldS3cr3tOldS3cr3t0000", "newS3cr3tNewS3cr3tNewS3cr3t1111"
	for _, how := range []string{"put", "invalidate"} {
		t.Run(how, func(t *testing.T) {
			ctx := context.Background()
			inner := &logical.InmemStorage{}
			b := newBackend(clock.NewFake(time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)), nil)
			require.NoError(t, b.apps.put(ctx, inner, &appEntry{AppID: testAppID, AppSecret: oldSecret, Brand: "feishu"}))
			b.invalidate(ctx, appStoragePrefix+testAppID) // nothing in memory, as after a restart

			raceAFill(t, inner, appStoragePrefix+testAppID, func(s logical.Storage) error {
				_, err := b.apps.get(ctx, s, testAppID)
				return err
			}, func() {
				next := &appEntry{AppID: testAppID, AppSecret: newSecret, Brand: "feishu"}
				if how == "put" {
					require.NoError(t, b.apps.put(ctx, inner, next))
					return
				}
				next.Version = appEntryVersion
				putBehindTheBack(t, inner, appStoragePrefix+testAppID, next)
				b.invalidate(ctx, appStoragePrefix+testAppID)
			})

			app, err := b.apps.get(ctx, inner, testAppID)
			require.NoError(t, err)
			require.NotNil(t, app)
			// Compared by fingerprint: a failure must not print a secret.
			require.Equal(t, secretFingerprint(newSecret), secretFingerprint(app.AppSecret),
				"the app secret from before the %s stayed in memory", how)
		})
	}
}

// Likewise for the mount's settings.
func TestConfigFillRacingAWriteIsNotKept(t *testing.T) {
	for _, how := range []string{"put", "invalidate"} {
		t.Run(how, func(t *testing.T) {
			ctx := context.Background()
			inner := &logical.InmemStorage{}
			b := newBackend(clock.NewFake(time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)), nil)
			old := defaultConfig()
			old.LarkMaxAttempts = 3
			require.NoError(t, b.config.put(ctx, inner, old))
			b.invalidate(ctx, configStorageKey)

			raceAFill(t, inner, configStorageKey, func(s logical.Storage) error {
				_, err := b.config.get(ctx, s)
				return err
			}, func() {
				next := defaultConfig()
				next.LarkMaxAttempts = 7
				if how == "put" {
					require.NoError(t, b.config.put(ctx, inner, next))
					return
				}
				putBehindTheBack(t, inner, configStorageKey, next)
				b.invalidate(ctx, configStorageKey)
			})

			cfg, err := b.config.get(ctx, inner)
			require.NoError(t, err)
			require.Equal(t, 7, cfg.LarkMaxAttempts, "the config from before the %s stayed in memory", how)
		})
	}
}
