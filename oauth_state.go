package larksecrets

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/lark-vault/vault-plugin-secrets-lark/clock"
	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
)

const (
	oauthStatePrefix       = "oauth-state/"
	oauthStateEntryVersion = 2
	oauthStateTTL          = 10 * time.Minute
	maxStateParamBytes     = 512
)

var (
	errStateUnknown = errors.New("unknown or already used authorization state")
	errStateExpired = errors.New("expired authorization state")
)

// oauthState is one pending authorization. It is stored under the SHA-256 of the state value, so
// storage never holds the value that redeems it, and deleted on first use.
type oauthState struct {
	Version     int      `json:"version"`
	AppID       string   `json:"app_id"`
	Slot        string   `json:"slot"`
	Verifier    string   `json:"verifier"`
	RedirectURI string   `json:"redirect_uri"`
	Scopes      []string `json:"scopes"`
	// Who started it: only they may complete it through exchange. Their entity when they have one,
	// else their token's accessor (root and `vault token create` tokens have no entity).
	EntityID      string `json:"entity_id,omitempty"`
	TokenAccessor string `json:"token_accessor,omitempty"`
	// Expected is the only Lark user who may complete it; empty only for admin replacements
	// without one.
	Expected       larkIdentity `json:"expected,omitempty"`
	ExpectedOpenID string       `json:"expected_open_id,omitempty"` // version 1 entries
	Replace        bool         `json:"replace,omitempty"`
	CreatedAt      time.Time    `json:"created_at"`
	ExpiresAt      time.Time    `json:"expires_at"`
}

func (st *oauthState) id() grantID { return grantID{st.AppID, st.Slot} }

func (st *oauthState) expected() larkIdentity {
	if !st.Expected.known() && st.ExpectedOpenID != "" {
		return larkIdentity{OpenID: st.ExpectedOpenID}
	}
	return st.Expected
}

// startedBy reports whether req comes from whoever started the authorization.
func (st *oauthState) startedBy(req *logical.Request) bool {
	if st.EntityID != "" {
		return st.EntityID == req.EntityID
	}
	return st.TokenAccessor != "" && st.TokenAccessor == req.ClientTokenAccessor
}

func oauthStateKey(state string) string {
	sum := sha256.Sum256([]byte(state))
	return oauthStatePrefix + hex.EncodeToString(sum[:])
}

// newStateValue returns 256 random bits, URL-safe.
func newStateValue() (string, error) {
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(buf), nil
}

// stateStore owns pending authorizations.
type stateStore struct {
	clock clock.Clock
	// mu makes redeeming a state (read, then delete) one step.
	mu sync.Mutex
}

// pendingAuth describes an authorization to start.
type pendingAuth struct {
	slot          string
	scopes        []string // besides the app's; offline_access is always added
	expected      larkIdentity
	entityID      string
	tokenAccessor string
	replace       bool
	ttl           time.Duration
}

// begin creates a pending authorization and the link the user opens. It is the one place authorize
// links are built: the authorize path and the notices sent to users both come here.
func (ss *stateStore) begin(ctx context.Context, s logical.Storage, sess *appSession, p pendingAuth) (string, *oauthState, error) {
	if sess.app.RedirectURI == "" {
		return "", nil, errNoRedirectURI
	}
	scopes, err := normalizeScopes(sess.app.Scopes, p.scopes, []string{offlineAccessScope})
	if err != nil {
		return "", nil, fmt.Errorf("scopes: %w", err)
	}
	state, err := newStateValue()
	if err != nil {
		return "", nil, err
	}
	verifier, err := lark.NewPKCEVerifier()
	if err != nil {
		return "", nil, err
	}
	link, err := sess.lark.AuthorizeURL(lark.AuthorizeRequest{
		RedirectURI:   sess.app.RedirectURI,
		State:         state,
		CodeChallenge: lark.PKCEChallengeS256(verifier),
		Scopes:        scopes,
	})
	if err != nil {
		return "", nil, err
	}
	now := ss.clock.Now()
	st := &oauthState{
		Version:       oauthStateEntryVersion,
		AppID:         sess.app.AppID,
		Slot:          p.slot,
		Verifier:      verifier,
		RedirectURI:   sess.app.RedirectURI,
		Scopes:        scopes,
		EntityID:      p.entityID,
		TokenAccessor: p.tokenAccessor,
		Expected:      p.expected,
		Replace:       p.replace,
		CreatedAt:     now,
		ExpiresAt:     now.Add(p.ttl),
	}
	entry, err := logical.StorageEntryJSON(oauthStateKey(state), st)
	if err != nil {
		return "", nil, err
	}
	if err := s.Put(ctx, entry); err != nil {
		return "", nil, err
	}
	return link, st, nil
}

var errNoRedirectURI = errors.New("the app has no redirect_uri")

// take loads and deletes a pending authorization in one step under a lock, so a state can be
// redeemed once however many requests race with it. Expired states are deleted and reported as
// expired.
func (ss *stateStore) take(ctx context.Context, s logical.Storage, state string) (*oauthState, error) {
	if state == "" || len(state) > maxStateParamBytes {
		return nil, errStateUnknown
	}
	key := oauthStateKey(state)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	raw, err := s.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("reading authorization state: %w", err)
	}
	if raw == nil {
		return nil, errStateUnknown
	}
	if err := s.Delete(ctx, key); err != nil {
		return nil, fmt.Errorf("consuming authorization state: %w", err)
	}
	var st oauthState
	if err := raw.DecodeJSON(&st); err != nil {
		return nil, fmt.Errorf("decoding authorization state: %w", err)
	}
	if !ss.clock.Now().Before(st.ExpiresAt) {
		return nil, errStateExpired
	}
	return &st, nil
}

// dropExpired deletes authorization states nobody redeemed, until deadline.
func (ss *stateStore) dropExpired(ctx context.Context, s logical.Storage, deadline time.Time) int {
	keys, err := s.List(ctx, oauthStatePrefix)
	if err != nil {
		return 0
	}
	dropped := 0
	now := ss.clock.Now()
	for _, k := range keys {
		if time.Now().After(deadline) {
			break
		}
		raw, err := s.Get(ctx, oauthStatePrefix+k)
		if err != nil || raw == nil {
			continue
		}
		var st oauthState
		if raw.DecodeJSON(&st) != nil || !now.Before(st.ExpiresAt) {
			ss.mu.Lock()
			if s.Delete(ctx, oauthStatePrefix+k) == nil {
				dropped++
			}
			ss.mu.Unlock()
		}
	}
	return dropped
}
