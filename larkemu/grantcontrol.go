package larkemu

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Grant statuses reported by Grants.
const (
	GrantActive    = "active"     // can be refreshed (or, without offline_access, its access token still works)
	GrantRevoked   = "revoked"    // revoked by the user or an admin
	GrantExpired   = "expired"    // past the 365-day cap, expired by the control API, or refresh token ran out
	GrantNoRefresh = "no_refresh" // no offline_access and the access token has expired: nothing left
)

// GrantInfo describes a grant for tests; it never includes a token.
type GrantInfo struct {
	GrantID       string     `json:"grant_id"`
	AppID         string     `json:"app_id"`
	UserID        string     `json:"user_id"`
	OpenID        string     `json:"open_id"`
	Scopes        []string   `json:"scopes"`
	Status        string     `json:"status"`
	AuthorizedAt  time.Time  `json:"authorized_at"`
	EndsAt        time.Time  `json:"ends_at"` // authorized_at + the 365-day cap
	RefreshExpiry *time.Time `json:"refresh_expires_at"`
	Refreshes     int        `json:"refreshes"`
	ReuseAttempts int        `json:"reuse_attempts"`
}

// Grants lists every grant, oldest first.
func (s *Server) Grants() []GrantInfo {
	now := s.clk.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]GrantInfo, 0, len(s.grants.order))
	for _, g := range s.grants.order {
		info := GrantInfo{
			GrantID: g.id, AppID: g.appID, UserID: g.userID, OpenID: openIDOf(g.appID, s.identity.users[g.userID]),
			Scopes: slices.Clone(g.scopes), AuthorizedAt: g.authorizedAt, EndsAt: g.authorizedAt.Add(s.opts.GrantMaxAge),
			Refreshes: g.refreshes, ReuseAttempts: g.reuseAttempts,
		}
		if g.refresh != nil {
			exp := g.refresh.expiresAt
			info.RefreshExpiry = &exp
		}
		info.Status = s.grantStatus(g, now)
		out = append(out, info)
	}
	return out
}

// grantStatus summarises a grant. Callers hold s.mu.
func (s *Server) grantStatus(g *grant, now time.Time) string {
	switch {
	case g.revoked || (g.refresh != nil && g.refresh.revoked):
		return GrantRevoked
	case s.grantEnded(g, now):
		return GrantExpired
	case g.refresh != nil && !now.Before(g.refresh.expiresAt):
		return GrantExpired
	case g.refresh == nil && !s.grantHasLiveAccess(g, now):
		return GrantNoRefresh
	}
	return GrantActive
}

func (s *Server) grantHasLiveAccess(g *grant, now time.Time) bool {
	for _, ut := range s.grants.tokens {
		if ut.g == g && ut.kind == accessToken && !ut.revoked && now.Before(ut.expiresAt) {
			return true
		}
	}
	return false
}

// MintRequest asks for a grant as if the user had authorized AuthorizedAgo ago, without going
// through the authorize page, so tests can start close to the 365-day cap.
type MintRequest struct {
	AppID  string
	UserID string   // default: the signed-in user
	Scopes []string // default: auth:user.id:read offline_access
	// AuthorizedAgo back-dates the authorization; the tokens themselves are fresh.
	AuthorizedAgo time.Duration
}

// MintedGrant is a grant created by MintGrant, with its tokens.
type MintedGrant struct {
	GrantID               string    `json:"grant_id"`
	OpenID                string    `json:"open_id"`
	AccessToken           string    `json:"access_token"`
	ExpiresIn             int64     `json:"expires_in"`
	RefreshToken          string    `json:"refresh_token,omitempty"`
	RefreshTokenExpiresIn int64     `json:"refresh_token_expires_in,omitempty"`
	Scope                 string    `json:"scope"`
	AuthorizedAt          time.Time `json:"authorized_at"`
}

// DefaultMintScopes are the scopes of a minted grant unless the request names others.
var DefaultMintScopes = []string{"auth:user.id:read", ScopeOfflineAccess}

// MintGrant creates a grant directly, for tests that need one in a particular state.
func (s *Server) MintGrant(req MintRequest) (MintedGrant, error) {
	if req.AuthorizedAgo < 0 {
		return MintedGrant{}, fmt.Errorf("authorized ago must not be negative")
	}
	scopes := dedupScopes(req.Scopes)
	if len(req.Scopes) == 0 {
		scopes = slices.Clone(DefaultMintScopes)
	}
	now := s.clk.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.apps[req.AppID]; !ok {
		return MintedGrant{}, fmt.Errorf("app %q is not registered", req.AppID)
	}
	if req.UserID == "" {
		req.UserID = s.identity.current
	}
	u, ok := s.identity.users[req.UserID]
	if !ok {
		return MintedGrant{}, fmt.Errorf("user %q is not registered", req.UserID)
	}
	authorizedAt := now.Add(-req.AuthorizedAgo)
	g, pair := s.newGrant(req.AppID, u.UserID, scopes, authorizedAt, now)
	return MintedGrant{
		GrantID: g.id, OpenID: openIDOf(req.AppID, u), AccessToken: pair.access, ExpiresIn: pair.accessExpiresIn,
		RefreshToken: pair.refresh, RefreshTokenExpiresIn: pair.refreshExpIn,
		Scope: strings.Join(pair.scopes, " "), AuthorizedAt: authorizedAt,
	}, nil
}

// GrantSelector picks grants: one by id, or all of an app, optionally of one user.
type GrantSelector struct {
	GrantID string `json:"grant_id,omitempty"`
	AppID   string `json:"app_id,omitempty"`
	UserID  string `json:"user_id,omitempty"`
	// Reason, for RevokeGrants only, is who revoked: RevokeReasonUser (default), ..Administrator,
	// ..Security, ..Restriction or ..Unknown. It becomes revoke_reason in the revocation event.
	Reason string `json:"reason,omitempty"`
}

func (sel GrantSelector) validate() error {
	if (sel.GrantID == "") == (sel.AppID == "") {
		return fmt.Errorf("name either grant_id or app_id (optionally with user_id)")
	}
	if sel.GrantID != "" && sel.UserID != "" {
		return fmt.Errorf("user_id goes with app_id, not grant_id")
	}
	return nil
}

// selectGrants applies fn to the selected grants and returns how many there were. Callers hold s.mu.
func (s *Server) selectGrants(sel GrantSelector, fn func(*grant)) int {
	n := 0
	for _, g := range s.grants.order {
		if sel.GrantID != "" && g.id != sel.GrantID {
			continue
		}
		if sel.AppID != "" && (g.appID != sel.AppID || (sel.UserID != "" && g.userID != sel.UserID)) {
			continue
		}
		fn(g)
		n++
	}
	return n
}

// RevokeGrants revokes grants as a user or admin would: refreshing gives 20064, and their access
// tokens stop working (user_info 20005, messages 99991668). Each grant revoked now (not before)
// sends auth.user_access_token.revoked_v4 to its app's event URL if the app subscribed to it; the
// first delivery attempt is made before RevokeGrants returns. It returns how many grants matched.
func (s *Server) RevokeGrants(sel GrantSelector) (int, error) {
	n, _, err := s.revokeGrants(sel) // revokeevents.go
	return n, err
}

// ExpireGrants ends grants as if the 365-day cap had passed: refreshing gives 20037 and their
// access tokens count as expired (99991677). It returns how many grants matched.
func (s *Server) ExpireGrants(sel GrantSelector) (int, error) {
	if err := sel.validate(); err != nil {
		return 0, err
	}
	if sel.Reason != "" {
		return 0, fmt.Errorf("reason goes with revoke, not expire")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.selectGrants(sel, func(g *grant) { g.forceExpired = true }), nil
}

func (s *Server) ctlListGrants(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, map[string][]GrantInfo{"grants": s.Grants()})
	return nil
}

func (s *Server) ctlMintGrant(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		AppID             string   `json:"app_id"`
		UserID            string   `json:"user_id"`
		Scopes            []string `json:"scopes"`
		AuthorizedDaysAgo float64  `json:"authorized_days_ago"`
	}
	if err := decodeControl(r, &body); err != nil {
		return err
	}
	if body.AuthorizedDaysAgo < 0 || body.AuthorizedDaysAgo > 100*365 {
		return badRequest("authorized_days_ago must be between 0 and 36500")
	}
	m, err := s.MintGrant(MintRequest{
		AppID: body.AppID, UserID: body.UserID, Scopes: body.Scopes,
		AuthorizedAgo: time.Duration(body.AuthorizedDaysAgo * float64(24*time.Hour)),
	})
	if err != nil {
		return badRequest("%v", err)
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}

// maxMintBatch bounds POST /_emulator/grants/batch: enough to seed a million grants in a few
// thousand requests, small enough that one answer stays a few hundred kilobytes.
const maxMintBatch = 1000

// ctlMintGrants mints count grants alike in one request, for benchmarks that seed many grants.
func (s *Server) ctlMintGrants(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		AppID             string   `json:"app_id"`
		UserID            string   `json:"user_id"`
		Scopes            []string `json:"scopes"`
		AuthorizedDaysAgo float64  `json:"authorized_days_ago"`
		Count             int      `json:"count"`
	}
	if err := decodeControl(r, &body); err != nil {
		return err
	}
	if body.AuthorizedDaysAgo < 0 || body.AuthorizedDaysAgo > 100*365 {
		return badRequest("authorized_days_ago must be between 0 and 36500")
	}
	if body.Count < 1 || body.Count > maxMintBatch {
		return badRequest("count must be between 1 and %d", maxMintBatch)
	}
	req := MintRequest{AppID: body.AppID, UserID: body.UserID, Scopes: body.Scopes,
		AuthorizedAgo: time.Duration(body.AuthorizedDaysAgo * float64(24*time.Hour))}
	out := make([]MintedGrant, 0, body.Count)
	for range body.Count {
		m, err := s.MintGrant(req)
		if err != nil {
			return badRequest("%v", err)
		}
		out = append(out, m)
	}
	writeJSON(w, http.StatusOK, map[string]any{"grants": out})
	return nil
}

func (s *Server) ctlRevokeGrants(w http.ResponseWriter, r *http.Request) error {
	return s.ctlRevokeGrantsWithEvents(w, r) // revokeevents.go
}

func (s *Server) ctlExpireGrants(w http.ResponseWriter, r *http.Request) error {
	return s.ctlChangeGrants(w, r, s.ExpireGrants)
}

func (s *Server) ctlChangeGrants(w http.ResponseWriter, r *http.Request, change func(GrantSelector) (int, error)) error {
	var sel GrantSelector
	if err := decodeControl(r, &sel); err != nil {
		return err
	}
	n, err := change(sel)
	if err != nil {
		return badRequest("%v", err)
	}
	if n == 0 {
		return &controlError{http.StatusNotFound, "no grant matched"}
	}
	writeJSON(w, http.StatusOK, map[string]int{"grants": n})
	return nil
}
