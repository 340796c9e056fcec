//go:build e2e

package e2e

// Helpers of the tests that run a service of examples/ beside Vault Agent (node-bot, go-service,
// mcp): the shared start (an emulator of the test's own, AppRole, a mount set up as the Agent test
// sets one up, Vault Agent and its first render), the Node examples' dependencies, and the
// service processes, whose logs are checked for every secret the run has seen.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// exampleAgent is what the shared start leaves a test: its emulator and its Agent mount.
type exampleAgent struct {
	*agentSetup
	emuURL string
	root   string // the test's folder, for the logs of the processes it starts
}

// startExampleAgent starts an emulator of the test's own with emuFlags, enables AppRole on the
// shared Vault, and sets up mount with app as the Agent test does (examples/agent installed, the
// slot svc-release-bot filled).
func startExampleAgent(t *testing.T, mount, app string, emuFlags ...string) *exampleAgent {
	t.Helper()
	emuURL := startOwnEmulator(t, emuFlags...)
	enableAuth(t, "approle", "approle")
	s := setUpAgentMount(t, emuURL, mount, app, "lease")
	return &exampleAgent{agentSetup: s, emuURL: emuURL, root: filepath.Dir(s.configDir)}
}

// addUser adds a Lark user who never signs in by default (a message's receiver, an agent's user).
func (a *exampleAgent) addUser(t *testing.T, userID, name, openID string) {
	t.Helper()
	emuControl(t, a.emuURL, http.MethodPost, "/_emulator/users",
		map[string]any{"user_id": userID, "name": name, "open_id": openID, "sign_in": false})
}

// runAgent starts Vault Agent with config (its log in the test's folder as logName) and waits until
// it has rendered each of files (paths below the examples' /run/lark). It returns what each first
// held, each remembered as a secret.
func (a *exampleAgent) runAgent(t *testing.T, config, logName string, files ...string) []string {
	t.Helper()
	startAgent(t, config, filepath.Join(a.root, logName))
	first := make([]string, len(files))
	for i, f := range files {
		tok, err := waitForFile(filepath.Join(a.outDir, f), time.Minute)
		if err != nil {
			t.Fatalf("Vault Agent did not render %s: %v", f, err)
		}
		remember(tok, f+" rendered by Vault Agent")
		first[i] = tok
	}
	return first
}

// tokenFileService is a service of examples/ (node-bot, go-service) running beside Vault Agent with
// examples/agent, configured as its README says: the app id, Lark's address, the tenant and user
// token files Agent renders, whom to message. No app secret anywhere in its environment.
type tokenFileService struct {
	*exampleAgent
	url                  string // where it listens
	log                  string // its output
	tenantFile, userFile string
	receiver             string // the open_id it messages
}

// startTokenFileService is the shared start of the node-bot and go-service tests: the emulator,
// the mount and Vault Agent of startExampleAgent, the on-call user the service messages, Agent's
// first render of the tenant and user tokens, then the service (cmd), listening at the address
// named by its listenVar, healthy.
func startTokenFileService(t *testing.T, mount, app string, emuFlags []string, cmd *exec.Cmd, what, listenVar string) *tokenFileService {
	t.Helper()
	a := startExampleAgent(t, mount, app, emuFlags...)
	svc := &tokenFileService{exampleAgent: a, receiver: "ou_" + mount + "_oncall",
		tenantFile: filepath.Join(a.outDir, "tenant-token"), userFile: filepath.Join(a.outDir, "user-token"),
		log: filepath.Join(a.root, filepath.Base(what)+".log")}
	a.addUser(t, mount+"_oncall", "On-call", svc.receiver)
	a.runAgent(t, filepath.Join(a.configDir, "agent.hcl"), "agent.log", "tenant-token", "user-token")
	listen, url := serviceAddress(t)
	svc.url = url
	startService(t, cmd, what, svc.log, []string{
		"LARK_APP_ID=" + app,
		"LARK_BASE_URL=" + a.emuURL,
		"LARK_TENANT_TOKEN_FILE=" + svc.tenantFile,
		"LARK_USER_TOKEN_FILE=" + svc.userFile,
		"LARK_RECEIVE_ID=" + svc.receiver,
		listenVar + "=" + listen,
	}, nil)
	waitHealthy(t, url, what)
	return svc
}

// waitForNewToken waits until file holds a token other than the old ones (Agent rendered a new
// one) and returns it, remembered as a secret.
func waitForNewToken(t *testing.T, timeout time.Duration, file, what string, old []string) string {
	t.Helper()
	var tok string
	waitFor(t, timeout, "Vault Agent to render a new "+what, func() bool {
		tok = readTrimmed(file)
		return tok != "" && !containsString(old, tok)
	})
	remember(tok, what+" rendered by Vault Agent")
	return tok
}

// nodeExample is the installation of one Node example's dependencies, once per test run.
type nodeExample struct {
	once sync.Once
	err  error
}

var nodeExamples = map[string]*nodeExample{"node-bot": {}, "mcp": {}}

// requireNodeExample checks Node (minMajor or newer) and npm, and installs examples/<name>'s
// dependencies from the npm registry as package-lock.json pins them, unless `make node-bot` or
// `make mcp` already installed them from the current lock file. Without Node or npm the test
// fails: the examples are part of what this repository ships. No install scripts run: the
// examples need no build step, and a test should not run code from the registry beyond the
// packages it uses.
func requireNodeExample(t *testing.T, name string, minMajor int, needs string) (node, dir string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed: examples/%s and its e2e test need Node.js %d or newer and npm (Debian: apt-get install nodejs npm)", name, minMajor)
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatalf("npm is not installed: examples/%s's dependencies are installed with `npm ci` (Debian: apt-get install npm)", name)
	}
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		t.Fatalf("node --version: %v", err)
	}
	major, _ := strconv.Atoi(strings.TrimPrefix(strings.SplitN(strings.TrimSpace(string(out)), ".", 2)[0], "v"))
	if major < minMajor {
		t.Fatalf("node %s is too old: %s needs Node.js %d or newer", strings.TrimSpace(string(out)), needs, minMajor)
	}
	dir = filepath.Join(repoRoot(t), "examples", name)
	deps := nodeExamples[name]
	deps.once.Do(func() {
		if installedFromLock(dir) {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			deps.err = fmt.Errorf("npm ci in examples/%s: %v\n%s", name, err, out)
		}
	})
	if deps.err != nil {
		t.Fatal(deps.err)
	}
	return node, dir
}

// installedFromLock reports whether npm ci has installed dir's dependencies since its package.json
// and package-lock.json last changed: npm writes node_modules/.package-lock.json (the Makefile's rule).
func installedFromLock(dir string) bool {
	installed, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json"))
	if err != nil {
		return false
	}
	for _, f := range []string{"package.json", "package-lock.json"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.ModTime().After(installed.ModTime()) {
			return false
		}
	}
	return true
}

// startService runs cmd, with extraEnv added to the test's environment, until the test ends. Its
// output goes to logFile, only its stderr where the test reads stdout itself. When the test ends,
// beforeStop (if any) runs, the process is stopped, and the log is checked for every secret the run
// has seen.
func startService(t *testing.T, cmd *exec.Cmd, what, logFile string, extraEnv []string, beforeStop func()) {
	t.Helper()
	f, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Stdout == nil {
		cmd.Stdout = f
	}
	cmd.Stderr = f
	cmd.Env = append(os.Environ(), extraEnv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		t.Fatalf("starting %s: %v", what, err)
	}
	t.Cleanup(func() {
		if beforeStop != nil {
			beforeStop()
		}
		stopAndScan(t, cmd, logFile)
		_ = f.Close()
	})
}

// serviceAddress picks a free port for a service to listen on: its listen address and its URL.
func serviceAddress(t *testing.T) (listen, url string) {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	listen = "127.0.0.1:" + strconv.Itoa(port)
	return listen, "http://" + listen
}

// waitHealthy waits until the service at url answers GET /healthz with 200.
func waitHealthy(t *testing.T, url, what string) {
	t.Helper()
	waitFor(t, 30*time.Second, what+" to listen", func() bool {
		resp, err := env.httpClient.Get(url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}
