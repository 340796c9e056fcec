//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// guideApp is the app every command of the guide names.
const guideApp = "cli_a1b2c3d4e5f6a7b8"

// guideStep is what the test does around one named block of docs/operator-guide.md.
type guideStep struct {
	before func(t *testing.T)
	token  func() string // VAULT_TOKEN for the block; the administrator (root) if nil
	// daemon marks a block that is a long-running command: it is started, daemon waits for what
	// it should do and checks it, and then the process is stopped.
	daemon func(t *testing.T)
	after  func(t *testing.T, out string)
	// check is for blocks that are not commands (configuration and excerpts).
	check func(t *testing.T, b guideBlock)
}

// TestOperatorGuide runs every shell block of docs/operator-guide.md, in order, against a Vault
// server of its own (whose configuration is the guide's server-config block) and an emulator of
// its own, with the guide's production paths mapped into a temporary directory. Around each block
// it sets up what the guide assumes (an app secret in a file, a person signing in to Lark) and
// checks what the block should have done. It also checks the guide's excerpts against the example
// files and its troubleshooting tables against the plugin's source, so the guide cannot rot.
func TestOperatorGuide(t *testing.T) {
	t.Parallel()
	blocks, markdown := guideBlocks(t)
	if t.Failed() {
		return
	}
	root := t.TempDir()
	var (
		pluginDir = filepath.Join(root, "plugins")
		logDir    = filepath.Join(root, "log")
		agentDir  = filepath.Join(root, "vault-agent")
		outDir    = filepath.Join(root, "run-lark")
		work      = filepath.Join(root, "work")
		bot       = filepath.Join(root, "lark-bot")
		botLog    = filepath.Join(root, "bot.log")
		vaultAddr string
	)
	for _, d := range []string{pluginDir, logDir, agentDir, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(repoRoot(t), "examples"), filepath.Join(work, "examples")); err != nil {
		t.Fatal(err)
	}
	subst := func(s string) string {
		return rewrite(s, "/etc/vault.d/plugins", pluginDir, "/var/log/vault", logDir, "/etc/vault-agent", agentDir,
			"/run/lark", outDir, "https://vault.example.com:8200", vaultAddr, "/usr/local/bin/lark-bot", bot)
	}
	emuURL := startOwnEmulator(t)

	var v *ownVault
	for _, b := range blocks {
		if b.name == "server-config" {
			v = startOwnVault(t, root, subst(b.text))
		}
	}
	if v == nil {
		t.Fatal("the guide has no server-config block")
	}
	vaultAddr = v.addr
	t.Cleanup(func() {
		// The guide's audit device, once the audit step has enabled it.
		if auditLog := filepath.Join(logDir, "vault_audit.log"); readTrimmed(auditLog) != "" {
			assertNoSecretsIn(t, auditLog)
		}
	})

	// shell runs a script the way an operator would, from the work directory.
	shell := func(t *testing.T, script, token string) (string, error) {
		t.Helper()
		cmd := exec.Command("bash", "-c", "set -euo pipefail\n"+script)
		cmd.Dir = work
		cmd.Env = []string{"HOME=" + root, "PATH=" + filepath.Dir(env.vaultBin) + ":" + os.Getenv("PATH"),
			"VAULT_ADDR=" + v.addr, "VAULT_TOKEN=" + token}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	userpassLogin := func(t *testing.T, user, password string) string {
		t.Helper()
		tok := v.json(t, "", "write", "auth/userpass/login/"+user, "password="+password)["auth"].(map[string]any)["client_token"].(string)
		remember(tok, "Vault token of "+user)
		return tok
	}
	readToken := func(t *testing.T, token, path string) (map[string]any, map[string]any) {
		t.Helper()
		out := v.json(t, token, "read", path)
		data, _ := out["data"].(map[string]any)
		tok, _ := data["access_token"].(string)
		if tok == "" {
			t.Fatalf("read %s: no access_token", path)
		}
		remember(tok, "token read from "+path)
		return out, data
	}
	mountInfo := func(t *testing.T) map[string]any {
		t.Helper()
		return v.json(t, rootToken, "read", "sys/mounts/lark")["data"].(map[string]any)
	}
	// signIn completes an authorization the way a browser does: the authorize_url in a block's
	// output at Lark (the emulator approves as its signed-in user), then Vault's callback.
	// browserSignIn completes an authorization the way a browser does: the authorize_url in a
	// block's output at Lark (the emulator approves as its signed-in user), then Vault's callback.
	browserSignIn := func(t *testing.T, out string) page {
		t.Helper()
		m := regexp.MustCompile(`(?m)^authorize_url\s+(\S+)$`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no authorize_url in the output")
		}
		u, _ := url.Parse(m[1])
		rememberRedirectValue(u.Query().Get("state"), "OAuth state")
		resp, err := noRedirectClient.Get(m[1])
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, v.addr+"/v1/lark/oauth/callback?") {
			t.Fatalf("Lark's authorize page: HTTP %d to %q, want a redirect to the guide's callback", resp.StatusCode, loc)
		}
		lu, _ := url.Parse(loc)
		rememberRedirectValue(lu.Query().Get("code"), "authorization code")
		resp, err = noRedirectClient.Get(loc)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return page{status: resp.StatusCode, body: string(body)}
	}
	// signIn is browserSignIn that must succeed.
	signIn := func(t *testing.T, out string) {
		t.Helper()
		if p := browserSignIn(t, out); p.status != http.StatusOK || !strings.Contains(p.body, "Authorized") {
			t.Fatalf("callback: HTTP %d\n%s", p.status, p.body)
		}
	}

	var (
		appSecret        = fmt.Sprintf("guideSecret%d", time.Now().UnixNano())
		carolPassword    = fmt.Sprintf("carol-%d", time.Now().UnixNano())
		oliviaPassword   = fmt.Sprintf("olivia-%d", time.Now().UnixNano())
		carolToken       string
		firstToken       string
		tenantCallsAfter int
	)
	remember(appSecret, "app_secret of the guide's app")
	remember(carolPassword, "userpass password of carol")
	remember(oliviaPassword, "userpass password of olivia")
	tenantCalls := func(t *testing.T) int {
		n, _ := emuControl(t, emuURL, http.MethodGet, "/_emulator/counters", nil)["tenant_access_token"].(float64)
		return int(n)
	}
	writeFile := func(t *testing.T, name, content string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(name, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}

	steps := map[string]guideStep{
		"server-config": {check: func(t *testing.T, b guideBlock) {}}, // it configured v above
		"register": {
			before: func(t *testing.T) {
				// The guide installs release v0.1.0: the same source with v0.1.0 stamped in, as
				// `make release VERSION=v0.1.0` builds it (PLUGIN_BIN carries the checkout's version).
				buildStamped(t, "v0.1.0", filepath.Join(work, pluginName))
			},
			after: func(t *testing.T, out string) {
				sha, err := copyFile(filepath.Join(work, pluginName), filepath.Join(root, "sha-check"))
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(out, sha) || !strings.Contains(out, "v0.1.0") {
					t.Fatalf("plugin info does not show the binary's sha256 %s and v0.1.0", sha)
				}
				if m := mountInfo(t); m["running_plugin_version"] != "v0.1.0" || m["running_sha256"] != sha {
					t.Fatalf("lark/ runs %v (%v)", m["running_plugin_version"], m["running_sha256"])
				}
			},
		},
		"settings": {after: func(t *testing.T, out string) {
			if !regexp.MustCompile(`(?m)^lease_safety_margin\s+300$`).MatchString(out) {
				t.Fatal("vault read lark/config does not show lease_safety_margin 300")
			}
		}},
		"app": {
			before: func(t *testing.T) {
				emuControl(t, emuURL, http.MethodPost, "/_emulator/apps", map[string]string{"app_id": guideApp, "app_secret": appSecret})
				// What the guide warns about: a file with a trailing newline is refused.
				writeFile(t, filepath.Join(work, "app-secret.txt"), appSecret+"\n", 0o600)
				out, err := shell(t, "vault write lark/apps/"+guideApp+" app_secret=- < app-secret.txt", rootToken)
				if err == nil || !strings.Contains(out, "app_secret contains whitespace") {
					t.Fatalf("a secret with a trailing newline: err=%v\n%s", err, out)
				}
				writeFile(t, filepath.Join(work, "app-secret.txt"), appSecret, 0o600)
			},
			after: func(t *testing.T, out string) {
				data := v.json(t, rootToken, "read", "lark/apps/"+guideApp)["data"].(map[string]any)
				if data["app_secret_set"] != true || data["redirect_uri"] != v.addr+"/v1/lark/oauth/callback" {
					t.Fatalf("app after the guide's write: %v", data)
				}
				// Not in the guide: this Lark is the emulator.
				v.must(t, rootToken, "write", "lark/apps/"+guideApp, "base_url="+emuURL, "accounts_base_url="+emuURL)
			},
		},
		"first-read": {after: func(t *testing.T, out string) {
			_, data := readToken(t, rootToken, "lark/tenant-token/"+guideApp)
			firstToken = data["access_token"].(string)
			if !strings.Contains(out, "lease_id") || !strings.Contains(out, "tenant_access_token") {
				t.Fatal("the read shows no lease or no tenant_access_token")
			}
			tenantCallsAfter = tenantCalls(t)
		}},
		"upgrade": {
			before: func(t *testing.T) {
				// A copy of the v0.1.0 binary is not v0.1.1: Vault asks the binary.
				copyPath := filepath.Join(pluginDir, "vault-plugin-secrets-lark-copy")
				sha, err := copyFile(filepath.Join(work, pluginName), copyPath)
				if err != nil {
					t.Fatal(err)
				}
				out, err := v.cli(rootToken, "table", "plugin", "register", "-sha256="+sha, "-command=vault-plugin-secrets-lark-copy",
					"-version=v0.1.1", "secret", pluginName)
				if err == nil || !strings.Contains(out, "plugin version mismatch") || !strings.Contains(out, "did not match requested version (v0.1.1)") {
					t.Fatalf("registering a renamed v0.1.0 binary as v0.1.1: err=%v\n%s", err, out)
				}
				os.Remove(copyPath)
				// The new release: the same source with v0.1.1 stamped in, as the Makefile builds it.
				buildStamped(t, "v0.1.1", filepath.Join(work, "vault-plugin-secrets-lark-v0.1.1"))
			},
			after: func(t *testing.T, out string) {
				if m := mountInfo(t); m["plugin_version"] != "v0.1.1" || m["running_plugin_version"] != "v0.1.0" {
					t.Fatalf("after tune: plugin_version=%v running_plugin_version=%v, want v0.1.1 and still v0.1.0", m["plugin_version"], m["running_plugin_version"])
				}
			},
		},
		"reload": {
			before: func(t *testing.T) {
				// What the guide warns about: Vault 1.21.0's CLI drops -mounts in the root namespace.
				out, err := v.cli(rootToken, "table", "plugin", "reload", "-mounts=lark/")
				if err == nil || !strings.Contains(out, "sys/plugins/reload/unknown") || !strings.Contains(out, "unsupported path") {
					t.Fatalf("vault plugin reload -mounts no longer fails as the guide says (fixed in this Vault? then simplify the guide): err=%v\n%s", err, out)
				}
				if m := mountInfo(t); m["running_plugin_version"] != "v0.1.0" {
					t.Fatalf("the failed reload changed the running version to %v", m["running_plugin_version"])
				}
			},
			after: func(t *testing.T, out string) {
				if !regexp.MustCompile(`(?m)^v0\.1\.1`).MatchString(out) {
					t.Fatal("vault read -field=running_plugin_version did not print v0.1.1")
				}
				if m := mountInfo(t); m["running_plugin_version"] != "v0.1.1" {
					t.Fatalf("after reload: running_plugin_version=%v", m["running_plugin_version"])
				}
				_, data := readToken(t, rootToken, "lark/tenant-token/"+guideApp)
				if data["access_token"] != firstToken {
					t.Fatal("the upgraded plugin serves another token than before: the cached one was lost")
				}
				if n := tenantCalls(t); n != tenantCallsAfter {
					t.Fatalf("the upgrade cost %d calls to Lark, want none", n-tenantCallsAfter)
				}
			},
		},
		"rollback": {after: func(t *testing.T, out string) {
			if m := mountInfo(t); m["running_plugin_version"] != "v0.1.0" {
				t.Fatalf("after rollback: running_plugin_version=%v", m["running_plugin_version"])
			}
			if out, err := v.cli(rootToken, "table", "plugin", "info", "-version=v0.1.1", "secret", pluginName); err == nil {
				t.Fatalf("v0.1.1 is still in the catalog:\n%s", out)
			}
			readToken(t, rootToken, "lark/tenant-token/"+guideApp)
		}},
		"audit": {after: func(t *testing.T, out string) {
			keys := v.json(t, rootToken, "read", "sys/mounts/lark/tune")["data"].(map[string]any)["audit_non_hmac_response_keys"]
			if fmt.Sprint(keys) != "[app_id token_type expires_at user level reason deadline]" {
				t.Fatalf("audit_non_hmac_response_keys = %v", keys)
			}
			readToken(t, rootToken, "lark/tenant-token/"+guideApp)
			auditLog := filepath.Join(logDir, "vault_audit.log")
			var entry string
			for _, l := range grepLines(t, auditLog, `"path":"lark/tenant-token/`) {
				if strings.Contains(l, `"type":"response"`) {
					entry = l
				}
			}
			for _, want := range []string{`"token_type":"tenant_access_token"`, `"app_id":"` + guideApp + `"`, `"access_token":"hmac-sha256:`, `"expires_in":`} {
				if !strings.Contains(entry, want) {
					t.Fatalf("audit entry of a token read lacks %s:\n%s", want, entry)
				}
			}
		}},
		"audit-hash": {after: func(t *testing.T, out string) {
			readToken(t, rootToken, "lark/tenant-token/"+guideApp)
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if n, err := strconv.Atoi(lines[len(lines)-1]); err != nil || n < 1 {
				t.Fatalf("grep -c of the token's HMAC printed %q, want a count of at least 1", lines[len(lines)-1])
			}
		}},
		"policies": {after: func(t *testing.T, out string) {
			for _, name := range []string{"lark-admin", "lark-team", "lark-person"} {
				if got := v.json(t, rootToken, "read", "sys/policies/acl/"+name)["data"].(map[string]any)["policy"]; got != examplePolicy(t, name) {
					t.Fatalf("policy %s differs from examples/policies/%s.hcl", name, name)
				}
			}
		}},
		"approle": {after: func(t *testing.T, out string) {
			secretID := readTrimmed(filepath.Join(agentDir, "secret-id"))
			remember(secretID, "AppRole secret_id of payments-agent")
			if readTrimmed(filepath.Join(agentDir, "role-id")) == "" || secretID == "" {
				t.Fatal("role-id or secret-id file is empty")
			}
			if st, err := os.Stat(filepath.Join(agentDir, "secret-id")); err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("secret-id file: %v %v", st.Mode(), err)
			}
		}},
		"people": {
			before: func(t *testing.T) {
				writeFile(t, filepath.Join(work, "carol-password.txt"), carolPassword, 0o600)
				writeFile(t, filepath.Join(work, "olivia-password.txt"), oliviaPassword, 0o600)
				emuControl(t, emuURL, http.MethodPost, "/_emulator/users", map[string]any{"user_id": "carol", "name": "Carol", "sign_in": false})
				writeFile(t, filepath.Join(work, "carol-union-id.txt"), unionIDOf(t, emuURL, "carol")+"\n", 0o600)
			},
			after: func(t *testing.T, out string) {
				carolToken = userpassLogin(t, "carol", carolPassword)
				self := v.json(t, carolToken, "token", "lookup")["data"].(map[string]any)
				entity := v.json(t, rootToken, "read", "identity/entity/id/"+self["entity_id"].(string))["data"].(map[string]any)
				if entity["name"] != "carol" {
					t.Fatalf("carol's login belongs to entity %v, want the entity named carol", entity["name"])
				}
				if out, err := v.cli(carolToken, "table", "read", "lark/apps/"+guideApp); err == nil || !strings.Contains(out, "permission denied") {
					t.Fatalf("carol reading the app's settings: err=%v\n%s", err, out)
				}
				admin := userpassLogin(t, "olivia", oliviaPassword)
				if data := v.json(t, admin, "read", "lark/apps/"+guideApp)["data"].(map[string]any); data["app_id"] != guideApp {
					t.Fatalf("olivia reading the app: %v", data)
				}
			},
		},
		"carol-authorize": {
			before: func(t *testing.T) {
				// Somebody else is signed in at Lark first: a link of carol's is useless to them.
				emuControl(t, emuURL, http.MethodPost, "/_emulator/users", map[string]string{"user_id": "mallory", "name": "Mallory"})
			},
			token: func() string { return carolToken },
			after: func(t *testing.T, out string) {
				if p := browserSignIn(t, out); p.status != http.StatusForbidden || !strings.Contains(p.body, "different Lark user") {
					t.Fatalf("mallory completing carol's authorization: HTTP %d\n%s", p.status, p.body)
				}
				emuControl(t, emuURL, http.MethodPost, "/_emulator/users", map[string]string{"user_id": "carol", "name": "Carol"})
				out, err := shell(t, "vault write -f lark/oauth/"+guideApp+"/authorize/carol", carolToken)
				if err != nil {
					t.Fatalf("carol starting her authorization again: %v\n%s", err, out)
				}
				signIn(t, out)
				if out, err := v.cli(carolToken, "table", "write", "-f", "lark/oauth/"+guideApp+"/authorize/dave"); err == nil || !strings.Contains(out, "permission denied") {
					t.Fatalf("carol starting an authorization for dave: err=%v\n%s", err, out)
				}
			},
		},
		"carol-read": {
			token: func() string { return carolToken },
			after: func(t *testing.T, out string) {
				if !strings.Contains(out, "user_access_token") || !regexp.MustCompile(`(?m)^name\s+Carol$`).MatchString(out) {
					t.Fatalf("carol's read:\n%s", rememberTokensIn(out, "user token"))
				}
			},
		},
		"svc-authorize": {
			before: func(t *testing.T) {
				emuControl(t, emuURL, http.MethodPost, "/_emulator/users", map[string]string{"user_id": "release_bot", "name": "Release Bot"})
				writeFile(t, filepath.Join(work, "release-bot-union-id.txt"), unionIDOf(t, emuURL, "release_bot")+"\n", 0o600)
			},
			after: func(t *testing.T, out string) {
				signIn(t, out)
				login := v.json(t, "", "write", "auth/approle/login",
					"role_id="+readTrimmed(filepath.Join(agentDir, "role-id")), "secret_id="+readTrimmed(filepath.Join(agentDir, "secret-id")))
				team := login["auth"].(map[string]any)["client_token"].(string)
				remember(team, "Vault token of payments-agent")
				readToken(t, team, "lark/user-token/"+guideApp+"/svc-release-bot")
				readToken(t, team, "lark/app-token/"+guideApp)
				if out, err := v.cli(team, "table", "read", "lark/user-token/"+guideApp+"/carol"); err == nil || !strings.Contains(out, "permission denied") {
					t.Fatalf("the team reading carol's token: err=%v\n%s", err, out)
				}
			},
		},
		"lease-mode": {after: func(t *testing.T, out string) {
			listed := strings.SplitN(out, "Success!", 2)[0]
			if n := len(regexp.MustCompile(`(?m)^[A-Za-z0-9]{24}$`).FindAllString(listed, -1)); n < 1 {
				t.Fatalf("vault list sys/leases/lookup/… listed no leases:\n%s", listed)
			}
			res, data := readToken(t, rootToken, "lark/tenant-token/"+guideApp)
			if res["lease_id"] != "" || data["ttl"] == nil || data["rotation_period"] == nil || data["last_vault_rotation"] == nil {
				t.Fatalf("lease-free read: lease_id=%v ttl=%v rotation_period=%v last_vault_rotation=%v",
					res["lease_id"], data["ttl"], data["rotation_period"], data["last_vault_rotation"])
			}
			// Vault Secrets Operator's condition for a rotating credential (section 11), through the real Vault.
			if at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(data["last_vault_rotation"])); err != nil || at.Unix() <= 0 {
				t.Fatalf("last_vault_rotation %v is not an RFC 3339 time after 1970 (%v)", data["last_vault_rotation"], err)
			}
		}},
		"vso-policy": {after: func(t *testing.T, out string) {
			if got := v.must(t, rootToken, "policy", "read", "lark-vso"); !strings.Contains(got, "lark/tenant-token/"+guideApp) {
				t.Fatalf("vault policy read lark-vso:\n%s", got)
			}
		}},
		"vso-excerpt": {check: func(t *testing.T, b guideBlock) {
			guideExcerptOf(t, b, "examples/kubernetes/lease-free/vault-dynamic-secret.yaml")
		}},
		"metrics-policy": {after: func(t *testing.T, out string) {
			if got := v.must(t, rootToken, "policy", "read", "lark-metrics"); !strings.Contains(got, `path "lark/metrics"`) {
				t.Fatalf("vault policy read lark-metrics:\n%s", got)
			}
		}},
		"prometheus-excerpt": {check: func(t *testing.T, b guideBlock) {
			guideExcerptOf(t, b, "examples/prometheus/prometheus.yml")
		}},
		"agent-excerpt": {check: func(t *testing.T, b guideBlock) {
			data, err := os.ReadFile(filepath.Join(repoRoot(t), "examples", "agent", "agent.hcl"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(data), b.text) {
				t.Fatalf("the guide quotes examples/agent/agent.hcl, which no longer contains:\n%s", b.text)
			}
		}},
		"agent": {
			before: func(t *testing.T) {
				installExamples(t, "agent", agentDir, "https://vault.example.com:8200", v.addr, "/etc/vault-agent", agentDir,
					"/run/lark", outDir, "/usr/local/bin/lark-bot", bot)
			},
			daemon: func(t *testing.T) {
				for _, f := range []string{"app-token", "tenant-token", "user-token"} {
					path := filepath.Join(outDir, f)
					waitFor(t, time.Minute, "Agent to render "+path, func() bool { return readTrimmed(path) != "" })
					tok := readTrimmed(path)
					remember(tok, "token rendered into "+f)
					if ok, code := larkAccepts(t, emuURL, tok); !ok {
						t.Fatalf("%s holds a token Lark refuses (code %d)", f, code)
					}
				}
				jsonPath := filepath.Join(outDir, "tenant-token.json")
				waitFor(t, time.Minute, "Agent to render "+jsonPath, func() bool { return readTrimmed(jsonPath) != "" })
				var data map[string]any
				if err := json.Unmarshal([]byte(readTrimmed(jsonPath)), &data); err != nil {
					t.Fatalf("tenant-token.json: %v", err)
				}
				remember(fmt.Sprint(data["access_token"]), "token rendered into tenant-token.json")
				if data["ttl"] == nil || data["rotation_period"] == nil || data["expires_at"] == nil {
					t.Fatalf("tenant-token.json (lease-free mode) lacks ttl, rotation_period or expires_at: keys %v", keysOf(data))
				}
			},
		},
		"agent-exec": {
			before: func(t *testing.T) {
				writeFile(t, bot, fmt.Sprintf("#!/bin/sh\nprintf '%%s\\n' \"$LARK_TENANT_ACCESS_TOKEN\" >> %q\nexec sleep 600\n", botLog), 0o755)
			},
			daemon: func(t *testing.T) {
				waitFor(t, time.Minute, "the supervised program to start", func() bool { return readTrimmed(botLog) != "" })
				tok := readTrimmed(botLog)
				remember(tok, "token in LARK_TENANT_ACCESS_TOKEN")
				if ok, code := larkAccepts(t, emuURL, tok); !ok {
					t.Fatalf("the program got a token Lark refuses (code %d)", code)
				}
			},
		},
		"quota": {after: func(t *testing.T, out string) {
			codes := map[int]int{}
			for i := 0; i < 15; i++ {
				resp, err := http.Get(v.addr + "/v1/lark/oauth/callback?code=x&state=forged")
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				codes[resp.StatusCode]++
			}
			if codes[http.StatusTooManyRequests] == 0 || codes[http.StatusBadRequest] == 0 {
				t.Fatalf("15 quick callbacks answered %v, want some 400 (the page) and some 429 (the quota)", codes)
			}
		}},
		"restore-affected": {after: func(t *testing.T, out string) {
			var r struct {
				Data struct {
					Count  int                       `json:"count"`
					Grants map[string]map[string]any `json:"grants"`
				} `json:"data"`
			}
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("lark/reauth -format=json is not JSON: %v\n%s", err, out)
			}
			for id, g := range r.Data.Grants {
				if _, ok := g["reauth_end"]; !ok && g["reauth_required"] == true && g["level"] == "reauth_required" {
					t.Fatalf("ended grant %s on lark/reauth has no reauth_end: %v", id, g)
				}
			}
		}},
		"reauth": {after: func(t *testing.T, out string) {
			if !regexp.MustCompile(`(?m)^count\s+0$`).MatchString(out) {
				t.Fatalf("lark/reauth with fresh grants:\n%s", out)
			}
		}},
		"status": {after: func(t *testing.T, out string) {
			if !regexp.MustCompile(`(?m)^healthy\s+true$`).MatchString(out) ||
				!regexp.MustCompile(`(?m)^`+guideApp+`\s+self_built\s+\d+\s+ok\s+0$`).MatchString(out) {
				t.Fatalf("lark/status and the apps list of the guide's healthy mount:\n%s", out)
			}
		}},
		"disable-inventory": {after: func(t *testing.T, out string) {
			for _, want := range []string{"== " + guideApp, "carol", "svc-release-bot"} {
				if !strings.Contains(out, want) {
					t.Fatalf("the inventory does not show %q:\n%s", want, out)
				}
			}
		}},
		"disable-revoke": {after: func(t *testing.T, out string) {
			if strings.Contains(out, "could not revoke") || strings.Count(out, "Success! Data deleted") != 2 {
				t.Fatalf("deleting every grant, want two clean deletes:\n%s", out)
			}
			if out, err := v.cli(rootToken, "table", "list", "lark/user-token/"+guideApp+"/"); err == nil {
				t.Fatalf("grants left after the loop:\n%s", out)
			}
			grants, _ := emuControl(t, emuURL, http.MethodGet, "/_emulator/grants", nil)["grants"].([]any)
			revoked := 0
			for _, g := range grants {
				m := g.(map[string]any)
				if m["app_id"] != guideApp {
					continue
				}
				if m["status"] != "revoked" {
					t.Fatalf("grant of %v at Lark is %v after the loop, want revoked", m["user_id"], m["status"])
				}
				revoked++
			}
			if revoked < 2 {
				t.Fatalf("%d grants of the guide's app revoked at Lark, want carol's and the release bot's", revoked)
			}
		}},
		"disable": {after: func(t *testing.T, out string) {
			mounts := v.json(t, rootToken, "read", "sys/mounts")["data"].(map[string]any)
			if _, ok := mounts["lark/"]; ok {
				t.Fatal("lark/ is still mounted")
			}
		}},
	}

	used := map[string]bool{}
	for _, b := range blocks {
		if b.name == "" {
			continue
		}
		step, ok := steps[b.name]
		if !ok {
			t.Fatalf("docs/operator-guide.md:%d: block %q has no test step in TestOperatorGuide", b.line, b.name)
		}
		if used[b.name] {
			t.Fatalf("docs/operator-guide.md:%d: block name %q is used twice", b.line, b.name)
		}
		used[b.name] = true
		ok = t.Run(b.name, func(t *testing.T) {
			if step.before != nil {
				step.before(t)
			}
			switch {
			case step.check != nil:
				step.check(t, b)
			case step.daemon != nil:
				command := strings.TrimSpace(subst(b.text))
				if strings.Contains(command, "\n") {
					t.Fatalf("a long-running block must be one command:\n%s", b.text)
				}
				logFile := filepath.Join(root, b.name+".log")
				cmd, err := startProcess(logFile, "bash", "-c", fmt.Sprintf("cd %q && export PATH=%q:\"$PATH\" VAULT_ADDR=%q && exec %s",
					work, filepath.Dir(env.vaultBin), v.addr, command))
				if err != nil {
					t.Fatal(err)
				}
				func() {
					defer stopAndScan(t, cmd, logFile)
					step.daemon(t)
				}()
			default:
				token := rootToken
				if step.token != nil {
					token = step.token()
				}
				out, err := shell(t, subst(b.text), token)
				t.Logf("$ %s\n%s", strings.TrimSpace(b.text), rememberTokensIn(out, "token printed by guide block "+b.name))
				if err != nil {
					t.Fatalf("docs/operator-guide.md:%d: block %q failed: %v", b.line, b.name, err)
				}
				if step.after != nil {
					step.after(t, out)
				}
			}
		})
		if !ok {
			return
		}
	}
	for name := range steps {
		if !used[name] {
			t.Errorf("TestOperatorGuide has a step for block %q, which the guide no longer has", name)
		}
	}

	checkInlineCommands(t, markdown, blocks)
	checkTroubleshootingTables(t, markdown)
}

func keysOf(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

var inlineCode = regexp.MustCompile("`([^`]+)`")

// checkInlineCommands: a vault command quoted in the guide's prose must be one its blocks run, up
// to the first placeholder: at least its first three words.
func checkInlineCommands(t *testing.T, markdown string, blocks []guideBlock) {
	t.Helper()
	var commands []string
	for _, b := range blocks {
		if b.lang == "sh" {
			commands = append(commands, strings.Fields(strings.ReplaceAll(b.text, "\\\n", " "))...)
		}
	}
	ran := " " + strings.Join(commands, " ") + " "
	inFence := false
	for _, line := range strings.Split(markdown, "\n") {
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
			continue
		}
		if inFence {
			continue
		}
		for _, m := range inlineCode.FindAllStringSubmatch(line, -1) {
			words := strings.Fields(m[1])
			if len(words) < 2 || words[0] != "vault" {
				continue
			}
			var prefix []string
			for _, w := range words {
				if strings.ContainsAny(w, "<…") || strings.Contains(w, "...") || len(prefix) == 3 {
					break
				}
				prefix = append(prefix, w)
			}
			if !strings.Contains(ran, " "+strings.Join(prefix, " ")) {
				t.Errorf("the guide quotes `%s`, but no block runs %q", m[1], strings.Join(prefix, " "))
			}
		}
	}
}

// checkTroubleshootingTables: every plugin message the guide quotes exists in the plugin's source,
// and every Lark code it explains is one the plugin's Lark client knows.
func checkTroubleshootingTables(t *testing.T, markdown string) {
	t.Helper()
	root := repoRoot(t)
	read := func(pattern string) string {
		files, _ := filepath.Glob(filepath.Join(root, pattern))
		var all strings.Builder
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			all.Write(data)
		}
		return all.String()
	}
	pluginSource := read("*.go") + read("lark/*.go")
	larkSource := read("lark/*.go")
	// Messages that come from Vault itself; tests check them where they happen (TestPolicyExamples,
	// the upgrade step above).
	fromVault := map[string]bool{"permission denied": true, "plugin version mismatch": true, "unsupported path": true}

	section := ""
	messages, codes := 0, 0
	for _, line := range strings.Split(markdown, "\n") {
		if strings.HasPrefix(line, "### ") {
			section = strings.TrimPrefix(line, "### ")
			continue
		}
		if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "|---") {
			continue
		}
		cells := strings.Split(line, "|")
		first := strings.TrimSpace(cells[1])
		switch section {
		case "By plugin message":
			m := inlineCode.FindStringSubmatch(first)
			if m == nil {
				continue // the header
			}
			messages++
			if !fromVault[m[1]] && !strings.Contains(pluginSource, m[1]) {
				t.Errorf("the guide's troubleshooting table quotes %q, which no longer occurs in the plugin's source", m[1])
			}
		case "By Lark error code":
			for _, c := range strings.Split(first, ",") {
				c = strings.TrimSpace(c)
				if _, err := strconv.Atoi(c); err != nil {
					continue // the header
				}
				codes++
				if !strings.Contains(larkSource, c) {
					t.Errorf("the guide explains Lark code %s, which the plugin's Lark client does not know", c)
				}
			}
		}
	}
	if messages < 10 || codes < 10 {
		t.Errorf("found %d messages and %d codes in the troubleshooting tables; the sections were renamed?", messages, codes)
	}
}

// guideExcerptOf fails unless the guide's block b quotes the example file verbatim.
func guideExcerptOf(t *testing.T, b guideBlock, file string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), filepath.FromSlash(file)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), b.text) {
		t.Fatalf("the guide quotes %s, which no longer contains:\n%s", file, b.text)
	}
}

// buildStamped builds the plugin from this checkout with a version stamped in, the way the Makefile
// does, for the guide's releases.
func buildStamped(t *testing.T, version, out string) {
	t.Helper()
	build := exec.Command("go", "build", "-C", repoRoot(t), "-trimpath",
		"-ldflags", "-X github.com/lark-vault/vault-plugin-secrets-lark.Version="+version,
		"-o", out, "./cmd/vault-plugin-secrets-lark")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if o, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", version, err, o)
	}
}
