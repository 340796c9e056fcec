//go:build e2e

package e2e

import (
	"net/http"
	"testing"
	"time"
)

// A reader that gives up while Lark is slow to answer a refresh must not cost the grant: Lark has
// already rotated the single-use refresh token, and its successor lives only in that answer. The
// plugin must store it whatever became of the request (the client hung up, Vault's own request
// deadline passed), so that a later read, a plugin restart, or both, carry on with it.

// clientGoneRefreshLate is how late Lark answers the interrupted refresh; the mount's
// lark_request_timeout is raised above it, so the plugin's own call waits for the answer.
const (
	clientGoneRefreshLate = 4 * time.Second
	clientGoneTimeout     = 10 * time.Second
)

// TestClientGoneMidRefreshKeepsRotatedToken: the reader's HTTP client gives up after one second
// while Lark takes four to answer the refresh it triggered.
func TestClientGoneMidRefreshKeepsRotatedToken(t *testing.T) {
	t.Parallel()
	// A plugin name of its own, so reloading it restarts only this test's mount.
	const plugin = "lark-faults-gone"
	swPrivatePlugin(t, plugin)
	w := newFaultWorld(t, "faults-gone/lark", plugin)
	w.must(t, "write", w.mount+"/config", "lark_request_timeout="+clientGoneTimeout.String())

	giveUp := func(t *testing.T, path string) {
		t.Helper()
		client := &http.Client{Timeout: time.Second}
		req, err := http.NewRequest(http.MethodGet, w.vaultAddr+"/v1/"+w.mount+"/"+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Vault-Token", rootToken)
		resp, err := client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			t.Fatalf("the reader got HTTP %d before giving up; Lark's late answer should have kept it waiting", resp.StatusCode)
		}
	}
	interruptedRefreshesSurvive(t, w, "cli_fgoneclient", giveUp, clientGoneRefreshLate)
}

// TestVaultRequestTimeoutMidRefreshKeepsRotatedToken: Vault's own request deadline
// (default_max_request_duration, 3 s here) passes while Lark takes five seconds to answer.
func TestVaultRequestTimeoutMidRefreshKeepsRotatedToken(t *testing.T) {
	t.Parallel()
	const deadline = 3 * time.Second
	w := newOwnVaultFaultWorld(t, "default_max_request_duration = \""+deadline.String()+"\"\n")
	w.must(t, "write", w.mount+"/config", "lark_request_timeout="+clientGoneTimeout.String())

	timedOut := func(t *testing.T, path string) {
		t.Helper()
		start := time.Now()
		r := w.read(path)
		took := time.Since(start)
		// What Vault tells a caller whose request ran out of time is Vault's affair; it must not be
		// a token the plugin could not vouch for, nor a grant given up.
		t.Logf("the timed-out read answered after %s: %v", took.Round(100*time.Millisecond), r)
		if r.status == http.StatusOK && took < deadline {
			t.Fatalf("the read was answered within Vault's deadline (%s): %v; Lark's late answer should have outlasted it", took, r)
		}
		if r.status == http.StatusConflict {
			t.Fatalf("the timed-out read gave the grant up: %v", r)
		}
	}
	interruptedRefreshesSurvive(t, w, "cli_fgonedeadline", timedOut, deadline+2*time.Second)
}

// interruptedRefreshesSurvive imports a grant whose access tokens are due at once (every read
// refreshes), then twice has a read interrupted (interrupt) while Lark answers its refresh late by
// late: the first time a read follows and then a plugin restart, the second time the restart comes
// first. After each, the next read must be served from the refresh token Lark handed out in the
// interrupted answer: the emulator sees the token chain continue, with no token presented twice.
func interruptedRefreshesSurvive(t *testing.T, w *faultWorld, app string, interrupt func(t *testing.T, path string), late time.Duration) {
	t.Helper()
	start := time.Now()
	w.app(t, app, 5*time.Minute) // shorter than the refresh window: every read refreshes
	grantID := w.grant(t, app, "ada")
	path := "user-token/" + app + "/ada"
	refreshes := 1 // the import's

	// readAfter reads once the plugin answers again after a restart, and insists on a token from a
	// refresh that continued the chain.
	readAfter := func(t *testing.T, what, previous string) string {
		t.Helper()
		var r tokenRead
		deadline := time.Now().Add(20 * time.Second)
		for {
			r = w.read(path)
			if r.err == nil && (r.status == http.StatusOK || r.status == http.StatusConflict || r.status == http.StatusBadRequest) {
				break
			}
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond) // the plugin is still starting
		}
		refreshes++
		g := w.larkGrant(t, grantID)
		if r.status != http.StatusOK || r.token == "" || r.token == previous {
			t.Fatalf("%s: %v; want a fresh user token (emulator: %s)", what, r, jsonString(g))
		}
		if g["reuse_attempts"] != float64(0) || g["refreshes"] != float64(refreshes) || g["status"] != "active" {
			t.Fatalf("%s: the emulator's grant is %s; want %d refreshes in one chain, active, no refresh token presented twice",
				what, jsonString(g), refreshes)
		}
		if ok, code := larkAccepts(t, w.emuURL, r.token); !ok {
			t.Fatalf("%s: Lark refuses the token read (code %d)", what, code)
		}
		return r.token
	}
	reload := func(t *testing.T) {
		t.Helper()
		w.must(t, "write", "sys/plugins/reload/backend", "mounts="+w.mount+"/")
	}
	// interruptOnce has one read interrupted while Lark is late, and waits until Lark has answered
	// and the plugin has had time to store what it got.
	interruptOnce := func(t *testing.T) {
		t.Helper()
		w.fail(t, app, "refresh", "late_answer", map[string]any{"delay_ms": late.Milliseconds(), "count": 1})
		sweeps := w.sweeps(t)
		began := time.Now()
		interrupt(t, path)
		refreshes++
		waitFor(t, late+10*time.Second, "Lark to act on the interrupted refresh", func() bool {
			return w.larkGrant(t, grantID)["refreshes"] == float64(refreshes)
		})
		time.Sleep(time.Until(began.Add(late + 2*time.Second)))
		if n := w.sweeps(t) - sweeps; n > 0 {
			// A periodic sweep resolves an interrupted refresh on its own, so this round cannot tell
			// whether the request itself stored the rotated token.
			t.Logf("%d periodic sweep(s) ran between the interrupted read and now", n)
		}
	}

	first := w.read(path)
	refreshes++
	if first.status != http.StatusOK || first.token == "" {
		t.Fatalf("first read: %v", first)
	}

	t.Run("read, then restart", func(t *testing.T) {
		interruptOnce(t)
		tok := readAfter(t, "the read after the interrupted refresh", first.token)
		reload(t)
		first.token = readAfter(t, "the read after a plugin restart", tok)
	})
	t.Run("restart, then read", func(t *testing.T) {
		interruptOnce(t)
		reload(t)
		tok := readAfter(t, "the first read after the interrupted refresh and a plugin restart", first.token)
		reload(t)
		readAfter(t, "the read after another plugin restart", tok)
	})
	t.Logf("took %s", time.Since(start).Round(time.Second))
}
