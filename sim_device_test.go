package larksecrets

import (
	"context"
	"sort"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/lark-vault/vault-plugin-secrets-lark/larkemu"
)

// Device logins in the simulation (docs/RELIABILITY.md, "Simulation"): a slot's login is started
// through device/<app>/<slot>, the slot's user approves or denies it at the emulator (or another
// user approves it, or nobody does and it expires), and Vault's periodic call polls Lark, the way
// the plugin learns the outcome when its own loop is not running. The poll whose answer carries
// an approval spends the device code: a crash while Lark holds that answer loses the grant Lark
// issued, which the harness then counts as explained by the crash (the login never says
// approved, and the orphan grant at Lark is the crash's).

// simDevice is what the harness knows of one slot's device login.
type simDevice struct {
	userCode string
	decided  string // "", "approve", "deny", "other" (approved by another user)
	step     int
	// approvedSeen: the harness saw the login say "approved" and checked the grant stored.
	approvedSeen bool
	finishedSeen string
}

func (s *sim) deviceChoices(add func(int, string, string, func()), slot string) {
	if !s.faults["device_login"] {
		return
	}
	add(2, "device_start", "device_login", func() { s.deviceStart(slot) })
	if len(s.undecidedDevices()) > 0 {
		// People act on a code within minutes, or never.
		add(8, "device_decide", "device_login", s.deviceDecide)
	}
	if len(s.devices) > 0 {
		w := 2
		for _, d := range s.devices {
			if d.decided != "" && d.finishedSeen == "" {
				w = 8 // someone decided: the next poll tells
			}
		}
		add(w, "device_poll", "device_login", func() { s.devicePoll(false) })
		if s.faults["late_answer"] {
			add(2, "device_poll_late", "device_login", func() { s.devicePoll(true) })
		}
	}
}

func (s *sim) undecidedDevices() []string {
	var out []string
	for name, d := range s.devices {
		if d.decided == "" {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func (s *sim) devicePath(slot string) string { return "device/" + simAppID + "/" + slot }

func (s *sim) deviceStart(slot string) {
	r := s.request(context.Background(), s.proc, logical.UpdateOperation, s.devicePath(slot), nil)
	if !r.ok() || r.resp == nil {
		s.logf("device login start %s: %s", slot, r)
		return
	}
	code, _ := r.resp.Data["user_code"].(string)
	s.devices[slot] = &simDevice{userCode: code, step: s.step}
	s.logf("device login start %s: pending, expires %v", slot, r.resp.Data["expires_at"])
}

// deviceDecide is a person at Lark's verification page.
func (s *sim) deviceDecide() {
	names := s.undecidedDevices()
	slot := s.pick(names)
	d := s.devices[slot]
	var err error
	switch n := s.rng.Intn(10); {
	case n < 6:
		d.decided = "approve"
		err = s.emu.ApproveDevice(d.userCode, slot)
	case n < 8:
		d.decided = "deny"
		err = s.emu.DenyDevice(d.userCode, slot)
	default:
		// Someone the slot does not belong to approves the code.
		other := simSlots[(indexOf(simSlots, slot)+1+s.rng.Intn(len(simSlots)-1))%len(simSlots)]
		d.decided = "other:" + other
		err = s.emu.ApproveDevice(d.userCode, other)
	}
	s.stats.Ops["device_"+firstWord(d.decided)]++
	if err != nil {
		s.logf("device login of %s: %s at Lark refused: %v", slot, d.decided, err)
		return
	}
	s.logf("device login of %s: %s at Lark", slot, d.decided)
}

// devicePoll is Vault's periodic call a minute later, which polls the due device logins (and runs
// the sweep).
func (s *sim) devicePoll(late bool) {
	s.advance(time.Minute)
	if late {
		s.startHeld("periodic", "", func(ctx context.Context, p *simProc) simResult {
			return s.request(ctx, p, logical.RollbackOperation, "", nil)
		}, nil)
		return
	}
	s.periodic()
}

// checkDevices runs before the other checks of a step: a login that says "approved" has its grant
// stored (or kept in memory while storage refuses it), and it is the grant Lark issued for it.
func (s *sim) checkDevices(listed map[string]map[string]interface{}) {
	if len(s.devices) == 0 {
		return
	}
	r := s.request(context.Background(), s.proc, logical.ListOperation, "device/"+simAppID+"/", nil)
	if r.err != nil || r.resp == nil || r.resp.IsError() {
		s.fail("device list", "listing device logins failed: %s", r)
	}
	info, _ := r.resp.Data["key_info"].(map[string]interface{})
	for _, slot := range simSlots {
		d := s.devices[slot]
		m, _ := info[slot].(map[string]interface{})
		if d == nil || m == nil {
			continue
		}
		if code, _ := m["user_code"].(string); code != d.userCode {
			continue // another login of the slot (one the harness did not see start)
		}
		status, _ := m["status"].(string)
		if status != deviceStatusPending && d.finishedSeen == "" {
			d.finishedSeen = status
			s.stats.Ops["device_"+status]++
		}
		if d.approvedSeen {
			continue
		}
		emu, _ := s.emu.Device(d.userCode)
		dirty := s.store.isDirty(grantID{simAppID, slot}.storageKey())
		owner := ""
		if disk := s.onDisk(slot); disk != nil && !dirty {
			owner = s.lark.ownerOf(disk.RefreshToken)
		}
		_, isListed := listed[slot]
		// The grant is stored although the login's own record could not say so yet (storage
		// refused that write): the slot holds it all the same.
		adopt := isListed && emu.Status == larkemu.DeviceUsed && emu.GrantID != "" && owner == emu.GrantID
		if status != deviceStatusApproved && !adopt {
			continue
		}
		if !isListed {
			s.fail("device approved means stored", "the device login of %s says approved, but Vault lists no grant for the slot", slot)
		}
		if emu.Status != larkemu.DeviceUsed || emu.GrantID == "" {
			s.fail("device approved means stored", "the device login of %s says approved, but Lark redeemed no code for it (status %s)", slot, emu.Status)
		}
		if !dirty && owner != emu.GrantID {
			s.fail("device approved means stored", "the device login of %s says approved with Lark grant %s, but the slot stores a token of %q", slot, emu.GrantID, owner)
		}
		d.approvedSeen = true
		sl := s.slots[slot]
		sl.known, sl.deleted, sl.tainted = true, false, false
		sl.gen++
		sl.newGrant()
		s.held("device_approved_stored")
	}
}

func indexOf(list []string, v string) int {
	for i, x := range list {
		if x == v {
			return i
		}
	}
	return -1
}

func firstWord(s string) string {
	for i, c := range s {
		if c == ':' {
			return s[:i]
		}
	}
	return s
}
