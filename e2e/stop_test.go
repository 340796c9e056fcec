//go:build e2e

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Issue 17, item 1: a plugin reload — as in every rolling upgrade of the plugin — while Lark holds
// the answer to a call that spent a single-use credential, and whose caller has long given up. The
// reload must wait until Lark has answered and the outcome is stored: no grant lost, no refresh token
// presented twice at Lark. Before the refresher, the reload returned at once, the old plugin process
// ended, and the next read answered 409 "interrupted after Lark had used the refresh token".

const (
	stopLateAnswer = 6 * time.Second
	stopTimeout    = 10 * time.Second
)

func TestReloadWhileLarkHoldsAnAnswerLosesNothing(t *testing.T) {
	t.Parallel()
	const plugin = "lark-faults-reload"
	swPrivatePlugin(t, plugin)
	w := newFaultWorld(t, "faults-reload/lark", plugin)
	w.must(t, "write", w.mount+"/config", "lark_request_timeout="+stopTimeout.String())
	const app = "cli_freload"
	w.app(t, app, 5*time.Minute) // shorter than the refresh window: every read refreshes

	// reload is what a rolling upgrade runs; it reports how long Vault took.
	reload := func(t *testing.T) time.Duration {
		t.Helper()
		start := time.Now()
		w.must(t, "plugin", "reload", "-plugin="+plugin)
		return time.Since(start)
	}
	giveUp := func(t *testing.T, rawURL string, token bool) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, rawURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token {
			req.Header.Set("X-Vault-Token", rootToken)
		}
		resp, err := (&http.Client{Timeout: time.Second, CheckRedirect: noRedirects}).Do(req)
		if err == nil {
			_ = resp.Body.Close()
			t.Fatalf("the caller got HTTP %d before giving up; Lark's late answer should have kept it waiting", resp.StatusCode)
		}
	}

	t.Run("refresh", func(t *testing.T) {
		grantID := w.grant(t, app, "ada")
		path := "user-token/" + app + "/ada"
		if r := w.read(path); r.status != http.StatusOK {
			t.Fatalf("first read: %v", r)
		}
		before := w.larkGrant(t, grantID)["refreshes"].(float64)

		w.fail(t, app, "refresh", "late_answer", map[string]any{"delay_ms": stopLateAnswer.Milliseconds(), "count": 1})
		asked := time.Now()
		giveUp(t, w.vaultAddr+"/v1/"+w.mount+"/"+path, true)
		took := reload(t)
		t.Logf("the reload returned %s after the reader gave up (Lark answers %s after it was asked)",
			time.Since(asked).Round(100*time.Millisecond), stopLateAnswer)
		if time.Since(asked) < stopLateAnswer-500*time.Millisecond {
			t.Fatalf("the reload returned after %s, before Lark answered (%s): it did not wait for the call in flight", took, stopLateAnswer)
		}
		r := w.readUntilOK(t, path, 30*time.Second)
		if ok, code := larkAccepts(t, w.emuURL, r.token); !ok {
			t.Fatalf("Lark refuses the token read after the reload (code %d)", code)
		}
		g := w.larkGrant(t, grantID)
		if g["reuse_attempts"] != float64(0) || g["status"] != "active" || g["refreshes"] != before+2 {
			t.Fatalf("the emulator's grant after the reload: %s; want active, %v refreshes in one chain, no refresh token presented twice",
				jsonString(g), before+2)
		}
	})

	// Moving a mount (`vault secrets move`) unmounts the backend and mounts it again elsewhere with
	// the same storage: the grant must come along with the token Lark rotated while it moved.
	t.Run("move", func(t *testing.T) {
		grantID := w.grant(t, app, "mo")
		path := "user-token/" + app + "/mo"
		if r := w.read(path); r.status != http.StatusOK {
			t.Fatalf("first read: %v", r)
		}
		before := w.larkGrant(t, grantID)["refreshes"].(float64)
		w.fail(t, app, "refresh", "late_answer", map[string]any{"delay_ms": stopLateAnswer.Milliseconds(), "count": 1})
		asked := time.Now()
		giveUp(t, w.vaultAddr+"/v1/"+w.mount+"/"+path, true)
		moved := w.mount + "-moved"
		w.must(t, "secrets", "move", w.mount, moved)
		defer w.must(t, "secrets", "move", moved, w.mount)
		t.Logf("the move returned %s after the reader gave up", time.Since(asked).Round(100*time.Millisecond))
		if time.Since(asked) < stopLateAnswer-500*time.Millisecond {
			t.Fatalf("the move returned before Lark answered: the plugin did not wait for the call in flight")
		}
		r := readAt(t, w, moved, path)
		if ok, code := larkAccepts(t, w.emuURL, r); !ok {
			t.Fatalf("Lark refuses the token read after the move (code %d)", code)
		}
		g := w.larkGrant(t, grantID)
		if g["reuse_attempts"] != float64(0) || g["status"] != "active" || g["refreshes"] != before+2 {
			t.Fatalf("the emulator's grant after the move: %s; want active, %v refreshes in one chain, no refresh token presented twice",
				jsonString(g), before+2)
		}
	})

	t.Run("callback", func(t *testing.T) {
		userID := "fault_reload_bob"
		emuControl(t, w.emuURL, http.MethodPost, "/_emulator/users", map[string]any{"user_id": userID, "name": "Bob"})
		callback := w.vaultAddr + "/v1/" + w.mount + "/oauth/callback"
		w.must(t, "write", w.mount+"/apps/"+app, "redirect_uri="+callback)
		out := w.must(t, "write", "-field=authorize_url", w.mount+"/oauth/"+app+"/replace", "user=bob")
		authURL := strings.TrimSpace(out)
		resp, err := (&http.Client{CheckRedirect: noRedirects}).Get(authURL)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		location := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusFound || !strings.HasPrefix(location, callback+"?") {
			t.Fatalf("Lark's authorize page answered %d to %q; want a redirect to the callback", resp.StatusCode, location)
		}
		if u, err := url.Parse(location); err == nil {
			rememberRedirectValue(u.Query().Get("code"), "authorization code")
			rememberRedirectValue(u.Query().Get("state"), "OAuth state")
		}

		w.fail(t, app, "code_exchange", "late_answer", map[string]any{"delay_ms": stopLateAnswer.Milliseconds(), "count": 1})
		asked := time.Now()
		giveUp(t, location, false) // the browser gives up
		reload(t)
		if time.Since(asked) < stopLateAnswer-500*time.Millisecond {
			t.Fatalf("the reload returned before Lark answered the code exchange: it did not wait for the call in flight")
		}
		r := w.readUntilOK(t, "user-token/"+app+"/bob", 30*time.Second)
		if ok, code := larkAccepts(t, w.emuURL, r.token); !ok {
			t.Fatalf("Lark refuses the token of the grant stored after the reload (code %d)", code)
		}
	})
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// readAt reads a user token at another mount path of the fault world's Vault, until it answers 200.
func readAt(t *testing.T, w *faultWorld, mount, path string) string {
	t.Helper()
	var last string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		status, body, err := swDo(http.MethodGet, w.vaultAddr+"/v1/"+mount+"/"+path, rootToken, nil)
		if err == nil && status == http.StatusOK {
			data, _ := body["data"].(map[string]any)
			tok, _ := data["access_token"].(string)
			remember(tok, "token read from "+mount+"/"+path)
			return tok
		}
		last = fmt.Sprintf("HTTP %d %v %v", status, body["errors"], err)
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("reading %s/%s: %s", mount, path, last)
	return ""
}
