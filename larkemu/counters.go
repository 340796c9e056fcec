package larkemu

import (
	"net/http"
	"time"
)

// CounterMaxRefreshPerSecond is the key under which AppCounters reports the largest number of
// refresh requests of the app that arrived within any one second of wall-clock time.
const CounterMaxRefreshPerSecond = "max_refresh_per_second"

// appStats are the counters of one app. Guarded by Server.mu.
type appStats struct {
	counts map[string]int
	// recentRefreshes holds the arrival times (wall clock) of the app's refresh requests of the
	// last second, oldest first; maxRefreshPerSecond is the most it ever held.
	recentRefreshes     []time.Time
	maxRefreshPerSecond int
}

// noteRefresh records a refresh request arriving at now. Any one-second window holding n requests
// also holds them in the window that ends at its last request, so checking the windows that end at
// each arrival finds the maximum.
func (st *appStats) noteRefresh(now time.Time) {
	drop := 0
	for drop < len(st.recentRefreshes) && now.Sub(st.recentRefreshes[drop]) >= time.Second {
		drop++
	}
	st.recentRefreshes = append(st.recentRefreshes[drop:], now)
	st.maxRefreshPerSecond = max(st.maxRefreshPerSecond, len(st.recentRefreshes))
}

// countFor counts a request globally and, when appID names a registered app, for that app too.
func (s *Server) countFor(endpoint, appID string) {
	now := time.Now()
	s.mu.Lock()
	s.counters[endpoint]++
	s.countAppLocked(endpoint, appID, now)
	s.mu.Unlock()
}

// countAppLocked counts a request of a registered app. Rates use the wall clock (now), not the
// emulator's clock: a rate limit is about real requests per real second. Callers hold s.mu.
func (s *Server) countAppLocked(endpoint, appID string, now time.Time) {
	if _, ok := s.apps[appID]; !ok {
		return // unknown or malformed ids are not kept: a misbehaving client cannot grow the map
	}
	st := s.appStats[appID]
	if st == nil {
		st = &appStats{counts: map[string]int{}}
		s.appStats[appID] = st
	}
	st.counts[endpoint]++
	if endpoint == EndpointRefresh {
		st.noteRefresh(now)
	}
}

// requestAppID names the app a Lark request is made for, as far as the request itself says: the
// app a bearer token was issued to, the authorize page's client_id, the client_id / app_id of a
// token or revoke request (body or HTTP Basic), or the owner of a store app's app_access_token.
// It returns "" when the request names none.
func (s *Server) requestAppID(req *request) string {
	if tok, ok := bearerToken(req.Request); ok {
		s.mu.Lock()
		defer s.mu.Unlock()
		if t, ok := s.tenantTokens[tok]; ok {
			return t.appID
		}
		if ut := s.grants.tokens[tok]; ut != nil {
			return ut.g.appID
		}
		return ""
	}
	if id := req.URL.Query().Get("client_id"); id != "" {
		return id
	}
	if user, _, ok := req.BasicAuth(); ok {
		return user
	}
	p, code := parseOAuthParams(req, true)
	if code != 0 {
		return ""
	}
	if id := p["app_id"]; id != "" {
		return id
	}
	if tok := p["app_access_token"]; tok != "" { // a store app's tenant token request
		id, _ := s.StoreAppTokenApp(tok)
		return id
	}
	return p["client_id"]
}

// Calls reports how many requests reached endpoint since the last Reset, including those answered
// by an injected failure.
func (s *Server) Calls(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counters[endpoint]
}

// Counters returns every counter, zeros included, so callers can compare whole maps.
func (s *Server) Counters() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(counterNames))
	for _, name := range counterNames {
		out[name] = s.counters[name]
	}
	return out
}

// AppCounters returns the counters of one app, zeros included, plus CounterMaxRefreshPerSecond.
// A request counts for an app when the app is registered at that moment and the request names it
// (see the package documentation); injected failures count as for Counters. Tests that share one
// emulator use these instead of the global counters, which other tests' traffic moves too.
func (s *Server) AppCounters(appID string) map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.appStats[appID]
	out := make(map[string]int, len(counterNames)+1)
	for _, name := range counterNames {
		if st != nil {
			out[name] = st.counts[name]
		} else {
			out[name] = 0
		}
	}
	out[CounterMaxRefreshPerSecond] = 0
	if st != nil {
		out[CounterMaxRefreshPerSecond] = st.maxRefreshPerSecond
	}
	return out
}

// ResetAppCounters sets one app's counters, its refresh rate included, back to zero.
func (s *Server) ResetAppCounters(appID string) {
	s.mu.Lock()
	delete(s.appStats, appID)
	s.mu.Unlock()
}

func (s *Server) ctlAppCounters(w http.ResponseWriter, appID string) error {
	if !wellFormedAppID(appID) {
		return badRequest("app_id %q is not well-formed", appID)
	}
	writeJSON(w, http.StatusOK, s.AppCounters(appID))
	return nil
}

func (s *Server) ctlResetAppCounters(w http.ResponseWriter, appID string) error {
	if !wellFormedAppID(appID) {
		return badRequest("app_id %q is not well-formed", appID)
	}
	s.ResetAppCounters(appID)
	writeOK(w)
	return nil
}
