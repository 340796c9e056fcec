package larksecrets

import (
	"context"
	"strings"
	"testing"
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
