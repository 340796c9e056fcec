//go:build e2e

package e2e

// examples/mcp: Lark's official MCP server (@larksuiteoapi/lark-mcp from the npm registry) run by
// examples/mcp/lark-mcp-vault.js on the user token Vault Agent renders with examples/mcp/agent,
// driven over stdio as an MCP client drives it, through a rotation of the user token.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mcpUserTokenTTL is the life of the user tokens of the MCP test's emulator. The mount refreshes a
// grant once its token has less than token_refresh_window (70 s) left, so Agent renders a new
// token within about half a minute of the first.
const mcpUserTokenTTL = 90 * time.Second

// requireMCP checks Node and npm and installs examples/mcp's dependencies (lark-mcp).
func requireMCP(t *testing.T) (node, dir string) {
	t.Helper()
	return requireNodeExample(t, "mcp", 20, "@larksuiteoapi/lark-mcp")
}

// mcpClient speaks MCP's stdio transport to a server process: one JSON-RPC message per line.
type mcpClient struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan map[string]any
	nextID int
}

func startMCPServer(t *testing.T, node, script, logFile string, extraEnv []string) *mcpClient {
	t.Helper()
	cmd := exec.Command(node, script)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	startService(t, cmd, "the MCP server", logFile, extraEnv, func() { _ = stdin.Close() })
	c := &mcpClient{t: t, cmd: cmd, stdin: stdin, lines: make(chan map[string]any, 16)}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var msg map[string]any
			if err := json.Unmarshal(sc.Bytes(), &msg); err != nil {
				// stdout is the protocol channel: anything else on it breaks every MCP client.
				msg = map[string]any{"not_json": sc.Text()}
			}
			c.lines <- msg
		}
	}()
	return c
}

func (c *mcpClient) send(msg map[string]any) {
	c.t.Helper()
	msg["jsonrpc"] = "2.0"
	b, _ := json.Marshal(msg)
	if _, err := c.stdin.Write(append(b, '\n')); err != nil {
		c.t.Fatalf("writing to the MCP server: %v", err)
	}
}

// call sends a request and returns its result; a JSON-RPC error or anything that is not
// JSON-RPC on stdout fails the test.
func (c *mcpClient) call(method string, params any) map[string]any {
	c.t.Helper()
	c.nextID++
	id := c.nextID
	c.send(map[string]any{"id": id, "method": method, "params": params})
	deadline := time.After(30 * time.Second)
	for {
		select {
		case msg, ok := <-c.lines:
			if !ok {
				c.t.Fatalf("%s: the MCP server closed its stdout", method)
			}
			if raw, bad := msg["not_json"]; bad {
				c.t.Fatalf("the MCP server wrote a line that is not JSON-RPC to stdout: %q", raw)
			}
			if got, _ := msg["id"].(float64); int(got) != id {
				continue // a notification, or an answer to something else
			}
			if e, isErr := msg["error"]; isErr {
				c.t.Fatalf("%s: JSON-RPC error %v", method, e)
			}
			result, _ := msg["result"].(map[string]any)
			return result
		case <-deadline:
			c.t.Fatalf("%s: no answer from the MCP server within 30s", method)
		}
	}
}

// userInfoCall is one call the emulator recorded at GET /open-apis/authen/v1/user_info.
type userInfoCall struct {
	AppID       string `json:"app_id"`
	OpenID      string `json:"open_id"`
	TokenSHA256 string `json:"token_sha256"`
	Code        int    `json:"code"`
}

func emulatorUserInfoCalls(t *testing.T, emuURL string) []userInfoCall {
	t.Helper()
	raw, _ := json.Marshal(emuControl(t, emuURL, http.MethodGet, "/_emulator/user-info-calls", nil)["calls"])
	var calls []userInfoCall
	if err := json.Unmarshal(raw, &calls); err != nil {
		t.Fatal(err)
	}
	return calls
}

// TestMCPServerThroughUserTokenRotation runs Vault Agent with examples/mcp/agent and Lark's MCP
// server with examples/mcp/lark-mcp-vault.js as examples/mcp/README.md configures them, against
// 90-second user tokens. One MCP session, one server process: initialize, list the tools, call
// the user-profile tool; Agent rewrites the token file with a refreshed token; the same session
// calls the tool again. Lark must have received the first call with the first token and the second
// with the new one, and nothing may have logged a token.
func TestMCPServerThroughUserTokenRotation(t *testing.T) {
	t.Parallel()
	node, mcpDir := requireMCP(t)
	a := startExampleAgent(t, "mcp", "cli_mcpagent", "-user-token-ttl", mcpUserTokenTTL.String())
	s, emuURL, root := a.agentSetup, a.emuURL, a.root

	// The AI agent's Lark user holds the slot svc-ai-agent (the team policy grants svc-*).
	refresh := mintUserGrant(t, emuURL, s.app, "ai_agent_user", "AI Agent")
	mustVault(t, rootToken, "write", s.mount+"/user-token/"+s.app+"/svc-ai-agent", "refresh_token="+refresh)

	installExamples(t, filepath.Join("mcp", "agent"), filepath.Join(s.configDir, "mcp"),
		"https://vault.example.com:8200", env.vaultAddr,
		"/etc/vault-agent", s.configDir,
		"/run/lark", s.outDir,
		`"lark/`, `"`+s.mount+`/`,
		"cli_a1b2c3d4e5f6a7b8", s.app)
	a.runAgent(t, filepath.Join(s.configDir, "mcp", "agent.hcl"), "agent-mcp.log", filepath.Join("mcp", "user-token"))
	tokenFile := filepath.Join(s.outDir, "mcp", "user-token")
	renderedAt := time.Now()

	// The server as examples/mcp/mcp.json starts it, with the emulator for Lark and only the
	// profile tool. HOME is the test's, so lark-mcp's own log lands where it is scanned.
	home := filepath.Join(root, "mcp-home")
	serverLog := filepath.Join(root, "lark-mcp.log")
	c := startMCPServer(t, node, filepath.Join(mcpDir, "lark-mcp-vault.js"), serverLog, []string{
		"HOME=" + home,
		"LARK_APP_ID=" + s.app,
		"LARK_DOMAIN=" + emuURL,
		"LARK_USER_TOKEN_FILE=" + tokenFile,
		"LARK_MCP_TOOLS=authen.v1.userInfo.get",
	})
	t.Cleanup(func() {
		logs, _ := filepath.Glob(filepath.Join(home, ".local", "state", "lark-mcp-nodejs", "*.log"))
		if len(logs) > 0 {
			assertNoSecretsIn(t, logs...)
		}
	})

	hello := c.call("initialize", map[string]any{
		"protocolVersion": "2025-06-18",
		"capabilities":    map[string]any{},
		"clientInfo":      map[string]any{"name": "e2e-mcp-client", "version": "1.0.0"},
	})
	if _, ok := hello["capabilities"].(map[string]any)["tools"]; !ok {
		t.Fatalf("initialize: the server offers no tools: %v", hello)
	}
	c.send(map[string]any{"method": "notifications/initialized"})
	tools, _ := c.call("tools/list", map[string]any{})["tools"].([]any)
	const tool = "authen_v1_userInfo_get"
	if len(tools) != 1 || tools[0].(map[string]any)["name"] != tool {
		t.Fatalf("tools/list: want only %s, got %v", tool, tools)
	}

	// profile calls the tool as an MCP client does and returns the profile Lark answered, the call
	// Lark recorded for it, and the token in the file just before and just after the call (Agent
	// may rotate in between). The plugin calls user_info too (when a refresh token is imported),
	// so the recorded calls are cleared first.
	emuControl(t, emuURL, http.MethodDelete, "/_emulator/user-info-calls", nil)
	profile := func(when string) (map[string]any, userInfoCall, []string) {
		t.Helper()
		before := readTrimmed(tokenFile)
		res := c.call("tools/call", map[string]any{"name": tool, "arguments": map[string]any{}})
		after := readTrimmed(tokenFile)
		remember(after, "user token rendered by Vault Agent")
		content, _ := res["content"].([]any)
		if isErr, _ := res["isError"].(bool); isErr || len(content) != 1 {
			t.Fatalf("tools/call %s %s: %v", tool, when, res)
		}
		var p map[string]any
		if err := json.Unmarshal([]byte(content[0].(map[string]any)["text"].(string)), &p); err != nil {
			t.Fatalf("tools/call %s %s: the text is not Lark's profile: %v", tool, when, res)
		}
		if p["name"] != "AI Agent" || !strings.HasPrefix(fmt.Sprint(p["open_id"]), "ou_") {
			t.Fatalf("tools/call %s %s: not the slot's user: %v", tool, when, p)
		}
		calls := emulatorUserInfoCalls(t, emuURL)
		if len(calls) != 1 {
			t.Fatalf("tools/call %s %s: Lark saw %d user_info calls, want 1: %+v", tool, when, len(calls), calls)
		}
		if calls[0].Code != 0 || calls[0].AppID != s.app || calls[0].OpenID != p["open_id"] {
			t.Fatalf("tools/call %s %s: the call as Lark recorded it: %+v", tool, when, calls[0])
		}
		emuControl(t, emuURL, http.MethodDelete, "/_emulator/user-info-calls", nil)
		return p, calls[0], []string{before, after}
	}
	p1, call1, tokens1 := profile("before the rotation")

	waitForNewToken(t, 3*time.Minute, tokenFile, "user token", tokens1)
	t.Logf("Vault Agent rendered a new user token %s after the first", time.Since(renderedAt).Round(time.Second))
	p2, call2, tokens2 := profile("after the rotation")
	if p1["open_id"] != p2["open_id"] {
		t.Fatalf("the two calls answered different users: %v, %v", p1["open_id"], p2["open_id"])
	}
	if !fingerprintOf(call1.TokenSHA256, tokens1) {
		t.Fatal("the first call was not made with the user token in the file at the time")
	}
	if call1.TokenSHA256 == call2.TokenSHA256 {
		t.Fatal("both calls were made with the same user token: the MCP server did not pick up the rewritten file")
	}
	if !fingerprintOf(call2.TokenSHA256, tokens2) || fingerprintOf(call2.TokenSHA256, tokens1) {
		t.Fatal("the second call was not made with the user token Vault Agent rendered after the rotation")
	}
	if c.cmd.ProcessState != nil {
		t.Fatal("the MCP server exited")
	}
	t.Logf("one MCP session, one server process (pid %d): user_info as %v with token sha256 %.12s…, then %.12s… after the rotation",
		c.cmd.Process.Pid, p1["open_id"], call1.TokenSHA256, call2.TokenSHA256)
}

// toolText is the text of a tools/call answer and whether the server marked it an error.
func toolText(t *testing.T, res map[string]any) (string, bool) {
	t.Helper()
	content, _ := res["content"].([]any)
	if len(content) != 1 {
		t.Fatalf("tools/call: want one content item, got %v", res)
	}
	text, _ := content[0].(map[string]any)["text"].(string)
	isErr, _ := res["isError"].(bool)
	return text, isErr
}

// TestMCPServerTokenFile checks examples/mcp/lark-mcp-vault.js on its own, without Vault: the
// tools it offers by default are those lark-mcp can run with a user token; while the token file is
// missing a tool call answers lark-mcp's invalid-token error and nothing reaches Lark; every call
// after that uses whatever token the file holds at the time, in the same session; and it never
// asks Lark for an app or tenant token (it has no app secret).
func TestMCPServerTokenFile(t *testing.T) {
	t.Parallel()
	node, mcpDir := requireMCP(t)
	emuURL := startOwnEmulator(t)
	const app = "cli_mcptokenfile"
	secret := fmt.Sprintf("mcpSecret%d", time.Now().UnixNano())
	remember(secret, "app_secret of "+app)
	emuControl(t, emuURL, http.MethodPost, "/_emulator/apps", map[string]string{"app_id": app, "app_secret": secret})
	emuControl(t, emuURL, http.MethodPost, "/_emulator/users", map[string]any{"user_id": "mcp_reader", "name": "MCP Reader", "sign_in": false})

	root := t.TempDir()
	tokenFile := filepath.Join(root, "user-token")
	home := filepath.Join(root, "home")
	c := startMCPServer(t, node, filepath.Join(mcpDir, "lark-mcp-vault.js"), filepath.Join(root, "lark-mcp.log"), []string{
		"HOME=" + home,
		"LARK_APP_ID=" + app,
		"LARK_DOMAIN=" + emuURL,
		"LARK_USER_TOKEN_FILE=" + tokenFile,
	})
	t.Cleanup(func() {
		logs, _ := filepath.Glob(filepath.Join(home, ".local", "state", "lark-mcp-nodejs", "*.log"))
		if len(logs) > 0 {
			assertNoSecretsIn(t, logs...)
		}
	})
	c.call("initialize", map[string]any{
		"protocolVersion": "2025-06-18",
		"capabilities":    map[string]any{},
		"clientInfo":      map[string]any{"name": "e2e-mcp-client", "version": "1.0.0"},
	})
	c.send(map[string]any{"method": "notifications/initialized"})

	// preset.default, as lark-mcp defines it, less the tools it marks tenant-only.
	tools, _ := c.call("tools/list", map[string]any{})["tools"].([]any)
	names := map[string]bool{}
	for _, tool := range tools {
		names[tool.(map[string]any)["name"].(string)] = true
	}
	if len(names) == 0 || !names["im_v1_chat_list"] || !names["docx_v1_document_rawContent"] || names["im_v1_message_create"] {
		t.Fatalf("tools/list with the default preset: %v", names)
	}
	t.Logf("preset.default as the user: %d tools", len(names))

	// The profile tool is not in preset.default: a second server offers it (below). This one is
	// asked for a chat list with no token file yet.
	text, isErr := toolText(t, c.call("tools/call", map[string]any{"name": "im_v1_chat_list", "arguments": map[string]any{}}))
	if !isErr || !strings.Contains(text, "user_access_token is invalid or expired") {
		t.Fatalf("tools/call with no token file: isError=%v %s", isErr, text)
	}

	p := startMCPServer(t, node, filepath.Join(mcpDir, "lark-mcp-vault.js"), filepath.Join(root, "lark-mcp-profile.log"), []string{
		"HOME=" + home,
		"LARK_APP_ID=" + app,
		"LARK_DOMAIN=" + emuURL,
		"LARK_USER_TOKEN_FILE=" + tokenFile,
		"LARK_MCP_TOOLS=authen.v1.userInfo.get",
	})
	p.call("initialize", map[string]any{
		"protocolVersion": "2025-06-18",
		"capabilities":    map[string]any{},
		"clientInfo":      map[string]any{"name": "e2e-mcp-client", "version": "1.0.0"},
	})
	p.send(map[string]any{"method": "notifications/initialized"})
	profile := func() (string, bool) {
		return toolText(t, p.call("tools/call", map[string]any{"name": "authen_v1_userInfo_get", "arguments": map[string]any{}}))
	}
	if text, isErr := profile(); !isErr || !strings.Contains(text, "user_access_token is invalid or expired") {
		t.Fatalf("profile with no token file: isError=%v %s", isErr, text)
	}
	if calls := emulatorUserInfoCalls(t, emuURL); len(calls) != 0 {
		t.Fatalf("Lark was called without a token: %+v", calls)
	}

	// Two tokens of the same user, written into the file one after the other (as Agent does, by
	// rename): each call uses the one in the file at the time.
	var tokens []string
	for i := 0; i < 2; i++ {
		g := emuControl(t, emuURL, http.MethodPost, "/_emulator/grants", map[string]any{"app_id": app, "user_id": "mcp_reader"})
		access, _ := g["access_token"].(string)
		refresh, _ := g["refresh_token"].(string)
		remember(access, "minted user_access_token of "+app)
		remember(refresh, "minted refresh_token of "+app)
		tokens = append(tokens, access)
	}
	for i, tok := range tokens {
		tmp := tokenFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(tok), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, tokenFile); err != nil {
			t.Fatal(err)
		}
		text, isErr := profile()
		if isErr || !strings.Contains(text, `"name":"MCP Reader"`) {
			t.Fatalf("profile with token %d: isError=%v %s", i+1, isErr, text)
		}
		calls := emulatorUserInfoCalls(t, emuURL)
		if len(calls) != i+1 || calls[i].TokenSHA256 != sha256Hex(tok) || calls[i].Code != 0 {
			t.Fatalf("after the call with token %d Lark recorded %+v", i+1, calls)
		}
	}

	counters := emuControl(t, emuURL, http.MethodGet, "/_emulator/apps/"+app+"/counters", nil)
	for _, ep := range []string{"app_access_token", "tenant_access_token", "oauth_token"} {
		if n, _ := counters[ep].(float64); n != 0 {
			t.Errorf("the MCP server called %s %v times: it must not need the app secret", ep, n)
		}
	}
}
