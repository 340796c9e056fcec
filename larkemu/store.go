package larkemu

import (
	"cmp"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"time"
)

// App types (lark-api.md §2, §3). A self-built ("custom") app lives in one tenant and gets its
// tokens from the /internal endpoints; a store (marketplace) app is installed by many tenants and
// needs the app_ticket Lark pushes to it.
const (
	AppTypeSelfBuilt = "self_built"
	AppTypeStore     = "store"
)

// Event types the emulator pushes to an app's event URL (lark-api.md §3, §11).
const (
	EventAppTicket        = "app_ticket"
	EventAppOpen          = "app_open"
	EventUserTokenRevoked = "auth.user_access_token.revoked_v4"
	// EventURLVerification is the challenge Lark sends when a request URL is saved; it needs no
	// subscription.
	EventURLVerification = "url_verification"
)

// subscribable maps each event an app may subscribe to onto the app type it is limited to ("" for
// any). app_ticket needs no subscription: store apps get it automatically, self-built apps never.
// app_open exists for store apps only; the revocation event for both.
var subscribable = map[string]string{
	EventAppTicket:        AppTypeStore,
	EventAppOpen:          AppTypeStore,
	EventUserTokenRevoked: "",
}

// Limits on what the control API accepts, so a typo fails loudly rather than being half-used.
const (
	maxTicketsPerApp   = 1000
	maxEventKeyLen     = 256
	maxTenantsAtCreate = 1000
)

// tenantKeyPattern is what the emulator accepts as a tenant key: Lark's are 16 hex digits, tests like
// readable ones.
var tenantKeyPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// normalizeStoreConfig fills in the app type and checks the event settings of an app before it is
// registered.
func (a *App) normalizeStoreConfig() error {
	switch a.AppType {
	case "":
		a.AppType = AppTypeSelfBuilt
	case AppTypeSelfBuilt, AppTypeStore:
	default:
		return fmt.Errorf("app %s: app_type must be %q or %q, got %q", a.ID, AppTypeSelfBuilt, AppTypeStore, a.AppType)
	}
	if a.EventURL != "" {
		u, err := url.Parse(a.EventURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("app %s: event_url must be an absolute http(s) URL", a.ID)
		}
		if a.VerificationToken == "" {
			// Lark's console always shows a Verification Token; every event carries it.
			return fmt.Errorf("app %s: an event_url needs a verification_token", a.ID)
		}
	}
	if len(a.VerificationToken) > maxEventKeyLen || len(a.EncryptKey) > maxEventKeyLen {
		return fmt.Errorf("app %s: verification_token and encrypt_key are at most %d bytes", a.ID, maxEventKeyLen)
	}
	types := slices.Clone(a.EventTypes)
	slices.Sort(types)
	types = slices.Compact(types)
	for _, et := range types {
		only, ok := subscribable[et]
		if !ok {
			return fmt.Errorf("app %s: unknown event type %q (want %s or %s)", a.ID, et, EventAppOpen, EventUserTokenRevoked)
		}
		if only != "" && only != a.AppType {
			return fmt.Errorf("app %s: %s is for %s apps only", a.ID, et, only)
		}
	}
	a.EventTypes = types
	if len(a.Tenants) > 0 && a.AppType != AppTypeStore {
		return fmt.Errorf("app %s: only store apps are installed by tenants", a.ID)
	}
	if len(a.Tenants) > maxTenantsAtCreate {
		return fmt.Errorf("app %s: at most %d tenants at registration", a.ID, maxTenantsAtCreate)
	}
	for _, tk := range a.Tenants {
		if !tenantKeyPattern.MatchString(tk) {
			return fmt.Errorf("app %s: tenant key %q must be 1-64 letters, digits, '_' or '-'", a.ID, tk)
		}
	}
	a.Tenants = slices.Clone(a.Tenants)
	return nil
}

// subscribed reports whether the app receives events of type et at its event URL.
func (a *App) subscribed(et string) bool {
	if a.EventURL == "" {
		return false
	}
	switch et {
	case EventAppTicket:
		return a.AppType == AppTypeStore
	case EventURLVerification:
		return true
	}
	return slices.Contains(a.EventTypes, et)
}

// storeState is what Lark keeps for store apps: tickets, installations and the tokens issued from
// them. It lives beside the apps map, so re-registering an app (to change its event settings)
// keeps its tenants and tickets. Guarded by Server.mu.
type storeState struct {
	tickets    map[string][]*appTicket // app_id → tickets, oldest first
	nextTicket map[string]time.Time    // app_id → when the scheduler pushes the next ticket
	installs   map[string]map[string]*install
	// appTokens holds every unexpired store app_access_token ("a-…"); currentApp the one handed
	// out now per app; currentTenant the tenant token handed out now per (app, tenant). Tenant
	// tokens themselves live in Server.tenantTokens beside the self-built apps' ones, so every
	// business endpoint accepts them.
	appTokens     map[string]*appToken
	currentApp    map[string]*appToken
	currentTenant map[[2]string]*appToken
}

type appTicket struct {
	value     string
	issuedAt  time.Time
	expiresAt time.Time
}

type install struct {
	installedAt time.Time
	// calls counts tenant_access_token requests for this tenant with a valid app token.
	calls int
	// issued counts the distinct tenant tokens minted for this tenant.
	issued int
}

func (st *storeState) init() {
	st.tickets = make(map[string][]*appTicket)
	st.nextTicket = make(map[string]time.Time)
	st.installs = make(map[string]map[string]*install)
	st.resetTokens()
}

// resetTokens forgets tickets and tokens; installations and the ticket schedule stay, as they are
// configuration rather than history.
func (st *storeState) resetTokens() {
	st.tickets = make(map[string][]*appTicket)
	st.appTokens = make(map[string]*appToken)
	st.currentApp = make(map[string]*appToken)
	st.currentTenant = make(map[[2]string]*appToken)
	for _, tenants := range st.installs {
		for _, in := range tenants {
			in.calls, in.issued = 0, 0
		}
	}
}

// forgetApp drops everything Lark knew about a removed app.
func (st *storeState) forgetApp(appID string) {
	delete(st.tickets, appID)
	delete(st.nextTicket, appID)
	delete(st.installs, appID)
	delete(st.currentApp, appID)
	for tok, t := range st.appTokens {
		if t.appID == appID {
			delete(st.appTokens, tok)
		}
	}
	for k := range st.currentTenant {
		if k[0] == appID {
			delete(st.currentTenant, k)
		}
	}
}

// registerStoreLocked applies the store side of a (re-)registration: tenants listed with the app are
// installed without an app_open event, and the ticket schedule starts one interval from now.
// Callers hold s.mu.
func (s *Server) registerStoreLocked(a App, now time.Time) {
	if a.AppType != AppTypeStore {
		return
	}
	for _, tk := range a.Tenants {
		s.installLocked(a.ID, tk, now)
	}
	if _, ok := s.store.nextTicket[a.ID]; !ok {
		s.store.nextTicket[a.ID] = now.Add(s.opts.TicketInterval)
	}
}

// installLocked records an installation and reports whether it is new. Callers hold s.mu.
func (s *Server) installLocked(appID, tenantKey string, now time.Time) bool {
	tenants := s.store.installs[appID]
	if tenants == nil {
		tenants = make(map[string]*install)
		s.store.installs[appID] = tenants
	}
	if _, ok := tenants[tenantKey]; ok {
		return false
	}
	tenants[tenantKey] = &install{installedAt: now}
	return true
}

// mintTicketLocked issues a fresh app_ticket. Older tickets stay valid until their own expiry
// (Options.TicketTTL), so a receiver that is slow to store the new one is not cut off.
// Callers hold s.mu.
func (s *Server) mintTicketLocked(appID string, now time.Time) *appTicket {
	live := s.store.tickets[appID][:0:0]
	for _, t := range s.store.tickets[appID] {
		if now.Before(t.expiresAt) {
			live = append(live, t)
		}
	}
	if len(live) >= maxTicketsPerApp {
		live = live[len(live)-maxTicketsPerApp+1:]
	}
	t := &appTicket{value: randomHex(16), issuedAt: now, expiresAt: now.Add(s.opts.TicketTTL)}
	s.store.tickets[appID] = append(live, t)
	return t
}

// ticketValidLocked reports whether ticket is an unexpired ticket pushed to appID. Callers hold s.mu.
func (s *Server) ticketValidLocked(appID, ticket string, now time.Time) bool {
	for _, t := range s.store.tickets[appID] {
		if t.value == ticket && now.Before(t.expiresAt) {
			return true
		}
	}
	return false
}

// TicketInfo is an app_ticket as the control API shows it.
type TicketInfo struct {
	Ticket    string    `json:"ticket"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Valid     bool      `json:"valid"`
}

// Tickets lists the tickets pushed to a store app, oldest first; expired ones stay listed (Valid
// false) until the next ticket is minted.
func (s *Server) Tickets(appID string) []TicketInfo {
	now := s.clk.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []TicketInfo{}
	for _, t := range s.store.tickets[appID] {
		out = append(out, TicketInfo{Ticket: t.value, IssuedAt: t.issuedAt, ExpiresAt: t.expiresAt, Valid: now.Before(t.expiresAt)})
	}
	return out
}

// TenantInfo is one installation of a store app.
type TenantInfo struct {
	TenantKey   string    `json:"tenant_key"`
	InstalledAt time.Time `json:"installed_at"`
	// TenantAccessTokenCalls counts POST /open-apis/auth/v3/tenant_access_token requests for this
	// tenant that carried a valid app token (since the last Reset).
	TenantAccessTokenCalls int `json:"tenant_access_token_calls"`
	// TokensIssued counts the distinct tenant tokens minted for this tenant.
	TokensIssued int `json:"tokens_issued"`
}

// Tenants lists the tenants that installed a store app, by tenant key.
func (s *Server) Tenants(appID string) []TenantInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []TenantInfo{}
	for tk, in := range s.store.installs[appID] {
		out = append(out, TenantInfo{TenantKey: tk, InstalledAt: in.installedAt, TenantAccessTokenCalls: in.calls, TokensIssued: in.issued})
	}
	slices.SortFunc(out, func(a, b TenantInfo) int { return cmp.Compare(a.TenantKey, b.TenantKey) })
	return out
}

// InstallRequest installs a store app in a tenant, as a tenant admin does from the app directory.
type InstallRequest struct {
	AppID     string
	TenantKey string
	// InstallerUserID is the emulator user named as installer in the app_open event (default: the
	// signed-in user).
	InstallerUserID string
	// Silent installs without the app_open event.
	Silent bool
}

// InstallTenant installs a store app in a tenant. A new installation sends app_open to the app's
// event URL when the app subscribed to it (unless Silent); the first delivery attempt is made
// before InstallTenant returns, retries follow in the background. It reports whether the
// installation is new and the delivery, if any.
func (s *Server) InstallTenant(req InstallRequest) (bool, *EventDelivery, error) {
	if !tenantKeyPattern.MatchString(req.TenantKey) {
		return false, nil, fmt.Errorf("tenant_key %q must be 1-64 letters, digits, '_' or '-'", req.TenantKey)
	}
	now := s.clk.Now()
	s.mu.Lock()
	a, ok := s.apps[req.AppID]
	if !ok {
		s.mu.Unlock()
		return false, nil, fmt.Errorf("app %q is not registered", req.AppID)
	}
	if a.AppType != AppTypeStore {
		s.mu.Unlock()
		return false, nil, fmt.Errorf("app %s is %s: only store apps are installed by tenants", a.ID, a.AppType)
	}
	installer := req.InstallerUserID
	if installer == "" {
		installer = s.identity.current
	}
	u, ok := s.identity.users[installer]
	if !ok {
		s.mu.Unlock()
		return false, nil, fmt.Errorf("user %q is not registered", installer)
	}
	isNew := s.installLocked(a.ID, req.TenantKey, now)
	var rec *eventRecord
	if isNew && !req.Silent && a.subscribed(EventAppOpen) {
		rec = s.newLarkEventLocked(&a.App, EventAppOpen, appOpenPayload(&a.App, req.TenantKey, openIDOf(a.ID, u), now), now)
	}
	s.mu.Unlock()
	if rec == nil {
		return isNew, nil, nil
	}
	d := s.deliverNow(rec)
	return isNew, &d, nil
}

// UninstallTenant removes a store app from a tenant: its tenant tokens stop working and new ones
// are refused until the tenant installs the app again. It reports whether the app was installed.
func (s *Server) UninstallTenant(appID, tenantKey string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	tenants := s.store.installs[appID]
	if _, ok := tenants[tenantKey]; !ok {
		return false
	}
	delete(tenants, tenantKey)
	delete(s.store.currentTenant, [2]string{appID, tenantKey})
	for tok, t := range s.tenantTokens {
		if t.appID == appID && t.tenantKey == tenantKey {
			delete(s.tenantTokens, tok)
		}
	}
	return true
}

// PushAppTicket mints a new app_ticket for a store app and pushes it to the app's event URL at
// once, as a resend would, but without credentials and with the first attempt made before it
// returns. The delivery is nil when the app has no event URL.
func (s *Server) PushAppTicket(appID string) (TicketInfo, *EventDelivery, error) {
	now := s.clk.Now()
	s.mu.Lock()
	a, ok := s.apps[appID]
	if !ok || a.AppType != AppTypeStore {
		s.mu.Unlock()
		return TicketInfo{}, nil, fmt.Errorf("app %q is not a registered store app", appID)
	}
	t := s.mintTicketLocked(appID, now)
	rec := s.ticketEventLocked(&a.App, t, now)
	s.mu.Unlock()
	info := TicketInfo{Ticket: t.value, IssuedAt: t.issuedAt, ExpiresAt: t.expiresAt, Valid: true}
	if rec == nil {
		return info, nil, nil
	}
	d := s.deliverNow(rec)
	return info, &d, nil
}

// ticketEventLocked builds the app_ticket event for t, or returns nil when the app has nowhere to
// receive it. Callers hold s.mu.
func (s *Server) ticketEventLocked(a *App, t *appTicket, now time.Time) *eventRecord {
	if !a.subscribed(EventAppTicket) {
		return nil
	}
	return s.newLarkEventLocked(a, EventAppTicket, appTicketPayload(a, t.value, now), now)
}

// scheduledTicketsLocked mints the tickets that are due and returns their deliveries. After a long
// pause (or a big clock jump) an app gets one push, not one per missed hour, and the next push is
// an interval later. Callers hold s.mu.
func (s *Server) scheduledTicketsLocked(now time.Time) []*eventRecord {
	var out []*eventRecord
	for appID, next := range s.store.nextTicket {
		a, ok := s.apps[appID]
		if !ok || a.AppType != AppTypeStore || now.Before(next) {
			continue
		}
		s.store.nextTicket[appID] = now.Add(s.opts.TicketInterval)
		if !a.subscribed(EventAppTicket) {
			continue // Lark has nowhere to push; the ticket would be lost anyway
		}
		t := s.mintTicketLocked(appID, now)
		if rec := s.ticketEventLocked(&a.App, t, now); rec != nil {
			out = append(out, rec)
		}
	}
	return out
}
