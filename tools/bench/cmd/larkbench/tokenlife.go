package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Short token lives for the Lark-calls-per-token-life measurement, in the proportions of the
// defaults (Lark: 2-hour tokens, an app or tenant token re-issued only in its last 30 minutes; the
// mount: refresh 25 minutes before the end, inside that window): the emulator issues 120-second
// tokens and re-issues an app or tenant token only in its last 90 seconds, and the mount refreshes
// 70 seconds before a token ends, with a 10-second lease margin (the smallest settings it accepts).
// An app or tenant token is then fetched every 60 seconds (the plugin never re-fetches sooner) and
// a user token refreshed every 50 seconds.
const (
	shortTokenTTL      = 120 * time.Second
	shortReuseWindow   = 90 * time.Second
	shortLeaseMargin   = 10 * time.Second
	shortRefreshWindow = 70 * time.Second
	tokenLifeReaders   = 2 // per target
)

type tokenLifeResult struct {
	Seconds       float64           `json:"seconds"`
	TokenTTL      float64           `json:"token_ttl_seconds"`
	ReuseWindow   float64           `json:"reuse_window_seconds"`
	LeaseMargin   float64           `json:"lease_safety_margin_seconds"`
	RefreshWindow float64           `json:"token_refresh_window_seconds"`
	Readers       int               `json:"readers_per_target"`
	Targets       []tokenLifeTarget `json:"targets"`
	// OtherCalls are the apps' Lark calls that are no token fetch or refresh (user_info, revoke,
	// refresh_reuse, ...): there should be none.
	OtherCalls map[string]int `json:"other_calls"`
}

type tokenLifeTarget struct {
	Key       string `json:"key"`
	Label     string `json:"label"`
	Reads     int    `json:"reads"`
	Errors    int    `json:"errors"`
	Tokens    int    `json:"new_tokens"` // distinct tokens served after the first
	LarkCalls int    `json:"lark_calls"`
	Counter   string `json:"counter"`
	// MinExpiresIn is the shortest remaining life (expires_in) of any token served.
	MinExpiresIn int `json:"min_expires_in"`
}

// tokenLives keeps every Lark read of a mount busy for a while with short-lived tokens and counts,
// at the emulator, the Lark calls behind the distinct tokens the readers were served. The goal is
// one call per token: one fetch per app or tenant token life, one refresh per user token life.
func tokenLives(ctx context.Context, cfg readsConfig, v *vaultServer, work string, reader *vaultClient) (*tokenLifeResult, error) {
	emu, err := startEmulator(cfg.bins.emulator, work, "emulator-short",
		"-app-token-ttl", shortTokenTTL.String(), "-reuse-window", shortReuseWindow.String(), "-user-token-ttl", shortTokenTTL.String())
	if err != nil {
		return nil, err
	}
	defer emu.stop()
	// The same app ids as on lark/, at an emulator of their own.
	apps := [2]string{appLeased, appLeaseFree}
	if _, err := setupLarkMount(v, emu, larkPlugin, cfg.bins.pluginVersion, "lark-short", apps, nil, map[string]any{
		"lease_safety_margin": int(shortLeaseMargin.Seconds()), "token_refresh_window": int(shortRefreshWindow.Seconds()),
	}); err != nil {
		return nil, err
	}

	type watched struct {
		tokenLifeTarget
		app, path string
		mu        sync.Mutex
		seen      map[[16]byte]bool
		initial   [16]byte // the token served before counting began
		firstErr  error
	}
	var targets []*watched
	for _, t := range readTargets("lark-short") {
		if t.Floor == "" {
			continue
		}
		w := &watched{tokenLifeTarget: tokenLifeTarget{Key: t.Key, Label: t.Label, MinExpiresIn: 1 << 30}, path: t.Path, seen: map[[16]byte]bool{}}
		w.app = appLeaseFree
		if t.Leased {
			w.app = appLeased
		}
		switch {
		case strings.HasPrefix(t.Key, "app-"):
			w.Counter = "app_access_token"
		case strings.HasPrefix(t.Key, "tenant-"):
			w.Counter = "tenant_access_token"
		default:
			w.Counter = "refresh"
		}
		targets = append(targets, w)
	}

	read := func(w *watched) {
		tok, expiresIn, err := readToken(ctx, reader, w.path)
		w.mu.Lock()
		defer w.mu.Unlock()
		w.Reads++
		if err != nil {
			w.Errors++
			if w.firstErr == nil {
				w.firstErr = err
			}
			return
		}
		// Only a hash of each token is kept: the bench never holds on to a secret.
		if h := [16]byte(hashToken(tok)); h != w.initial {
			w.seen[h] = true
		}
		w.MinExpiresIn = min(w.MinExpiresIn, expiresIn)
	}

	// Counting starts with a token in hand: the first read fetched it (or the import refreshed it),
	// and from then on every new token served must have cost exactly one Lark call.
	for _, w := range targets {
		tok, _, err := readToken(ctx, reader, w.path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", w.path, err)
		}
		w.initial = [16]byte(hashToken(tok))
	}
	for _, app := range apps {
		if err := emu.resetAppCounters(app); err != nil {
			return nil, err
		}
	}

	dur := time.Duration(cfg.tokenLifeSecs * float64(time.Second))
	logf("raft: sustained reads of short-lived tokens for %s", dur)
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	for _, w := range targets {
		for i := 0; i < tokenLifeReaders; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil && time.Now().Before(deadline) {
					read(w)
				}
			}()
		}
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, w := range targets {
		if w.Errors == w.Reads {
			return nil, fmt.Errorf("every read of %s failed, first: %v", w.path, w.firstErr)
		}
	}
	// The counters and the tokens seen must describe the same moment: read every target once more
	// between two readings of the counters, until no Lark call happened in between (Vault's sweep
	// may fetch at any time).
	var counters map[string]map[string]int
	for attempt := 0; ; attempt++ {
		before, err := readCounters(emu, apps)
		if err != nil {
			return nil, err
		}
		for _, w := range targets {
			read(w)
		}
		if counters, err = readCounters(emu, apps); err != nil {
			return nil, err
		}
		if sameCounters(before, counters) {
			break
		}
		if attempt == 5 {
			return nil, errors.New("calls to Lark kept happening while the last reads were made")
		}
	}

	res := &tokenLifeResult{Seconds: dur.Seconds(), TokenTTL: shortTokenTTL.Seconds(), ReuseWindow: shortReuseWindow.Seconds(),
		LeaseMargin: shortLeaseMargin.Seconds(), RefreshWindow: shortRefreshWindow.Seconds(), Readers: tokenLifeReaders,
		OtherCalls: map[string]int{}}
	for _, w := range targets {
		w.Tokens = len(w.seen)
		w.LarkCalls = counters[w.app][w.Counter]
		res.Targets = append(res.Targets, w.tokenLifeTarget)
		logf("raft token life %-14s %6d reads, %d errors, %d tokens, %d Lark calls (%s), shortest expires_in %ds",
			w.Key, w.Reads, w.Errors, w.Tokens, w.LarkCalls, w.Counter, w.MinExpiresIn)
		if w.firstErr != nil {
			logf("raft token life %-14s first failed read: %v", w.Key, w.firstErr)
		}
	}
	for _, app := range apps {
		for name, n := range counters[app] {
			switch name {
			case "app_access_token", "tenant_access_token", "refresh", "max_refresh_per_second":
			case "oauth_token": // every refresh also counts here
				if extra := n - counters[app]["refresh"]; extra != 0 {
					res.OtherCalls["oauth_token (not refresh)"] += extra
				}
			default:
				if n != 0 {
					res.OtherCalls[name] += n
				}
			}
		}
	}
	return res, nil
}

func hashToken(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:16]
}

// readToken reads a token path and returns the access token and its expires_in.
func readToken(ctx context.Context, c *vaultClient, path string) (string, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.addr+"/v1/"+path, nil)
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("X-Vault-Token", c.token)
	resp, err := c.hc.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", 0, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Errors []string `json:"errors"`
		}
		_ = json.Unmarshal(raw, &e)
		return "", 0, fmt.Errorf("HTTP %d %s", resp.StatusCode, strings.Join(e.Errors, "; "))
	}
	var out struct {
		Data struct {
			AccessToken string `json:"access_token"`
			ExpiresIn   int    `json:"expires_in"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return "", 0, err
	}
	if out.Data.AccessToken == "" {
		return "", 0, fmt.Errorf("no access_token")
	}
	return out.Data.AccessToken, out.Data.ExpiresIn, nil
}

func readCounters(emu *emulator, apps [2]string) (map[string]map[string]int, error) {
	out := map[string]map[string]int{}
	for _, app := range apps {
		c, err := emu.appCounters(app)
		if err != nil {
			return nil, err
		}
		out[app] = c
	}
	return out, nil
}

func sameCounters(a, b map[string]map[string]int) bool {
	for app, ca := range a {
		for k, v := range ca {
			if b[app][k] != v {
				return false
			}
		}
	}
	return true
}
