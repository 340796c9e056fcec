//go:build e2e

package e2e

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestUpgradeFromABuildWithoutTheIndexes: Vault's storage as a build before the grant indexes left
// it (grants without due_at, level or notice_queued; no due/, who/ or counts/ entries; its sweep
// cursor at sweep/cursor), then the plugin process restarted on it, as an upgrade does. Every user
// is served the token they had, without a call to Lark; the sweep rebuilds exactly the index
// entries, level counts and grant fields this build had written before (compared key by key
// through Vault's raw storage endpoint); and each grant's refresh token chain goes on when its
// token comes due.
//
// The storage is rewritten through sys/raw rather than written by an older binary: the only
// differences in what the two builds store are the ones undone here (the grant's three index
// fields, the three index prefixes, sweep/state for sweep/cursor), and this way the test needs no
// old commit in the clone.
func TestUpgradeFromABuildWithoutTheIndexes(t *testing.T) {
	t.Parallel()
	w := newOwnVaultFaultWorld(t, "raw_storage_endpoint = true\n")
	// Tokens that stay fresh for three minutes: the restart and the rebuild happen before any is due.
	const fresh = 3 * time.Minute
	apps := map[string][]string{"cli_preindexa1": {"ann", "ben", "cy"}, "cli_preindexb2": {"dee", "eli"}}
	grantIDs := map[string]string{}
	var paths []string
	for app, slots := range apps {
		w.app(t, app, faultRefreshWindow+fresh)
		for _, slot := range slots {
			grantIDs[app+"/"+slot] = w.grant(t, app, slot)
			paths = append(paths, "user-token/"+app+"/"+slot)
		}
	}
	slices.Sort(paths)
	dueBy := time.Now().Add(fresh)
	waitIndexesBuilt(t, w)

	m := jsonOf(t, w, "read", "sys/mounts/"+mountPath)
	uuid, _ := m["data"].(map[string]any)["uuid"].(string)
	if uuid == "" {
		t.Fatalf("sys/mounts/%s has no uuid: %v", mountPath, m)
	}
	raw := rawStorage{t: t, w: w, root: "sys/raw/logical/" + uuid + "/"}
	served := map[string]string{}
	for _, p := range paths {
		r := w.read(p)
		if r.status != http.StatusOK || r.token == "" {
			t.Fatalf("%s: %v", p, r)
		}
		served[p] = r.token
	}
	refreshes := map[string]int{}
	for app := range apps {
		refreshes[app] = w.calls(t, app, "refresh")
	}
	built := raw.snapshot()
	for _, prefix := range []string{"due/", "who/", "counts/"} {
		if !slices.ContainsFunc(built.keys, func(k string) bool { return strings.HasPrefix(k, prefix) }) {
			t.Fatalf("no %s entries to take away: %v", prefix, built.keys)
		}
	}

	// What the older build left: take the indexes away and write its cursor.
	for _, k := range built.keys {
		switch {
		case strings.HasPrefix(k, "due/"), strings.HasPrefix(k, "who/"), strings.HasPrefix(k, "counts/"), k == "sweep/state":
			raw.delete(k)
		case strings.HasPrefix(k, "users/"):
			var g map[string]any
			if err := json.Unmarshal([]byte(built.values[k]), &g); err != nil {
				t.Fatalf("grant %s: %v", k, err)
			}
			for _, f := range []string{"due_at", "level", "notice_queued"} {
				if f != "notice_queued" && g[f] == nil {
					t.Fatalf("grant %s has no %s to take away", k, f)
				}
				delete(g, f)
			}
			b, _ := json.Marshal(g)
			raw.put(k, string(b))
		}
	}
	raw.put("sweep/cursor", "cli_preindexa1/ben")
	w.must(t, "plugin", "reload", "-plugin="+pluginName)

	// Every user is served the token they had, and nothing was asked of Lark.
	for _, p := range paths {
		if r := w.readUntilOK(t, p, 30*time.Second); r.token != served[p] {
			t.Fatalf("%s serves another token after the restart on the older storage", p)
		}
	}
	for app, n := range refreshes {
		if now := w.calls(t, app, "refresh"); now != n {
			t.Fatalf("%d refreshes of %s at Lark after the restart, want none", now-n, app)
		}
	}

	// The sweep rebuilds what the indexes held, key by key, and drops the older build's cursor.
	waitIndexesBuilt(t, w)
	rebuilt := raw.snapshot()
	if slices.Contains(rebuilt.keys, "sweep/cursor") {
		t.Fatal("sweep/cursor is still stored after the rebuild")
	}
	for _, k := range built.keys {
		if strings.HasPrefix(k, "sweep/") || strings.HasPrefix(k, "tokens/") {
			continue // where the sweep and the notice schedule stand, and app and tenant tokens, move on their own
		}
		if rebuilt.values[k] != built.values[k] {
			t.Errorf("%s after the rebuild:\n%s\nbefore the indexes were taken away:\n%s", k, redactStored(rebuilt.values[k]), redactStored(built.values[k]))
		}
	}
	for _, k := range rebuilt.keys {
		if (strings.HasPrefix(k, "due/") || strings.HasPrefix(k, "who/")) && !slices.Contains(built.keys, k) {
			t.Errorf("the rebuild wrote %s, which the indexes did not hold before", k)
		}
	}
	st := jsonOf(t, w, "read", mountPath+"/status")["data"].(map[string]any)
	if st["grants_total"] != float64(5) || st["grants_ok"] != float64(5) {
		t.Fatalf("lark/status after the rebuild: grants_total=%v grants_ok=%v, want 5 and 5", st["grants_total"], st["grants_ok"])
	}

	// Each refresh token chain goes on when its token is due, from the token the older build stored.
	time.Sleep(time.Until(dueBy) + time.Second)
	for _, p := range paths {
		w.readUntilFresh(t, p, served[p], time.Minute)
	}
	for app, slots := range apps {
		if now := w.calls(t, app, "refresh"); now != refreshes[app]+len(slots) {
			t.Fatalf("%d refreshes of %s at Lark once due, want %d (one per grant)", now-refreshes[app], app, len(slots))
		}
		for _, slot := range slots {
			g := w.larkGrant(t, grantIDs[app+"/"+slot])
			if g["status"] != "active" || g["reuse_attempts"] != float64(0) {
				t.Fatalf("Lark's grant of %s/%s: status %v, %v reuse attempts", app, slot, g["status"], g["reuse_attempts"])
			}
		}
	}
}

// waitIndexesBuilt runs sweeps until lark/status says the grant indexes cover every grant.
func waitIndexesBuilt(t *testing.T, w *faultWorld) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Second) {
		if jsonOf(t, w, "read", mountPath+"/status")["data"].(map[string]any)["grant_levels_complete"] == true {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the grant indexes of %s are not built after 2 minutes of sweeps", mountPath)
		}
		_, _ = w.cli("table", "write", "-f", mountPath+"/sweep") // "already running" is fine too
	}
}

// jsonOf runs a vault command against the world's Vault and decodes its JSON output.
func jsonOf(t *testing.T, w *faultWorld, args ...string) map[string]any {
	t.Helper()
	out, err := w.cli("json", args...)
	var m map[string]any
	if err != nil || json.Unmarshal([]byte(out), &m) != nil {
		t.Fatalf("vault %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return m
}

// rawStorage reads and writes one mount's storage through Vault's sys/raw endpoint.
type rawStorage struct {
	t    *testing.T
	w    *faultWorld
	root string
}

type rawSnapshot struct {
	keys   []string
	values map[string]string
}

func (r rawStorage) call(method, key string, body any) map[string]any {
	r.t.Helper()
	status, out, err := swDo(method, r.w.vaultAddr+"/v1/"+r.root+key, rootToken, body)
	if err != nil || (status != http.StatusOK && status != http.StatusNoContent) {
		r.t.Fatalf("%s %s%s: HTTP %d %v %v", method, r.root, key, status, out["errors"], err)
	}
	return out
}

func (r rawStorage) list(prefix string) []string {
	r.t.Helper()
	keys, _ := r.call("LIST", prefix, nil)["data"].(map[string]any)["keys"].([]any)
	var out []string
	for _, k := range keys {
		k := prefix + k.(string)
		if strings.HasSuffix(k, "/") {
			out = append(out, r.list(k)...)
		} else {
			out = append(out, k)
		}
	}
	return out
}

// snapshot is every key of the mount's storage and its value.
func (r rawStorage) snapshot() rawSnapshot {
	r.t.Helper()
	s := rawSnapshot{keys: r.list(""), values: map[string]string{}}
	slices.Sort(s.keys)
	for _, k := range s.keys {
		s.values[k], _ = r.call(http.MethodGet, k, nil)["data"].(map[string]any)["value"].(string)
		rememberStoredTokens(k, s.values[k])
	}
	return s
}

// secretField: a stored field that holds a token or a secret (hashes of them excepted).
func secretField(field string) bool {
	return (strings.Contains(field, "token") || strings.Contains(field, "secret")) && !strings.HasSuffix(field, "_hash")
}

// rememberStoredTokens adds the tokens and secrets a stored entry holds (rotated refresh tokens and
// cached access tokens the test never saw otherwise) to what the leak check looks for in the logs.
func rememberStoredTokens(key, value string) {
	var m map[string]any
	if json.Unmarshal([]byte(value), &m) != nil {
		return
	}
	for field, v := range m {
		if s, ok := v.(string); ok && secretField(field) && len(s) >= 16 {
			remember(s, field+" stored at "+key)
		}
	}
}

// redactStored is a stored entry fit for a failure message: its tokens and secrets replaced.
func redactStored(value string) string {
	var m map[string]any
	if json.Unmarshal([]byte(value), &m) != nil {
		return redactTokens(value)
	}
	for field, v := range m {
		if _, ok := v.(string); ok && secretField(field) {
			m[field] = "[redacted]"
		}
	}
	b, _ := json.Marshal(m)
	return redactTokens(string(b))
}

func (r rawStorage) put(key, value string) {
	r.t.Helper()
	r.call(http.MethodPut, key, map[string]any{"value": value})
}
func (r rawStorage) delete(key string) { r.t.Helper(); r.call(http.MethodDelete, key, nil) }
