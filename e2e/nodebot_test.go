//go:build e2e

package e2e

// examples/node-bot, a service on Lark's official Node SDK that takes its tokens from the files
// Vault Agent renders, run for real beside Vault Agent; and the SDK's own token and message calls
// run against the emulator, to keep the emulator faithful to what the SDK expects of Lark.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// requireNodeBot checks Node and npm and installs examples/node-bot's dependencies (the SDK).
func requireNodeBot(t *testing.T) (node, dir string) {
	t.Helper()
	return requireNodeExample(t, "node-bot", 18, "examples/node-bot")
}

// botCall makes one request to the bot and returns the status and decoded JSON answer.
func botCall(t *testing.T, method, url string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := env.httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s %s: HTTP %d, not JSON: %s", method, url, resp.StatusCode, raw)
	}
	return resp.StatusCode, v
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// emulatorMessages lists the messages an emulator recorded, by message id.
func emulatorMessages(t *testing.T, emuURL string) map[string]map[string]any {
	t.Helper()
	list, _ := emuControl(t, emuURL, http.MethodGet, "/_emulator/messages", nil)["messages"].([]any)
	out := map[string]map[string]any{}
	for _, m := range list {
		msg := m.(map[string]any)
		out[msg["message_id"].(string)] = msg
	}
	return out
}

// TestNodeBotThroughTokenRotation runs Vault Agent with examples/agent and examples/node-bot with
// its README's settings against 2-minute tenant tokens. The bot sends a message, Agent rewrites
// the tenant-token file with a new token, the same bot process sends another: Lark must have
// received both, the first with the token Agent rendered first and the second with the one it
// rendered after the rotation.
func TestNodeBotThroughTokenRotation(t *testing.T) {
	t.Parallel()
	node, botDir := requireNodeBot(t)
	svc := startTokenFileService(t, "nodebot", "cli_nodebot", []string{"-app-token-ttl", agentTokenTTL.String(),
		"-reuse-window", agentReuseWindow.String(), "-user-token-ttl", agentTokenTTL.String()},
		exec.Command(node, filepath.Join(botDir, "bot.js")), "examples/node-bot", "BOT_LISTEN")
	s, emuURL, receiver := svc.agentSetup, svc.emuURL, svc.receiver
	tenantFile, botURL, botLog := svc.tenantFile, svc.url, svc.log

	// send has the bot send text and returns the message id and the token in the file just
	// before and just after (Agent may rotate in between; the message must carry one of them).
	send := func(text string) (id string, tokens []string) {
		t.Helper()
		before := readTrimmed(tenantFile)
		status, reply := botCall(t, http.MethodPost, botURL+"/notify", map[string]string{"text": text})
		after := readTrimmed(tenantFile)
		remember(after, "tenant token rendered by Vault Agent")
		if status != http.StatusOK {
			t.Fatalf("bot /notify %q: HTTP %d %v", text, status, reply)
		}
		id, _ = reply["message_id"].(string)
		if !strings.HasPrefix(id, "om_") {
			t.Fatalf("bot /notify %q: no message id in %v", text, reply)
		}
		return id, []string{before, after}
	}
	id1, tokens1 := send("before the rotation")
	sendTime := time.Now()

	// Wait for Agent to put a new tenant token into the file (the mount fetches a new one when the
	// cached token has 70 s left, Agent re-reads at 75 % of the lease).
	waitForNewToken(t, 4*time.Minute, tenantFile, "tenant token", tokens1)
	t.Logf("Vault Agent rendered a new tenant token %s after the first message", time.Since(sendTime).Round(time.Second))
	id2, tokens2 := send("after the rotation")

	// The user-scoped call: user_info with the user token of the slot svc-release-bot.
	status, who := botCall(t, http.MethodGet, botURL+"/me", nil)
	if status != http.StatusOK || who["name"] != "Release Bot" {
		t.Fatalf("bot /me: HTTP %d %v", status, who)
	}

	msgs := emulatorMessages(t, emuURL)
	m1, m2 := msgs[id1], msgs[id2]
	if m1 == nil || m2 == nil {
		t.Fatalf("Lark did not record both messages %s and %s: %v", id1, id2, msgs)
	}
	// Each message carries the fingerprint of the token it was sent with (never the token).
	sent1, sent2 := m1["token_sha256"], m2["token_sha256"]
	for _, c := range []struct {
		msg  map[string]any
		text string
	}{{m1, "before the rotation"}, {m2, "after the rotation"}} {
		if c.msg["app_id"] != s.app || c.msg["sender_type"] != "app" || c.msg["receive_id"] != receiver ||
			c.msg["content"] != `{"text":"`+c.text+`"}` {
			t.Errorf("message %q as Lark recorded it: %v", c.text, c.msg)
		}
	}
	if !fingerprintOf(sent1, tokens1) {
		t.Fatal("the first message was not sent with the tenant token in the file at the time")
	}
	if sent1 == sent2 {
		t.Fatal("both messages were sent with the same tenant token: the bot did not pick up the rewritten file")
	}
	if !fingerprintOf(sent2, tokens2) || fingerprintOf(sent2, tokens1) {
		t.Fatal("the second message was not sent with the token Vault Agent rendered after the rotation")
	}
	if logged := readTrimmed(botLog); !strings.Contains(logged, "notify: sent "+id1) || !strings.Contains(logged, "notify: sent "+id2) {
		t.Errorf("bot log:\n%s", logged)
	}
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// fingerprintOf reports whether fp is the token_sha256 of one of the tokens.
func fingerprintOf(fp any, tokens []string) bool {
	for _, tok := range tokens {
		if tok != "" && fp == sha256Hex(tok) {
			return true
		}
	}
	return false
}

// probeCheck is a line "ok <check>" of e2e/testdata/node-sdk-probe.js.
var probeCheck = regexp.MustCompile(`(?m)^ok (.+)$`)

// TestNodeSDKAgainstEmulator runs Lark's official Node SDK through every call of it the emulator
// serves (e2e/testdata/node-sdk-probe.js asserts what the SDK gets back) and checks at the
// emulator that the calls arrived: the SDK's token manager, messages with tenant and user
// tokens, the authen v1 user token endpoints its userAccessToken helper uses, and the OAuth
// token endpoint behind client.accessToken.
func TestNodeSDKAgainstEmulator(t *testing.T) {
	t.Parallel()
	node, botDir := requireNodeBot(t)
	emuURL := startOwnEmulator(t)
	const app = "cli_nodesdkprobe"
	secret := fmt.Sprintf("probeSecret%d", time.Now().UnixNano())
	remember(secret, "app_secret of "+app)
	emuControl(t, emuURL, http.MethodPost, "/_emulator/apps", map[string]string{"app_id": app, "app_secret": secret})
	const receiver = "ou_nodesdk_reader"
	emuControl(t, emuURL, http.MethodPost, "/_emulator/users",
		map[string]any{"user_id": "nodesdk_reader", "open_id": receiver, "sign_in": false})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(repoRoot(t), "e2e", "testdata", "node-sdk-probe.js"))
	cmd.Env = append(os.Environ(),
		"NODE_PATH="+filepath.Join(botDir, "node_modules"),
		"LARK_BASE_URL="+emuURL, "LARK_APP_ID="+app, "LARK_APP_SECRET="+secret,
		"LARK_RECEIVE_ID="+receiver, "REDIRECT_URI=https://probe.example/callback")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	out := rememberTokensIn(stdout.String()+stderr.String(), "token printed by the SDK probe")
	if strings.Contains(out, secret) {
		t.Error("the SDK probe printed the app secret")
	}
	if runErr != nil {
		t.Fatalf("the official SDK failed against the emulator: %v\n%s", runErr, out)
	}
	checks := probeCheck.FindAllStringSubmatch(stdout.String(), -1)
	for _, c := range checks {
		t.Logf("SDK: %s", c[1])
	}
	if len(checks) != 11 {
		t.Fatalf("the probe passed %d checks, want 11:\n%s", len(checks), out)
	}

	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var result struct {
		Sent []string `json:"sent"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &result); err != nil || len(result.Sent) != 3 {
		t.Fatalf("probe result %q: %v", lines[len(lines)-1], err)
	}
	msgs := emulatorMessages(t, emuURL)
	for i, want := range []string{"app", "app", "user"} {
		m := msgs[result.Sent[i]]
		if m == nil || m["sender_type"] != want || m["receive_id"] != receiver {
			t.Errorf("message %d the SDK sent, as Lark recorded it: %v", i+1, m)
		}
	}
	counters := emuControl(t, emuURL, http.MethodGet, "/_emulator/apps/"+app+"/counters", nil)
	// initWithCode, two OIDC refreshes, the v1 pair and one bad code; userAccessToken.get used its cache.
	for name, want := range map[string]float64{"authen_v1": 6, "code_exchange": 1, "refresh": 2, "authorize": 3} {
		if counters[name] != want {
			t.Errorf("emulator counter %s = %v, want %v", name, counters[name], want)
		}
	}
}
