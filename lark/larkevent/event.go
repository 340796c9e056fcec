package larkevent

import (
	"encoding/json"
	"strings"
	"time"
)

// Event types this package decodes into typed payloads (docs/lark-api.md §3, §11).
const (
	TypeURLVerification  = "url_verification"                  // the console checking the URL; answer ChallengeResponse
	TypeAppTicket        = "app_ticket"                        // schema 1.0; AppTicket
	TypeAppOpen          = "app_open"                          // schema 1.0, store apps; AppOpen
	TypeAppUninstalled   = "app_uninstalled"                   // schema 1.0, store apps; AppUninstalled
	TypeAppStatusChange  = "app_status_change"                 // schema 1.0, store apps; AppStatusChange
	TypeUserTokenRevoked = "auth.user_access_token.revoked_v4" // schema 2.0; TokenRevoked
)

// Schemas of Event.Schema.
const (
	Schema1 = "1.0" // {"uuid","token","ts","type":"event_callback","event":{…,"type"}}; no schema field
	Schema2 = "2.0" // {"schema":"2.0","header":{event_id,token,create_time,event_type,tenant_key,app_id},"event":{…}}
)

// MaxRedelivery is how long after the first attempt Lark may still deliver an event: a delivery
// that is not answered with HTTP 200 within 3 s is retried after 15 s, 5 min, 1 h and 6 h, at most
// four times (Lark's event overview, "事件推送"). Delivery is also at-least-once, so successful
// events can arrive twice. A receiver should remember event ids at least this long, and may refuse
// events whose CreatedAt is older than its memory.
const MaxRedelivery = 15*time.Second + 5*time.Minute + time.Hour + 6*time.Hour

// Event is a verified event: its token and app id matched the receiver's, and it decrypted if it
// had to.
type Event struct {
	// Schema is Schema1 or Schema2; "" for a URL verification.
	Schema string
	// ID is the de-duplication key: uuid (1.0) or header.event_id (2.0); "" for a URL verification.
	ID string
	// Type is event.type (1.0), header.event_type (2.0) or TypeURLVerification.
	Type string
	// AppID is the app the event is for (always the receiver's); "" for a URL verification.
	AppID string
	// TenantKey is the tenant the event concerns, from header.tenant_key (2.0) or event.tenant_key
	// (1.0); "" when the event names none (app_ticket does not).
	TenantKey string
	// CreatedAt is when Lark created (1.0: sent) the event: ts (1.0, seconds) or header.create_time
	// (2.0, milliseconds in the event pages, microseconds in the overview's example; both are
	// read). Zero when absent or unreadable; Lark does not promise it, so do not require it.
	CreatedAt time.Time
	// Encrypted says the body came encrypted.
	Encrypted bool
	// Challenge is the value to echo for a URL verification; "" otherwise.
	Challenge string

	// At most one of these is set, for the types named in the Type constants.
	AppTicket       *AppTicket
	AppOpen         *AppOpen
	AppUninstalled  *AppUninstalled
	AppStatusChange *AppStatusChange
	TokenRevoked    *UserTokenRevoked
}

// IsChallenge reports whether this is the console's URL verification, which must be answered with
// ChallengeResponse (within 1 s) rather than processed.
func (e *Event) IsChallenge() bool { return e.Type == TypeURLVerification }

// ChallengeResponse is the body to answer a URL verification with: {"challenge":"…"}, in plain
// JSON even when the challenge came encrypted. It is nil for any other event.
func (e *Event) ChallengeResponse() []byte {
	if !e.IsChallenge() {
		return nil
	}
	b, _ := json.Marshal(struct { // a struct with one string field always encodes
		Challenge string `json:"challenge"`
	}{e.Challenge})
	return b
}

// AppTicket is Lark's hourly (or resent) app_ticket for a store app. Ticket is a credential: the
// type prints it redacted, and it must be stored like the app secret.
type AppTicket struct {
	AppID  string
	Ticket string
}

// String keeps the ticket out of logs and fmt verbs.
func (t AppTicket) String() string { return "AppTicket{AppID:" + t.AppID + " Ticket:[redacted]}" }

// GoString keeps the ticket out of %#v.
func (t AppTicket) GoString() string { return t.String() }

// AppOpen is a tenant installing and enabling a store app for the first time ("首次启用应用",
// application-v6/event/app-first-enabled): the installing tenant's key, and who installed it. An
// administrator's install (directly, or approving a member's request) fills Installer; a member's
// review-free install fills InstallerEmployee instead; the page names the fields, not which one
// comes when.
type AppOpen struct {
	TenantKey string
	// InstallerOpenID is installer.open_id or, failing that, installer_employee.open_id.
	InstallerOpenID string
	// ApplicantOpenIDs are applicants[].open_id, the members who asked for the app.
	ApplicantOpenIDs []string
}

// AppUninstalled is a tenant removing a store app (also sent when the tenant is dissolved).
type AppUninstalled struct {
	TenantKey string
}

// Statuses of AppStatusChange.
const (
	StatusStartByTenant  = "start_by_tenant"
	StatusStopByTenant   = "stop_by_tenant"
	StatusStopByPlatform = "stop_by_platform"
)

// AppStatusChange is a tenant's administrator (or the platform) enabling or disabling a store app.
type AppStatusChange struct {
	TenantKey string
	Status    string // one of the Status constants, or what Lark sent
	// OperatorOpenID is operator.open_id, present only with StatusStartByTenant.
	OperatorOpenID string
}

// RevokeReason is Lark's revoke_reason, reduced to a stable value.
type RevokeReason string

// Revocation reasons, one per documented revoke_reason text.
const (
	RevokeReasonUnknown       RevokeReason = "unknown"       // "Revoked by unknown action.", or a text not listed
	RevokeReasonUser          RevokeReason = "user"          // "Revoked by user action."
	RevokeReasonAdministrator RevokeReason = "administrator" // "Revoked by administrator action."
	RevokeReasonRiskControl   RevokeReason = "risk_control"  // "Revoked by security and risk control action."
	RevokeReasonRestriction   RevokeReason = "restriction"   // "Revoked by restriction action.": frozen or resigned user, app unavailable, no app permission
)

var revokeReasons = map[string]RevokeReason{
	"revoked by unknown action":                   RevokeReasonUnknown,
	"revoked by user action":                      RevokeReasonUser,
	"revoked by administrator action":             RevokeReasonAdministrator,
	"revoked by security and risk control action": RevokeReasonRiskControl,
	"revoked by restriction action":               RevokeReasonRestriction,
}

var revokeReasonTexts = map[RevokeReason]string{
	RevokeReasonUnknown:       "Lark revoked the user's authorization (no reason given)",
	RevokeReasonUser:          "the user revoked the authorization",
	RevokeReasonAdministrator: "an administrator revoked the user's authorization",
	RevokeReasonRiskControl:   "Lark's security and risk control revoked the user's authorization",
	RevokeReasonRestriction:   "the authorization was revoked by a restriction (user frozen or resigned, app unavailable, or no permission to use the app)",
}

// Text says in a few words why, for operators and users.
func (r RevokeReason) Text() string {
	if t, ok := revokeReasonTexts[r]; ok {
		return t
	}
	return revokeReasonTexts[RevokeReasonUnknown]
}

func parseRevokeReason(s string) RevokeReason {
	k := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
	if r, ok := revokeReasons[k]; ok {
		return r
	}
	return RevokeReasonUnknown
}

// UserTokenRevoked is auth.user_access_token.revoked_v4 (docs/lark-api.md §11, page
// authentication-management/auth-v4/user_access_token/events/revoked): a user's access token,
// refresh token or both were revoked. The grant is over only when RefreshTokenRevoked is set; a
// revoked access token alone leaves the refresh token working.
type UserTokenRevoked struct {
	// OpenID (ou_…, per app) is how the plugin finds the grant; UnionID and UserID may be empty
	// (UserID needs the contact:user.employee_id:readonly scope).
	OpenID  string
	UnionID string
	UserID  string
	// AccessTokenRevoked / RefreshTokenRevoked come from revoke_token_type, documented as
	// "user_access_token", "refresh_token" or "user_access_token refresh_token". Both false means
	// Lark sent a value this package does not know; a careful caller then drops the cached access
	// token and lets the next refresh find out about the refresh token.
	AccessTokenRevoked  bool
	RefreshTokenRevoked bool
	Reason              RevokeReason
	// ReasonText is Lark's revoke_reason, cleaned and shortened.
	ReasonText string
}
