package larksecrets

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

const (
	oauthStatePrefix       = "oauth-state/"
	oauthStateEntryVersion = 1
	oauthStateTTL          = 10 * time.Minute
	maxStateParamBytes     = 512
)

// oauthState is one pending authorization. It is stored under the SHA-256 of the state value, so
// storage never holds the value that redeems it, and deleted on first use.
type oauthState struct {
	Version        int       `json:"version"`
	AppID          string    `json:"app_id"`
	Slot           string    `json:"slot"`
	Verifier       string    `json:"verifier"`
	RedirectURI    string    `json:"redirect_uri"`
	Scopes         []string  `json:"scopes"`
	EntityID       string    `json:"entity_id,omitempty"`
	ExpectedOpenID string    `json:"expected_open_id,omitempty"`
	Replace        bool      `json:"replace,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	ExpiresAt      time.Time `json:"expires_at"`
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

func (b *backend) putOAuthState(ctx context.Context, s logical.Storage, state string, st *oauthState) error {
	st.Version = oauthStateEntryVersion
	entry, err := logical.StorageEntryJSON(oauthStateKey(state), st)
	if err != nil {
		return err
	}
	return s.Put(ctx, entry)
}

// takeOAuthState loads and deletes a pending authorization in one step under a lock, so a state can
// be redeemed once however many requests race with it. Expired states are deleted and reported as
// expired.
func (b *backend) takeOAuthState(ctx context.Context, s logical.Storage, state string) (*oauthState, error) {
	if state == "" || len(state) > maxStateParamBytes {
		return nil, errStateUnknown
	}
	key := oauthStateKey(state)
	b.stateMu.Lock()
	defer b.stateMu.Unlock()
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
	if !b.clock.Now().Before(st.ExpiresAt) {
		return nil, errStateExpired
	}
	return &st, nil
}
