package larksecrets

import (
	"time"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
)

// This file holds the notices the notifier (notify.go) queues and sends, as they are stored; the
// cards and texts made of them are in notify_card.go.

const (
	noticePrefix = "notify/"

	// levelAppSetup names the notice about an app whose setup Lark refuses.
	levelAppSetup = "app_setup"
	// appNoticeSlot stands in for the slot of an app-wide notice; no slot can have this name.
	appNoticeSlot = "-app-"
)

// noticeLevel maps a grant level to the notice sent for it: warning, critical, and one "expired"
// notice whether the grant ran out or was revoked.
func noticeLevel(level string) string {
	if level == levelReauthRequired {
		return levelExpired
	}
	return level
}

// notice is a queued message about one grant reaching one level (or one app's setup failing). The
// queue lives in storage, so a notice survives restarts and leader changes until it is sent.
type notice struct {
	AppID     string          `json:"app_id"`
	Slot      string          `json:"slot"`
	Level     string          `json:"level"`
	Deadline  time.Time       `json:"deadline"`
	Reason    string          `json:"reason"`
	QueuedAt  time.Time       `json:"queued_at"`
	Attempts  int             `json:"attempts"`
	LastError string          `json:"last_error,omitempty"`
	SentTo    map[string]bool `json:"sent_to,omitempty"`
	// Failing is why a grant's refreshes fail when that is what brings its end closer.
	Failing lark.Meaning `json:"failing,omitempty"`
	// Rollback is what a storage-rollback alert is about, so that it can be told in the reader's
	// language; a notice queued before it existed has only Reason.
	Rollback *rollbackFacts `json:"rollback,omitempty"`
}

// rollbackFacts are the grants a storage-rollback alert names (rollback.go).
type rollbackFacts struct {
	Count   int       `json:"count"`
	Slots   []string  `json:"slots"`
	FirstAt time.Time `json:"first_at"`
}

func noticeKey(appID, slot, level string) string {
	return noticePrefix + appID + "/" + slot + "/" + level
}
