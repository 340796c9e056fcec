//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Issue 17 on the three-node Raft cluster: (d) a step-down and (e) an orderly shutdown (SIGTERM) of
// the active node while Lark holds the answer to a refresh whose reader has given up — both must wait
// for the answer and store it; (f) a Raft snapshot restore, which hands back refresh tokens Lark has
// already rotated, must name itself on exactly the grants it ended.

// clStopLate is how late Lark answers in (d) and (e): the reader gives up after a second, the stop
// comes at once, and Lark's answer arrives seconds later.
const clStopLate = 6 * time.Second

// giveUpRead reads a user token through node n with a client that gives up after a second, while
// Lark holds its answer; the read must not be answered before that.
func (c *raftCluster) giveUpRead(t *testing.T, n *clusterNode, path string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, n.addr+"/v1/"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", c.token)
	resp, err := (&http.Client{Timeout: time.Second}).Do(req)
	if err == nil {
		_ = resp.Body.Close()
		t.Fatalf("the read of %s was answered (HTTP %d) before the reader gave up; Lark's late answer should have kept it waiting", path, resp.StatusCode)
	}
}

// terminate stops the node's server as systemd does (SIGTERM) and waits for it to exit.
func (n *clusterNode) terminate(t *testing.T) time.Duration {
	t.Helper()
	start := time.Now()
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM to %s: %v", n.name, err)
	}
	done := make(chan error, 1)
	go func() { done <- n.cmd.Wait() }()
	select {
	case err := <-done:
		t.Logf("%s exited: %v", n.name, err)
	case <-time.After(3 * time.Minute):
		t.Fatalf("%s did not exit within 3 minutes of SIGTERM", n.name)
	}
	n.cmd = nil
	return time.Since(start)
}

// dueForRefresh waits until the main grants' access tokens are inside the mount's refresh window
// (80 s tokens, 70 s window: 10 s after their last refresh), so the next read refreshes.
func dueForRefresh() { time.Sleep(clUserTokenTTL - 70*time.Second + 2*time.Second) }

// readOK reads slot through the active node until it answers 200 (the cluster may still settle).
func (s *clusterScenario) readOK(t *testing.T, slot string) {
	t.Helper()
	var status int
	var body map[string]any
	waitFor(t, time.Minute, "a read of "+slot+" through the active node", func() bool {
		var err error
		status, body, err = s.c.do(s.c.active(t), http.MethodGet, mountPath+"/user-token/"+s.app+"/"+slot, nil)
		return err == nil && (status == http.StatusOK || status == http.StatusConflict)
	})
	if status != http.StatusOK {
		t.Fatalf("reading %s: HTTP %d %v", slot, status, body["errors"])
	}
	if data, ok := body["data"].(map[string]any); ok {
		remember(fmt.Sprint(data["access_token"]), "user token of "+slot)
	}
}

// stopWithAnswerHeld has the active node's plugin refresh slot for a reader who gives up, then stops
// the node with stop while Lark still holds the answer; the grant must come through with its chain
// unbroken.
//
// returnsAfter says whether stop's own command must return only after Lark answered: SIGTERM's
// process exit does; `vault operator step-down` answers at once and steps down in the background.
func stopWithAnswerHeld(t *testing.T, c *raftCluster, emuURL, tag, slot string, returnsAfter bool, stop func(n *clusterNode) string) {
	t.Helper()
	c.waitHealthy(t)
	s := newClusterScenario(t, c, emuURL, tag)
	g := s.bySlot[slot]
	before := s.larkGrants(t)[g.grantID]
	dueForRefresh()
	emuControl(t, emuURL, http.MethodPost, "/_emulator/failures", map[string]any{
		"endpoint": "refresh", "mode": "late_answer", "app_id": s.app, "count": 1, "delay_ms": clStopLate.Milliseconds()})
	defer emuControl(t, emuURL, http.MethodDelete, "/_emulator/failures", nil)

	active := c.active(t)
	asked := time.Now()
	c.giveUpRead(t, active, mountPath+"/user-token/"+s.app+"/"+slot)
	what := stop(active)
	t.Logf("%s on %s returned %s after the reader gave up (Lark answers %s after it was asked)",
		what, active.name, time.Since(asked).Round(100*time.Millisecond), clStopLate)
	if returnsAfter && time.Since(asked) < clStopLate-500*time.Millisecond {
		t.Fatalf("%s returned before Lark answered: the plugin did not wait for the call in flight", what)
	}
	c.waitHealthy(t)
	s.readOK(t, slot)
	after := s.larkGrants(t)[g.grantID]
	if after.reuses != 0 || after.status != "active" || after.refreshes < before.refreshes+1 {
		t.Fatalf("%s/%s after the %s: Lark %+v (before %+v); want active, the held refresh continued by the next, no refresh token presented twice",
			s.app, slot, what, after, before)
	}
	if lost := s.reauthSlots(t); len(lost) > 0 {
		t.Fatalf("after the %s: slots needing re-authorization %v", what, lost)
	}
}

func clusterStopScenarios(t *testing.T, c *raftCluster, emuURL string) {
	t.Run("step-down-while-lark-holds-an-answer", func(t *testing.T) {
		stopWithAnswerHeld(t, c, emuURL, "d", "u1", false, func(n *clusterNode) string {
			n.must(t, c.token, "operator", "step-down")
			c.activeOtherThan(t, n)
			return "vault operator step-down"
		})
	})
	t.Run("sigterm-while-lark-holds-an-answer", func(t *testing.T) {
		stopWithAnswerHeld(t, c, emuURL, "e", "u2", true, func(n *clusterNode) string {
			took := n.terminate(t)
			t.Logf("%s exited %s after SIGTERM", n.name, took.Round(100*time.Millisecond))
			c.restartAndRejoin(t, n)
			return "SIGTERM"
		})
	})
	t.Run("snapshot-restore", func(t *testing.T) {
		c.waitHealthy(t)
		s := newClusterScenario(t, c, emuURL, "f")
		snap := filepath.Join(t.TempDir(), "lark.snap")
		c.must(t, "operator", "raft", "snapshot", "save", snap)
		if st, err := os.Stat(snap); err != nil || st.Size() == 0 {
			t.Fatalf("snapshot file: %v", err)
		}
		// Two grants are refreshed after the snapshot; u3 and u4 are not.
		dueForRefresh()
		for _, slot := range []string{"u1", "u2"} {
			s.readOK(t, slot)
		}
		base := s.larkGrants(t)
		c.must(t, "operator", "raft", "snapshot", "restore", snap)
		c.waitHealthy(t)

		for _, slot := range []string{"u1", "u2"} {
			var status int
			var body map[string]any
			waitFor(t, time.Minute, "the restored "+slot+" to answer", func() bool {
				var err error
				status, body, err = c.do(c.active(t), http.MethodGet, mountPath+"/user-token/"+s.app+"/"+slot, nil)
				return err == nil && status != http.StatusServiceUnavailable && status != http.StatusInternalServerError
			})
			msg := fmt.Sprint(body["errors"])
			if status != http.StatusConflict || !strings.Contains(msg, "restored from an older snapshot or backup") {
				t.Fatalf("%s after the restore: HTTP %d %s; want 409 naming the restored snapshot", slot, status, msg)
			}
		}
		for _, slot := range []string{"u3", "u4"} {
			s.readOK(t, slot)
		}
		states := s.slotStates(t)
		lark := s.larkGrants(t)
		for id, g := range s.grants {
			if g.keepalive {
				continue
			}
			rolled := g.slot == "u1" || g.slot == "u2"
			st := states[id]
			if got := st["state"] == "reauth_required"; got != rolled {
				t.Errorf("%s: state %v (%v); flagged must be exactly the grants refreshed after the snapshot", g.slot, st["state"], st["reauth_reason"])
			}
			if rolled && lark[id].reuses != base[id].reuses+1 {
				t.Errorf("%s: %d reuse attempts at Lark after the restore, want exactly the one refresh that found it", g.slot, lark[id].reuses)
			}
		}
		status, body, err := c.do(c.active(t), http.MethodGet, mountPath+"/reauth", nil)
		if err != nil || status != http.StatusOK {
			t.Fatalf("reading reauth: HTTP %d %v", status, err)
		}
		grants, _ := body["data"].(map[string]any)["grants"].(map[string]any)
		for _, slot := range []string{"u1", "u2"} {
			g, _ := grants[s.app+"/"+slot].(map[string]any)
			if g["reauth_end"] != "storage_rollback" {
				t.Errorf("%s on lark/reauth: %v; want reauth_end storage_rollback", slot, g)
			}
		}
	})
}
