package larksecrets

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// The restore fault (docs/RELIABILITY.md, "Simulation"): at one step the harness saves a snapshot
// of the whole storage, at a later one it restores it, as `vault operator raft snapshot restore`
// does: everything written since is gone, and the mount is reloaded. What the harness knows of
// storage (which slots hold a grant, which notices and alerts storage remembers as sent, the device
// logins) is saved and restored with it; what Lark did is not, and cannot be.

// simSnapshot is storage as saved at one step, with the harness's model of it.
type simSnapshot struct {
	step    int
	entries map[string]*logical.StorageEntry
	slots   map[string]simSlot
	notices map[string]int
	alerts  []*simAlertEpisode
	devices map[string]*simDevice
}

// simRolledBack is a slot the restore handed a refresh token Lark had already spent.
type simRolledBack struct {
	grant string // the emulator grant the spent token belongs to
	base  int    // the grant's reuse attempts at Lark at the restore
	// mark: the restored entry carries an in-flight mark, so "interrupted" is the right end.
	mark bool
	// taintBase: how many harness events (crash, dropped answer) explained reuse of this grant at
	// the restore; one after the restore relaxes the checks, an older one does not.
	taintBase int
	step      int
}

// simAlertEpisode is the harness's model of one storage-rollback episode of the app (rollback.go):
// the slots seen ending with "storage_rollback" since the first of them, and the alerts sent.
type simAlertEpisode struct {
	first  time.Time
	slots  map[string]bool
	alerts int
	// disturbed: since the episode began, storage refused a write, a process crashed or a
	// snapshot was restored, any of which can make the plugin's record of it miss a grant.
	disturbed bool
}

func (e *simAlertEpisode) clone() *simAlertEpisode {
	c := &simAlertEpisode{first: e.first, slots: map[string]bool{}, alerts: e.alerts, disturbed: e.disturbed}
	for k, v := range e.slots {
		c.slots[k] = v
	}
	return c
}

// takeSnapshot is `vault operator raft snapshot save`.
func (s *sim) takeSnapshot() {
	snap := &simSnapshot{step: s.step, entries: s.store.snapshot(), slots: map[string]simSlot{}, notices: map[string]int{},
		devices: map[string]*simDevice{}}
	for name, sl := range s.slots {
		c := *sl
		if s.store.isDirty(grantID{simAppID, name}.storageKey()) {
			// Storage refused the slot's last write: the snapshot holds an older grant (or none)
			// than the one Vault keeps in memory, and after its restore the slot may be gone.
			c.tainted = true
		}
		snap.slots[name] = c
	}
	for k, v := range s.noticeCount {
		snap.notices[k] = v
	}
	for _, e := range s.alertEpisodes {
		snap.alerts = append(snap.alerts, e.clone())
	}
	for k, d := range s.devices {
		c := *d
		snap.devices[k] = &c
	}
	s.snap = snap
	s.stats.Faults["snapshot_saved"]++
	s.logf("snapshot saved (%d keys)", len(snap.entries))
}

// restoreSnapshot is `vault operator raft snapshot restore` of the saved snapshot: Vault replaces
// storage and reloads the mount (Cleanup of the old backend, then a new one on the restored data).
func (s *sim) restoreSnapshot() {
	snap := s.snap
	old := s.proc
	cleaned := make(chan struct{})
	go func() {
		old.b.Cleanup(context.Background())
		close(cleaned)
	}()
	select {
	case <-cleaned:
	case <-time.After(time.Minute):
		s.fail("progress", "Cleanup did not return within a minute at a restore")
	}
	old.view.kill()
	s.store.restore(snap.entries)
	s.stats.Faults["restore"]++
	s.disturbEpisode()

	// The harness's model of storage goes back with it.
	for name, saved := range snap.slots {
		c := saved
		c.rb = nil
		s.slots[name] = &c
	}
	s.noticeCount = map[string]int{}
	for k, v := range snap.notices {
		s.noticeCount[k] = v
	}
	s.alertEpisodes = nil
	for _, e := range snap.alerts {
		s.alertEpisodes = append(s.alertEpisodes, e.clone())
	}
	s.devices = map[string]*simDevice{}
	for k, d := range snap.devices {
		c := *d
		s.devices[k] = &c
	}

	// Which restored grants hold a refresh token Lark has spent since the snapshot.
	reuse := map[string]int{}
	for _, g := range s.emu.Grants() {
		reuse[g.GrantID] = g.ReuseAttempts
	}
	var rolled []string
	for _, name := range simSlots {
		d := s.onDisk(name)
		if d == nil || d.State == levelReauthRequired || d.RefreshToken == "" || !s.lark.isSpent(d.RefreshToken) {
			continue
		}
		owner := s.lark.ownerOf(d.RefreshToken)
		// Storage holds exactly this grant now; what becomes of it is invariant 7's to judge, whatever
		// a crash before the snapshot left uncertain.
		s.slots[name].tainted = false
		s.slots[name].rb = &simRolledBack{grant: owner, base: reuse[owner], mark: len(d.InFlight) > 0 && string(d.InFlight) != "null",
			taintBase: s.taints[owner], step: s.step}
		rolled = append(rolled, name+"="+owner)
		s.stats.Faults["restored_spent_token"]++
	}
	s.logf("restore of the snapshot of step %d: process %d cleaned up and ended; grants restored with a spent refresh token: %v", snap.step, old.id, rolled)
	s.proc = s.startProc()
}

// rbPrecise says whether the restore's exact rules apply to slot sl: nothing the harness did after
// the restore (a crash, a dropped answer) explains more.
func (s *sim) rbPrecise(sl *simSlot) bool {
	return sl.rb != nil && !sl.tainted && s.taints[sl.rb.grant] == sl.rb.taintBase
}

// rbPending says whether a slot still expects its one presentation of the spent token of grant g.
func (s *sim) rbPending(g string) bool {
	for _, sl := range s.slots {
		if s.rbPrecise(sl) && sl.rb.grant == g {
			return true
		}
	}
	return false
}

// checkRolledBack applies the restore's rules to one slot (after the step's other checks of it).
// It returns true when the slot's "ok" must not be held against invariant 3 this step.
func (s *sim) checkRolledBack(name string, info map[string]interface{}, isListed bool, reuse map[string]int, heldSlot string) bool {
	sl := s.slots[name]
	if sl.rb == nil {
		return false
	}
	if !s.rbPrecise(sl) {
		// A crash or a lost answer after the restore: the general rules (a tainted grant) apply.
		sl.rb = nil
		return false
	}
	rb := sl.rb
	presented := reuse[rb.grant] - rb.base
	state, _ := info["state"].(string)
	end, _ := info["reauth_end"].(string)
	switch {
	case presented > 1:
		s.fail("restore: spent token presented once", "slot %s: the restore of step %d handed it a refresh token of grant %s that Lark had spent; Vault presented it %d times",
			name, rb.step, rb.grant, presented)
	case presented == 0:
		if isListed && state == levelReauthRequired {
			// Ended before any attempt at Lark: only a local finding may end it so.
			if end != string(endYearLimit) && end != string(endNoRefreshToken) {
				s.fail("restore: ends only at Lark's answer", "slot %s ended (%s) after the restore without presenting its refresh token to Lark", name, end)
			}
			sl.rb = nil
		}
		return true // ok until its next refresh attempt
	}
	// presented == 1: the attempt happened; its outcome must be recorded now, unless Lark's
	// answer is still held.
	if name == heldSlot {
		return true
	}
	want := string(endRolledBack)
	if rb.mark {
		want = string(endInterrupted)
	}
	okEnd := end == want || (end == string(endLostAnswer) && s.ambiguousStep == s.step)
	if !isListed || state != levelReauthRequired || !okEnd {
		s.fail("restore: named storage_rollback", "slot %s: Lark answered \"already used\" for the spent refresh token the restore of step %d gave it (grant %s), but the grant is listed=%v state=%q reauth_end=%q, want %q",
			name, rb.step, rb.grant, isListed, state, end, want)
	}
	s.reuseSeen[rb.grant] = reuse[rb.grant]
	s.stats.Checks["restore_named"]++
	sl.rb = nil
	return true
}

// noteRollbackEnd feeds the harness's model of the app's storage-rollback episodes.
func (s *sim) noteRollbackEnd(name string) {
	now := s.clk.Now()
	var ep *simAlertEpisode
	if n := len(s.alertEpisodes); n > 0 {
		ep = s.alertEpisodes[n-1]
	}
	if ep == nil || now.Sub(ep.first) > rollbackEpisode {
		// A fault earlier in this same step may already have cost the plugin's record this grant.
		ep = &simAlertEpisode{first: now, slots: map[string]bool{}, disturbed: s.disturbedStep == s.step}
		s.alertEpisodes = append(s.alertEpisodes, ep)
	}
	ep.slots[name] = true
}

// simTimeRenderings are the ways an alert may write when its episode began.
var simTimeRenderings = []string{time.RFC3339, "2006-01-02 15:04:05", "2006-01-02 15:04"}

// checkAlert: a storage-rollback alert goes to the app's admins only when two or more grants of an
// episode ended so, and at most once per episode (as far as storage remembers: a restore brings
// back what the snapshot knew).
func (s *sim) checkAlert(content, to string) {
	s.stats.Ops["rollback_alert"]++
	if to != s.emu.OpenID(simAppID, simSlots[0]) {
		s.fail("rollback alert", "the storage-rollback alert went to %s, not to the app's admin", to)
	}
	text := content
	var body struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal([]byte(content), &body); err == nil && body.Text != "" {
		text = body.Text
	}
	i := strings.Index(text, "first seen ")
	if i < 0 {
		s.fail("rollback alert", "the storage-rollback alert does not say when the episode began: %q", content)
	}
	seen := text[i+len("first seen "):]
	var ep *simAlertEpisode
	for _, e := range s.alertEpisodes {
		for _, layout := range simTimeRenderings {
			if ep == nil && strings.HasPrefix(seen, e.first.UTC().Format(layout)) {
				ep = e
			}
		}
	}
	if ep == nil {
		// The plugin's record began at another time than the harness saw: only a refused write
		// or a crash can make the record miss a grant's end.
		var known []string
		for _, e := range s.alertEpisodes {
			known = append(known, formatTime(e.first))
		}
		s.logf("storage-rollback alert for an episode first seen %.25s; the harness's episodes began %v", seen, known)
		if s.stats.Faults["storage_write"] == 0 && s.stats.Faults["crash"] == 0 {
			s.fail("rollback alert", "a storage-rollback alert for an episode first seen %.25s, which the harness never saw begin", seen)
		}
		s.stats.Checks["rollback_alert_unmatched"]++
		return
	}
	if len(ep.slots) < 2 { // the spec's "two or more", not the plugin's constant
		s.fail("rollback alert", "a storage-rollback alert for an episode in which only %d grant(s) ended so", len(ep.slots))
	}
	s.held("rollback_alert_two_or_more")
	ep.alerts++
	if ep.alerts > 1 {
		s.fail("rollback alert once", "the storage-rollback alert of the episode first seen %s went out %d times", formatTime(ep.first), ep.alerts)
	}
	s.held("rollback_alert_once")
}

// disturbEpisode notes a fault that may make the plugin's record of the current episode miss a grant.
func (s *sim) disturbEpisode() {
	s.disturbedStep = s.step
	if n := len(s.alertEpisodes); n > 0 {
		s.alertEpisodes[n-1].disturbed = true
	}
}

// alertLiveness ends a run: when the last episode has two or more grants ended by a storage
// rollback, nothing disturbed it and no alert went out yet, the next notification time (at most
// 12 hours on) must send it.
func (s *sim) alertLiveness() {
	n := len(s.alertEpisodes)
	if n == 0 {
		return
	}
	ep := s.alertEpisodes[n-1]
	if len(ep.slots) < 2 || ep.alerts > 0 || ep.disturbed {
		return
	}
	s.step++
	s.logf("end: the episode first seen %s has %d grants ended by a storage rollback and no alert yet; 12 hours on, a sweep", formatTime(ep.first), len(ep.slots))
	s.advance(12 * time.Hour)
	s.sweep(false)
	s.check()
	if ep.alerts != 1 {
		s.fail("rollback alert sent", "the episode first seen %s has %d grants ended by a storage rollback, but no alert went out at the next notification time", formatTime(ep.first), len(ep.slots))
	}
	s.held("rollback_alert_sent")
}
