//go:build e2e

package e2e

// One scenario of the cluster tests: its apps and grants at the emulator and in Vault, what the
// emulator and Vault say about them, the waits after a failover and the final checks.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"
)

// clGrant is one grant minted at the emulator and imported into a slot.
type clGrant struct {
	app, slot, grantID, openID string
	keepalive                  bool
	importRefreshAt            string // last_refresh_at in the import's answer
}

// clusterScenario is one scenario's apps and grants: main grants that readers read all the time and
// keep-alive grants that nobody reads.
type clusterScenario struct {
	c       *raftCluster
	emuURL  string
	app     string // main grants
	kaApp   string // keep-alive grants
	grants  map[string]*clGrant
	bySlot  map[string]*clGrant // main grants by slot
	imports time.Time
}

// larkGrant is the emulator's view of a grant.
type larkGrant struct {
	status            string
	refreshes, reuses int
}

func newClusterScenario(t *testing.T, c *raftCluster, emuURL, tag string) *clusterScenario {
	t.Helper()
	s := &clusterScenario{c: c, emuURL: emuURL, app: "cli_cluster" + tag, kaApp: "cli_clusterka" + tag,
		grants: map[string]*clGrant{}, bySlot: map[string]*clGrant{}}
	apps := []struct {
		id    string
		lives map[string]any
	}{
		{s.app, map[string]any{"user_token_ttl_seconds": clUserTokenTTL.Seconds()}},
		{s.kaApp, map[string]any{"user_token_ttl_seconds": clKeepaliveUserTTL.Seconds(), "refresh_token_ttl_seconds": clKeepaliveRefreshTTL.Seconds()}},
	}
	for _, a := range apps {
		secret := fmt.Sprintf("clusterSecret%s%d", tag, time.Now().UnixNano())
		remember(secret, "app_secret of "+a.id)
		body := map[string]any{"app_id": a.id, "app_secret": secret}
		for k, v := range a.lives {
			body[k] = v
		}
		emuControl(t, emuURL, http.MethodPost, "/_emulator/apps", body)
		c.must(t, "write", mountPath+"/apps/"+a.id, "app_secret="+secret, "base_url="+emuURL, "accounts_base_url="+emuURL)
	}
	mint := func(app, slot string, keepalive bool, via *clusterNode) {
		user := "cl_" + tag + "_" + slot
		emuControl(t, emuURL, http.MethodPost, "/_emulator/users", map[string]any{"user_id": user, "name": "Cluster " + slot, "sign_in": false})
		m := emuControl(t, emuURL, http.MethodPost, "/_emulator/grants", map[string]any{"app_id": app, "user_id": user, "authorized_days_ago": 10})
		rt, _ := m["refresh_token"].(string)
		at, _ := m["access_token"].(string)
		remember(rt, "minted refresh_token of "+app+"/"+slot)
		remember(at, "minted user_access_token of "+app+"/"+slot)
		authorizedAt, err := time.Parse(time.RFC3339Nano, fmt.Sprint(m["authorized_at"]))
		if rt == "" || err != nil {
			t.Fatalf("minted grant: %v (%v)", m["grant_id"], err)
		}
		// Imports go through every node in turn: a standby forwards them to the active node.
		status, body, err := c.do(via, http.MethodPost, mountPath+"/user-token/"+app+"/"+slot,
			map[string]any{"refresh_token": rt, "authorized_at": authorizedAt.UTC().Format(time.RFC3339)})
		if err != nil || status != http.StatusOK {
			t.Fatalf("importing %s/%s through %s: HTTP %d %v %v", app, slot, via.name, status, body["errors"], err)
		}
		data, _ := body["data"].(map[string]any)
		if _, err := time.Parse(time.RFC3339, fmt.Sprint(data["last_refresh_at"])); err != nil {
			t.Fatalf("the import of %s/%s answered no last_refresh_at: %v", app, slot, data)
		}
		g := &clGrant{app: app, slot: slot, grantID: fmt.Sprint(m["grant_id"]), openID: fmt.Sprint(m["open_id"]), keepalive: keepalive,
			importRefreshAt: fmt.Sprint(data["last_refresh_at"])}
		s.grants[g.grantID] = g
		if !keepalive {
			s.bySlot[slot] = g
		}
	}
	for i := 0; i < clGrants; i++ {
		mint(s.app, fmt.Sprintf("u%d", i+1), false, c.nodes[i%len(c.nodes)])
	}
	for i := 0; i < clKeepaliveGrants; i++ {
		mint(s.kaApp, fmt.Sprintf("ka%d", i+1), true, c.nodes[(i+1)%len(c.nodes)])
	}
	s.imports = time.Now()
	return s
}

func (s *clusterScenario) isMain(grantID string) bool {
	g := s.grants[grantID]
	return g != nil && !g.keepalive
}

func (s *clusterScenario) slotsOf(grantIDs []string) []string {
	var out []string
	for _, id := range grantIDs {
		out = append(out, s.grants[id].slot)
	}
	sort.Strings(out)
	return out
}

// larkGrants is the emulator's view of this scenario's grants, by grant id.
func (s *clusterScenario) larkGrants(t *testing.T) map[string]larkGrant {
	t.Helper()
	all, _ := emuControl(t, s.emuURL, http.MethodGet, "/_emulator/grants", nil)["grants"].([]any)
	out := map[string]larkGrant{}
	for _, x := range all {
		m, _ := x.(map[string]any)
		id := fmt.Sprint(m["grant_id"])
		if s.grants[id] == nil {
			continue
		}
		refreshes, _ := m["refreshes"].(float64)
		reuses, _ := m["reuse_attempts"].(float64)
		out[id] = larkGrant{status: fmt.Sprint(m["status"]), refreshes: int(refreshes), reuses: int(reuses)}
	}
	if len(out) != len(s.grants) {
		t.Fatalf("the emulator lists %d of this scenario's %d grants", len(out), len(s.grants))
	}
	return out
}

func (s *clusterScenario) appCounter(t *testing.T, app, name string) int {
	t.Helper()
	n, _ := emuControl(t, s.emuURL, http.MethodGet, "/_emulator/apps/"+app+"/counters", nil)[name].(float64)
	return int(n)
}

// waitRefreshed waits until every main grant has been refreshed at Lark since base.
func (s *clusterScenario) waitRefreshed(t *testing.T, base map[string]larkGrant, what string) {
	t.Helper()
	waitFor(t, 2*time.Minute, what, func() bool {
		now := s.larkGrants(t)
		for id := range base {
			if s.isMain(id) && now[id].refreshes <= base[id].refreshes {
				return false
			}
		}
		return true
	})
}

// slotStates is Vault's view of this scenario's slots (the full status of the LIST), by grant id.
func (s *clusterScenario) slotStates(t *testing.T) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, app := range []string{s.app, s.kaApp} {
		status, body, err := s.c.do(s.c.active(t), "LIST", mountPath+"/user-token/"+app+"/", nil)
		if err != nil || status != http.StatusOK {
			t.Fatalf("LIST %s/user-token/%s/: HTTP %d %v %v", mountPath, app, status, body["errors"], err)
		}
		info, _ := body["data"].(map[string]any)["grants"].(map[string]any)
		for id, g := range s.grants {
			if g.app != app {
				continue
			}
			st, ok := info[g.slot].(map[string]any)
			if !ok {
				t.Fatalf("slot %s/%s is gone from Vault: %v", app, g.slot, info)
			}
			out[id] = st
		}
	}
	return out
}

// reauthSlots lists the slots Vault flags reauth_required.
func (s *clusterScenario) reauthSlots(t *testing.T) []string {
	t.Helper()
	var out []string
	for id, st := range s.slotStates(t) {
		if st["state"] != "ok" {
			out = append(out, fmt.Sprintf("%s (%v: %v)", s.grants[id].slot, st["state"], st["reauth_reason"]))
		}
	}
	sort.Strings(out)
	return out
}

// afterFailover waits, with the readers still running, until the new active node has shown that it
// does everything the old one did: every main grant refreshed again (or, if its refresh answer died
// with a killed node, probed), every node serving reads again, and every keep-alive grant refreshed
// by the sweep without any read. From the moment every node serves reads again (the cluster has
// settled) no read may fail, except those of a grant flagged for an interrupted refresh.
func (s *clusterScenario) afterFailover(t *testing.T, r *clusterReaders, base map[string]larkGrant, healthy time.Time) {
	t.Helper()
	waitFor(t, 2*time.Minute, "every main grant refreshed or probed on the new active node", func() bool {
		now := s.larkGrants(t)
		for id := range base {
			if s.isMain(id) && now[id].refreshes <= base[id].refreshes && now[id].reuses == 0 {
				return false
			}
		}
		return true
	})
	waitFor(t, time.Minute, "a successful read through every node", func() bool { return len(r.nodesServingSince(healthy)) == len(s.c.nodes) })
	settled := time.Now()
	r.settled(settled)
	t.Logf("refreshes on the new active node and reads through every node %s after the cluster was healthy again; waiting for the sweep to keep the unread grants alive",
		settled.Sub(healthy).Round(time.Second))
	// Kept alive means Lark rotated the refresh token and Vault stored the new one.
	waitFor(t, clKeepaliveWait, "the sweep on the new active node to refresh every keep-alive grant", func() bool {
		lark := s.larkGrants(t)
		for id, g := range s.grants {
			if g.keepalive && lark[id].refreshes <= base[id].refreshes {
				return false
			}
		}
		vault := s.slotStates(t)
		for id, g := range s.grants {
			if g.keepalive && fmt.Sprint(vault[id]["last_refresh_at"]) == g.importRefreshAt {
				return false
			}
		}
		return true
	})
	t.Logf("the sweep refreshed the unread grants %s after the failover (%s after their import)",
		time.Since(healthy).Round(time.Second), time.Since(s.imports).Round(time.Second))
}

type verifyOptions struct {
	allowInterrupted bool     // a kill may have cut a refresh answer
	mustInterrupt    []string // grants whose answer certainly died with the killed node
}

// verify stops the readers and checks every promise against the emulator and Vault.
func (s *clusterScenario) verify(t *testing.T, r *clusterReaders, o verifyOptions) {
	t.Helper()
	r.stop()
	lark := s.larkGrants(t)
	states := s.slotStates(t)
	ids := make([]string, 0, len(s.grants))
	for id := range s.grants {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return s.grants[ids[i]].slot < s.grants[ids[j]].slot })
	reuses, interrupted := 0, map[string]bool{}
	for _, id := range ids {
		g, lg, st := s.grants[id], lark[id], states[id]
		t.Logf("%s/%s: Lark %s, %d refreshes, %d reuse attempts; Vault %v (%v refreshes) %v",
			g.app, g.slot, lg.status, lg.refreshes, lg.reuses, st["state"], st["refresh_count"], st["reauth_reason"])
		reuses += lg.reuses
		reason := fmt.Sprint(st["reauth_reason"])
		switch {
		case lg.reuses > 1:
			t.Errorf("%s/%s: a refresh token was presented again %d times; at most one probe is allowed", g.app, g.slot, lg.reuses)
		case lg.reuses == 1 || st["state"] != "ok":
			// Only the probe of a refresh whose answer died with a killed node may reuse a token,
			// and it must leave the grant flagged with that reason.
			interrupted[id] = true
			if !o.allowInterrupted {
				t.Errorf("%s/%s: %d reuse attempts, Vault state %v (%s); a step-down must lose nothing", g.app, g.slot, lg.reuses, st["state"], reason)
			}
			if lg.reuses != 1 || st["state"] != "reauth_required" || st["reauth_required"] != true || !strings.Contains(reason, interruptedReason) {
				t.Errorf("%s/%s: %d reuse attempts and Vault state %v (%s); an interrupted refresh must be probed once and flagged reauth_required as %q",
					g.app, g.slot, lg.reuses, st["state"], reason, interruptedReason)
			}
		default:
			s.assertUsable(t, g, lg)
		}
		if g.keepalive && interrupted[id] {
			t.Errorf("%s/%s: a keep-alive grant (never read, not due at the kill) was interrupted", g.app, g.slot)
		}
	}
	for _, id := range o.mustInterrupt {
		if !interrupted[id] {
			t.Errorf("%s: Lark used its refresh token and the answer died with the killed node, yet the grant is not flagged as interrupted", s.grants[id].slot)
		}
	}
	for _, app := range []string{s.app, s.kaApp} {
		if n := s.appCounter(t, app, "refresh_reuse"); app == s.app && n != reuses || app == s.kaApp && n != 0 {
			t.Errorf("app %s: refresh_reuse counter %d, but the grants count %d reuse attempts", app, n, reuses)
		}
	}
	r.check(t, s, interrupted)
}

// assertUsable: the grant is ok in Vault and active at Lark, and a read through every node returns
// a token Lark accepts as the grant's user.
func (s *clusterScenario) assertUsable(t *testing.T, g *clGrant, lg larkGrant) {
	t.Helper()
	if lg.status != "active" {
		t.Errorf("%s/%s: Lark says %s, want active", g.app, g.slot, lg.status)
		return
	}
	for _, n := range s.c.nodes {
		status, body, err := s.c.do(n, http.MethodGet, mountPath+"/user-token/"+g.app+"/"+g.slot, nil)
		if err != nil || status != http.StatusOK {
			t.Errorf("%s/%s: read through %s: HTTP %d %v %v", g.app, g.slot, n.name, status, body["errors"], err)
			continue
		}
		tok, _ := body["data"].(map[string]any)["access_token"].(string)
		remember(tok, "user_access_token of "+g.app+"/"+g.slot)
		if st, code, openID, err := larkUserInfo(s.emuURL, tok); err != nil || st != http.StatusOK || code != 0 || openID != g.openID {
			t.Errorf("%s/%s: the token read through %s: user_info HTTP %d code %d open_id %q (%v), want 200/0/%q",
				g.app, g.slot, n.name, st, code, openID, err, g.openID)
		}
	}
}

// larkUserInfo asks the emulator's user_info who a user access token belongs to. It never stops
// the test, so the readers can use it.
func larkUserInfo(emuURL, token string) (status, code int, openID string, err error) {
	req, err := http.NewRequest(http.MethodGet, emuURL+"/open-apis/authen/v1/user_info", nil)
	if err != nil {
		return 0, 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := swHTTP.Do(req)
	if err != nil {
		return 0, 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	var body struct {
		Code int `json:"code"`
		Data struct {
			OpenID string `json:"open_id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return resp.StatusCode, 0, "", fmt.Errorf("user_info answer is not JSON: %w", err)
	}
	return resp.StatusCode, body.Code, body.Data.OpenID, nil
}
