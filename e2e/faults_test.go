//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// A fault of Lark's, as the emulator injects it: a mode and its settings.
type larkFault struct {
	name   string
	mode   string
	extra  map[string]any
	status int // what a read with nothing valid left must answer: 502 or 503
}

// coldFaults are the faults a read with no cached token meets. Each is aimed at an app of its own
// and lasts until healed.
var coldFaults = []larkFault{
	{"5xx", "5xx", nil, http.StatusServiceUnavailable},
	{"gateway timeout", "gateway_timeout", map[string]any{"delay_ms": 300}, http.StatusServiceUnavailable},
	{"429 with reset", "429", map[string]any{"reset_seconds": 1}, http.StatusServiceUnavailable},
	{"timeout", "timeout", nil, http.StatusServiceUnavailable},
	{"html", "garbage", nil, http.StatusBadGateway},
	{"text", "text", nil, http.StatusBadGateway},
	{"empty", "empty", nil, http.StatusBadGateway},
	{"wrong shape", "wrong_shape", nil, http.StatusBadGateway},
	{"wrong types", "wrong_types", nil, http.StatusBadGateway},
	{"truncated", "truncated", nil, http.StatusBadGateway},
	{"huge", "huge", nil, http.StatusBadGateway},
}

const (
	// longReset is a rate-limit reset longer than any client waits inside one call.
	longReset = 15
	// recoveryWithin is how soon after Lark works again a read must get a fresh token: the next
	// read, or a later one while the plugin backs off after the failures it met (the README
	// promises 10 s doubling; a grant that failed three times waits 40 s).
	recoveryWithin = 45 * time.Second
)

// staleFaults are the faults met by reads of a cached token that is due for renewal but still
// valid. Garbage that Lark may have acted on (truncated) is among them: for app and tenant tokens
// nothing is lost by asking again.
var staleFaults = []larkFault{
	{"5xx", "5xx", nil, 0},
	{"timeout", "timeout", nil, 0},
	{"html", "garbage", nil, 0},
	{"text", "text", nil, 0},
	{"empty", "empty", nil, 0},
	{"wrong shape", "wrong_shape", nil, 0},
	{"wrong types", "wrong_types", nil, 0},
	{"truncated", "truncated", nil, 0},
}

// TestLarkFaultsAppAndTenantTokens breaks Lark in every way the emulator knows while app and
// tenant tokens are read: with nothing cached, a read fails with a 502 or 503 that names Lark and
// says what to do, and costs at most lark_max_attempts calls; with a token that is due but still
// valid, every read is served that token with a warning, however many readers come at once, and
// the calls stay bounded; once Lark works again the next reads get a fresh token, fetched once for
// its whole life.
func TestLarkFaultsAppAndTenantTokens(t *testing.T) {
	t.Parallel()
	start := time.Now()
	w := newFaultWorld(t, "faults-app/lark", pluginName)

	// The stale cases need a cached token that is due: fetch them first, then break Lark for their
	// apps at once, so that nothing (the periodic sweep included) can renew them before the test
	// reads them. Each app is broken by a 5xx outage while it waits; its own fault comes later.
	type staleCase struct {
		fault larkFault
		app   string
		path  string
		token string // the cached token, due from warmedAt + minRefetch
	}
	var stale []*staleCase
	addStale := func(f larkFault, app, kind string) *staleCase {
		c := &staleCase{fault: f, app: app, path: kind + "/" + app}
		w.app(t, app, 0)
		stale = append(stale, c)
		return c
	}
	herd := addStale(larkFault{name: "gateway timeout, 40 readers", mode: "gateway_timeout", extra: map[string]any{"delay_ms": 1000}}, "cli_fsherd", "app-token")
	slow := addStale(larkFault{name: "slow answer, 40 readers", mode: "slow", extra: map[string]any{"delay_ms": 1500, "count": 1}}, "cli_fsslow", "tenant-token")
	limited := addStale(larkFault{name: "429, reset within the retry wait", mode: "429", extra: map[string]any{"reset_seconds": 1}}, "cli_fslimited", "tenant-token")
	longLimit := addStale(larkFault{name: "429, reset honoured across reads", mode: "429", extra: map[string]any{"reset_seconds": longReset}}, "cli_fslonglimit", "tenant-token")
	for i, f := range staleFaults {
		kind := []string{"app-token", "tenant-token"}[i%2]
		addStale(f, fmt.Sprintf("cli_fsstale%d", i), kind)
	}
	warmedAt := time.Now()
	for _, c := range stale {
		r := w.read(c.path)
		if r.status != http.StatusOK || r.token == "" {
			t.Fatalf("warming %s: %v", c.path, r)
		}
		c.token = r.token
		w.fail(t, c.app, "*", "5xx", nil)
	}

	// Nothing cached: each fault on an app of its own, while the stale tokens come due.
	t.Run("cold", func(t *testing.T) {
		t.Run("5xx burst shorter than the attempts", func(t *testing.T) {
			const app = "cli_fcburst"
			w.app(t, app, 0)
			w.fail(t, app, "tenant_access_token", "5xx", map[string]any{"count": faultMaxAttempts - 1})
			r := w.read("tenant-token/" + app)
			if r.status != http.StatusOK || r.token == "" || len(r.warnings) != 0 {
				t.Fatalf("a 5xx burst of %d within %d attempts: %v; want the token without a warning", faultMaxAttempts-1, faultMaxAttempts, r)
			}
			if got := w.calls(t, app, "tenant_access_token"); got != faultMaxAttempts {
				t.Fatalf("calls = %d, want %d (the burst and the attempt that got through)", got, faultMaxAttempts)
			}
		})
		for i, f := range coldFaults {
			t.Run(f.name, func(t *testing.T) {
				app := fmt.Sprintf("cli_fccold%d", i)
				kind, endpoint := "app-token", "app_access_token"
				if i%2 == 1 {
					kind, endpoint = "tenant-token", "tenant_access_token"
				}
				w.app(t, app, 0)
				w.fail(t, app, "*", f.mode, f.extra)
				// The second read may be answered from what the first learned (a back-off), at no
				// cost; neither may cost more than one fetch.
				for n := 1; n <= 2; n++ {
					before := w.calls(t, app, endpoint)
					r := w.read(kind + "/" + app)
					wantUpstreamError(t, fmt.Sprintf("read %d", n), r, f.status, app)
					if got := w.calls(t, app, endpoint) - before; got > faultMaxAttempts || (n == 1 && got < 1) {
						t.Errorf("read %d cost %d calls at Lark; want 1 to %d", n, got, faultMaxAttempts)
					}
				}
				w.heal(t, app)
				before := w.calls(t, app, endpoint)
				r := w.readUntilOK(t, kind+"/"+app, recoveryWithin)
				if r.token == "" || len(r.warnings) != 0 {
					t.Fatalf("once Lark works again: %v; want the token without a warning", r)
				}
				if again := w.read(kind + "/" + app); again.status != http.StatusOK || again.token != r.token {
					t.Fatalf("the read after the recovery: %v; want the same token", again)
				}
				if got := w.calls(t, app, endpoint) - before; got != 1 {
					t.Fatalf("the recovery cost %d calls, want 1 (one fetch per token life)", got)
				}
			})
		}
	})

	if wait := time.Until(warmedAt.Add(minRefetch + time.Second)); wait > 0 {
		t.Logf("waiting %s for the cached tokens to come due", wait.Round(time.Second))
		time.Sleep(wait)
	}

	// Still valid, due, Lark broken: served with a warning, calls bounded.
	staleRead := func(t *testing.T, c *staleCase, r tokenRead) {
		t.Helper()
		if r.status != http.StatusOK || r.token != c.token {
			t.Errorf("%s: %v; want the cached token (HTTP 200) while Lark fails", c.path, r)
			return
		}
		if !anyContains(r.warnings, "Lark") {
			t.Errorf("%s: the cached token was served without a warning naming Lark: %q", c.path, r.warnings)
		}
	}
	t.Run("stale", func(t *testing.T) {
		t.Run(herd.fault.name, func(t *testing.T) {
			w.heal(t, herd.app)
			w.fail(t, herd.app, "*", herd.fault.mode, herd.fault.extra)
			sweeps, before := w.sweeps(t), w.calls(t, herd.app, "app_access_token")
			reads := w.readConcurrently(herd.path, 40)
			calls, swept := w.calls(t, herd.app, "app_access_token")-before, w.sweeps(t)-sweeps
			for _, r := range reads {
				staleRead(t, herd, r)
			}
			if calls > callBudget(swept) {
				t.Errorf("40 concurrent readers cost %d calls at Lark (%d periodic sweeps meanwhile); want at most %d", calls, swept, callBudget(swept))
			}
		})
		t.Run(slow.fault.name, func(t *testing.T) {
			w.heal(t, slow.app)
			w.fail(t, slow.app, "tenant_access_token", slow.fault.mode, slow.fault.extra)
			before := w.calls(t, slow.app, "tenant_access_token")
			reads := w.readConcurrently(slow.path, 40)
			fresh := reads[0].token
			for _, r := range reads {
				if r.status != http.StatusOK || r.token == "" || r.token == slow.token || r.token != fresh {
					t.Fatalf("a reader during a slow answer: %v; want the one new token", r)
				}
			}
			// 0 only if a periodic sweep renewed the token between the heal and the slow answer.
			if calls := w.calls(t, slow.app, "tenant_access_token") - before; calls > 1 {
				t.Fatalf("40 readers during one slow answer cost %d calls, want 1", calls)
			}
		})
		for _, c := range stale[4:] {
			t.Run(c.fault.name, func(t *testing.T) {
				w.heal(t, c.app)
				w.fail(t, c.app, "*", c.fault.mode, c.fault.extra)
				endpoint := endpointOf(c.path)
				sweeps, before := w.sweeps(t), w.calls(t, c.app, endpoint)
				reads := w.readConcurrently(c.path, 3)
				calls, swept := w.calls(t, c.app, endpoint)-before, w.sweeps(t)-sweeps
				for _, r := range reads {
					staleRead(t, c, r)
				}
				if calls > callBudget(swept) {
					t.Errorf("3 concurrent readers cost %d calls at Lark (%d periodic sweeps meanwhile); want at most %d", calls, swept, callBudget(swept))
				}
			})
		}
		t.Run(limited.fault.name, func(t *testing.T) {
			w.heal(t, limited.app)
			w.fail(t, limited.app, "*", limited.fault.mode, limited.fault.extra)
			sweeps, before := w.sweeps(t), w.calls(t, limited.app, "tenant_access_token")
			staleRead(t, limited, w.read(limited.path))
			calls, swept := w.calls(t, limited.app, "tenant_access_token")-before, w.sweeps(t)-sweeps
			if calls > callBudget(swept) {
				t.Errorf("a read during a rate limit cost %d calls (%d sweeps meanwhile); want at most %d", calls, swept, callBudget(swept))
			}
		})
		// Lark says when its limit ends. Asking again before then only prolongs it: reads in
		// between are answered from the cache, at no cost at Lark.
		t.Run(longLimit.fault.name, func(t *testing.T) {
			w.heal(t, longLimit.app)
			w.fail(t, longLimit.app, "*", longLimit.fault.mode, longLimit.fault.extra)
			limitedAt := time.Now()
			staleRead(t, longLimit, w.read(longLimit.path))
			before := w.calls(t, longLimit.app, "tenant_access_token")
			for i := 0; i < 5; i++ {
				staleRead(t, longLimit, w.read(longLimit.path))
			}
			if took := time.Since(limitedAt); took > longReset*time.Second/2 {
				t.Fatalf("the reads took %s: too slow to tell whether the %d s reset was honoured", took, longReset)
			}
			if calls := w.calls(t, longLimit.app, "tenant_access_token") - before; calls != 0 {
				t.Errorf("5 reads within the %d s Lark asked to wait cost %d calls; want 0 (x-ogw-ratelimit-reset is honoured across reads)", longReset, calls)
			}
		})
	})

	// Lark works again: without anyone doing anything, reads get a fresh token, fetched once.
	t.Run("recovery", func(t *testing.T) {
		for _, c := range stale {
			if c == slow {
				continue // its slow answer already renewed it
			}
			w.heal(t, c.app)
		}
		for _, c := range stale {
			if c == slow {
				continue
			}
			endpoint := endpointOf(c.path)
			fresh := w.readUntilFresh(t, c.path, c.token, longReset*time.Second+recoveryWithin)
			if len(fresh.warnings) != 0 {
				t.Errorf("%s (%s): %v; want a fresh token without a warning once Lark works again", c.path, c.fault.name, fresh)
				continue
			}
			before := w.calls(t, c.app, endpoint)
			for i := 0; i < 3; i++ {
				if r := w.read(c.path); r.status != http.StatusOK || r.token != fresh.token {
					t.Errorf("%s (%s): a read after the recovery: %v; want the same fresh token", c.path, c.fault.name, r)
				}
			}
			if calls := w.calls(t, c.app, endpoint) - before; calls != 0 {
				t.Errorf("%s (%s): 3 reads of the fresh token cost %d calls; want 0 (one fetch per token life)", c.path, c.fault.name, calls)
			}
		}
	})
	t.Logf("took %s", time.Since(start).Round(time.Second))
}

// userStaleFaults break refreshes of user tokens whose access token is due but still valid. None of
// them lets Lark act on the refresh token, so the grant survives each one.
var userStaleFaults = []larkFault{
	{"5xx", "5xx", nil, 0},
	{"429 with reset", "429", map[string]any{"reset_seconds": 1}, 0},
	{"timeout", "timeout", nil, 0},
	{"html", "garbage", nil, 0},
	{"text", "text", nil, 0},
	{"empty", "empty", nil, 0},
	{"wrong shape", "wrong_shape", nil, 0},
	{"wrong types", "wrong_types", nil, 0},
}

// TestLarkFaultsUserTokens does the same for user tokens, whose refresh spends a single-use
// refresh token: still-valid tokens are served with a warning while refreshes fail, concurrent
// readers cause one refresh between them, a grant with nothing valid left answers 502/503 (not
// "re-authorize") and stays, and once Lark works the next read refreshes with the very refresh
// token Vault holds: no token is ever presented twice.
func TestLarkFaultsUserTokens(t *testing.T) {
	t.Parallel()
	start := time.Now()
	w := newFaultWorld(t, "faults-user/lark", pluginName)

	type userCase struct {
		fault   larkFault
		app     string
		path    string
		grantID string
		token   string // the current access token, due from importedAt + 20 s
		readers int
	}
	var cases []*userCase
	add := func(f larkFault, app string, readers int) *userCase {
		w.app(t, app, faultUserTokenTTL)
		c := &userCase{fault: f, app: app, path: "user-token/" + app + "/u", readers: readers}
		c.grantID = w.grant(t, app, "u")
		cases = append(cases, c)
		return c
	}
	add(larkFault{name: "gateway timeout, 10 readers", mode: "gateway_timeout", extra: map[string]any{"delay_ms": 1000}}, "cli_fuherd", 10)
	slow := add(larkFault{name: "late answer, 10 readers", mode: "late_answer", extra: map[string]any{"delay_ms": 1500, "count": 1}}, "cli_fuslow", 10)
	for i, f := range userStaleFaults {
		add(f, fmt.Sprintf("cli_fustale%d", i), 2)
	}
	importedAt := time.Now()
	for _, c := range cases {
		r := w.read(c.path)
		if r.status != http.StatusOK || r.token == "" {
			t.Fatalf("first read of %s: %v", c.path, r)
		}
		c.token = r.token
		w.fail(t, c.app, "refresh", "5xx", nil) // hold the grant due until its own fault comes
	}
	due := importedAt.Add(faultUserTokenTTL - faultRefreshWindow + time.Second)

	// Nothing valid left: grants whose access tokens live 12 s, which the 10 s lease margin lets
	// the plugin serve for 1 s at most. One grant per fault, so no fault's back-off hides another.
	t.Run("nothing valid left", func(t *testing.T) {
		faults := []larkFault{
			{"5xx", "5xx", nil, http.StatusServiceUnavailable},
			{"timeout", "timeout", nil, http.StatusServiceUnavailable},
			{"html", "garbage", nil, http.StatusBadGateway},
			{"wrong shape", "wrong_shape", nil, http.StatusBadGateway},
		}
		grants := make([]string, len(faults))
		for i, f := range faults {
			app := fmt.Sprintf("cli_fuexpired%d", i)
			w.app(t, app, 12*time.Second)
			grants[i] = w.grant(t, app, "u")
			w.fail(t, app, "refresh", f.mode, f.extra)
		}
		time.Sleep(2 * time.Second)
		// The four run at once, each waiting out its own back-off before it recovers. Not as
		// parallel subtests: those wait for a free slot of -parallel behind every other parallel
		// test of the suite, and meanwhile the other grants of this test (whose tokens live
		// 9m50s) would run out before "stale" reads them.
		var wg sync.WaitGroup
		defer wg.Wait()
		for i, f := range faults {
			wg.Add(1)
			go t.Run(f.name, func(t *testing.T) {
				defer wg.Done()
				app := fmt.Sprintf("cli_fuexpired%d", i)
				path := "user-token/" + app + "/u"
				before := w.calls(t, app, "refresh")
				wantUpstreamError(t, "read", w.read(path), f.status, app)
				if calls := w.calls(t, app, "refresh") - before; calls > faultMaxAttempts {
					t.Errorf("the read cost %d refresh calls; want at most %d", calls, faultMaxAttempts)
				}
				if s := w.slot(t, app, "u"); s["state"] != "ok" || s["reauth_required"] != false {
					t.Errorf("the grant was given up over a Lark fault: %s", jsonString(s))
				}
				w.heal(t, app)
				if r := w.readUntilOK(t, path, recoveryWithin); r.token == "" {
					t.Fatalf("once Lark works again: %v", r)
				}
				if g := w.larkGrant(t, grants[i]); g["reuse_attempts"] != float64(0) || g["status"] != "active" {
					t.Fatalf("the emulator's grant after the fault: %s; want active with no refresh token presented twice", jsonString(g))
				}
			})
		}
	})

	// A short 5xx burst: one failed answer, then Lark works. Within two reads the grant has moved on
	// to a fresh token with the same refresh-token chain.
	t.Run("5xx burst", func(t *testing.T) {
		const app = "cli_fuburst"
		w.app(t, app, 5*time.Minute) // shorter than the refresh window: every read refreshes
		grantID := w.grant(t, app, "u")
		path := "user-token/" + app + "/u"
		current := w.read(path)
		if current.status != http.StatusOK {
			t.Fatalf("first read: %v", current)
		}
		w.fail(t, app, "refresh", "5xx", map[string]any{"count": 1})
		before := w.calls(t, app, "refresh")
		r := w.read(path)
		switch {
		case r.status != http.StatusOK:
			t.Fatalf("a read during a one-answer 5xx burst: %v; want a token", r)
		case r.token == current.token && !anyContains(r.warnings, "Lark"):
			t.Fatalf("the current token was served without a warning naming Lark: %v", r)
		case r.token == current.token:
			r = w.read(path) // the plugin served the current token and left the refresh for later
		}
		if r.status != http.StatusOK || r.token == current.token {
			t.Fatalf("two reads after a one-answer 5xx burst: %v; want a fresh token", r)
		}
		if calls := w.calls(t, app, "refresh") - before; calls > faultMaxAttempts+1 {
			t.Fatalf("the burst cost %d refresh calls; want at most %d", calls, faultMaxAttempts+1)
		}
		if g := w.larkGrant(t, grantID); g["reuse_attempts"] != float64(0) || g["status"] != "active" {
			t.Fatalf("the emulator's grant after the burst: %s; want active with no refresh token presented twice", jsonString(g))
		}
	})

	if wait := time.Until(due); wait > 0 {
		t.Logf("waiting %s for the access tokens to come due", wait.Round(time.Second))
		time.Sleep(wait)
	}
	t.Run("stale", func(t *testing.T) {
		for _, c := range cases {
			if c == slow {
				continue
			}
			t.Run(c.fault.name, func(t *testing.T) {
				w.heal(t, c.app)
				w.fail(t, c.app, "refresh", c.fault.mode, c.fault.extra)
				sweeps, before := w.sweeps(t), w.calls(t, c.app, "refresh")
				reads := w.readConcurrently(c.path, c.readers)
				calls, swept := w.calls(t, c.app, "refresh")-before, w.sweeps(t)-sweeps
				for _, r := range reads {
					if r.status != http.StatusOK || r.token != c.token {
						t.Errorf("%v; want the current token (HTTP 200) while refreshes fail", r)
					} else if !anyContains(r.warnings, "Lark") {
						t.Errorf("the current token was served without a warning naming Lark: %q", r.warnings)
					}
				}
				if calls > callBudget(swept) {
					t.Errorf("%d concurrent readers cost %d refresh calls at Lark (%d periodic sweeps meanwhile); want at most %d",
						c.readers, calls, swept, callBudget(swept))
				}
				if s := w.slot(t, c.app, "u"); s["state"] != "ok" || s["reauth_required"] != false {
					t.Errorf("the grant was given up over a Lark fault: %s", jsonString(s))
				}
			})
		}
		t.Run(slow.fault.name, func(t *testing.T) {
			w.heal(t, slow.app)
			w.fail(t, slow.app, "refresh", slow.fault.mode, slow.fault.extra)
			before := w.calls(t, slow.app, "refresh")
			reads := w.readConcurrently(slow.path, slow.readers)
			fresh := reads[0].token
			for _, r := range reads {
				if r.status != http.StatusOK || r.token == "" || r.token == slow.token || r.token != fresh {
					t.Fatalf("a reader during a late refresh answer: %v; want the one new token", r)
				}
			}
			if calls := w.calls(t, slow.app, "refresh") - before; calls != 1 {
				t.Fatalf("%d readers during one late answer cost %d refresh calls, want 1", slow.readers, calls)
			}
		})
	})

	t.Run("recovery", func(t *testing.T) {
		// One refresh per grant from here on: the next read's, or a periodic sweep's that came first.
		before := map[string]int{}
		for _, c := range cases {
			before[c.app] = w.calls(t, c.app, "refresh")
			w.heal(t, c.app)
		}
		for _, c := range cases {
			if c == slow {
				continue
			}
			fresh := w.readUntilFresh(t, c.path, c.token, recoveryWithin)
			if anyContains(fresh.warnings, "refresh") {
				t.Errorf("%s (%s) once Lark works again: %v; want a fresh token without a refresh warning", c.path, c.fault.name, fresh)
				continue
			}
			for i := 0; i < 3; i++ {
				if r := w.read(c.path); r.status != http.StatusOK || r.token != fresh.token {
					t.Errorf("%s (%s): a read after the recovery: %v; want the same fresh token", c.path, c.fault.name, r)
				}
			}
			if calls := w.calls(t, c.app, "refresh") - before[c.app]; calls != 1 {
				t.Errorf("%s (%s): the recovery and 3 reads cost %d refresh calls; want 1 (one refresh per token life)", c.path, c.fault.name, calls)
			}
			if g := w.larkGrant(t, c.grantID); g["reuse_attempts"] != float64(0) || g["status"] != "active" {
				t.Errorf("%s (%s): the emulator's grant: %s; want active with no refresh token presented twice", c.path, c.fault.name, jsonString(g))
			}
		}
	})

	// A refresh answer cut off after Lark rotated the token cannot be recovered by anyone but the
	// user: the plugin asks once more with the same token (the one probe Lark then refuses), says
	// the answer was lost and that the user must authorize again, and never pretends otherwise.
	t.Run("truncated refresh answer", func(t *testing.T) {
		const app = "cli_futruncated"
		w.app(t, app, 5*time.Second) // due at once: the first read refreshes
		grantID := w.grant(t, app, "u")
		w.fail(t, app, "refresh", "truncated", map[string]any{"count": 1})
		r := w.read("user-token/" + app + "/u")
		text := r.errors + fmt.Sprint(r.warnings)
		if (r.status != http.StatusConflict && r.status != http.StatusOK) || !containsAll(text, "lost", "authorize") {
			t.Fatalf("read after a cut-off refresh answer: %v; want 409 (or the still-valid token with a warning) saying the answer was lost and the user must authorize again", r)
		}
		if g := w.larkGrant(t, grantID); g["reuse_attempts"] != float64(1) {
			t.Fatalf("the emulator's grant: %s; want exactly one reuse (the probe)", jsonString(g))
		}
		before := w.calls(t, app, "refresh")
		if r := w.read("user-token/" + app + "/u"); r.status == http.StatusOK && len(r.warnings) == 0 {
			t.Fatalf("a later read: %v; a lost grant must not look healthy", r)
		}
		if calls := w.calls(t, app, "refresh") - before; calls != 0 {
			t.Fatalf("a later read of the lost grant cost %d refresh calls; want 0", calls)
		}
	})
	t.Logf("took %s", time.Since(start).Round(time.Second))
}

// endpointOf is the emulator endpoint behind a token path of the mount.
func endpointOf(path string) string {
	if strings.HasPrefix(path, "app-token/") {
		return "app_access_token"
	}
	return "tenant_access_token"
}

// containsAll reports whether s contains every part, ignoring case.
func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(strings.ToLower(s), strings.ToLower(p)) {
			return false
		}
	}
	return true
}
