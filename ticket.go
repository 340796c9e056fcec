package larksecrets

import (
	"context"
	"fmt"
	"sync"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/lark-vault/vault-plugin-secrets-lark/clock"
	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
)

const (
	// ticketStoragePrefix holds one entry per store app: the newest app_ticket Lark pushed (or an
	// operator forwarded). A ticket is a credential: with the app secret it yields the app token,
	// so the prefix is seal-wrapped like the secret.
	ticketStoragePrefix = "tickets/"
	ticketEntryVersion  = 1

	// resendInterval is how often at most the plugin asks Lark to push the app_ticket again. Lark
	// pushes at once; asking more often only multiplies pushes while one is on its way.
	resendInterval = time.Minute

	ticketSourceEvent = "event"
	ticketSourceWrite = "write"
)

// ticketEntry is the app_ticket a store app's app token is made from (docs/lark-api.md §3).
type ticketEntry struct {
	Version int    `json:"version"`
	Ticket  string `json:"ticket"`
	// IssuedAt orders tickets: the event's creation time (or the time of an operator's write), so
	// a redelivered older event cannot replace a newer ticket.
	IssuedAt   time.Time `json:"issued_at"`
	ReceivedAt time.Time `json:"received_at"`
	Source     string    `json:"source"`
	EventID    string    `json:"event_id,omitempty"`
}

// ticketStore owns the store apps' app_tickets and the pacing of resend requests. Memory holds
// what storage holds (cachedStore: dropped on Invalidate, a read that raced a write is not kept),
// and a ticket Lark refused is remembered as refused so that readers do not present it again.
type ticketStore struct {
	clock  clock.Clock
	logger func() hclog.Logger

	mem cachedStore[ticketEntry, ticketLayout] // app → entry; a nil entry means "none usable"

	mu      sync.Mutex
	resends map[string]time.Time // app → when Lark was last asked to resend
}

type ticketLayout struct{}

var ticketSpec = &storeSpec[ticketEntry]{
	prefix:    ticketStoragePrefix,
	what:      func(appID string) string { return "the app_ticket of " + appID },
	version:   ticketEntryVersion,
	versionOf: func(e *ticketEntry) *int { return &e.Version },
	finish: func(e *ticketEntry) *ticketEntry {
		if e == nil || e.Ticket == "" {
			return nil
		}
		return e
	},
	keepAbsent: true,
}

func (ticketLayout) spec() *storeSpec[ticketEntry] { return ticketSpec }

func newTicketStore(clk clock.Clock, logger func() hclog.Logger) *ticketStore {
	return &ticketStore{clock: clk, logger: logger, resends: map[string]time.Time{}}
}

func ticketStorageKey(appID string) string { return ticketStoragePrefix + appID }

// get returns the app's usable ticket, or nil.
func (ts *ticketStore) get(ctx context.Context, s logical.Storage, appID string) (*ticketEntry, error) {
	return ts.mem.get(ctx, s, appID)
}

// load reads the stored ticket, bypassing memory.
func (ts *ticketStore) load(ctx context.Context, s logical.Storage, appID string) (*ticketEntry, error) {
	return ts.mem.load(ctx, s, appID)
}

// offer stores a ticket unless the one held was issued later (an older event delivered late). It
// reports whether the ticket was stored.
func (ts *ticketStore) offer(ctx context.Context, s logical.Storage, appID string, e *ticketEntry) (bool, error) {
	current, err := ts.load(ctx, s, appID)
	if err != nil {
		return false, err
	}
	if current != nil && e.Source == ticketSourceEvent && current.IssuedAt.After(e.IssuedAt) {
		return false, nil
	}
	if err := ts.mem.put(ctx, s, appID, e); err != nil {
		return false, err
	}
	return true, nil
}

// rejected forgets a ticket Lark refused: memory remembers there is none usable, and a node that may
// write deletes it from storage unless a newer one arrived meanwhile.
func (ts *ticketStore) rejected(ctx context.Context, s logical.Storage, appID, ticket string, writable bool) {
	ts.mem.swap(appID, func(cur *ticketEntry, _ bool) (*ticketEntry, bool) {
		return nil, cur == nil || cur.Ticket == ticket
	})
	if !writable {
		return
	}
	if stored, err := ts.load(ctx, s, appID); err == nil && stored != nil && stored.Ticket == ticket {
		if err := ts.mem.delete(ctx, s, appID); err != nil {
			ts.logger().Warn("could not drop a refused app_ticket from storage", "app_id", appID, "error", err)
		}
	}
}

// invalidate drops the memory copy after storage changed elsewhere.
func (ts *ticketStore) invalidate(appID string) { ts.mem.invalidate(appID) }

// delete removes the app's ticket, when the app is deleted.
func (ts *ticketStore) delete(ctx context.Context, s logical.Storage, appID string) error {
	if err := ts.mem.delete(ctx, s, appID); err != nil {
		return err
	}
	ts.mem.invalidate(appID) // the app is gone: nothing to remember about it
	ts.mu.Lock()
	delete(ts.resends, appID)
	ts.mu.Unlock()
	return nil
}

// claimResend decides whether Lark may be asked to resend now: at most once per resendInterval per
// app. It returns when Lark was (or is now being) asked.
func (ts *ticketStore) claimResend(appID string) (time.Time, bool) {
	now := ts.clock.Now()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if last, ok := ts.resends[appID]; ok && now.Sub(last) < resendInterval {
		return last, false
	}
	ts.resends[appID] = now
	return now, true
}

// awaitTicket asks Lark to push the app_ticket again (paced by claimResend) and returns the error
// a reader gets meanwhile. Lark saying the app is not a store app is the app's setup, not a wait:
// that Lark error is returned as it is.
func (ts *ticketStore) awaitTicket(ctx context.Context, sess *appSession, why string) error {
	appID := sess.app.AppID
	askedAt, ask := ts.claimResend(appID)
	wait := &awaitTicketError{appID: appID, why: why, askedAt: askedAt}
	if !ask {
		return wait
	}
	if err := sess.lark.ResendAppTicket(ctx); err != nil {
		if meaningOf(err) == lark.MeaningAppSetup {
			return err
		}
		ts.logger().Warn("asking Lark to resend the app_ticket failed", "app_id", appID, "error", err)
		wait.resendErr = err
		return wait
	}
	ts.logger().Info("asked Lark to resend the app_ticket", "app_id", appID, "why", why)
	return wait
}

// awaitTicketError: a store app has no app_ticket Lark accepts, and Lark was asked to push one. The
// reader should come back in a few seconds; nothing is wrong with its request.
type awaitTicketError struct {
	appID     string
	why       string
	askedAt   time.Time
	resendErr error
}

func (e *awaitTicketError) Error() string {
	if e.resendErr != nil {
		return fmt.Sprintf("waiting for Lark's app_ticket for store app %s (%s); asking Lark to resend it failed: %v", e.appID, e.why, e.resendErr)
	}
	return fmt.Sprintf("waiting for Lark's app_ticket for store app %s (%s); Lark was asked to resend it at %s, read again in a few seconds",
		e.appID, e.why, formatTime(e.askedAt))
}
