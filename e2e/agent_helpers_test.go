//go:build e2e

package e2e

// Helpers of the Vault Agent, policy and operator-guide tests: an emulator or a Vault server of a
// test's own, the vault CLI against any address, the example files and the guide's shell blocks.

import (
	"bufio"
	"bytes"
	"context"
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

// repoRoot is the checkout the tests run from (go test runs in the package directory, e2e/).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// startOwnEmulator runs a Lark emulator process for one test, with its own token lifetimes, and
// stops it when the test ends. Its log is checked for every secret the run has seen.
func startOwnEmulator(t *testing.T, flags ...string) string {
	t.Helper()
	dir := t.TempDir()
	addrFile := filepath.Join(dir, "emulator.addr")
	logFile := filepath.Join(dir, "emulator.log")
	args := append([]string{"-listen", "127.0.0.1:0", "-addr-file", addrFile, "-verbose"}, flags...)
	cmd, err := startProcess(logFile, os.Getenv("EMULATOR_BIN"), args...)
	if err != nil {
		t.Fatalf("starting an emulator: %v", err)
	}
	t.Cleanup(func() { stopAndScan(t, cmd, logFile) })
	url, err := waitForFile(addrFile, 30*time.Second)
	if err != nil {
		t.Fatalf("emulator did not start: %v", err)
	}
	return url
}

// ownVault is a Vault dev server of one test, with the server configuration the test gives it.
type ownVault struct {
	addr      string
	serverLog string
}

// startOwnVault starts `vault server -dev` with config as its configuration file and stops it when
// the test ends; its log is checked for every secret the run has seen.
func startOwnVault(t *testing.T, dir, config string) *ownVault {
	t.Helper()
	cfg := filepath.Join(dir, "vault.hcl")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	v := &ownVault{addr: fmt.Sprintf("http://127.0.0.1:%d", port), serverLog: filepath.Join(dir, "vault.log")}
	cmd, err := startProcess(v.serverLog, env.vaultBin, "server", "-dev", "-dev-root-token-id="+rootToken,
		fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", port), "-config="+cfg, "-log-level=debug")
	if err != nil {
		t.Fatalf("starting a second vault: %v", err)
	}
	t.Cleanup(func() { stopAndScan(t, cmd, v.serverLog) })
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(v.addr + "/v1/sys/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return v
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("second vault did not become ready: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// cli runs the vault CLI against this server; the output is stdout and stderr together.
func (v *ownVault) cli(token, format string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, env.vaultBin, args...)
	cmd.Env = append(os.Environ(), "VAULT_ADDR="+v.addr, "VAULT_TOKEN="+token, "VAULT_FORMAT="+format)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (v *ownVault) must(t *testing.T, token string, args ...string) string {
	t.Helper()
	out, err := v.cli(token, "table", args...)
	if err != nil {
		t.Fatalf("vault %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (v *ownVault) json(t *testing.T, token string, args ...string) map[string]any {
	t.Helper()
	out, err := v.cli(token, "json", args...)
	if err != nil {
		t.Fatalf("vault %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("vault %s: not JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
	return m
}

// noRedirectClient is a browser that shows each redirect instead of following it.
var noRedirectClient = &http.Client{
	Timeout:       30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// emuControl calls the control API of an emulator of the test's own (emulator() talks to the
// shared one).
func emuControl(t *testing.T, emuURL, method, path string, body any) map[string]any {
	t.Helper()
	return emulatorAt(t, emuURL, method, path, body)
}

// mintUserGrant has the emulator create a Lark grant for a (new) Lark user of the app and returns
// its refresh token, which the test then imports into a Vault slot.
func mintUserGrant(t *testing.T, emuURL, appID, userID, name string) string {
	t.Helper()
	emuControl(t, emuURL, http.MethodPost, "/_emulator/users", map[string]string{"user_id": userID, "name": name})
	g := emuControl(t, emuURL, http.MethodPost, "/_emulator/grants", map[string]any{"app_id": appID, "user_id": userID})
	access, _ := g["access_token"].(string)
	refresh, _ := g["refresh_token"].(string)
	remember(access, "minted user_access_token of "+appID+"/"+userID)
	remember(refresh, "minted refresh_token of "+appID+"/"+userID)
	if refresh == "" {
		t.Fatalf("minted grant has no refresh token: %v", g)
	}
	return refresh
}

// larkAccepts asks Lark (the emulator at emuURL) whether it accepts token as a bearer token right
// now. It sends a message with a receive_id_type Lark does not know: the gateway checks the token
// first (99991663 / 99991677 for an unknown or expired one), and only a good token gets as far as
// the parameter check (230001), which sends nothing.
func larkAccepts(t *testing.T, emuURL, token string) (bool, int) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, emuURL+"/open-apis/im/v1/messages?receive_id_type=probe", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := env.httpClient.Do(req)
	if err != nil {
		t.Fatalf("asking the emulator about a token: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Code int `json:"code"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("emulator probe: HTTP %d, not JSON: %s", resp.StatusCode, raw)
	}
	return body.Code == 230001, body.Code
}

// rewrite replaces each old string of pairs (old, new, old, new, …) in text.
func rewrite(text string, pairs ...string) string {
	return strings.NewReplacer(pairs...).Replace(text)
}

// installExamples copies the files of examples/<dir> into dst, rewritten with pairs. Each old
// string must occur in at least one file, so an example that no longer has the shape the tests
// rely on fails here rather than testing something else.
func installExamples(t *testing.T, dir, dst string, pairs ...string) {
	t.Helper()
	src := filepath.Join(repoRoot(t), "examples", dir)
	seen := map[string]bool{}
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i := 0; i < len(pairs); i += 2 {
			if strings.Contains(string(data), pairs[i]) {
				seen[pairs[i]] = true
			}
		}
		out := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(out, []byte(rewrite(string(data), pairs...)), 0o644)
	})
	if err != nil {
		t.Fatalf("installing examples/%s: %v", dir, err)
	}
	for i := 0; i < len(pairs); i += 2 {
		if !seen[pairs[i]] {
			t.Fatalf("examples/%s no longer contains %q, which the test replaces", dir, pairs[i])
		}
	}
}

// examplePolicy is a policy file of examples/policies as it is on disk.
func examplePolicy(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "examples", "policies", name+".hcl"))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// enableAuth enables an auth method on the shared Vault unless it is already there (tests that
// run in parallel may both want approle/).
func enableAuth(t *testing.T, kind, path string) {
	t.Helper()
	out, err := runVault(rootToken, "auth", "enable", "-path="+path, kind)
	if err != nil && !strings.Contains(out, "path is already in use") {
		t.Fatalf("vault auth enable %s: %v\n%s", kind, err, out)
	}
}

// leaseCount is how many leases the shared Vault holds under a prefix (sys/leases/lookup needs
// sudo: root).
func leaseCount(t *testing.T, prefix string) int {
	t.Helper()
	status, body := vaultHTTP(t, rootToken, "LIST", "sys/leases/lookup/"+prefix, nil)
	if status == http.StatusNotFound {
		return 0
	}
	if status != http.StatusOK {
		t.Fatalf("LIST sys/leases/lookup/%s: HTTP %d %v", prefix, status, body)
	}
	keys, _ := body["data"].(map[string]any)["keys"].([]any)
	return len(keys)
}

// startAgent runs `vault agent` with a configuration file until the test ends; its log is checked
// for every secret the run has seen.
func startAgent(t *testing.T, config, logFile string) {
	t.Helper()
	cmd, err := startProcess(logFile, env.vaultBin, "agent", "-config="+config, "-log-level=debug")
	if err != nil {
		t.Fatalf("starting vault agent: %v", err)
	}
	t.Cleanup(func() { stopAndScan(t, cmd, logFile) })
}

// stopAndScan stops a process a test started, checks its log for secrets and shows the log's end
// if the test failed.
func stopAndScan(t *testing.T, cmd *exec.Cmd, logFile string) {
	t.Helper()
	stopProcess(cmd)
	assertNoSecretsIn(t, logFile)
	tailOnFailure(t, logFile)
}

// assertNoSecretsIn fails if any secret or token the run has remembered so far is in one of the
// files (the logs of the processes a test started itself; TestMain scans the shared ones).
func assertNoSecretsIn(t *testing.T, files ...string) {
	t.Helper()
	secretsSeen.Lock()
	defer secretsSeen.Unlock()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Errorf("leak scan: %v", err)
			continue
		}
		for value, what := range secretsSeen.values {
			if bytes.Contains(data, []byte(value)) {
				t.Errorf("SECRET LEAK: %s found in %s", what, f)
			}
		}
	}
}

// tailOnFailure logs the end of a process's log when the test failed.
func tailOnFailure(t *testing.T, file string) {
	t.Helper()
	if !t.Failed() {
		return
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	t.Logf("---- last lines of %s ----\n%s", file, strings.Join(lines, "\n"))
}

// larkTokenPattern matches the tokens the emulator hands out (tenant/app tokens and JWT-shaped
// user tokens), so output that went through a shell can be searched for them.
var larkTokenPattern = regexp.MustCompile(`\bt-g[0-9a-f]{40}\b|\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+`)

// rememberTokensIn remembers every Lark token in text and returns text with them redacted.
func rememberTokensIn(text, what string) string {
	return larkTokenPattern.ReplaceAllStringFunc(text, func(tok string) string {
		remember(tok, what)
		return "[token]"
	})
}

// guideBlock is a fenced code block of docs/operator-guide.md with the name given by the
// <!-- guide-test: name --> comment before it.
type guideBlock struct {
	name string
	lang string
	text string
	line int
}

var guideTestMarker = regexp.MustCompile(`^<!-- guide-test: ([a-z0-9-]+) -->$`)

// guideBlocks parses the operator guide. Every shell block must carry a name (a test step runs
// it); other blocks may.
func guideBlocks(t *testing.T) (blocks []guideBlock, markdown string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "operator-guide.md"))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	var (
		pending string
		cur     *guideBlock
		n       int
	)
	for sc.Scan() {
		n++
		line := sc.Text()
		switch {
		case cur != nil && strings.HasPrefix(line, "```"):
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		case strings.HasPrefix(line, "```"):
			cur = &guideBlock{name: pending, lang: strings.TrimPrefix(line, "```"), line: n}
			if cur.lang == "sh" && cur.name == "" {
				t.Errorf("docs/operator-guide.md:%d: a shell block without a <!-- guide-test: name --> comment; every command in the guide must be run by a test", n)
			}
			pending = ""
		default:
			if m := guideTestMarker.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
				pending = m[1]
			} else if strings.TrimSpace(line) != "" {
				pending = ""
			}
		}
	}
	if cur != nil {
		t.Fatalf("docs/operator-guide.md: unterminated code block at line %d", cur.line)
	}
	return blocks, string(data)
}

// waitFor polls cond until it returns true or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// readTrimmed returns a file's content without surrounding whitespace ("" if it does not exist).
func readTrimmed(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}
