//go:build e2e

package e2e

// examples/go-service, a service on Lark's official Go SDK that takes its tokens from the files
// Vault Agent renders, run for real beside Vault Agent through a rotation of the tenant token and
// of the user's access and refresh tokens.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Token lifetimes of this test's emulator: 90-second tokens, so that a rotation comes about a
// minute after Agent's first render and the first tokens are dead at Lark half a minute later.
// The mount's token_refresh_window (70 s) and lease_safety_margin (10 s) are those of the Agent test.
const (
	goServiceTokenTTL    = 90 * time.Second
	goServiceReuseWindow = 60 * time.Second
)

// goServiceBuild builds examples/go-service once per run when GO_SERVICE_BIN does not name a
// binary (`make test-e2e` builds it with `make go-service` and sets it).
var goServiceBuild struct {
	once sync.Once
	bin  string
	err  error
}

func goServiceBin(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("GO_SERVICE_BIN"); bin != "" {
		return bin
	}
	goServiceBuild.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		bin := filepath.Join(env.workDir, "go-service")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
		cmd.Dir = filepath.Join(repoRoot(t), "examples", "go-service")
		if out, err := cmd.CombinedOutput(); err != nil {
			goServiceBuild.err = fmt.Errorf("go build in examples/go-service: %v\n%s", err, out)
			return
		}
		goServiceBuild.bin = bin
	})
	if goServiceBuild.err != nil {
		t.Fatal(goServiceBuild.err)
	}
	return goServiceBuild.bin
}

// emuCounter is one counter of an app at the emulator.
func emuCounter(t *testing.T, emuURL, app, name string) float64 {
	t.Helper()
	v, _ := emuControl(t, emuURL, http.MethodGet, "/_emulator/apps/"+app+"/counters", nil)[name].(float64)
	return v
}

// emuGrantOf is the one grant of app at the emulator (no token in it).
func emuGrantOf(t *testing.T, emuURL, app string) map[string]any {
	t.Helper()
	grants, _ := emuControl(t, emuURL, http.MethodGet, "/_emulator/grants", nil)["grants"].([]any)
	var found map[string]any
	for _, g := range grants {
		if g := g.(map[string]any); g["app_id"] == app {
			if found != nil {
				t.Fatalf("more than one grant of %s at the emulator: %v", app, grants)
			}
			found = g
		}
	}
	if found == nil {
		t.Fatalf("no grant of %s at the emulator: %v", app, grants)
	}
	return found
}

// TestGoServiceThroughTokenRotation runs Vault Agent with examples/agent and examples/go-service
// with its README's settings. The service sends a message with the tenant token and reads the
// user's profile with the user token; Agent then renders a new tenant token and a new user token
// (the mount spends the single-use refresh token for it); once Lark refuses the first tokens, the
// same service process sends and reads again: both succeed, and the message went out with the
// tenant token Agent rendered after the rotation.
func TestGoServiceThroughTokenRotation(t *testing.T) {
	t.Parallel()
	bin := goServiceBin(t)
	svc := startTokenFileService(t, "gosvc", "cli_gosvc", []string{"-app-token-ttl", goServiceTokenTTL.String(),
		"-reuse-window", goServiceReuseWindow.String(), "-user-token-ttl", goServiceTokenTTL.String()},
		exec.Command(bin), "examples/go-service", "SERVICE_LISTEN")
	s, emuURL, receiver := svc.agentSetup, svc.emuURL, svc.receiver
	tenantFile, userFile, svcURL, svcLog := svc.tenantFile, svc.userFile, svc.url, svc.log
	t.Logf("examples/go-service (%s) listening at %s", bin, svcURL)

	// send has the service send text and returns the message id and the tenant token in the
	// file just before and just after (Agent may rotate in between; the message must carry one).
	send := func(text string) (id string, tokens []string) {
		t.Helper()
		before := readTrimmed(tenantFile)
		status, reply := botCall(t, http.MethodPost, svcURL+"/notify", map[string]string{"text": text})
		after := readTrimmed(tenantFile)
		remember(before, "tenant token rendered by Vault Agent")
		remember(after, "tenant token rendered by Vault Agent")
		if status != http.StatusOK || reply["sender_type"] != "app" {
			t.Fatalf("service /notify %q: HTTP %d %v", text, status, reply)
		}
		id, _ = reply["message_id"].(string)
		if !strings.HasPrefix(id, "om_") {
			t.Fatalf("service /notify %q: no message id in %v", text, reply)
		}
		return id, []string{before, after}
	}
	// me has the service read the user's profile and returns the user token in the file before
	// and after; the emulator must have seen exactly one more user_info call.
	me := func(when string) []string {
		t.Helper()
		calls := emuCounter(t, emuURL, s.app, "user_info")
		before := readTrimmed(userFile)
		status, who := botCall(t, http.MethodGet, svcURL+"/me", nil)
		after := readTrimmed(userFile)
		remember(before, "user token rendered by Vault Agent")
		remember(after, "user token rendered by Vault Agent")
		if status != http.StatusOK || who["name"] != "Release Bot" || !strings.HasPrefix(fmt.Sprint(who["open_id"]), "ou_") {
			t.Fatalf("service /me %s: HTTP %d %v", when, status, who)
		}
		if got := emuCounter(t, emuURL, s.app, "user_info"); got != calls+1 {
			t.Fatalf("service /me %s: the emulator counted %v user_info calls, want %v", when, got, calls+1)
		}
		return []string{before, after}
	}

	id1, tenant1 := send("before the rotation")
	user1 := me("before the rotation")
	refreshes1 := emuGrantOf(t, emuURL, s.app)["refreshes"].(float64)
	start := time.Now()

	// Agent renders new tokens once the mount has rotated them (the mount fetches a new tenant
	// token, and spends the refresh token for a new user token, when the cached one has less than
	// 70 s left; Agent re-reads at 75 % of the lease).
	waitFor(t, 3*time.Minute, "Vault Agent to render a new tenant token and a new user token", func() bool {
		tt, ut := readTrimmed(tenantFile), readTrimmed(userFile)
		remember(tt, "tenant token rendered by Vault Agent")
		remember(ut, "user token rendered by Vault Agent")
		return tt != "" && !containsString(tenant1, tt) && ut != "" && !containsString(user1, ut)
	})
	t.Logf("Vault Agent rendered a new tenant token and user token %s after the first calls", time.Since(start).Round(time.Second))

	// Wait until Lark refuses every token the service used before: from then on, only the new
	// tokens can work.
	waitFor(t, 2*time.Minute, "Lark to refuse the first tenant and user tokens", func() bool {
		for _, tok := range append(append([]string{}, tenant1...), user1...) {
			if ok, _ := larkAccepts(t, emuURL, tok); ok {
				return false
			}
		}
		return true
	})
	t.Logf("the first tokens expired at Lark %s after the first calls", time.Since(start).Round(time.Second))

	id2, tenant2 := send("after the rotation")
	user2 := me("after the rotation")
	if containsString(user1, user2[0]) || containsString(user1, user2[1]) {
		t.Fatal("the user token file still held a token Lark refuses")
	}

	msgs := emulatorMessages(t, emuURL)
	m1, m2 := msgs[id1], msgs[id2]
	if m1 == nil || m2 == nil {
		t.Fatalf("Lark did not record both messages %s and %s: %v", id1, id2, msgs)
	}
	for _, c := range []struct {
		msg  map[string]any
		text string
	}{{m1, "before the rotation"}, {m2, "after the rotation"}} {
		if c.msg["app_id"] != s.app || c.msg["sender_type"] != "app" || c.msg["receive_id"] != receiver ||
			c.msg["msg_type"] != "text" || c.msg["content"] != `{"text":"`+c.text+`"}` {
			t.Errorf("message %q as Lark recorded it: %v", c.text, c.msg)
		}
	}
	if !fingerprintOf(m1["token_sha256"], tenant1) {
		t.Fatal("the first message was not sent with the tenant token in the file at the time")
	}
	if !fingerprintOf(m2["token_sha256"], tenant2) || fingerprintOf(m2["token_sha256"], tenant1) {
		t.Fatal("the second message was not sent with the tenant token Vault Agent rendered after the rotation")
	}

	// The user's refresh token was spent again (rotated) by the mount for the new user token, and
	// never presented twice.
	if g := emuGrantOf(t, emuURL, s.app); g["status"] != "active" || g["refreshes"].(float64) <= refreshes1 || g["reuse_attempts"].(float64) != 0 {
		t.Errorf("the user's grant at Lark after the rotation: %v (refreshes before: %v)", g, refreshes1)
	}
	if logged := readTrimmed(svcLog); !strings.Contains(logged, "notify: sent "+id1) || !strings.Contains(logged, "notify: sent "+id2) {
		t.Errorf("service log:\n%s", logged)
	}
}
