//go:build e2e

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The app the example policies name, and another team's app.
const (
	examplePolicyApp = "cli_a1b2c3d4e5f6a7b8"
	otherTeamApp     = "cli_b2c3d4e5f6a7b8c9"
)

// TestPolicyExamples loads examples/policies/*.hcl from disk, unchanged, into the shared Vault
// (mounted at lark/, as the files assume), gives them to real logins — userpass people with
// entities, an AppRole service, an admin — and checks what each may and may not do.
func TestPolicyExamples(t *testing.T) {
	t.Parallel()
	newApp(t, examplePolicyApp)
	newApp(t, otherTeamApp)
	mustVault(t, rootToken, "write", mountPath+"/apps/"+examplePolicyApp,
		"redirect_uri="+env.vaultAddr+"/v1/"+mountPath+"/oauth/callback", "accounts_base_url="+env.emuURL)

	for _, name := range []string{"lark-admin", "lark-team", "lark-person", "lark-vso", "lark-metrics"} {
		mustVault(t, rootToken, "policy", "write", name, filepath.Join(repoRoot(t), "examples", "policies", name+".hcl"))
		_, body := vaultHTTP(t, rootToken, http.MethodGet, "sys/policies/acl/"+name, nil)
		if got := body["data"].(map[string]any)["policy"]; got != examplePolicy(t, name) {
			t.Fatalf("policy %s in Vault differs from the file", name)
		}
	}

	// Grants in three slots: two people and the team's service account.
	for slot, larkUser := range map[string]string{"carol": "pol_carol", "dave": "pol_dave", "svc-release-bot": "pol_release_bot"} {
		refresh := mintUserGrant(t, env.emuURL, examplePolicyApp, larkUser, slot)
		mustVault(t, rootToken, "write", mountPath+"/user-token/"+examplePolicyApp+"/"+slot, "refresh_token="+refresh)
	}

	// People log in with userpass; their entity, named after them, carries lark-person. The admin's
	// userpass user carries lark-admin.
	enableAuth(t, "userpass", "policy-userpass")
	accessor := vaultJSON(t, rootToken, "read", "sys/auth/policy-userpass")["data"].(map[string]any)["accessor"].(string)
	login := func(user, policies string) string {
		password := fmt.Sprintf("pw-%s-%d", user, time.Now().UnixNano())
		remember(password, "userpass password of "+user)
		mustVault(t, rootToken, "write", "auth/policy-userpass/users/"+user, "password="+password, "token_policies="+policies)
		out := vaultJSON(t, "", "write", "auth/policy-userpass/login/"+user, "password="+password)
		tok := out["auth"].(map[string]any)["client_token"].(string)
		remember(tok, "Vault token of "+user)
		return tok
	}
	for _, person := range []string{"carol", "dave"} {
		id := vaultJSON(t, rootToken, "write", "identity/entity", "name="+person, "policies=lark-person")["data"].(map[string]any)["id"].(string)
		mustVault(t, rootToken, "write", "identity/entity-alias", "name="+person, "canonical_id="+id, "mount_accessor="+accessor)
	}
	carol := login("carol", "default")
	dave := login("dave", "default")
	admin := login("olivia", "lark-admin")

	// The team's service logs in with AppRole.
	enableAuth(t, "approle", "approle")
	mustVault(t, rootToken, "write", "auth/approle/role/payments-ci", "token_policies=lark-team", "token_ttl=10m")
	roleID := vaultJSON(t, rootToken, "read", "auth/approle/role/payments-ci/role-id")["data"].(map[string]any)["role_id"].(string)
	secretID := vaultJSON(t, rootToken, "write", "-f", "auth/approle/role/payments-ci/secret-id")["data"].(map[string]any)["secret_id"].(string)
	remember(secretID, "AppRole secret_id of payments-ci")
	teamLogin := vaultJSON(t, "", "write", "auth/approle/login", "role_id="+roleID, "secret_id="+secretID)
	team := teamLogin["auth"].(map[string]any)["client_token"].(string)
	remember(team, "Vault token of payments-ci")

	// Somebody with only the default policy.
	nobodyOut := vaultJSON(t, rootToken, "token", "create", "-policy=default", "-ttl=10m")
	nobody := nobodyOut["auth"].(map[string]any)["client_token"].(string)
	remember(nobody, "Vault token with the default policy")

	// Vault Secrets Operator (examples/kubernetes/) and Prometheus (examples/prometheus/) get tokens
	// with only their policy, as their Vault roles give them.
	vso := vaultJSON(t, rootToken, "token", "create", "-policy=lark-vso", "-ttl=10m")["auth"].(map[string]any)["client_token"].(string)
	remember(vso, "Vault token of Vault Secrets Operator")
	scraper := vaultJSON(t, rootToken, "token", "create", "-policy=lark-metrics", "-ttl=10m")["auth"].(map[string]any)["client_token"].(string)
	remember(scraper, "Vault token of Prometheus")
	for _, c := range []struct {
		who, token string
		want       int
	}{{"scraper", scraper, http.StatusOK}, {"vso", vso, http.StatusForbidden}, {"team", team, http.StatusForbidden}} {
		if _, _, status := swScrape(t, mountPath+"/metrics", c.token); status != c.want {
			t.Errorf("%s: GET %s/metrics: HTTP %d, want %d", c.who, mountPath, status, c.want)
		}
	}

	a, o := examplePolicyApp, otherTeamApp
	type check struct {
		who, token, method, path string
		body                     map[string]any
		want                     int
	}
	checks := []check{
		// The team: its own app's tokens and its service account; nothing else.
		{"team", team, "GET", "app-token/" + a, nil, 200},
		{"team", team, "GET", "tenant-token/" + a, nil, 200},
		{"team", team, "GET", "user-token/" + a + "/svc-release-bot", nil, 200},
		{"team", team, "GET", "app-token/" + o, nil, 403},
		{"team", team, "GET", "tenant-token/" + o, nil, 403},
		{"team", team, "GET", "user-token/" + a + "/carol", nil, 403},
		{"team", team, "LIST", "user-token/" + a + "/", nil, 403},
		{"team", team, "GET", "apps/" + a, nil, 403},
		{"team", team, "LIST", "apps/", nil, 403},
		{"team", team, "POST", "apps/" + a, map[string]any{"base_url": "http://127.0.0.1:1"}, 403},
		{"team", team, "GET", "config", nil, 403},
		{"team", team, "POST", "oauth/" + a + "/authorize/svc-release-bot", nil, 403},
		{"team", team, "DELETE", "user-token/" + a + "/svc-release-bot", nil, 403},

		// A person: their own user token, their own authorization; nothing else.
		{"carol", carol, "GET", "user-token/" + a + "/carol", nil, 200},
		{"carol", carol, "GET", "user-token/" + a + "/dave", nil, 403},
		{"carol", carol, "GET", "user-token/" + a + "/svc-release-bot", nil, 403},
		{"carol", carol, "GET", "user-token/" + o + "/carol", nil, 403},
		{"carol", carol, "LIST", "user-token/" + a + "/", nil, 403},
		{"carol", carol, "POST", "oauth/" + a + "/authorize/carol", nil, 200},
		{"carol", carol, "POST", "oauth/" + a + "/authorize/dave", nil, 403},
		{"carol", carol, "POST", "oauth/" + a + "/authorize", map[string]any{"user": "carol"}, 403},
		{"carol", carol, "POST", "oauth/" + a + "/replace/carol", nil, 403},
		{"carol", carol, "DELETE", "user-token/" + a + "/dave", nil, 403},
		{"carol", carol, "GET", "app-token/" + a, nil, 403},
		{"carol", carol, "GET", "tenant-token/" + a, nil, 403},
		{"carol", carol, "GET", "apps/" + a, nil, 403},
		{"carol", carol, "LIST", "apps/", nil, 403},
		{"carol", carol, "GET", "config", nil, 403},
		{"dave", dave, "GET", "user-token/" + a + "/dave", nil, 200},
		{"dave", dave, "GET", "user-token/" + a + "/carol", nil, 403},

		// Default policy only: nothing on the mount.
		{"nobody", nobody, "GET", "app-token/" + a, nil, 403},
		{"nobody", nobody, "GET", "user-token/" + a + "/carol", nil, 403},
		{"nobody", nobody, "GET", "apps/" + a, nil, 403},
		{"nobody", nobody, "LIST", "apps/", nil, 403},
		{"no token", "", "GET", "app-token/" + a, nil, 403},
		{"no token", "", "GET", "apps/" + a, nil, 403},

		// Vault Secrets Operator: the two tokens the manifests sync; nothing else.
		{"vso", vso, "GET", "tenant-token/" + a, nil, 200},
		{"vso", vso, "GET", "user-token/" + a + "/svc-release-bot", nil, 200},
		{"vso", vso, "GET", "app-token/" + a, nil, 403},
		{"vso", vso, "GET", "tenant-token/" + o, nil, 403},
		{"vso", vso, "GET", "user-token/" + a + "/carol", nil, 403},
		{"vso", vso, "LIST", "user-token/" + a + "/", nil, 403},
		{"vso", vso, "GET", "apps/" + a, nil, 403},
		{"vso", vso, "GET", "reauth", nil, 403},

		// Prometheus: metrics only (checked above); no token, no grant, no setting.
		{"scraper", scraper, "GET", "tenant-token/" + a, nil, 403},
		{"scraper", scraper, "GET", "app-token/" + a, nil, 403},
		{"scraper", scraper, "GET", "user-token/" + a + "/carol", nil, 403},
		{"scraper", scraper, "GET", "apps/" + a, nil, 403},
		{"scraper", scraper, "GET", "reauth", nil, 403},
		{"scraper", scraper, "GET", "config", nil, 403},

		// The admin: apps, config, grants, any token, the mount's tuning.
		{"admin", admin, "GET", "apps/" + a, nil, 200},
		{"admin", admin, "LIST", "apps/", nil, 200},
		{"admin", admin, "GET", "config", nil, 200},
		{"admin", admin, "POST", "config", map[string]any{"lark_max_attempts": 3}, 204},
		{"admin", admin, "POST", "apps/cli_policyscratch", map[string]any{"app_secret": "scratchSecret1", "base_url": env.emuURL}, 204},
		{"admin", admin, "DELETE", "apps/cli_policyscratch", nil, 204},
		{"admin", admin, "LIST", "user-token/" + a + "/", nil, 200},
		{"admin", admin, "GET", "user-token/" + a + "/dave", nil, 200},
		{"admin", admin, "GET", "tenant-token/" + o, nil, 200},
		{"admin", admin, "POST", "oauth/" + a + "/authorize/dave", nil, 200},
		{"admin", admin, "GET", "../sys/mounts/" + mountPath + "/tune", nil, 200},
		{"team", team, "GET", "../sys/mounts/" + mountPath + "/tune", nil, 403},

		// Last: carol deletes her own grant (and revokes it at Lark).
		{"carol", carol, "DELETE", "user-token/" + a + "/carol", nil, 204},
		{"carol", carol, "GET", "user-token/" + a + "/carol", nil, 404},
	}
	remember("scratchSecret1", "app_secret of cli_policyscratch")
	for _, c := range checks {
		path := mountPath + "/" + c.path
		if strings.HasPrefix(c.path, "../") {
			path = strings.TrimPrefix(c.path, "../")
		}
		var body any
		if c.body != nil {
			body = c.body
		}
		status, resp := vaultHTTP(t, c.token, c.method, path, body)
		if status != c.want {
			t.Errorf("%s: %s %s: HTTP %d, want %d (%v)", c.who, c.method, path, status, c.want, resp["errors"])
			continue
		}
		if data, ok := resp["data"].(map[string]any); ok {
			if tok, ok := data["access_token"].(string); ok {
				remember(tok, "token read by "+c.who)
			}
			if u, ok := data["authorize_url"].(string); ok {
				if pu, err := url.Parse(u); err == nil {
					rememberRedirectValue(pu.Query().Get("state"), "OAuth state")
				}
			}
		}
	}

	// The same through the CLI, as people see it.
	if out, err := runVault(team, "list", mountPath+"/apps"); err == nil || !strings.Contains(out, "permission denied") {
		t.Errorf("team listing apps with the CLI: err=%v\n%s", err, out)
	}
	if out, err := runVault(carol, "read", mountPath+"/apps/"+a); err == nil || !strings.Contains(out, "permission denied") {
		t.Errorf("carol reading the app's settings with the CLI: err=%v\n%s", err, out)
	}
	if out, err := runVault(admin, "list", mountPath+"/apps"); err != nil || !strings.Contains(out, a) {
		t.Errorf("admin listing apps with the CLI: err=%v\n%s", err, out)
	}

	// The OAuth callback needs no token at all (a browser has none): a forged link gets the
	// callback's own HTML answer, not Vault's 403, and stores nothing.
	resp, err := http.Get(env.vaultAddr + "/v1/" + mountPath + "/oauth/callback?" + url.Values{"code": {"forged"}, "state": {"forged-state"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(string(page), "unknown or already used") {
		t.Errorf("unauthenticated callback with a forged state: HTTP %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), page)
	}
}
