package larksecrets

import (
	"sync"
	"time"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
)

// larkContact is what this node saw of one app's calls to Lark since it started.
type larkContact struct {
	// ReachedAt: Lark answered (a token, or a refusal of its own).
	ReachedAt time.Time
	// SecretAcceptedAt: a token endpoint answered with a token, so Lark accepted the app's
	// credentials.
	SecretAcceptedAt time.Time
	// FailedAt, FailStatus, FailEndpoint: the latest attempt that did not reach Lark (network,
	// timeout, HTTP 5xx, or something that is not Lark answered).
	FailedAt     time.Time
	FailStatus   string
	FailEndpoint string
}

// larkContacts learns every Lark call of every app (the Lark client's Observe hook, through
// sessions). Memory only: a node that has not called Lark yet says "unknown".
type larkContacts struct {
	now   func() time.Time
	mu    sync.Mutex
	byApp map[string]*larkContact
}

func newLarkContacts(now func() time.Time) *larkContacts {
	return &larkContacts{now: now, byApp: map[string]*larkContact{}}
}

// tokenEndpoints are the calls whose success proves Lark accepts the app's credentials.
var tokenEndpoints = map[string]bool{
	lark.EndpointAppAccessToken: true, lark.EndpointTenantAccessToken: true,
	lark.EndpointStoreAppAccessToken: true, lark.EndpointStoreTenantAccessToken: true,
	lark.EndpointOAuthToken: true, lark.EndpointOAuthRefresh: true,
}

func (lc *larkContacts) record(appID string, c lark.Call) {
	now := lc.now()
	lc.mu.Lock()
	defer lc.mu.Unlock()
	ct := lc.byApp[appID]
	if ct == nil {
		ct = &larkContact{}
		lc.byApp[appID] = ct
	}
	switch c.Status {
	case lark.StatusOK:
		ct.ReachedAt = now
		if tokenEndpoints[c.Endpoint] {
			ct.SecretAcceptedAt = now
		}
	case lark.StatusLarkError, lark.StatusRateLimited:
		ct.ReachedAt = now
	default:
		ct.FailedAt, ct.FailStatus, ct.FailEndpoint = now, c.Status, c.Endpoint
	}
}

func (lc *larkContacts) get(appID string) larkContact {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if ct := lc.byApp[appID]; ct != nil {
		return *ct
	}
	return larkContact{}
}

// unreachable: the latest attempt did not reach Lark.
func (c larkContact) unreachable() bool { return !c.FailedAt.IsZero() && c.FailedAt.After(c.ReachedAt) }
