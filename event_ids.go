package larksecrets

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/lark-vault/vault-plugin-secrets-lark/clock"
	"github.com/lark-vault/vault-plugin-secrets-lark/lark/larkevent"
)

const (
	// eventIDPrefix remembers the ids of the events acted on: event-ids/<app_id>/<hash of id>.
	eventIDPrefix = "event-ids/"

	// eventMemory is how long an event id is remembered, and eventMaxAge how old an event may be:
	// Lark redelivers for up to larkevent.MaxRedelivery, and the margin absorbs clock skew between
	// Lark and Vault. An event older than eventMaxAge is refused, so forgetting its id afterwards
	// cannot let a replay through; the memory is bounded by the events Lark sent in that time.
	eventMaxAge = larkevent.MaxRedelivery + 10*time.Minute
	eventMemory = eventMaxAge + 10*time.Minute
)

// seenEvents de-duplicates events by id, in storage, so a redelivery or a replay is recognised on
// any node, after restarts, and after the app is deleted and configured again (ids are kept until
// they age out, never dropped with the app). Only events that changed something are remembered: refused events
// never are, so a stranger cannot fill the memory.
type seenEvents struct {
	clock clock.Clock
	locks []*locksutil.LockEntry
}

func newSeenEvents(clk clock.Clock) *seenEvents {
	return &seenEvents{clock: clk, locks: locksutil.CreateLocks()}
}

// eventIDKey hashes the id: ids come from Lark's (authenticated) events, but a hash keeps any
// character out of storage paths and bounds the key's length.
func eventIDKey(appID, eventID string) string {
	sum := sha256.Sum256([]byte(eventID))
	return eventIDPrefix + appID + "/" + hex.EncodeToString(sum[:16])
}

// lock serialises the handling of one event id, so two deliveries arriving together are handled
// once.
func (se *seenEvents) lock(appID, eventID string) func() {
	l := locksutil.LockForKey(se.locks, appID+"/"+eventID)
	l.Lock()
	return l.Unlock
}

func (se *seenEvents) seen(ctx context.Context, s logical.Storage, appID, eventID string) (bool, error) {
	raw, err := s.Get(ctx, eventIDKey(appID, eventID))
	if err != nil || raw == nil {
		return false, err
	}
	var at time.Time
	if err := at.UnmarshalText(raw.Value); err != nil {
		return true, nil // an unreadable record still says the id was seen
	}
	return se.clock.Now().Sub(at) < eventMemory, nil
}

func (se *seenEvents) remember(ctx context.Context, s logical.Storage, appID, eventID string) error {
	at, _ := se.clock.Now().UTC().MarshalText() // a UTC time in range always marshals
	return s.Put(ctx, &logical.StorageEntry{Key: eventIDKey(appID, eventID), Value: at})
}

// prune forgets ids older than eventMemory until deadline; what is left waits for the next sweep.
func (se *seenEvents) prune(ctx context.Context, s logical.Storage, deadline time.Time) (int, error) {
	apps, err := s.List(ctx, eventIDPrefix)
	if err != nil {
		return 0, err
	}
	dropped := 0
	for _, a := range apps {
		prefix := eventIDPrefix + strings.TrimSuffix(a, "/") + "/"
		keys, err := s.List(ctx, prefix)
		if err != nil {
			return dropped, err
		}
		for _, k := range keys {
			if time.Now().After(deadline) {
				return dropped, nil
			}
			raw, err := s.Get(ctx, prefix+k)
			if err != nil {
				return dropped, err
			}
			var at time.Time
			if raw != nil && at.UnmarshalText(raw.Value) == nil && se.clock.Now().Sub(at) < eventMemory {
				continue
			}
			if err := s.Delete(ctx, prefix+k); err != nil {
				return dropped, err
			}
			dropped++
		}
	}
	return dropped, nil
}
