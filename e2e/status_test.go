//go:build e2e

package e2e

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestStatusHealthyAndUnhealthy reads <mount>/status and lists <mount>/apps/ through the real
// Vault CLI: healthy with a fresh grant and a working secret; unhealthy, with a reason that says
// what to do, once a grant is critical and Lark rejects the app's secret.
func TestStatusHealthyAndUnhealthy(t *testing.T) {
	t.Parallel()
	const (
		mount = "status-e2e/lark"
		app   = "cli_e2estatus"
	)
	swMount(t, mount, pluginName)
	swApp(t, mount, app, nil)
	swUser(t, "st_fresh", "Status Fresh", "")
	m := swMint(t, app, "st_fresh", 30)
	swImport(t, mount, app, "fresh", m, m.AuthorizedAt)
	mustVault(t, rootToken, "write", "-f", mount+"/sweep")

	out := vaultJSON(t, rootToken, "read", mount+"/status")
	data := out["data"].(map[string]any)
	if data["healthy"] != true || len(data["reasons"].([]any)) != 0 || out["warnings"] != nil {
		t.Fatalf("status of a healthy mount: %v", out)
	}
	if data["grants_total"] != 1.0 || data["grants_ok"] != 1.0 || data["sweep_runs"].(float64) < 1 {
		t.Fatalf("status counts: %v", data)
	}
	a := data["apps"].(map[string]any)[app].(map[string]any)
	if a["app_type"] != "self_built" || a["secret"] != "accepted" || a["lark"] != "reachable" || a["grants"] != 1.0 {
		t.Fatalf("status of %s: %v", app, a)
	}
	table := mustVault(t, rootToken, "read", mount+"/status")
	if !regexp.MustCompile(`(?m)^healthy\s+true$`).MatchString(table) {
		t.Fatalf("vault read %s/status:\n%s", mount, table)
	}
	apps := mustVault(t, rootToken, "list", "-detailed", mount+"/apps/")
	if !regexp.MustCompile(`(?m)^` + app + `\s+self_built\s+1\s+ok\s+0$`).MatchString(apps) {
		t.Fatalf("vault list -detailed %s/apps/:\n%s", mount, apps)
	}

	// A grant 363 days old (critical), and the secret changed in the console.
	swUser(t, "st_old", "Status Old", "")
	old := swMint(t, app, "st_old", 363)
	swImport(t, mount, app, "old", old, old.AuthorizedAt)
	if err := swEmulatorApp(app, "rotatedInTheConsole"+time.Now().Format("150405"), nil); err != nil {
		t.Fatal(err)
	}
	if out, err := runVault(rootToken, "read", mount+"/tenant-token/"+app); err == nil {
		t.Fatalf("tenant token with a rejected secret:\n%s", out)
	}
	mustVault(t, rootToken, "write", "-f", mount+"/sweep")

	out = vaultJSON(t, rootToken, "read", mount+"/status")
	data = out["data"].(map[string]any)
	reasons := strings.Join(toStrings(data["reasons"]), "\n")
	if data["healthy"] != false || data["grants_critical"] != 1.0 ||
		!strings.Contains(reasons, "App "+app+": Lark rejects its app secret") ||
		!strings.Contains(reasons, "vault write "+mount+"/apps/"+app+" app_secret=...") ||
		!strings.Contains(reasons, "App "+app+": 1 grant(s) end within critical_days (critical)") {
		t.Fatalf("status of an unhealthy mount: %v", out)
	}
	table = mustVault(t, rootToken, "read", mount+"/status")
	if !regexp.MustCompile(`(?m)^healthy\s+false$`).MatchString(table) || !strings.Contains(table, "WARNING!") {
		t.Fatalf("vault read %s/status:\n%s", mount, table)
	}
	apps = mustVault(t, rootToken, "list", "-detailed", mount+"/apps/")
	if !regexp.MustCompile(`(?m)^` + app + `\s+self_built\s+2\s+unhealthy\s+2$`).MatchString(apps) {
		t.Fatalf("vault list -detailed %s/apps/:\n%s", mount, apps)
	}
	t.Logf("vault read %s/status:\n%s", mount, table)
	t.Logf("vault list -detailed %s/apps/:\n%s", mount, apps)
}

func toStrings(v any) []string {
	var out []string
	for _, s := range v.([]any) {
		out = append(out, s.(string))
	}
	return out
}
