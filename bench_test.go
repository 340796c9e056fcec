package larksecrets

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark/larkevent"
)

// BenchmarkAccessTokenRead measures one token read three ways, side by side in one run, so the
// ratios hold on a noisy machine: served from memory (the normal case), from storage (after a
// restart or leader change), and fetched from Lark (the in-process emulator over loopback HTTP).
func BenchmarkAccessTokenRead(b *testing.B) {
	env := newTestEnv(b)
	env.addApp()
	path := "tenant-token/" + testAppID
	if _, err := env.read(path); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()

	b.Run("memory", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := env.read(path); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("storage", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			env.b.tokens.forget(testAppID, kindTenant)
			if _, err := env.read(path); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("upstream", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			env.b.tokens.forget(testAppID, kindTenant)
			if err := env.storage.Delete(ctx, tokenStorageKey(testAppID, kindTenant)); err != nil {
				b.Fatal(err)
			}
			if _, err := env.read(path); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkParallelCachedReads is the hot path under contention: many readers of one cached token.
func BenchmarkParallelCachedReads(b *testing.B) {
	env := newTestEnv(b)
	env.addApp()
	path := "app-token/" + testAppID
	if _, err := env.read(path); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := env.read(path); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkUserTokenRead is a read of a user token that needs no refresh: the grant is read from
// storage on every request (it changes on every refresh, so it is not cached in memory), measured
// beside the cached app-token read.
func BenchmarkUserTokenRead(b *testing.B) {
	env := newTestEnv(b)
	env.addOAuthApp()
	env.grantUser("bench")
	for _, path := range []string{"app-token/" + testAppID, "user-token/" + testAppID + "/bench"} {
		if _, err := env.read(path); err != nil {
			b.Fatal(err)
		}
		b.Run(strings.SplitN(path, "/", 2)[0], func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := env.read(path); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRevocationEventLookup measures finding a user's grants for a revocation event in an app
// with 10,000 grants of other users, side by side: before the sweep has read them (after a restart
// or leader change: every grant is read from storage) and after (told apart in memory).
func BenchmarkRevocationEventLookup(b *testing.B) {
	env := newTestEnv(b)
	env.addOAuthApp()
	now := env.clock.Now()
	for i := 0; i < 10000; i++ {
		env.writeGrant(&grantEntry{AppID: testAppID, Slot: fmt.Sprintf("s%05d", i), State: grantStateOK,
			OpenID: fmt.Sprintf("ou_%032d", i), UnionID: fmt.Sprintf("on_%032d", i), AccessToken: "x",
			AccessExpiresAt: now.Add(2 * time.Hour), RefreshToken: "r", LastRefreshAt: now,
			RefreshExpiresAt: now.Add(7 * 24 * time.Hour), AuthorizedAt: now, GrantExpiresAt: now.Add(grantMaxAge)})
	}
	ctx := context.Background()
	ev := &larkevent.Event{Type: larkevent.TypeUserTokenRevoked,
		TokenRevoked: &larkevent.UserTokenRevoked{OpenID: "ou_nobody", RefreshTokenRevoked: true}}
	run := func(b *testing.B) {
		sess, err := env.b.sessions.open(ctx, env.storage, testAppID)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if out, err := env.b.receiveRevocation(ctx, env.storage, sess, ev); err != nil || out.result != eventIgnored {
				b.Fatal(out, err)
			}
		}
	}
	// Before the sweep's first run the who index is not known to cover every grant (as after an
	// upgrade from a version without it): every grant of the app is read.
	b.Run("index-not-built", func(b *testing.B) {
		env.b = env.newBackend(nil)
		run(b)
	})
	b.Run("who-index", func(b *testing.B) {
		env.b = env.newBackend(nil)
		env.mustWrite("config", map[string]interface{}{"sweep_budget": 60})
		for r := env.sweep(); r.Walk.Rebuild; r = env.sweep() {
		}
		env.b = env.newBackend(nil) // nothing in memory: the index is in storage
		run(b)
	})
}
