package larksecrets

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"os"
	"sync"

	"github.com/lark-vault/vault-plugin-secrets-lark/larkemu"
)

// simLark stands between every simulated process and the in-process emulator. It calls the
// emulator's handler directly (no sockets, no timers), so nothing depends on goroutine timing, and
// it gives the harness what a real network would decide:
//
//   - a fault armed for the next token call: Lark unreachable before it acted, or Lark acted and
//     its answer was lost (the emulator's own 5xx comes from larkemu.InjectFailure);
//   - a hold: Lark acts at once (the token is spent, its successor issued) and the answer waits
//     until the harness releases it, to a live process or to one that died meanwhile;
//   - a ledger of what Lark really did, read from the emulator's answers before any fault drops
//     them: which refresh tokens were spent and which emulator grant every refresh token belongs to.
type simLark struct {
	emu *larkemu.Server

	// serve serializes the emulator's handler, so the ledger learns of each new grant exactly.
	serve sync.Mutex

	mu         sync.Mutex
	armedFault string // "", simFaultUnreachable, simFaultLost
	armHold    bool
	held       *simHeld
	heldCh     chan *simHeld
	spent      map[string]bool   // refresh tokens Lark exchanged
	owner      map[string]string // refresh token → emulator grant id
	knownGrant map[string]bool   // emulator grants seen so far
	faults     map[string]int    // faults injected by kind
	lost       []string          // emulator grants whose answer a fault dropped, not yet seen by the harness
	calls      int
}

const (
	simFaultUnreachable = "lark_unreachable"
	simFaultLost        = "lark_answer_lost"
	simFaultTimeout     = "lark_timeout"
)

// simHeld is a token call whose answer the harness holds.
type simHeld struct {
	proc    *simProc
	kind    string // "refresh", "exchange" or "device poll"
	grantID string // emulator grant the call acted on ("" if unknown)
	release chan struct{}
}

func newSimLark(emu *larkemu.Server) *simLark {
	l := &simLark{emu: emu, spent: map[string]bool{}, owner: map[string]string{}, knownGrant: map[string]bool{},
		faults: map[string]int{}, heldCh: make(chan *simHeld, 1)}
	for _, g := range emu.Grants() {
		l.knownGrant[g.GrantID] = true
	}
	return l
}

func (l *simLark) noteMinted(refresh, grantID string) {
	l.mu.Lock()
	l.owner[refresh] = grantID
	l.knownGrant[grantID] = true
	l.mu.Unlock()
}

func (l *simLark) isSpent(refresh string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.spent[refresh]
}

func (l *simLark) ownerOf(refresh string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.owner[refresh]
}

func (l *simLark) arm(fault string) {
	l.mu.Lock()
	l.armedFault = fault
	l.mu.Unlock()
}

func (l *simLark) armHeld() {
	l.mu.Lock()
	l.armHold = true
	l.mu.Unlock()
}

// disarm drops whatever the last step armed and did not use.
func (l *simLark) disarm() {
	l.mu.Lock()
	l.armedFault, l.armHold = "", false
	l.mu.Unlock()
}

func (l *simLark) countFault(kind string) {
	l.mu.Lock()
	l.faults[kind]++
	l.mu.Unlock()
}

// client is the HTTP client of one process.
func (l *simLark) client(p *simProc) *http.Client {
	return &http.Client{Transport: &simTransport{l: l, p: p}}
}

type simTransport struct {
	l *simLark
	p *simProc
}

type simTokenBody struct {
	GrantType    string `json:"grant_type"`
	RefreshToken string `json:"refresh_token"`
}

type simTokenAnswer struct {
	Code         int    `json:"code"`
	RefreshToken string `json:"refresh_token"`
}

func (t *simTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	trace := httptrace.ContextClientTrace(req.Context())
	if trace != nil && trace.GetConn != nil {
		trace.GetConn(req.URL.Host)
	}
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		_ = req.Body.Close()
	}
	if !t.p.alive() {
		// A dead process sends nothing.
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("simulated: the process is gone")}
	}
	var tb simTokenBody
	isToken := req.URL.Path == larkemu.PathOAuthTokenV2 || req.URL.Path == larkemu.PathOAuthTokenV3
	if isToken {
		if err := json.Unmarshal(body, &tb); err != nil {
			// A device-code poll is a form (lark/device.go).
			if form, ferr := url.ParseQuery(string(body)); ferr == nil {
				tb.GrantType, tb.RefreshToken = form.Get("grant_type"), form.Get("refresh_token")
			}
		}
	}
	l := t.l
	var fault string
	hold := false
	if isToken && (tb.GrantType == "refresh_token" || tb.GrantType == "authorization_code" || tb.GrantType == larkemu.GrantTypeDeviceCode) {
		l.mu.Lock()
		fault, l.armedFault = l.armedFault, ""
		if fault == "" {
			hold, l.armHold = l.armHold, false
		}
		l.calls++
		l.mu.Unlock()
	}
	if fault == simFaultUnreachable {
		l.countFault(fault)
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("simulated: Lark unreachable")}
	}
	if trace != nil && trace.WroteHeaders != nil {
		trace.WroteHeaders()
	}
	if fault == simFaultTimeout {
		// Sent, but Lark never got to act: the client cannot tell this from a lost answer.
		l.countFault(fault)
		return nil, &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	}

	// Lark acts now.
	inner := req.Clone(context.WithoutCancel(req.Context()))
	inner.Body = io.NopCloser(bytes.NewReader(body))
	inner.RequestURI = req.URL.RequestURI()
	rec := httptest.NewRecorder()
	l.serve.Lock()
	func() {
		defer func() {
			if r := recover(); r != nil && r != http.ErrAbortHandler {
				panic(r)
			}
		}()
		l.emu.ServeHTTP(rec, inner)
	}()
	grantID := ""
	if isToken {
		grantID = l.learn(tb, rec.Body.Bytes())
	}
	l.serve.Unlock()

	switch {
	case fault == simFaultLost:
		l.countFault(fault)
		l.mu.Lock()
		l.lost = append(l.lost, grantID)
		l.mu.Unlock()
		return nil, io.ErrUnexpectedEOF
	case hold:
		kind := map[string]string{"refresh_token": "refresh", "authorization_code": "exchange", larkemu.GrantTypeDeviceCode: "device poll"}[tb.GrantType]
		h := &simHeld{proc: t.p, kind: kind,
			grantID: grantID, release: make(chan struct{})}
		l.mu.Lock()
		l.held = h
		l.mu.Unlock()
		l.heldCh <- h
		select {
		case <-h.release:
		case <-req.Context().Done():
			// The client's own timeout: in real time, so this only happens on a machine so slow
			// that a held call outlives Lark's request timeout.
			return nil, req.Context().Err()
		}
		if !t.p.alive() {
			return nil, io.ErrUnexpectedEOF
		}
	}
	res := rec.Result()
	res.Request = req
	return res, nil
}

// learn updates the ledger from one answer of the token endpoint and returns the emulator grant
// the call acted on. The caller holds l.serve.
func (l *simLark) learn(tb simTokenBody, answer []byte) string {
	var a simTokenAnswer
	_ = json.Unmarshal(answer, &a)
	l.mu.Lock()
	defer l.mu.Unlock()
	grantID := ""
	switch tb.GrantType {
	case "refresh_token":
		grantID = l.owner[tb.RefreshToken]
		if a.Code == 0 && a.RefreshToken != "" {
			l.spent[tb.RefreshToken] = true
			l.owner[a.RefreshToken] = grantID
		}
	case "authorization_code", larkemu.GrantTypeDeviceCode:
		for _, g := range l.emu.Grants() {
			if !l.knownGrant[g.GrantID] {
				l.knownGrant[g.GrantID] = true
				grantID = g.GrantID
			}
		}
		if a.Code == 0 && a.RefreshToken != "" {
			l.owner[a.RefreshToken] = grantID
		}
	}
	return grantID
}

// takeHeld returns the call being held, if any.
func (l *simLark) takeHeld() *simHeld {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.held
	l.held = nil
	return h
}

func (h *simHeld) String() string {
	return fmt.Sprintf("%s call of process %d (emulator %s)", h.kind, h.proc.id, h.grantID)
}

// takeLost returns the emulator grants whose answers were dropped since the last call.
func (l *simLark) takeLost() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.lost
	l.lost = nil
	return out
}
