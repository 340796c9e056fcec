//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// pluginExitTimeout is how long a plugin process may outlive a killed Vault: it checks its parent
// every half second.
const pluginExitTimeout = 5 * time.Second

// TestPluginExitsWhenVaultIsKilled: a Vault killed with SIGKILL cannot stop its plugin processes;
// the plugin notices that its parent is gone and exits within seconds instead of living on with app
// secrets and tokens in memory (issue 12, defect 6).
func TestPluginExitsWhenVaultIsKilled(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pluginDir := filepath.Join(dir, "plugins")
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		t.Fatal(err)
	}
	pluginExe := filepath.Join(pluginDir, pluginName)
	sha, err := copyFile(os.Getenv("PLUGIN_BIN"), pluginExe)
	if err != nil {
		t.Fatal(err)
	}
	v := startOwnVault(t, dir, "plugin_directory = \""+pluginDir+"\"\n")
	v.must(t, rootToken, "plugin", "register", "-sha256="+sha, "-command="+pluginName, "-version="+pluginVersion, "secret", pluginName)
	v.must(t, rootToken, "secrets", "enable", "-path="+mountPath, "-plugin-version="+pluginVersion, pluginName)
	v.must(t, rootToken, "write", mountPath+"/config", "lease_safety_margin=10s", "token_refresh_window=70s")
	v.must(t, rootToken, "read", mountPath+"/config") // the plugin process is up and serving

	// One multiplexed plugin process, a child of this test's Vault.
	procs := processesOf(t, pluginExe)
	if len(procs) != 1 {
		t.Fatalf("found %d processes running %s, want 1: %+v", len(procs), pluginExe, procs)
	}
	plugin := procs[0]
	t.Cleanup(func() { plugin.killIfAlive(t) })
	vaultExe, err := filepath.EvalSymlinks(env.vaultBin)
	if err != nil {
		t.Fatal(err)
	}
	if vaultExe, err = filepath.Abs(vaultExe); err != nil {
		t.Fatal(err)
	}
	if got := executable(plugin.ppid); got != vaultExe {
		t.Fatalf("the plugin's parent (pid %d) runs %q, want the Vault server %q", plugin.ppid, got, vaultExe)
	}

	if err := syscall.Kill(plugin.ppid, syscall.SIGKILL); err != nil {
		t.Fatalf("killing Vault (pid %d): %v", plugin.ppid, err)
	}
	killed := time.Now()
	waitFor(t, pluginExitTimeout, "the plugin process of the killed Vault to exit", func() bool { return !plugin.alive() })
	t.Logf("the plugin process (pid %d) exited %s after its Vault was killed", plugin.pid, time.Since(killed).Round(10*time.Millisecond))
}
