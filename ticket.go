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
// what storage holds (dropped on Invalidate), and a ticket Lark refused is remembered as refused
// so that readers do not present it again.
type ticketStore struct {
	clock  clock.Clock
	logger func() hclog.Logger

	mu      sync.Mutex
	cached  map[string]*ticketEntry // app → entry; a nil value means "none usable"
	resends map[string]time.Time    // app → when Lark was last asked to resend
}

func newTicketStore(clk clock.Clock, logger func() hclog.Logger) *ticketStore {
	return &ticketStore{clock: clk, logger: logger, cached: map[string]*ticketEntry{}, resends: map[string]time.Time{}}
}

func ticketStorageKey(appID string) string { return ticketStoragePrefix + appID }

// get returns the app's usable ticket, or nil.
func (ts *ticketStore) get(ctx context.Context, s logical.Storage, appID string) (*ticketEntry, error) {
	ts.mu.Lock()
	e, ok := ts.cached[appID]
	ts.mu.Unlock()
	if ok {
		return e, nil
	}
	e, err := ts.load(ctx, s, appID)
	if err != nil {
		return nil, err
	}
	ts.mu.Lock()
	ts.cached[appID] = e
	ts.mu.Unlock()
	return e, nil
}

// load reads the stored ticket, bypassing memory.
func (ts *ticketStore) load(ctx context.Context, s logical.Storage, appID string) (*ticketEntry, error) {
	raw, err := s.Get(ctx, ticketStorageKey(appID))
	if err != nil {
		return nil, fmt.Errorf("reading the app_ticket of %s: %w", appID, err)
	}
	if raw == nil {
		return nil, nil
	}
	var e ticketEntry
	if err := raw.DecodeJSON(&e); err != nil {
		return nil, fmt.Errorf("decoding the app_ticket of %s: %w", appID, err)
	}
	if e.Ticket == "" {
		return nil, nil
	}
	return &e, nil
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
	e.Version = ticketEntryVersion
	entry, err := logical.StorageEntryJSON(ticketStorageKey(appID), e)
	if err != nil {
		return false, err
	}
	if err := s.Put(ctx, entry); err != nil {
		return false, fmt.Errorf("storing the app_ticket of %s: %w", appID, err)
	}
	ts.mu.Lock()
	ts.cached[appID] = e
	ts.mu.Unlock()
	return true, nil
}

// rejected forgets a ticket Lark refused: memory remembers there is none usable, and a node that may
// write deletes it from storage unless a newer one arrived meanwhile.
func (ts *ticketStore) rejected(ctx context.Context, s logical.Storage, appID, ticket string, writable bool) {
	ts.mu.Lock()
	if e := ts.cached[appID]; e == nil || e.Ticket == ticket {
		ts.cached[appID] = nil
	}
	ts.mu.Unlock()
	if !writable {
		return
	}
	if stored, err := ts.load(ctx, s, appID); err == nil && stored != nil && stored.Ticket == ticket {
		if err := s.Delete(ctx, ticketStorageKey(appID)); err != nil {
			ts.logger().Warn("could not drop a refused app_ticket from storage", "app_id", appID, "error", err)
		}
	}
}

// forget drops the memory copy after storage changed elsewhere.
func (ts *ticketStore) forget(appID string) {
	ts.mu.Lock()
	delete(ts.cached, appID)
	ts.mu.Unlock()
}

// delete removes the app's ticket, when the app is deleted.
func (ts *ticketStore) delete(ctx context.Context, s logical.Storage, appID string) error {
	if err := s.Delete(ctx, ticketStorageKey(appID)); err != nil {
		return err
	}
	ts.mu.Lock()
	delete(ts.cached, appID)
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
