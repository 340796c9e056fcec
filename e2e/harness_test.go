//go:build e2e

// Package e2e runs the plugin inside a real Vault server, against the Lark emulator running as its
// own process, and drives both the way an operator would: the vault CLI and Vault's HTTP API.
//
// `make test-e2e` builds everything and sets VAULT_BIN, PLUGIN_BIN and EMULATOR_BIN.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	rootToken  = "root"
	pluginName = "vault-plugin-secrets-lark"
	mountPath  = "lark"

	// The emulator hands out short-lived app tokens in these tests so that rotation can be seen in
	// real time: 90 s tokens, re-issued in their last 30 s.
	emuTokenTTL    = 90 * time.Second
	emuReuseWindow = 30 * time.Second

	// User access tokens live 90 s too. With the 70 s refresh window set on the mount below, the
	// plugin refreshes a user token 20 s (real time) after it was issued.
	emuUserTokenTTL = 90 * time.Second
)

// pluginVersion is the version stamped into PLUGIN_BIN (the Makefile's, from scripts/version.sh),
// with which the tests register it: Vault asks the binary and refuses any other.
var pluginVersion string

// stampedVersion asks a plugin binary for the version stamped into it (-version).
func stampedVersion(path string) (string, error) {
	out, err := exec.Command(path, "-version").Output()
	v := strings.TrimSpace(string(out))
	if err != nil || !strings.HasPrefix(v, "v") {
		return "", fmt.Errorf("%s -version = %q (%v): build it with make build", path, v, err)
	}
	return v, nil
}

// env is the running world shared by all tests.
var env struct {
	vaultBin   string
	vaultAddr  string
	emuURL     string
	workDir    string
	auditLog   string
	serverLog  string
	emuLog     string
	pluginSHA  string
	httpClient *http.Client
}

// secretsSeen collects every app secret written and every token read, so that TestMain can check
// that none of them shows up in plain text in the audit log or the server log.
var secretsSeen struct {
	sync.Mutex
	values map[string]string // value -> what it is
	// redirect holds values that travel in the query of Lark's redirect to the OAuth callback
	// (codes and states). Vault's audit log records every request's request_uri verbatim, and Vault
	// CE cannot HMAC or exclude that field, so these may appear there and only there: both are single
	// use (and a code is bound to the PKCE verifier that never leaves Vault). Everywhere else they
	// must be absent like any other secret.
	redirect map[string]string
}

// rememberRedirectValue registers an OAuth code or state, which must appear in no log except in
// the audit log's request_uri of a callback request.
func rememberRedirectValue(value, what string) {
	if value == "" {
		return
	}
	secretsSeen.Lock()
	defer secretsSeen.Unlock()
	if secretsSeen.redirect == nil {
		secretsSeen.redirect = map[string]string{}
	}
	secretsSeen.redirect[value] = what
}

// callbackRequestURI matches the audit log's record of a request to the OAuth callback.
// (of any mount of the plugin: some tests mount it elsewhere).
var callbackRequestURI = regexp.MustCompile(`"request_uri":"/v1/[A-Za-z0-9/_-]*/oauth/callback\?[^"]*"`)

func remember(value, what string) {
	if value == "" {
		return
	}
	secretsSeen.Lock()
	defer secretsSeen.Unlock()
	if secretsSeen.values == nil {
		secretsSeen.values = map[string]string{}
	}
	secretsSeen.values[value] = what
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	var procs []*exec.Cmd
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			stopProcess(procs[i])
		}
	}()
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "e2e setup: "+format+"\n", args...)
		dumpLogs()
		return 1
	}

	env.vaultBin = os.Getenv("VAULT_BIN")
	pluginBin := os.Getenv("PLUGIN_BIN")
	emuBin := os.Getenv("EMULATOR_BIN")
	if env.vaultBin == "" || pluginBin == "" || emuBin == "" {
		return fail("VAULT_BIN, PLUGIN_BIN and EMULATOR_BIN must be set; run `make test-e2e`")
	}
	work, err := os.MkdirTemp("", "lark-e2e-")
	if err != nil {
		return fail("%v", err)
	}
	env.workDir = work
	env.httpClient = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}

	// The plugin directory holds only our binary, copied the way an operator installs it.
	pluginDir := filepath.Join(work, "plugins")
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		return fail("%v", err)
	}
	sha, err := copyFile(pluginBin, filepath.Join(pluginDir, pluginName))
	if err != nil {
		return fail("installing plugin: %v", err)
	}
	env.pluginSHA = sha
	if pluginVersion, err = stampedVersion(pluginBin); err != nil {
		return fail("%v", err)
	}

	// Lark emulator, as its own process.
	env.emuLog = filepath.Join(work, "emulator.log")
	addrFile := filepath.Join(work, "emulator.addr")
	emu, err := startProcess(env.emuLog, emuBin, "-listen", "127.0.0.1:0", "-addr-file", addrFile,
		"-app-token-ttl", emuTokenTTL.String(), "-reuse-window", emuReuseWindow.String(),
		"-user-token-ttl", emuUserTokenTTL.String(),
		// One line per Lark request (endpoint, app, result code), so the leak scan of the emulator's
		// log has something to scan.
		"-verbose")
	if err != nil {
		return fail("starting emulator: %v", err)
	}
	procs = append(procs, emu)
	if env.emuURL, err = waitForFile(addrFile, 30*time.Second); err != nil {
		return fail("emulator did not start: %v", err)
	}

	// Vault dev server with a plugin directory; the plugin is registered by hand below.
	port, err := freePort()
	if err != nil {
		return fail("%v", err)
	}
	env.vaultAddr = fmt.Sprintf("http://127.0.0.1:%d", port)
	cfg := filepath.Join(work, "vault.hcl")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("plugin_directory = %q\n", pluginDir)), 0o644); err != nil {
		return fail("%v", err)
	}
	env.serverLog = filepath.Join(work, "vault.log")
	vault, err := startProcess(env.serverLog, env.vaultBin, "server", "-dev",
		"-dev-root-token-id="+rootToken, fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", port),
		"-config="+cfg, "-log-level=debug")
	if err != nil {
		return fail("starting vault: %v", err)
	}
	procs = append(procs, vault)
	if err := waitForVault(60 * time.Second); err != nil {
		return fail("vault did not become ready: %v", err)
	}

	env.auditLog = filepath.Join(work, "audit.log")
	steps := [][]string{
		{"audit", "enable", "file", "file_path=" + env.auditLog},
		{"plugin", "register", "-sha256=" + env.pluginSHA, "-command=" + pluginName, "-version=" + pluginVersion, "secret", pluginName},
		{"secrets", "enable", "-path=" + mountPath, "-plugin-version=" + pluginVersion, pluginName},
		// Scale the lease margin and refresh window to the emulator's 90 s tokens.
		{"write", mountPath + "/config", "lease_safety_margin=10s", "token_refresh_window=70s"},
	}
	for _, s := range steps {
		if out, err := runVault(rootToken, s...); err != nil {
			return fail("vault %s: %v\n%s", strings.Join(s, " "), err, out)
		}
	}

	code := m.Run()
	if leaks := findLeaks(); len(leaks) > 0 {
		fmt.Fprintln(os.Stderr, "SECRET LEAK: values that must never appear in plain text were found:")
		for _, l := range leaks {
			fmt.Fprintln(os.Stderr, "  -", l)
		}
		code = 1
	} else if code == 0 {
		secretsSeen.Lock()
		fmt.Printf("leak check: %d secrets and tokens absent from the audit, server and emulator logs; %d OAuth codes and states absent except from callback request_uris in the audit log\n",
			len(secretsSeen.values), len(secretsSeen.redirect))
		secretsSeen.Unlock()
	}
	if code != 0 {
		dumpLogs()
	} else {
		os.RemoveAll(work)
	}
	return code
}

// findLeaks scans every log the run produced for any secret or token value seen by the tests.
func findLeaks() []string {
	secretsSeen.Lock()
	defer secretsSeen.Unlock()
	var leaks []string
	for _, file := range []string{env.auditLog, env.serverLog, env.emuLog} {
		data, err := os.ReadFile(file)
		if err != nil {
			leaks = append(leaks, fmt.Sprintf("cannot read %s: %v", file, err))
			continue
		}
		// The scan is only meaningful if the log recorded the traffic at all: tests that set up apps
		// here also read their tokens. (A run of only tests with servers of their own, such as
		// `make test-cluster`, sets up no app on the shared Vault.)
		usedShared := bytes.Contains(data, []byte(mountPath+"/apps/"))
		if file == env.auditLog && usedShared && !bytes.Contains(data, []byte(mountPath+"/app-token/")) && !bytes.Contains(data, []byte(mountPath+"/user-token/")) {
			leaks = append(leaks, "the audit log has no token reads: the leak scan would prove nothing")
		}
		for value, what := range secretsSeen.values {
			if bytes.Contains(data, []byte(value)) {
				leaks = append(leaks, fmt.Sprintf("%s found in %s", what, filepath.Base(file)))
			}
		}
		if file == env.auditLog {
			data = callbackRequestURI.ReplaceAll(data, []byte(`"request_uri":"(callback)"`))
		}
		for value, what := range secretsSeen.redirect {
			if bytes.Contains(data, []byte(value)) {
				leaks = append(leaks, fmt.Sprintf("%s found in %s", what, filepath.Base(file)))
			}
		}
	}
	return leaks
}

func dumpLogs() {
	for _, file := range []string{env.serverLog, env.emuLog} {
		if file == "" {
			continue
		}
		data, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		lines := strings.Split(string(data), "\n")
		if len(lines) > 80 {
			lines = lines[len(lines)-80:]
		}
		fmt.Fprintf(os.Stderr, "---- last lines of %s ----\n%s\n", file, strings.Join(lines, "\n"))
	}
}

func startProcess(logFile, bin string, args ...string) (*exec.Cmd, error) {
	f, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.Env = append(os.Environ(), "VAULT_DISABLE_MLOCK=true")
	// If the test binary dies (a panic, a timeout), the kernel stops Vault and the emulator too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	return cmd, nil
}

func stopProcess(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func copyFile(src, dst string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(out, h), in); err != nil {
		out.Close()
		return "", err
	}
	if err := out.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitForFile(path string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if data, err := os.ReadFile(path); err == nil && len(bytes.TrimSpace(data)) > 0 {
			return strings.TrimSpace(string(data)), nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "", fmt.Errorf("%s not written within %s", path, timeout)
}

func waitForVault(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		resp, err := http.Get(env.vaultAddr + "/v1/sys/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("health: HTTP %d", resp.StatusCode)
		} else {
			last = err
		}
		time.Sleep(200 * time.Millisecond)
	}
	return last
}

// runVault runs the vault CLI with the given token and returns its combined output.
func runVault(token string, args ...string) (string, error) {
	return runVaultFormat(token, "table", args...)
}

func runVaultFormat(token, format string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, env.vaultBin, args...)
	cmd.Env = append(os.Environ(), "VAULT_ADDR="+env.vaultAddr, "VAULT_TOKEN="+token, "VAULT_FORMAT="+format)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.String(), err
}

// runVaultStdin runs the vault CLI with stdin, for commands that read a file from "-".
func runVaultStdin(token, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, env.vaultBin, args...)
	cmd.Env = append(os.Environ(), "VAULT_ADDR="+env.vaultAddr, "VAULT_TOKEN="+token)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.String(), err
}

// vaultJSON runs a CLI command with -format=json and decodes its output.
func vaultJSON(t *testing.T, token string, args ...string) map[string]any {
	t.Helper()
	out, err := runVaultFormat(token, "json", args...)
	if err != nil {
		t.Fatalf("vault %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("vault %s: output is not JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
	return v
}

// mustVault runs a CLI command that must succeed.
func mustVault(t *testing.T, token string, args ...string) string {
	t.Helper()
	out, err := runVault(token, args...)
	if err != nil {
		t.Fatalf("vault %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// vaultHTTP calls Vault's HTTP API and returns the status and decoded body.
func vaultHTTP(t *testing.T, token, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, env.vaultAddr+"/v1/"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := env.httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("%s %s: HTTP %d, body is not JSON: %s", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, v
}

// concurrentTokenReads starts readers GETs of path at the same moment, at most inFlight at a time,
// and returns how many readers saw each access_token and the failures.
func concurrentTokenReads(t *testing.T, path string, readers, inFlight int) (map[string]int, []string) {
	t.Helper()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		tokens = map[string]int{}
		errs   []string
	)
	start := make(chan struct{})
	sem := make(chan struct{}, inFlight)
	for i := 0; i < readers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			sem <- struct{}{}
			defer func() { <-sem }()
			status, body := vaultHTTP(t, rootToken, http.MethodGet, path, nil)
			mu.Lock()
			defer mu.Unlock()
			if status != http.StatusOK {
				errs = append(errs, fmt.Sprintf("HTTP %d: %v", status, body["errors"]))
				return
			}
			tokens[body["data"].(map[string]any)["access_token"].(string)]++
		}()
	}
	close(start)
	wg.Wait()
	return tokens, errs
}

// emulator calls the emulator's control API.
func emulator(t *testing.T, method, path string, body any) map[string]any {
	t.Helper()
	return emulatorAt(t, env.emuURL, method, path, body)
}

// emulatorAt calls the control API of the emulator at emuURL (tests that start their own emulator
// use it directly); any status outside 2xx fails the test.
func emulatorAt(t *testing.T, emuURL, method, path string, body any) map[string]any {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, emuURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := env.httpClient.Do(req)
	if err != nil {
		t.Fatalf("emulator %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		t.Fatalf("emulator %s %s: HTTP %d: %s", method, path, resp.StatusCode, raw)
	}
	var v map[string]any
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("emulator %s %s: %v: %s", method, path, err, raw)
		}
	}
	return v
}

// emulatorAppCount reads one app's counter. Tests of app and tenant tokens use it because Vault's
// periodic sweep refreshes other apps' cached tokens at any time, moving the global counters.
func emulatorAppCount(t *testing.T, appID, endpoint string) int {
	t.Helper()
	c := emulator(t, http.MethodGet, "/_emulator/apps/"+appID+"/counters", nil)
	n, ok := c[endpoint].(float64)
	if !ok {
		t.Fatalf("emulator has no per-app counter %q: %v", endpoint, c)
	}
	return int(n)
}

func emulatorCount(t *testing.T, endpoint string) int {
	t.Helper()
	c := emulator(t, http.MethodGet, "/_emulator/counters", nil)
	n, _ := c[endpoint].(float64)
	return int(n)
}

// newApp registers an app in the emulator and in Vault, pointing Vault at the emulator.
func newApp(t *testing.T, appID string) string {
	t.Helper()
	secret := "e2eSecret" + strings.TrimPrefix(appID, "cli_") + fmt.Sprint(time.Now().UnixNano())
	remember(secret, "app_secret of "+appID)
	emulator(t, http.MethodPost, "/_emulator/apps", map[string]string{"app_id": appID, "app_secret": secret})
	mustVault(t, rootToken, "write", mountPath+"/apps/"+appID, "app_secret="+secret, "base_url="+env.emuURL)
	return secret
}

// grepLines returns the lines of a file that contain s.
func grepLines(t *testing.T, file, s string) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			lines = append(lines, sc.Text())
		}
	}
	return lines
}
