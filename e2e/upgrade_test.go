//go:build e2e

package e2e

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"debug/macho"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// The README's upgrade procedure goes from upOld to upNew and back.
const (
	upOld = "v0.1.0"
	upNew = "v0.2.0"
	// upUserTokenTTL is the lifetime of the user access tokens the test's emulator issues. With the
	// 70 s refresh window configured below, a token is served unchanged for its first 80 s (time for
	// the upgrade, so that the same token must come back) and refreshed by the first read after
	// that (so the refresh token chain is seen to continue under the new version).
	upUserTokenTTL      = 150 * time.Second
	upRefreshWindow     = 70 * time.Second
	upReleasePlatforms  = "linux/amd64 linux/arm64 darwin/amd64 darwin/arm64"
	upReadmeBlockMarker = "upgrade-test"
)

// upLarkCalls are the emulator's counters of the calls the plugin makes for tokens and grants (not
// "messages", which larkAccepts uses to ask Lark about a token).
var upLarkCalls = []string{"app_access_token", "tenant_access_token", "oauth_token", "code_exchange", "refresh",
	"refresh_reuse", "revoke", "user_info"}

// upgradeWorld is what TestUpgradeKeepsAppsAndGrants checks before and after each version change.
type upgradeWorld struct {
	config map[string]any
	apps   map[string]map[string]any            // app id -> vault read lark/apps/<id>
	slots  map[string]map[string]map[string]any // app id -> slot -> full status of the list
	tokens map[string]string                    // read path -> access_token
	calls  map[string]map[string]int            // app id -> the emulator's counters of that app
}

// TestUpgradeKeepsAppsAndGrants runs the README's "Install and upgrade" procedure, block by block,
// on release binaries made by `make release`: v0.1.0 is installed and mounted, gets apps and user
// grants (minted at the emulator and imported), then the running mount is upgraded to v0.2.0 and
// rolled back to v0.1.0. After each switch the mount must run the other binary and have lost
// nothing: the same settings, apps and grants, the same cached tokens served without a Lark call,
// tokens Lark accepts, and user-token refreshes that continue each grant's refresh token chain.
func TestUpgradeKeepsAppsAndGrants(t *testing.T) {
	blocks := readmeUpgradeBlocks(t)
	if t.Failed() {
		return
	}
	root := t.TempDir()
	pluginDir := filepath.Join(root, "plugins")
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		t.Fatal(err)
	}
	host := runtime.GOOS + "/" + runtime.GOARCH

	// Both versions come out of `make release`: the old one for this machine only, the new one for
	// every platform, whose artifacts are checked in full. The builds take every core, so they run
	// before the test joins the parallel ones, whose tokens rotate in real time.
	oldDist, newDist := filepath.Join(root, "release-"+upOld), filepath.Join(root, "release-"+upNew)
	makeRelease(t, upOld, host, oldDist)
	printed := makeRelease(t, upNew, upReleasePlatforms, newDist)
	newSums := checkReleaseArtifacts(t, newDist, upNew, strings.Fields(upReleasePlatforms), printed)
	oldSums := checkReleaseArtifacts(t, oldDist, upOld, []string{host}, "")
	t.Parallel()
	artifact := func(version string) string {
		return "vault-plugin-secrets-lark_" + version + "_" + strings.ReplaceAll(host, "/", "_")
	}
	oldSHA, newSHA := oldSums[artifact(upOld)], newSums[artifact(upNew)]

	emuURL := startOwnEmulator(t, "-user-token-ttl", upUserTokenTTL.String())
	v := startOwnVault(t, root, fmt.Sprintf("plugin_directory = %q\n", pluginDir))
	auditLog := filepath.Join(root, "audit.log")
	v.must(t, rootToken, "audit", "enable", "file", "file_path="+auditLog)
	t.Cleanup(func() { assertNoSecretsIn(t, auditLog) })

	// runBlock runs a README block the way an operator would, from the directory of the release's
	// files, with the README's plugin directory and platform mapped to this machine's.
	runBlock := func(t *testing.T, name, dir string) string {
		t.Helper()
		script := rewrite(blocks[name], "/etc/vault.d/plugins", pluginDir, "_linux_amd64", "_"+strings.ReplaceAll(host, "/", "_"))
		cmd := exec.Command("bash", "-c", "set -euo pipefail\n"+script)
		cmd.Dir = dir
		cmd.Env = []string{"HOME=" + root, "PATH=" + filepath.Dir(env.vaultBin) + ":" + os.Getenv("PATH"),
			"VAULT_ADDR=" + v.addr, "VAULT_TOKEN=" + rootToken}
		out, err := cmd.CombinedOutput()
		t.Logf("README block %q:\n$ %s\n%s", name, strings.TrimSpace(blocks[name]), out)
		if err != nil {
			t.Fatalf("README block %q failed: %v", name, err)
		}
		return string(out)
	}
	running := func(t *testing.T, version, sha string) {
		t.Helper()
		m := v.json(t, rootToken, "read", "sys/mounts/"+mountPath)["data"].(map[string]any)
		if m["plugin_version"] != version || m["running_plugin_version"] != version || m["running_sha256"] != sha {
			t.Fatalf("sys/mounts/%s: plugin_version=%v running_plugin_version=%v running_sha256=%v, want %s with sha256 %s",
				mountPath, m["plugin_version"], m["running_plugin_version"], m["running_sha256"], version, sha)
		}
	}

	// Install the old release and fill the mount.
	out := runBlock(t, "install", oldDist)
	if !strings.Contains(out, artifact(upOld)+": OK") {
		t.Fatalf("sha256sum -c did not check %s", artifact(upOld))
	}
	running(t, upOld, oldSHA)
	v.must(t, rootToken, "write", mountPath+"/config", "lease_safety_margin=10s",
		fmt.Sprintf("token_refresh_window=%ds", int(upRefreshWindow.Seconds())))

	apps := map[string][]string{
		"cli_upgradea1": {"alice", "bob", "svc-release-bot"},
		"cli_upgradeb2": {"carol"},
	}
	var readPaths []string
	for app, users := range apps {
		secret := fmt.Sprintf("upgradeSecret%s%d", app, time.Now().UnixNano())
		remember(secret, "app_secret of "+app)
		emuControl(t, emuURL, http.MethodPost, "/_emulator/apps", map[string]string{"app_id": app, "app_secret": secret})
		args := []string{"write", mountPath + "/apps/" + app, "app_secret=" + secret, "base_url=" + emuURL,
			"accounts_base_url=" + emuURL, "redirect_uri=" + v.addr + "/v1/" + mountPath + "/oauth/callback", "scopes=contact:user.id:readonly"}
		if app == "cli_upgradeb2" {
			args = append(args, "lease_mode=none") // an app setting of its own, which must survive too
		}
		v.must(t, rootToken, args...)
		readPaths = append(readPaths, mountPath+"/app-token/"+app, mountPath+"/tenant-token/"+app)
		for _, user := range users {
			refresh := mintUserGrant(t, emuURL, app, "upgrade_"+strings.ReplaceAll(user, "-", "_")+"_"+app, "User "+user)
			if status, body := vaultAt(t, v, http.MethodPost, mountPath+"/user-token/"+app+"/"+user, map[string]any{"refresh_token": refresh}); status != http.StatusOK {
				t.Fatalf("importing %s/%s: HTTP %d %v", app, user, status, body["errors"])
			}
			readPaths = append(readPaths, mountPath+"/user-token/"+app+"/"+user)
		}
	}
	slices.Sort(readPaths)

	capture := func(t *testing.T) upgradeWorld {
		t.Helper()
		w := upgradeWorld{
			config: v.json(t, rootToken, "read", mountPath+"/config")["data"].(map[string]any),
			apps:   map[string]map[string]any{}, slots: map[string]map[string]map[string]any{},
			tokens: map[string]string{}, calls: map[string]map[string]int{},
		}
		// `vault list -format=json` prints the keys as a JSON array.
		listed, err := v.cli(rootToken, "json", "list", mountPath+"/apps")
		var keys []string
		if err != nil || json.Unmarshal([]byte(listed), &keys) != nil || fmt.Sprint(keys) != "[cli_upgradea1 cli_upgradeb2]" {
			t.Fatalf("vault list %s/apps: %v\n%s", mountPath, err, listed)
		}
		for _, p := range readPaths {
			data := v.json(t, rootToken, "read", p)["data"].(map[string]any)
			tok, _ := data["access_token"].(string)
			remember(tok, "token read from "+p)
			if tok == "" {
				t.Fatalf("read %s: no access_token", p)
			}
			if ok, code := larkAccepts(t, emuURL, tok); !ok {
				t.Fatalf("Lark refuses the token read from %s (code %d)", p, code)
			}
			if strings.Contains(p, "/user-token/") && data["reauth_required"] != false {
				t.Fatalf("read %s: reauth_required=%v", p, data["reauth_required"])
			}
			w.tokens[p] = tok
		}
		// After the reads, so a read that had to ask Lark shows in this capture's counters.
		for app := range apps {
			w.apps[app] = v.json(t, rootToken, "read", mountPath+"/apps/"+app)["data"].(map[string]any)
			w.slots[app] = slotsAt(t, v, app)
			counters := emuControl(t, emuURL, http.MethodGet, "/_emulator/apps/"+app+"/counters", nil)
			w.calls[app] = map[string]int{}
			for _, endpoint := range upLarkCalls {
				n, ok := counters[endpoint].(float64)
				if !ok {
					t.Fatalf("the emulator has no counter %q for %s: %v", endpoint, app, counters)
				}
				w.calls[app][endpoint] = int(n)
			}
		}
		return w
	}
	// earliestRefresh is when the first user token enters the refresh window: until then every
	// read must serve the stored token.
	earliestRefresh := func(w upgradeWorld) time.Time {
		var first time.Time
		for app, slots := range w.slots {
			for slot, st := range slots {
				exp := swTime(t, app+"/"+slot+" access_expires_at", st["access_expires_at"])
				due := exp.Add(-upRefreshWindow)
				if first.IsZero() || due.Before(first) {
					first = due
				}
			}
		}
		return first
	}
	// same fails unless nothing changed; the counters too: the switch cost no call to Lark.
	same := func(t *testing.T, before, after upgradeWorld, why string) {
		t.Helper()
		for what, pair := range map[string][2]any{
			"lark/config": {before.config, after.config}, "the apps": {before.apps, after.apps},
			"the user grants": {before.slots, after.slots}, "the tokens served": {before.tokens, after.tokens},
			"the calls to Lark": {before.calls, after.calls},
		} {
			if fmt.Sprint(pair[0]) != fmt.Sprint(pair[1]) {
				t.Fatalf("%s changed %s:\nbefore %v\nafter  %v", why, what, redactTokens(pair[0]), redactTokens(pair[1]))
			}
		}
	}
	// refreshAll waits until every user token is due and reads it again: each grant must be
	// refreshed once, by the running version, with the refresh token the other version stored.
	refreshAll := func(t *testing.T, before upgradeWorld, why string) upgradeWorld {
		t.Helper()
		var last time.Time
		for app, slots := range before.slots {
			for slot, st := range slots {
				if due := swTime(t, app+"/"+slot+" access_expires_at", st["access_expires_at"]).Add(time.Second - upRefreshWindow); due.After(last) {
					last = due
				}
			}
		}
		t.Logf("waiting %s until every user token is due for a refresh", time.Until(last).Round(time.Second))
		time.Sleep(time.Until(last) + 500*time.Millisecond)
		after := capture(t)
		for app, slots := range before.slots {
			for slot, st := range slots {
				p := mountPath + "/user-token/" + app + "/" + slot
				now := after.slots[app][slot]
				if after.tokens[p] == before.tokens[p] {
					t.Fatalf("%s: %s still serves the old token after it was due", why, p)
				}
				if now["state"] != "ok" || now["reauth_required"] != false || now["refresh_count"].(float64) != st["refresh_count"].(float64)+1 {
					t.Fatalf("%s: grant %s/%s after its refresh: state=%v reauth_required=%v refresh_count=%v (was %v)",
						why, app, slot, now["state"], now["reauth_required"], now["refresh_count"], st["refresh_count"])
				}
			}
			if n, was := after.calls[app]["refresh"], before.calls[app]["refresh"]; n != was+len(slots) {
				t.Fatalf("%s: %d refreshes of %s at Lark, want %d (one per grant)", why, n-was, app, len(slots))
			}
			if n := after.calls[app]["refresh_reuse"]; n != 0 {
				t.Fatalf("%s: Lark saw %d reuses of a spent refresh token of %s", why, n, app)
			}
		}
		// The chains continued: Lark still has exactly the grants it minted, each active, each one
		// refresh further along, none reused.
		for _, g := range emuControl(t, emuURL, http.MethodGet, "/_emulator/grants", nil)["grants"].([]any) {
			g := g.(map[string]any)
			if g["status"] != "active" || g["reuse_attempts"].(float64) != 0 {
				t.Fatalf("%s: Lark's grant %v of %v: status %v, %v reuse attempts", why, g["grant_id"], g["app_id"], g["status"], g["reuse_attempts"])
			}
		}
		return after
	}

	before := capture(t)
	if fmt.Sprint(before.apps["cli_upgradeb2"]["lease_mode"]) != "none" {
		t.Fatalf("app setting lease_mode not stored: %v", before.apps["cli_upgradeb2"])
	}
	grantsAtLark := len(emuControl(t, emuURL, http.MethodGet, "/_emulator/grants", nil)["grants"].([]any))
	servedUntil := earliestRefresh(before)

	// Upgrade the running mount with the README's block, and the register command make release
	// printed for this machine (registering the same binary and version again changes nothing).
	out = runBlock(t, "upgrade", newDist)
	if !printsVersion(out, upNew) {
		t.Fatalf("the upgrade block did not print the running version %s", upNew)
	}
	running(t, upNew, newSHA)
	register := printedRegister(t, printed, artifact(upNew))
	if o, err := v.cli(rootToken, "table", strings.Fields(register)[1:]...); err != nil {
		t.Fatalf("the register command make release printed failed: %v\n%s", err, o)
	}
	// `vault plugin info -format=json` prints the catalog entry itself, not under "data".
	if info := v.json(t, rootToken, "plugin", "info", "-version="+upNew, "secret", pluginName); info["sha256"] != newSHA || info["command"] != "vault-plugin-secrets-lark-"+upNew {
		t.Fatalf("catalog entry of %s: sha256 %v, command %v; want %s, vault-plugin-secrets-lark-%s", upNew, info["sha256"], info["command"], newSHA, upNew)
	}
	afterUpgrade := capture(t)
	if time.Now().After(servedUntil) {
		t.Fatalf("the upgrade took until %s, past the first refresh point %s: this machine is too slow for the test to tell a lost token from a refreshed one",
			time.Now().Format(time.RFC3339), servedUntil.Format(time.RFC3339))
	}
	same(t, before, afterUpgrade, "the upgrade to "+upNew)
	refreshed := refreshAll(t, afterUpgrade, "after the upgrade to "+upNew)
	running(t, upNew, newSHA)

	// Roll back the same way.
	servedUntil = earliestRefresh(refreshed)
	out = runBlock(t, "rollback", t.TempDir())
	if !printsVersion(out, upOld) {
		t.Fatalf("the rollback block did not print the running version %s", upOld)
	}
	running(t, upOld, oldSHA)
	if o, err := v.cli(rootToken, "table", "plugin", "info", "-version="+upNew, "secret", pluginName); err == nil {
		t.Fatalf("%s is still in the catalog after the rollback block deregistered it:\n%s", upNew, o)
	}
	if _, err := os.Stat(filepath.Join(pluginDir, "vault-plugin-secrets-lark-"+upNew)); !os.IsNotExist(err) {
		t.Fatalf("the rollback block left the %s binary in the plugin directory (%v)", upNew, err)
	}
	afterRollback := capture(t)
	if time.Now().After(servedUntil) {
		t.Fatalf("the rollback took until %s, past the first refresh point %s: this machine is too slow for the test", time.Now().Format(time.RFC3339), servedUntil.Format(time.RFC3339))
	}
	same(t, refreshed, afterRollback, "the rollback to "+upOld)
	refreshAll(t, afterRollback, "after the rollback to "+upOld)
	running(t, upOld, oldSHA)
	if n := len(emuControl(t, emuURL, http.MethodGet, "/_emulator/grants", nil)["grants"].([]any)); n != grantsAtLark {
		t.Fatalf("Lark holds %d grants after the upgrade and rollback, %d before: a grant was replaced or lost", n, grantsAtLark)
	}
}

// printsVersion reports whether a block's output has a line starting with the version, as
// `vault read -field=running_plugin_version` prints it (with no newline when its output is not a
// terminal, so the next command's output may follow on the same line).
func printsVersion(out, version string) bool {
	return regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(version) + `($|\s|Success!)`).MatchString(out)
}

// makeRelease runs `make release` for a version and platforms into dist and returns what it
// printed on standard output.
func makeRelease(t *testing.T, version, platforms, dist string) string {
	t.Helper()
	cmd := exec.Command("make", "-s", "--no-print-directory", "-C", repoRoot(t), "release", "VERSION="+version, "RELEASE_PLATFORMS="+platforms, "DIST="+dist)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("make release VERSION=%s: %v\n%s%s", version, err, stdout.String(), stderr.String())
	}
	t.Logf("make release VERSION=%s RELEASE_PLATFORMS=%q: %s\n%s", version, platforms, time.Since(start).Round(time.Second), stdout.String())
	return stdout.String()
}

// checkReleaseArtifacts checks a release directory: one binary per platform, built without cgo,
// with -trimpath, for the right OS and CPU (the Linux ones static: no interpreter, no shared
// libraries), SHA256SUMS listing exactly those files with their real checksums, and, when printed
// is given, a register command per binary that pins that checksum, a file name of the version and
// the version. It returns the checksums by file name.
func checkReleaseArtifacts(t *testing.T, dist, version string, platforms []string, printed string) map[string]string {
	t.Helper()
	sums := map[string]string{}
	list, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(list)), "\n") {
		sum, file, ok := strings.Cut(line, "  ")
		if !ok || len(sum) != 64 {
			t.Fatalf("SHA256SUMS: malformed line %q", line)
		}
		sums[file] = sum
	}
	entries, err := os.ReadDir(dist)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(platforms)+1 || len(sums) != len(platforms) {
		t.Fatalf("%s holds %d files and SHA256SUMS lists %d, want %d binaries and SHA256SUMS", dist, len(entries), len(sums), len(platforms))
	}
	for _, platform := range platforms {
		goos, goarch, _ := strings.Cut(platform, "/")
		name := "vault-plugin-secrets-lark_" + version + "_" + goos + "_" + goarch
		path := filepath.Join(dist, name)
		actual, err := copyFile(path, filepath.Join(t.TempDir(), "sum"))
		if err != nil {
			t.Fatalf("release %s lacks %s: %v", version, name, err)
		}
		if sums[name] != actual {
			t.Fatalf("SHA256SUMS says %s for %s, the file has %s", sums[name], name, actual)
		}
		info, err := buildinfo.ReadFile(path)
		if err != nil {
			t.Fatalf("%s: no Go build information: %v", name, err)
		}
		settings := map[string]string{}
		for _, s := range info.Settings {
			settings[s.Key] = s.Value
		}
		if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" || settings["GOOS"] != goos || settings["GOARCH"] != goarch {
			t.Fatalf("%s was built with CGO_ENABLED=%q -trimpath=%q GOOS=%q GOARCH=%q", name,
				settings["CGO_ENABLED"], settings["-trimpath"], settings["GOOS"], settings["GOARCH"])
		}
		if info.Path != "github.com/lark-vault/vault-plugin-secrets-lark/cmd/vault-plugin-secrets-lark" {
			t.Fatalf("%s is a build of %s", name, info.Path)
		}
		switch goos {
		case "linux":
			checkStaticELF(t, path, goarch)
		case "darwin":
			checkMachO(t, path, goarch)
		}
		if printed != "" {
			want := fmt.Sprintf("vault plugin register -sha256=%s -command=vault-plugin-secrets-lark-%s -version=%s secret vault-plugin-secrets-lark",
				actual, version, version)
			if got := printedRegister(t, printed, name); got != want {
				t.Fatalf("make release printed for %s:\n%s\nwant\n%s", name, got, want)
			}
		}
	}
	return sums
}

func checkStaticELF(t *testing.T, path, goarch string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: not ELF: %v", path, err)
	}
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[goarch]
	if f.Machine != want {
		t.Fatalf("%s: ELF machine %v, want %v", path, f.Machine, want)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Fatalf("%s is dynamically linked (%v program header)", path, p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Fatalf("%s needs shared libraries %v", path, libs)
	}
}

func checkMachO(t *testing.T, path, goarch string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := macho.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: not Mach-O: %v", path, err)
	}
	want := map[string]macho.Cpu{"amd64": macho.CpuAmd64, "arm64": macho.CpuArm64}[goarch]
	if f.Cpu != want {
		t.Fatalf("%s: Mach-O CPU %v, want %v", path, f.Cpu, want)
	}
}

// printedRegister finds the `vault plugin register` line make release printed for a binary: the
// first one after the line naming the binary.
func printedRegister(t *testing.T, printed, name string) string {
	t.Helper()
	found := false
	for _, line := range strings.Split(printed, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, name+" ") {
			found = true
		}
		if found && strings.HasPrefix(line, "vault plugin register ") {
			return line
		}
	}
	t.Fatalf("make release printed no register command for %s:\n%s", name, printed)
	return ""
}

// readmeUpgradeBlocks returns the shell blocks of the README's "Install and upgrade" section by
// the name of their <!-- upgrade-test: name --> comment. Every shell block there must have one.
func readmeUpgradeBlocks(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	marker := regexp.MustCompile(`^<!-- ` + upReadmeBlockMarker + `: ([a-z-]+) -->$`)
	blocks := map[string]string{}
	var (
		inSection, inBlock bool
		pending, current   string
		text               strings.Builder
	)
	for n, line := range strings.Split(string(data), "\n") {
		switch {
		case inBlock && strings.HasPrefix(line, "```"):
			inBlock = false
			if current != "" {
				blocks[current] = text.String()
			}
		case inBlock:
			text.WriteString(line + "\n")
		case strings.HasPrefix(line, "## "):
			inSection = line == "## Install and upgrade"
		case strings.HasPrefix(line, "```"):
			inBlock, current = true, ""
			text.Reset()
			if inSection && line == "```sh" {
				if pending == "" {
					t.Errorf("README.md:%d: a shell block in \"Install and upgrade\" without a <!-- %s: name --> comment; TestUpgradeKeepsAppsAndGrants runs every one", n+1, upReadmeBlockMarker)
				}
				current = pending
			}
			pending = ""
		case inSection:
			if m := marker.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
				pending = m[1]
			} else if strings.TrimSpace(line) != "" {
				pending = ""
			}
		}
	}
	for _, name := range []string{"install", "upgrade", "rollback"} {
		if blocks[name] == "" {
			t.Errorf("README.md has no %q block in \"Install and upgrade\"", name)
		}
	}
	if len(blocks) != 3 {
		t.Errorf("README.md's \"Install and upgrade\" has blocks %v; TestUpgradeKeepsAppsAndGrants runs install, upgrade and rollback", slices.Sorted(maps.Keys(blocks)))
	}
	return blocks
}

// vaultAt calls the HTTP API of a Vault server of the test's own as root.
func vaultAt(t *testing.T, v *ownVault, method, path string, body any) (int, map[string]any) {
	t.Helper()
	status, resp, err := swDo(method, v.addr+"/v1/"+path, rootToken, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return status, resp
}

// slotsAt lists an app's user slots with their full status on a Vault of the test's own.
func slotsAt(t *testing.T, v *ownVault, app string) map[string]map[string]any {
	t.Helper()
	status, body := vaultAt(t, v, "LIST", mountPath+"/user-token/"+app+"/", nil)
	if status != http.StatusOK {
		t.Fatalf("LIST %s/user-token/%s/: HTTP %d %v", mountPath, app, status, body["errors"])
	}
	data, _ := body["data"].(map[string]any)
	// The full status is in grants since the list's key_info became narrow; a release before
	// that kept it in key_info.
	info, _ := data["grants"].(map[string]any)
	if info == nil {
		info, _ = data["key_info"].(map[string]any)
	}
	out := map[string]map[string]any{}
	for k, st := range info {
		out[k], _ = st.(map[string]any)
	}
	return out
}

// redactTokens prints a value for a failure message with the Lark tokens in it replaced.
func redactTokens(v any) string {
	return rememberTokensIn(fmt.Sprint(v), "token in a failure message")
}
