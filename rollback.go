package larksecrets

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
)

// A storage rollback (a Raft snapshot or a backup restored) hands the plugin refresh tokens that Lark
// has already rotated: every grant refreshed since the snapshot was taken holds a spent token, and its
// next refresh ends it. That cannot be undone, but it must be named. A grant that Lark answers
// "already used" for, with no interrupted or lost refresh to explain it, is flagged with
// rolledBackReason (refresh.go); this file collects such grants per app, and once several grants of
// an app show it, the sweep raises one storage-rollback alert to the app's admins listing them.
// docs/operator-guide.md, "Backup and restore", says what a restore costs and what to do.

const (
	rollbackPrefix = "rollback/"
	// levelRollback names the storage-rollback alert among the app-wide notices.
	levelRollback = "storage_rollback"
	// rollbackAlertAt is how many grants of one app must show a rollback before the alert goes out:
	// one grant alone may also be a refresh token imported twice.
	rollbackAlertAt = 2
	// rollbackEpisode: grants flagged this long after the first one start a new episode (and a new
	// alert), so one old restore does not silence the next.
	rollbackEpisode = 7 * 24 * time.Hour
	// rollbackListMax bounds the slots one record keeps; the count goes on.
	rollbackListMax = 200
)

// rollbackRecord is one app's grants found holding spent refresh tokens in the current episode.
type rollbackRecord struct {
	Slots     []string  `json:"slots"`
	Count     int       `json:"count"`
	FirstAt   time.Time `json:"first_at"`
	LastAt    time.Time `json:"last_at"`
	AlertedAt time.Time `json:"alerted_at,omitempty"`
}

// rollbackStore keeps the records, in storage so an alert survives restarts and leader changes.
type rollbackStore struct {
	logger func() hclog.Logger
}

func rollbackKey(appID string) string { return rollbackPrefix + appID }

func (rs *rollbackStore) load(ctx context.Context, s logical.Storage, appID string) (*rollbackRecord, error) {
	raw, err := s.Get(ctx, rollbackKey(appID))
	if err != nil || raw == nil {
		return nil, err
	}
	var rec rollbackRecord
	if err := raw.DecodeJSON(&rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

// record notes that grant id was found holding a refresh token Lark had already rotated. It runs
// under the grant's lock; records of one app may race between grants, so it is best effort: the
// grant itself carries the reason whatever happens here.
func (rs *rollbackStore) record(ctx context.Context, s logical.Storage, id grantID, now time.Time) {
	ctx, cancel := detachedStore(ctx)
	defer cancel()
	rec, err := rs.load(ctx, s, id.App)
	if err == nil && (rec == nil || now.Sub(rec.FirstAt) > rollbackEpisode) {
		rec = &rollbackRecord{FirstAt: now}
	}
	if err == nil {
		if !slices.Contains(rec.Slots, id.Slot) {
			rec.Count++
			if len(rec.Slots) < rollbackListMax {
				rec.Slots = append(rec.Slots, id.Slot)
				sort.Strings(rec.Slots)
			}
		}
		rec.LastAt = now
		err = putJSON(ctx, s, rollbackKey(id.App), rec)
	}
	if err != nil {
		rs.logger().Warn("could not record a grant found after a storage rollback; the grant itself says so", "grant", id.String(), "error", err)
	}
	rs.logger().Error("a grant's stored refresh token was already used at Lark with no interrupted refresh to explain it: Vault's storage was most likely restored from an older snapshot or backup",
		"grant", id.String())
}

// due lists the apps whose records call for an alert not sent yet.
func (rs *rollbackStore) due(ctx context.Context, s logical.Storage) (map[string]*rollbackRecord, error) {
	apps, err := s.List(ctx, rollbackPrefix)
	if err != nil {
		return nil, err
	}
	out := map[string]*rollbackRecord{}
	for _, appID := range apps {
		rec, err := rs.load(ctx, s, appID)
		if err != nil || rec == nil {
			continue
		}
		if rec.Count >= rollbackAlertAt && rec.AlertedAt.IsZero() {
			out[appID] = rec
		}
	}
	return out, nil
}

// markAlerted records that the app's alert went out.
func (rs *rollbackStore) markAlerted(ctx context.Context, s logical.Storage, appID string, now time.Time) error {
	rec, err := rs.load(ctx, s, appID)
	if err != nil || rec == nil {
		return err
	}
	rec.AlertedAt = now
	return putJSON(ctx, s, rollbackKey(appID), rec)
}

// dropApp forgets an app's record with the app.
func (rs *rollbackStore) dropApp(ctx context.Context, s logical.Storage, appID string) error {
	return s.Delete(ctx, rollbackKey(appID))
}

// rollbackSummary is the alert's reason: how many grants, which ones (bounded).
func rollbackSummary(rec *rollbackRecord) string {
	list := strings.Join(rec.Slots, ", ")
	if rec.Count > len(rec.Slots) {
		list += fmt.Sprintf(" and %d more", rec.Count-len(rec.Slots))
	}
	return fmt.Sprintf("%d grants hold refresh tokens Lark had already rotated (slots %s), first seen %s", rec.Count, list, formatTime(rec.FirstAt))
}
