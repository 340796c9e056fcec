package larkemu

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// ScopeOfflineAccess is the scope without which Lark issues no refresh token.
const ScopeOfflineAccess = "offline_access"

// grantState holds the user side of OAuth: codes, grants and the tokens minted from them. Guarded
// by Server.mu.
type grantState struct {
	codes   map[string]*authCode
	grants  map[string]*grant
	order   []*grant // creation order, for listings
	tokens  map[string]*userToken
	consent map[[2]string][]string // (app_id, user_id) → every scope the user ever granted the app
	// devices and userCodes index the device authorizations (device.go) by each of their codes.
	devices   map[string]*deviceAuth
	userCodes map[string]*deviceAuth
	deviceSeq uint64
	seq       int
}

func (st *grantState) init() {
	st.codes = make(map[string]*authCode)
	st.grants = make(map[string]*grant)
	st.order = nil
	st.tokens = make(map[string]*userToken)
	st.consent = make(map[[2]string][]string)
	st.devices = make(map[string]*deviceAuth)
	st.userCodes = make(map[string]*deviceAuth)
}

// authCode is an authorization code, bound to everything the token request must repeat.
type authCode struct {
	appID, userID string
	redirectURI   string
	scopes        []string
	challenge     string
	method        string // "S256" or "plain"
	issuedAt      time.Time
	expiresAt     time.Time
	used          bool
}

// grant is one user authorization and the chain of tokens refreshed from it. The 365-day cap
// counts from authorizedAt, however often the chain rotates.
type grant struct {
	id            string
	appID, userID string
	scopes        []string
	authorizedAt  time.Time
	revoked       bool // by user or admin: refresh → 20064
	forceExpired  bool // by the control API: refresh → 20037
	v1            bool // started at an authen v1 endpoint: u-/ur- tokens, refreshed only there
	refresh       *userToken
	refreshes     int
	reuseAttempts int
}

type tokenKind int

const (
	accessToken tokenKind = iota
	refreshToken
)

type userToken struct {
	kind      tokenKind
	g         *grant
	scopes    []string
	expiresAt time.Time
	used      bool // a refresh token that has been exchanged
	revoked   bool
}

// tokenPair is what a successful code exchange or refresh hands out.
type tokenPair struct {
	access, refresh               string
	accessExpiresIn, refreshExpIn int64
	scopes                        []string
}

// newJWT makes a token shaped like Lark's v2/v3 tokens (three base64url parts, ES256 header) so
// clients are tested against realistic lengths and characters. Nothing ever verifies the signature.
func newJWT(kind, appID string, exp time.Time) string {
	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"alg":"ES256","kid":"larkemu","typ":"JWT"}`))
	claims, _ := json.Marshal(map[string]any{"iss": "larkemu", "typ": kind, "app_id": appID, "exp": exp.Unix(), "jti": randomHex(16)})
	sig := make([]byte, 64)
	_, _ = rand.Read(sig)
	return header + "." + enc.EncodeToString(claims) + "." + enc.EncodeToString(sig)
}

// newGrant starts a grant and mints its first tokens. Callers hold s.mu.
func (s *Server) newGrant(appID, userID string, scopes []string, authorizedAt, now time.Time) (*grant, tokenPair) {
	s.grants.seq++
	g := &grant{
		id: fmt.Sprintf("grant-%d", s.grants.seq), appID: appID, userID: userID,
		scopes: slices.Clone(scopes), authorizedAt: authorizedAt,
	}
	s.grants.grants[g.id] = g
	s.grants.order = append(s.grants.order, g)
	return g, s.mintPair(g, scopes, now)
}

// mintPair issues an access token with scopes and, if the grant includes offline_access, a new
// refresh token that carries the grant's full scopes. Lifetimes are the app's own if it has them.
// Callers hold s.mu.
func (s *Server) mintPair(g *grant, scopes []string, now time.Time) tokenPair {
	p := tokenPair{scopes: slices.Clone(scopes)}
	accessTTL, refreshTTL := s.userTokenTTLsLocked(g.appID)
	accessExp := now.Add(accessTTL)
	p.access = newJWT("access", g.appID, accessExp)
	p.accessExpiresIn = remainingSeconds(accessExp, now)
	s.grants.tokens[p.access] = &userToken{kind: accessToken, g: g, scopes: p.scopes, expiresAt: accessExp}
	g.refresh = nil
	if slices.Contains(g.scopes, ScopeOfflineAccess) {
		// Lark ends every grant GrantMaxAge after authorization, so no refresh token outlives that.
		refreshExp := minTime(now.Add(refreshTTL), g.authorizedAt.Add(s.opts.GrantMaxAge))
		p.refresh = newJWT("refresh", g.appID, refreshExp)
		p.refreshExpIn = remainingSeconds(refreshExp, now)
		rt := &userToken{kind: refreshToken, g: g, scopes: slices.Clone(g.scopes), expiresAt: refreshExp}
		s.grants.tokens[p.refresh] = rt
		g.refresh = rt
	}
	return p
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// grantEnded reports whether the grant can no longer be refreshed because of its age or the control API.
func (s *Server) grantEnded(g *grant, now time.Time) bool {
	return g.forceExpired || !now.Before(g.authorizedAt.Add(s.opts.GrantMaxAge))
}

// narrowScopes applies the optional scope parameter of a token request: a subset of what was
// granted, without duplicates. It returns the effective scopes or an OAuth error code.
func narrowScopes(requested string, granted []string) ([]string, int) {
	want := splitScopes(requested)
	if len(want) == 0 {
		return slices.Clone(granted), 0
	}
	seen := make(map[string]bool, len(want))
	for _, sc := range want {
		if seen[sc] {
			return nil, oauthDuplicateScope
		}
		seen[sc] = true
	}
	for _, sc := range want {
		if !slices.Contains(granted, sc) {
			return nil, oauthScopeNotAllowed
		}
	}
	return want, 0
}

// pruneCodes forgets codes long past expiry; they are kept a day so a replay still gets "used" or
// "expired" rather than "not found". User tokens are never pruned: Lark's are self-describing JWTs,
// so an old refresh token is always recognised as expired (20037), never as unknown (20026).
// Callers hold s.mu.
func (s *Server) pruneCodes(now time.Time) {
	for c, ac := range s.grants.codes {
		if now.After(ac.expiresAt.Add(24 * time.Hour)) {
			delete(s.grants.codes, c)
		}
	}
}
