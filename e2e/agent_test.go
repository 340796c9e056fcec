//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Token lifetimes of the Agent test's own emulator: 2-minute app, tenant and user tokens, a new
// app token once the current one has less than 80 s left. The mounts fetch a new token when the
// cached one has less than 70 s left (token_refresh_window), and their leases end 10 s before the
// token does (lease_safety_margin).
const (
	agentTokenTTL      = 2 * time.Minute
	agentReuseWindow   = 80 * time.Second
	agentLeaseMargin   = 10 * time.Second
	agentRefreshWindow = 70 * time.Second

	// Reads made by the test itself in each mode, to count the leases they leave behind.
	agentLeaseProbeReads = 25
	// How many different tokens every rendered file must have held: two rotations.
	agentWantTokens = 3
)

// agentSetup is one mount (in one lease mode) with one app, its service-account slot, the example
// team policy, an AppRole role and the example Agent configuration installed for it.
type agentSetup struct {
	mode, mount, app string
	configDir        string // /etc/vault-agent of the examples
	outDir           string // /run/lark of the examples
	botLog           string // what the supervised process of agent-exec.hcl saw
}

func setUpAgentMount(t *testing.T, emuURL, mount, app, mode string) *agentSetup {
	t.Helper()
	s := &agentSetup{mode: mode, mount: mount, app: app}
	mustVault(t, rootToken, "secrets", "enable", "-path="+mount, "-plugin-version="+pluginVersion, pluginName)
	mustVault(t, rootToken, "write", mount+"/config",
		"lease_safety_margin="+agentLeaseMargin.String(), "token_refresh_window="+agentRefreshWindow.String(), "lease_mode="+mode)

	secret := fmt.Sprintf("agentSecret%d", time.Now().UnixNano())
	remember(secret, "app_secret of "+mount+"/"+app)
	emuControl(t, emuURL, http.MethodPost, "/_emulator/apps", map[string]string{"app_id": app, "app_secret": secret})
	mustVault(t, rootToken, "write", mount+"/apps/"+app, "app_secret="+secret, "base_url="+emuURL, "accounts_base_url="+emuURL)

	// The team's service account holds the slot svc-release-bot.
	refresh := mintUserGrant(t, emuURL, app, "release_bot_"+mode, "Release Bot")
	mustVault(t, rootToken, "write", mount+"/user-token/"+app+"/svc-release-bot", "refresh_token="+refresh)

	// The team policy of the examples, for this mount and app, on an AppRole role for the Agent.
	policy := rewrite(examplePolicy(t, "lark-team"), `"lark/`, `"`+mount+`/`, "cli_a1b2c3d4e5f6a7b8", app)
	if strings.Contains(policy, `"lark/`) || !strings.Contains(policy, mount+"/app-token/"+app) {
		t.Fatalf("examples/policies/lark-team.hcl no longer has the expected shape:\n%s", policy)
	}
	if out, err := runVaultStdin(rootToken, policy, "policy", "write", mount+"-team", "-"); err != nil {
		t.Fatalf("policy write: %v\n%s", err, out)
	}
	mustVault(t, rootToken, "write", "auth/approle/role/"+mount, "token_policies="+mount+"-team", "token_ttl=1h")

	root := t.TempDir()
	s.configDir = filepath.Join(root, "vault-agent")
	s.outDir = filepath.Join(root, "run-lark")
	s.botLog = filepath.Join(root, "bot.log")
	bot := filepath.Join(root, "lark-bot")
	script := fmt.Sprintf("#!/bin/sh\nprintf '%%s\\n' \"$LARK_TENANT_ACCESS_TOKEN\" >> %q\nexec sleep 600\n", s.botLog)
	if err := os.WriteFile(bot, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	installExamples(t, "agent", s.configDir,
		"https://vault.example.com:8200", env.vaultAddr,
		"/etc/vault-agent", s.configDir,
		"/run/lark", s.outDir,
		`"lark/`, `"`+mount+`/`,
		"cli_a1b2c3d4e5f6a7b8", app,
		"/usr/local/bin/lark-bot", bot)

	roleID := vaultJSON(t, rootToken, "read", "auth/approle/role/"+mount+"/role-id")["data"].(map[string]any)["role_id"].(string)
	secretID := vaultJSON(t, rootToken, "write", "-f", "auth/approle/role/"+mount+"/secret-id")["data"].(map[string]any)["secret_id"].(string)
	remember(secretID, "AppRole secret_id of "+mount)
	for name, v := range map[string]string{"role-id": roleID, "secret-id": secretID} {
		if err := os.WriteFile(filepath.Join(s.configDir, name), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// watchedFile is one place a token is rendered into, with every token it has held.
type watchedFile struct {
	name    string
	read    func() string // the token it holds now, "" before the first render
	tokens  []string
	changes []string // one line per rotation, for the log
}

func TestAgentRendersFreshTokens(t *testing.T) {
	t.Parallel()
	start := time.Now()
	emuURL := startOwnEmulator(t, "-app-token-ttl", agentTokenTTL.String(), "-reuse-window", agentReuseWindow.String(),
		"-user-token-ttl", agentTokenTTL.String())
	enableAuth(t, "approle", "approle")

	leased := setUpAgentMount(t, emuURL, "agent-lease", "cli_agentlease", "lease")
	leaseFree := setUpAgentMount(t, emuURL, "agent-none", "cli_agentnone", "none")

	// What N reads leave behind in each mode, before any Agent reads.
	leaseCounts := map[string]int{}
	for _, s := range []*agentSetup{leased, leaseFree} {
		path := s.mount + "/app-token/" + s.app
		for i := 0; i < agentLeaseProbeReads; i++ {
			status, body := vaultHTTP(t, rootToken, http.MethodGet, path, nil)
			if status != http.StatusOK {
				t.Fatalf("GET %s: HTTP %d %v", path, status, body["errors"])
			}
			data := body["data"].(map[string]any)
			remember(data["access_token"].(string), "app_access_token of "+s.app)
			if s.mode == "none" {
				if body["lease_id"] != "" || data["ttl"] == nil || data["rotation_period"] == nil {
					t.Fatalf("lease-free read: lease_id=%v ttl=%v rotation_period=%v", body["lease_id"], data["ttl"], data["rotation_period"])
				}
			} else if body["lease_id"] == "" || body["renewable"] != false {
				t.Fatalf("leased read: lease_id=%v renewable=%v", body["lease_id"], body["renewable"])
			}
		}
		leaseCounts[s.mode] = leaseCount(t, path+"/")
	}
	t.Logf("leases after %d reads of app-token: lease mode %d, lease-free mode %d", agentLeaseProbeReads, leaseCounts["lease"], leaseCounts["none"])
	if leaseCounts["lease"] != agentLeaseProbeReads || leaseCounts["none"] != 0 {
		t.Fatalf("leases after %d reads: lease mode %d (want %d), lease-free %d (want 0)",
			agentLeaseProbeReads, leaseCounts["lease"], agentLeaseProbeReads, leaseCounts["none"])
	}

	// One template Agent per mode, and the process supervisor (agent-exec.hcl) in lease mode.
	agentStart := time.Now()
	for _, s := range []*agentSetup{leased, leaseFree} {
		startAgent(t, filepath.Join(s.configDir, "agent.hcl"), filepath.Join(filepath.Dir(s.configDir), "agent.log"))
	}
	startAgent(t, filepath.Join(leased.configDir, "agent-exec.hcl"), filepath.Join(filepath.Dir(leased.configDir), "agent-exec.log"))

	// expiry is when each token rendered into a tenant-token.json ends (expires_at, cut to the
	// second: the real expiry is up to a second later).
	expiry := map[string]time.Time{}
	var files []*watchedFile
	for _, s := range []*agentSetup{leased, leaseFree} {
		s := s
		for _, f := range []string{"app-token", "tenant-token", "user-token"} {
			path := filepath.Join(s.outDir, f)
			files = append(files, &watchedFile{name: s.mode + ":" + f, read: func() string { return readTrimmed(path) }})
		}
		jsonPath := filepath.Join(s.outDir, "tenant-token.json")
		files = append(files, &watchedFile{name: s.mode + ":tenant-token.json", read: func() string {
			data, err := os.ReadFile(jsonPath)
			if err != nil {
				return ""
			}
			var v map[string]any
			if err := json.Unmarshal(data, &v); err != nil {
				t.Fatalf("%s is not JSON: %v", jsonPath, err)
			}
			exp, err := time.Parse(time.RFC3339, fmt.Sprint(v["expires_at"]))
			if err != nil {
				t.Fatalf("%s: expires_at: %v", jsonPath, err)
			}
			_, hasTTL := v["ttl"]
			if hasTTL != (s.mode == "none") {
				t.Fatalf("%s in %s mode: ttl present = %v", jsonPath, s.mode, hasTTL)
			}
			tok, _ := v["access_token"].(string)
			expiry[tok] = exp
			return tok
		}})
	}
	files = append(files, &watchedFile{name: "lease:exec LARK_TENANT_ACCESS_TOKEN", read: func() string {
		lines := strings.Split(readTrimmed(leased.botLog), "\n")
		return strings.TrimSpace(lines[len(lines)-1])
	}})

	// Watch every file twice a second until each has held three tokens. At every look the token in
	// it must be one Lark accepts, and when it changes, the token it replaced must still be
	// accepted: the file moved on before the old token expired.
	deadline := agentStart.Add(5 * time.Minute)
	var checks int
	for {
		accepted := map[string]bool{}
		accepts := func(tok string) bool {
			ok, seen := accepted[tok]
			if !seen {
				var code int
				ok, code = larkAccepts(t, emuURL, tok)
				if !ok {
					t.Logf("Lark refuses %s…: code %d", tok[:min(len(tok), 8)], code)
				}
				accepted[tok] = ok
			}
			return ok
		}
		done := true
		for _, f := range files {
			tok := f.read()
			if tok == "" {
				if len(f.tokens) > 0 {
					t.Fatalf("%s was emptied after holding a token", f.name)
				}
				done = false
				continue
			}
			remember(tok, "token rendered by Vault Agent into "+f.name)
			if n := len(f.tokens); n == 0 || f.tokens[n-1] != tok {
				if n > 0 {
					old := f.tokens[n-1]
					if !accepts(old) {
						t.Fatalf("%s: the token was replaced only after Lark stopped accepting it (rotation %d)", f.name, n)
					}
					left := ""
					if exp, ok := expiry[old]; ok {
						left = fmt.Sprintf(" with at least %s left", time.Until(exp).Round(time.Second))
					}
					f.changes = append(f.changes, fmt.Sprintf("%s: token %d at +%s; Lark still accepted the old one%s",
						f.name, n+1, time.Since(agentStart).Round(time.Second), left))
				}
				f.tokens = append(f.tokens, tok)
			}
			if !accepts(tok) {
				t.Fatalf("%s holds a token Lark does not accept (%d tokens so far, +%s)", f.name, len(f.tokens), time.Since(agentStart).Round(time.Second))
			}
			checks++
			if len(f.tokens) < agentWantTokens {
				done = false
			}
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			for _, f := range files {
				t.Logf("%s: %d tokens", f.name, len(f.tokens))
			}
			t.Fatalf("not every file held %d tokens within %s", agentWantTokens, deadline.Sub(agentStart))
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, f := range files {
		for _, c := range f.changes {
			t.Log(c)
		}
	}
	t.Logf("%d checks of rendered tokens against Lark, all accepted; every file rotated %d times in %s",
		checks, agentWantTokens-1, time.Since(agentStart).Round(time.Second))

	// What the Agents' own reads left behind: leases in lease mode, none without.
	for _, s := range []*agentSetup{leased, leaseFree} {
		reads := 0
		for _, l := range grepLines(t, env.auditLog, `"path":"`+s.mount+`/`) {
			if strings.Contains(l, `"type":"response"`) && strings.Contains(l, `"display_name":"approle"`) {
				reads++
			}
		}
		live := leaseCount(t, s.mount+"/app-token/"+s.app+"/") +
			leaseCount(t, s.mount+"/tenant-token/"+s.app+"/") +
			leaseCount(t, s.mount+"/user-token/"+s.app+"/svc-release-bot/")
		t.Logf("%s mode: the Agents made %d token reads in %s; %d of their leases are live now under %s/ (those of the test's %d reads have expired)",
			s.mode, reads, time.Since(agentStart).Round(time.Second), live, s.mount, agentLeaseProbeReads)
		if s.mode == "none" && live != 0 {
			t.Fatalf("lease-free mode left %d leases", live)
		}
		if s.mode == "lease" && live == 0 {
			t.Fatal("lease mode left no leases")
		}
	}
	t.Logf("TestAgentRendersFreshTokens took %s", time.Since(start).Round(time.Second))
}
