package larkemu

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"time"
)

// App is a Lark app as the emulator knows it: self-built unless AppType says store.
type App struct {
	ID     string `json:"app_id"`
	Secret string `json:"app_secret"`
	// RefreshDisabled turns off the "refresh user_access_token" security switch: refreshes fail with 20074.
	RefreshDisabled bool `json:"refresh_disabled,omitempty"`
	// Scopes, when not empty, are the only scopes the authorize page accepts for this app (others: 20027).
	Scopes []string `json:"scopes,omitempty"`
	// RefreshTokenTTL, when positive, replaces Options.RefreshTokenTTL for this app's grants: every
	// refresh token minted for the app from now on (code exchange, refresh, MintGrant) lives this long,
	// still capped by the grant's 365-day end. On the control API: refresh_token_ttl_seconds.
	RefreshTokenTTL time.Duration `json:"-"`
	// UserTokenTTL, when positive, replaces Options.UserTokenTTL for this app's user access tokens.
	// On the control API: user_token_ttl_seconds.
	UserTokenTTL time.Duration `json:"-"`

	// AppType is AppTypeSelfBuilt (the default; "" means it) or AppTypeStore.
	AppType string `json:"app_type,omitempty"`
	// EventURL is the app's event request URL: where the emulator POSTs app_ticket, app_open,
	// revocation events and URL-verification challenges. Empty: the app receives no events.
	EventURL string `json:"event_url,omitempty"`
	// VerificationToken is put into every event (token / header.token); required with EventURL.
	VerificationToken string `json:"verification_token,omitempty"`
	// EncryptKey, when set, makes every event body {"encrypt":"…"} and adds the X-Lark-* signature
	// headers.
	EncryptKey string `json:"encrypt_key,omitempty"`
	// EventTypes are the events the app subscribed to besides app_ticket (which store apps always
	// get): EventAppOpen (store apps only) and EventUserTokenRevoked.
	EventTypes []string `json:"event_types,omitempty"`
	// Tenants are installed (without an app_open event) when a store app is registered. Listing
	// fewer tenants on a later registration uninstalls none; use UninstallTenant.
	Tenants []string `json:"tenants,omitempty"`
}

// maxAppTokenTTL bounds the per-app lifetimes; anything longer is a typo.
const maxAppTokenTTL = 10 * 365 * 24 * time.Hour

type app struct {
	App
}

// appIDPattern is what Lark treats as a well-formed app id: a malformed one gets 10003 rather than
// "app id not exists". Real ids are cli_ plus 16 hex digits; tests like readable ones, so allow more.
var appIDPattern = regexp.MustCompile(`^cli_[A-Za-z0-9_-]{1,60}$`)

func wellFormedAppID(id string) bool { return appIDPattern.MatchString(id) }

// AddApp registers a self-built app, or replaces the secret of an existing one. Tokens already
// issued to the app stay valid, as they do on Lark when a secret is reset.
func (s *Server) AddApp(appID, appSecret string) error {
	return s.RegisterApp(App{ID: appID, Secret: appSecret})
}

// RegisterApp registers or replaces an app with all its settings.
func (s *Server) RegisterApp(a App) error {
	if !wellFormedAppID(a.ID) {
		return fmt.Errorf("app_id %q is not well-formed (want cli_ followed by letters, digits, '_' or '-')", a.ID)
	}
	if a.Secret == "" {
		return fmt.Errorf("app %s: app_secret is empty", a.ID)
	}
	for _, d := range []struct {
		name string
		ttl  time.Duration
	}{{"refresh token TTL", a.RefreshTokenTTL}, {"user token TTL", a.UserTokenTTL}} {
		if d.ttl < 0 || d.ttl > maxAppTokenTTL {
			return fmt.Errorf("app %s: %s must be between 0 (the server default) and %v, got %v", a.ID, d.name, maxAppTokenTTL, d.ttl)
		}
	}
	a.Scopes = slices.Clone(a.Scopes)
	if err := a.normalizeStoreConfig(); err != nil {
		return err
	}
	now := s.clk.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apps[a.ID] = &app{App: a}
	s.registerStoreLocked(a, now)
	if a.AppType == AppTypeStore {
		s.ensureScheduler()
	}
	return nil
}

// userTokenTTLsLocked returns the lifetimes of the user access and refresh tokens minted for appID:
// the app's own when set, else the server's. Callers hold s.mu.
func (s *Server) userTokenTTLsLocked(appID string) (access, refresh time.Duration) {
	access, refresh = s.opts.UserTokenTTL, s.opts.RefreshTokenTTL
	if a := s.apps[appID]; a != nil {
		if a.UserTokenTTL > 0 {
			access = a.UserTokenTTL
		}
		if a.RefreshTokenTTL > 0 {
			refresh = a.RefreshTokenTTL
		}
	}
	return access, refresh
}

// RemoveApp forgets an app and invalidates its app and tenant tokens. It reports whether the app existed.
func (s *Server) RemoveApp(appID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.apps[appID]; !ok {
		return false
	}
	delete(s.apps, appID)
	delete(s.currentToken, appID)
	s.store.forgetApp(appID)
	for tok, t := range s.tenantTokens {
		if t.appID == appID {
			delete(s.tenantTokens, tok)
		}
	}
	return true
}

// Apps lists the registered apps, sorted by id.
func (s *Server) Apps() []App {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]App, 0, len(s.apps))
	for _, a := range s.apps {
		c := a.App
		c.Scopes = slices.Clone(c.Scopes)
		c.EventTypes = slices.Clone(c.EventTypes)
		c.Tenants = slices.Clone(c.Tenants)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b App) int { return cmp.Compare(a.ID, b.ID) })
	return out
}
