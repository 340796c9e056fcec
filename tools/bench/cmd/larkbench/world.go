package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Storage modes of the Vault under test.
const (
	modeRaft = "raft" // single-node Raft on disk: the production setup
	modeDev  = "dev"  // `vault server -dev`: in-memory storage
)

// binaries are the programs a run starts.
type binaries struct {
	vault, plugin, emulator, floor string
	pluginVersion                  string
}

// vaultServer is one running Vault with its plugin directory.
type vaultServer struct {
	mode      string
	proc      *proc
	addr      string
	rootToken string
	workDir   string
	pluginDir string
	dataDir   string // Raft's directory; empty in dev mode
	version   string
	c         *vaultClient
}

// startVault starts Vault in the given mode under workDir and waits until it is active and
// unsealed.
func startVault(ctx context.Context, bins binaries, mode, workDir, logLevel string) (*vaultServer, error) {
	v := &vaultServer{mode: mode, workDir: workDir, pluginDir: filepath.Join(workDir, "plugins")}
	if err := os.MkdirAll(v.pluginDir, 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	v.addr = fmt.Sprintf("http://127.0.0.1:%d", port)
	out, err := exec.Command(bins.vault, "version").Output()
	if err != nil {
		return nil, fmt.Errorf("vault version: %w", err)
	}
	// "Vault v1.21.0, built <date> (cgo)": the version is what matters.
	v.version, _, _ = strings.Cut(strings.TrimSpace(string(out)), ",")

	cfg := filepath.Join(workDir, "vault.hcl")
	logFile := filepath.Join(workDir, "vault.log")
	var args []string
	switch mode {
	case modeRaft:
		clusterPort, err := freePort()
		if err != nil {
			return nil, err
		}
		v.dataDir = filepath.Join(workDir, "raft")
		if err := os.MkdirAll(v.dataDir, 0o700); err != nil {
			return nil, err
		}
		hcl := fmt.Sprintf(`storage "raft" {
  path    = %q
  node_id = "bench"
}
listener "tcp" {
  address         = "127.0.0.1:%d"
  cluster_address = "127.0.0.1:%d"
  tls_disable     = true
}
api_addr         = %q
cluster_addr     = "https://127.0.0.1:%d"
disable_mlock    = true
plugin_directory = %q
log_level        = %q
`, v.dataDir, port, clusterPort, v.addr, clusterPort, v.pluginDir, logLevel)
		if err := os.WriteFile(cfg, []byte(hcl), 0o600); err != nil {
			return nil, err
		}
		args = []string{"server", "-config=" + cfg}
	case modeDev:
		v.rootToken = "root"
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf("plugin_directory = %q\n", v.pluginDir)), 0o600); err != nil {
			return nil, err
		}
		args = []string{"server", "-dev", "-dev-root-token-id=root", fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", port),
			"-config=" + cfg, "-log-level=" + logLevel}
	default:
		return nil, fmt.Errorf("unknown mode %q (want raft or dev)", mode)
	}
	v.proc, err = startProc(logFile, []string{"VAULT_DISABLE_MLOCK=true"}, bins.vault, args...)
	if err != nil {
		return nil, err
	}
	v.c = newVaultClient(v.addr, v.rootToken, 16)
	if err := v.waitReady(ctx); err != nil {
		v.stop()
		return nil, err
	}
	return v, nil
}

// waitReady initializes and unseals a Raft server, then waits until the node is active.
func (v *vaultServer) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(90 * time.Second)
	initialized := v.mode == modeDev
	for {
		if v.proc.exited() {
			return fmt.Errorf("vault exited:\n%s", v.proc.tail(30))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vault not active within 90s:\n%s", v.proc.tail(30))
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		status, err := v.c.status(http.MethodGet, "sys/health", nil)
		switch {
		case err != nil:
			// not listening yet
		case status == http.StatusOK:
			return nil
		case status == 501 && !initialized: // not initialized
			var init struct {
				Keys      []string `json:"keys_base64"`
				RootToken string   `json:"root_token"`
			}
			if err := v.c.call(http.MethodPut, "sys/init", map[string]any{"secret_shares": 1, "secret_threshold": 1}, &init); err != nil {
				return err
			}
			v.rootToken = init.RootToken
			v.c.token = init.RootToken
			if err := v.c.call(http.MethodPut, "sys/unseal", map[string]any{"key": init.Keys[0]}, nil); err != nil {
				return err
			}
			initialized = true
			continue
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (v *vaultServer) stop() {
	if v != nil && v.proc != nil {
		v.proc.stop()
	}
}

// registerPlugin installs a binary in the plugin directory under name and registers it in the
// catalog by sha256 (and version, when given), as `vault plugin register` does.
func (v *vaultServer) registerPlugin(bin, name, version string, env ...string) (exe string, err error) {
	exe = filepath.Join(v.pluginDir, name)
	sha, err := installFile(bin, exe)
	if err != nil {
		return "", err
	}
	body := map[string]any{"sha256": sha, "command": name}
	if version != "" {
		body["version"] = version
	}
	if len(env) > 0 {
		body["env"] = env
	}
	return exe, v.c.call(http.MethodPut, "sys/plugins/catalog/secret/"+name, body, nil)
}

// mount enables a secrets engine at path.
func (v *vaultServer) mount(path, typ, version string, options map[string]string) error {
	body := map[string]any{"type": typ}
	if version != "" {
		body["plugin_version"] = version
	}
	if options != nil {
		body["options"] = options
	}
	return v.c.call(http.MethodPost, "sys/mounts/"+path, body, nil)
}

// pidOf finds the process of a registered plugin (started when its first mount was enabled).
func (v *vaultServer) pidOf(exe string) (int, error) {
	var lastErr error
	for i := 0; i < 50; i++ {
		pid, err := findChild(v.proc.pid(), exe)
		if err == nil {
			return pid, nil
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	return 0, lastErr
}

// vaultClient speaks Vault's HTTP API.
type vaultClient struct {
	addr  string
	token string
	hc    *http.Client
}

func newVaultClient(addr, token string, conns int) *vaultClient {
	return &vaultClient{addr: addr, token: token, hc: &http.Client{
		Timeout:   5 * time.Minute,
		Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true},
	}}
}

// vaultError is a non-2xx answer.
type vaultError struct {
	Method, Path string
	Status       int
	Errors       []string
}

func (e *vaultError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d %s", e.Method, e.Path, e.Status, strings.Join(e.Errors, "; "))
}

func (c *vaultClient) raw(method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.addr+"/v1/"+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if c.token != "" {
		req.Header.Set("X-Vault-Token", c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

func (c *vaultClient) status(method, path string, body any) (int, error) {
	status, _, err := c.raw(method, path, body)
	return status, err
}

// call sends a request and decodes a 2xx JSON answer into out (when not nil).
func (c *vaultClient) call(method, path string, body, out any) error {
	status, raw, err := c.raw(method, path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if status < 200 || status > 299 {
		var e struct {
			Errors []string `json:"errors"`
		}
		_ = json.Unmarshal(raw, &e)
		return &vaultError{Method: method, Path: path, Status: status, Errors: e.Errors}
	}
	if out != nil && len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return nil
}

// countLeases counts the leases under a prefix such as "lark/app-token/cli_x/".
func (c *vaultClient) countLeases(prefix string) (int, error) {
	var out struct {
		Data struct {
			Keys []string `json:"keys"`
		} `json:"data"`
	}
	err := c.call("LIST", "sys/leases/lookup/"+prefix, nil, &out)
	var ve *vaultError
	if errors.As(err, &ve) && ve.Status == http.StatusNotFound {
		return 0, nil
	}
	return len(out.Data.Keys), err
}

// emulator is a running Lark emulator and its control API.
type emulator struct {
	proc *proc
	url  string
	hc   *http.Client
}

func startEmulator(bin, workDir, name string, args ...string) (*emulator, error) {
	addrFile := filepath.Join(workDir, name+".addr")
	args = append([]string{"-listen", "127.0.0.1:0", "-addr-file", addrFile}, args...)
	p, err := startProc(filepath.Join(workDir, name+".log"), nil, bin, args...)
	if err != nil {
		return nil, err
	}
	url, err := waitForFile(addrFile, 30*time.Second)
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("emulator: %w\n%s", err, p.tail(20))
	}
	return &emulator{proc: p, url: url, hc: &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}, nil
}

func (e *emulator) stop() {
	if e != nil {
		e.proc.stop()
	}
}

// call sends a control-API request and decodes the JSON answer into out (when not nil).
func (e *emulator) call(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.hc.Do(req)
	if err != nil {
		return fmt.Errorf("emulator %s %s: %w", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("emulator %s %s: HTTP %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(raw))
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// addApp registers (or re-registers) an app; extra carries lifetimes such as
// refresh_token_ttl_seconds.
func (e *emulator) addApp(appID, secret string, extra map[string]any) error {
	body := map[string]any{"app_id": appID, "app_secret": secret}
	for k, v := range extra {
		body[k] = v
	}
	return e.call(http.MethodPost, "/_emulator/apps", body, nil)
}

func (e *emulator) appCounters(appID string) (map[string]int, error) {
	var raw map[string]float64
	if err := e.call(http.MethodGet, "/_emulator/apps/"+appID+"/counters", nil, &raw); err != nil {
		return nil, err
	}
	out := make(map[string]int, len(raw))
	for k, v := range raw {
		out[k] = int(v)
	}
	return out, nil
}

func (e *emulator) resetAppCounters(appID string) error {
	return e.call(http.MethodDelete, "/_emulator/apps/"+appID+"/counters", nil, nil)
}

// mint creates a grant at the emulator as if the user had authorized daysAgo days ago; Lark's
// refresh token comes back to be imported into Vault.
func (e *emulator) mint(appID, userID string, daysAgo float64) (refreshToken string, authorizedAt time.Time, err error) {
	var m struct {
		RefreshToken string    `json:"refresh_token"`
		AuthorizedAt time.Time `json:"authorized_at"`
	}
	err = e.call(http.MethodPost, "/_emulator/grants", map[string]any{"app_id": appID, "user_id": userID, "authorized_days_ago": daysAgo}, &m)
	if err == nil && m.RefreshToken == "" {
		err = errors.New("emulator minted a grant without a refresh token")
	}
	return m.RefreshToken, m.AuthorizedAt, err
}

// mintedGrant is a grant minted at the emulator, ready to be imported.
type mintedGrant struct {
	RefreshToken string    `json:"refresh_token"`
	AuthorizedAt time.Time `json:"authorized_at"`
}

// mintMany creates n grants (at most 1,000) in one control request, each as if the user had
// authorized daysAgo days ago.
func (e *emulator) mintMany(appID, userID string, daysAgo float64, n int) ([]mintedGrant, error) {
	var out struct {
		Grants []mintedGrant `json:"grants"`
	}
	err := e.call(http.MethodPost, "/_emulator/grants/batch", map[string]any{"app_id": appID, "user_id": userID, "authorized_days_ago": daysAgo, "count": n}, &out)
	if err != nil {
		return nil, err
	}
	if len(out.Grants) != n {
		return nil, fmt.Errorf("emulator minted %d grants, %d were asked for", len(out.Grants), n)
	}
	for _, g := range out.Grants {
		if g.RefreshToken == "" {
			return nil, errors.New("emulator minted a grant without a refresh token")
		}
	}
	return out.Grants, nil
}

// importGrant mints a grant and imports it into mount/user-token/app/slot, as an operator moving
// grants from another system would.
func importGrant(e *emulator, c *vaultClient, mount, appID, userID, slot string) error {
	refresh, authorizedAt, err := e.mint(appID, userID, 1)
	if err != nil {
		return err
	}
	return importMinted(c, mount, appID, slot, mintedGrant{RefreshToken: refresh, AuthorizedAt: authorizedAt})
}

// importMinted imports a minted grant into mount/user-token/app/slot through Vault's API: the
// plugin spends the refresh token at Lark, asks whose grant it is and stores it.
func importMinted(c *vaultClient, mount, appID, slot string, g mintedGrant) error {
	return c.call(http.MethodPost, mount+"/user-token/"+appID+"/"+slot, map[string]any{
		"refresh_token": g.RefreshToken,
		"authorized_at": g.AuthorizedAt.UTC().Format(time.RFC3339),
	}, nil)
}

// randomSecret is an app secret known only to the emulator and Vault.
func randomSecret() string { return rand.Text() }
