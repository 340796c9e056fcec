package larkemu

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"regexp"
	"slices"
)

// User is a person who can sign in on the authorize page.
type User struct {
	// UserID is the tenant-scoped id (Lark's user_id) and the emulator's key for the user.
	UserID string `json:"user_id"`
	Name   string `json:"name"`
	EnName string `json:"en_name"`
	Email  string `json:"email"`
	// OpenID, when set, is the user's open_id in every app. Left empty, each app sees its own
	// derived "ou_…" id, as on Lark where open_id differs per app.
	OpenID string `json:"open_id,omitempty"`
	// UnionID, when set, replaces the derived "on_…" id, which is the same for all apps (one developer).
	UnionID string `json:"union_id,omitempty"`
	// TenantKey is the organisation the user belongs to; empty means the emulator's own tenant
	// (Options.TenantKey). A store app reaches the user only with that tenant's tenant token.
	TenantKey string `json:"tenant_key,omitempty"`
}

// AuthorizeMode decides what the authorize page does with the signed-in user.
type AuthorizeMode string

const (
	// AuthorizeApprove consents at once and redirects with a code.
	AuthorizeApprove AuthorizeMode = "approve"
	// AuthorizeDeny redirects with error=access_denied, as when the user clicks "Cancel".
	AuthorizeDeny AuthorizeMode = "deny"
)

// DefaultUserID is the user signed in on the authorize page until AddUser names another.
const DefaultUserID = "emulator_user"

var userIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.@-]{1,64}$`)

// identityState is who is signed in on the emulator's "browser". Guarded by Server.mu.
type identityState struct {
	users   map[string]User
	current string
	mode    AuthorizeMode
}

func (st *identityState) init() {
	st.users = map[string]User{DefaultUserID: {
		UserID: DefaultUserID, Name: "Emulator User", EnName: "Emulator User", Email: "emulator_user@example.com",
	}}
	st.current = DefaultUserID
	st.mode = AuthorizeApprove
}

// AddUser registers or replaces a user and signs them in: the authorize page approves as this user
// from now on. Unset names are filled from the user id.
func (s *Server) AddUser(u User) error {
	return s.RegisterUser(u, true)
}

// RegisterUser registers or replaces a user and, with signIn, signs them in. Without it the signed-in
// user stays, so a test can create users (for minted grants or message recipients) without changing
// whom the authorize page approves as for tests running beside it.
func (s *Server) RegisterUser(u User, signIn bool) error {
	if !userIDPattern.MatchString(u.UserID) {
		return fmt.Errorf("user_id %q must be 1-64 letters, digits or _.@-", u.UserID)
	}
	if u.Name == "" {
		u.Name = u.UserID
	}
	if u.EnName == "" {
		u.EnName = u.Name
	}
	if u.TenantKey != "" && !tenantKeyPattern.MatchString(u.TenantKey) {
		return fmt.Errorf("tenant_key %q must be 1-64 letters, digits or _-", u.TenantKey)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.identity.users[u.UserID] = u
	if signIn {
		s.identity.current = u.UserID
	}
	return nil
}

// Users lists the known users, sorted by user id.
func (s *Server) Users() []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]User, 0, len(s.identity.users))
	for _, u := range s.identity.users {
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b User) int { return cmp.Compare(a.UserID, b.UserID) })
	return out
}

// CurrentUser is the user the authorize page approves as.
func (s *Server) CurrentUser() User {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.identity.users[s.identity.current]
}

// SetAuthorizeMode makes the authorize page approve or deny.
func (s *Server) SetAuthorizeMode(m AuthorizeMode) error {
	if m != AuthorizeApprove && m != AuthorizeDeny {
		return fmt.Errorf("authorize mode must be %q or %q, got %q", AuthorizeApprove, AuthorizeDeny, m)
	}
	s.mu.Lock()
	s.identity.mode = m
	s.mu.Unlock()
	return nil
}

// OpenID is the open_id app appID sees for a user ("" for an unknown user).
func (s *Server) OpenID(appID, userID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.identity.users[userID]
	if !ok {
		return ""
	}
	return openIDOf(appID, u)
}

// UnionID is the union_id of a user ("" for an unknown user).
func (s *Server) UnionID(userID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.identity.users[userID]
	if !ok {
		return ""
	}
	return unionIDOf(u)
}

func openIDOf(appID string, u User) string {
	if u.OpenID != "" {
		return u.OpenID
	}
	return "ou_" + digest("open", appID, u.UserID)
}

func unionIDOf(u User) string {
	if u.UnionID != "" {
		return u.UnionID
	}
	return "on_" + digest("union", u.UserID)
}

// digest derives stable ids, so the same user has the same ids in every emulator run.
func digest(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// tenantOfLocked is the tenant user u belongs to. Callers hold s.mu.
func (s *Server) tenantOfLocked(u User) string {
	if u.TenantKey != "" {
		return u.TenantKey
	}
	return s.opts.TenantKey
}

// userByReceiver finds the user a message receiver id names, from app appID's point of view.
// Callers hold s.mu.
func (s *Server) userByReceiver(appID, idType, id string) (User, bool) {
	for _, u := range s.identity.users {
		var v string
		switch idType {
		case "open_id":
			v = openIDOf(appID, u)
		case "union_id":
			v = unionIDOf(u)
		case "user_id":
			v = u.UserID
		case "email":
			v = u.Email
		}
		if v != "" && v == id {
			return u, true
		}
	}
	return User{}, false
}

type userView struct {
	User
	OpenID  string `json:"open_id"`
	UnionID string `json:"union_id"`
	Current bool   `json:"current"`
}

func (s *Server) ctlListUsers(w http.ResponseWriter, _ *http.Request) error {
	current := s.CurrentUser().UserID
	users := s.Users()
	out := make([]userView, 0, len(users))
	for _, u := range users {
		// open_id depends on the app; show the fixed one if any, the derived ones come from GET /_emulator/grants.
		out = append(out, userView{User: u, OpenID: u.OpenID, UnionID: unionIDOf(u), Current: u.UserID == current})
	}
	writeJSON(w, http.StatusOK, map[string][]userView{"users": out})
	return nil
}

func (s *Server) ctlAddUser(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		User
		SignIn *bool `json:"sign_in"` // default true
	}
	if err := decodeControl(r, &body); err != nil {
		return err
	}
	if err := s.RegisterUser(body.User, body.SignIn == nil || *body.SignIn); err != nil {
		return badRequest("%v", err)
	}
	writeOK(w)
	return nil
}

type authorizeModeBody struct {
	Mode AuthorizeMode `json:"mode"`
}

func (s *Server) ctlGetAuthorizeMode(w http.ResponseWriter, _ *http.Request) error {
	s.mu.Lock()
	m := s.identity.mode
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, authorizeModeBody{Mode: m})
	return nil
}

func (s *Server) ctlSetAuthorizeMode(w http.ResponseWriter, r *http.Request) error {
	var b authorizeModeBody
	if err := decodeControl(r, &b); err != nil {
		return err
	}
	if err := s.SetAuthorizeMode(b.Mode); err != nil {
		return badRequest("%v", err)
	}
	writeOK(w)
	return nil
}
