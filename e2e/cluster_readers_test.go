//go:build e2e

package e2e

// The readers of the cluster tests: one per node, reading the scenario's grants all the time.

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// clRead is one read of a user token by a reader.
type clRead struct {
	node, slot string
	started    time.Time
	status     int
	problem    string // transport error or Vault's errors
	token      string
}

// clusterReaders read the scenario's main grants through every node, round robin, until stopped,
// and check every distinct token they get at Lark right away.
type clusterReaders struct {
	s        *clusterScenario
	stopCh   chan struct{}
	wg       sync.WaitGroup
	once     sync.Once
	mu       sync.Mutex
	reads    []clRead
	tokens   map[string]string // token -> what Lark said about it ("" = accepted as the right user)
	settleAt time.Time
}

func (s *clusterScenario) startReaders() *clusterReaders {
	r := &clusterReaders{s: s, stopCh: make(chan struct{}), tokens: map[string]string{}}
	slots := make([]string, 0, len(s.bySlot))
	for slot := range s.bySlot {
		slots = append(slots, slot)
	}
	sort.Strings(slots)
	for i, n := range s.c.nodes {
		r.wg.Add(1)
		go func(n *clusterNode, offset int) {
			defer r.wg.Done()
			for k := offset; ; k++ {
				select {
				case <-r.stopCh:
					return
				case <-time.After(clReadPause):
				}
				r.read(n, slots[k%len(slots)])
			}
		}(n, i)
	}
	return r
}

func (r *clusterReaders) read(n *clusterNode, slot string) {
	g := r.s.bySlot[slot]
	rd := clRead{node: n.name, slot: slot, started: time.Now()}
	status, body, err := r.s.c.do(n, http.MethodGet, mountPath+"/user-token/"+g.app+"/"+slot, nil)
	rd.status = status
	switch {
	case err != nil:
		rd.problem = err.Error()
	case status != http.StatusOK:
		rd.problem = fmt.Sprint(body["errors"])
	default:
		rd.token, _ = body["data"].(map[string]any)["access_token"].(string)
	}
	if rd.token != "" {
		remember(rd.token, "user_access_token of "+g.app+"/"+slot)
		r.mu.Lock()
		_, seen := r.tokens[rd.token]
		r.mu.Unlock()
		if !seen {
			// A token Vault hands out must be one Lark accepts, as this grant's user, right now.
			verdict := ""
			st, code, openID, err := larkUserInfo(r.s.emuURL, rd.token)
			if err != nil || st != http.StatusOK || code != 0 || openID != g.openID {
				verdict = fmt.Sprintf("user_info HTTP %d code %d open_id %q (want %q) %v", st, code, openID, g.openID, err)
			}
			r.mu.Lock()
			r.tokens[rd.token] = verdict
			r.mu.Unlock()
		}
	}
	r.mu.Lock()
	r.reads = append(r.reads, rd)
	r.mu.Unlock()
}

func (r *clusterReaders) stop() {
	r.once.Do(func() { close(r.stopCh) })
	r.wg.Wait()
}

func (r *clusterReaders) settled(at time.Time) {
	r.mu.Lock()
	r.settleAt = at
	r.mu.Unlock()
}

// nodesServingSince lists the nodes through which a read that started after t succeeded.
func (r *clusterReaders) nodesServingSince(t time.Time) map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]bool{}
	for _, rd := range r.reads {
		if rd.status == http.StatusOK && !rd.started.Before(t) {
			out[rd.node] = true
		}
	}
	return out
}

// check reports what the readers saw: every token accepted by Lark, and once the cluster had
// settled no failed read except the 409 of a grant whose interrupted refresh flagged it.
func (r *clusterReaders) check(t *testing.T, s *clusterScenario, interrupted map[string]bool) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	type tally struct{ ok, failed, failedAfterSettle int }
	perNode := map[string]*tally{}
	failures := map[string]int{}
	for _, rd := range r.reads {
		tl := perNode[rd.node]
		if tl == nil {
			tl = &tally{}
			perNode[rd.node] = tl
		}
		if rd.status == http.StatusOK {
			tl.ok++
			continue
		}
		tl.failed++
		failures[fmt.Sprintf("%d %s", rd.status, shorten(rd.problem))]++
		if rd.started.Before(r.settleAt) {
			continue
		}
		tl.failedAfterSettle++
		g := s.bySlot[rd.slot]
		if rd.status == http.StatusConflict && interrupted[g.grantID] && strings.Contains(rd.problem, interruptedReason) {
			continue
		}
		t.Errorf("read of %s through %s after the cluster settled: HTTP %d %s", rd.slot, rd.node, rd.status, rd.problem)
	}
	for _, n := range s.c.nodes {
		tl := perNode[n.name]
		if tl == nil || tl.ok == 0 {
			t.Errorf("no successful read through %s", n.name)
			continue
		}
		t.Logf("reads through %s: %d ok, %d failed (%d after the cluster settled)", n.name, tl.ok, tl.failed, tl.failedAfterSettle)
	}
	keys := make([]string, 0, len(failures))
	for k := range failures {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("  failed reads: %d × %s", failures[k], k)
	}
	bad := 0
	for _, verdict := range r.tokens {
		if verdict != "" {
			bad++
			t.Errorf("Vault served a token Lark does not accept as its user: %s", verdict)
		}
	}
	t.Logf("%d distinct tokens served, %d of them refused by Lark", len(r.tokens), bad)
}

func shorten(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		return s[:160] + "…"
	}
	return s
}
