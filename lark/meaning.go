package lark

// Meaning groups failures by who has to act, which is what the plugin decides on. Kinds stay the
// precise answer; a Meaning is the plugin's next move.
type Meaning string

// Meanings, from the plugin's point of view.
const (
	// MeaningGrantOver: the user's grant has ended; only the user authorizing again helps.
	MeaningGrantOver Meaning = "grant_over"
	// MeaningAppSetup: the app's setup (secret, console switches, installation, its configured
	// type) must change; user grants are intact and work again after the fix.
	MeaningAppSetup Meaning = "app_setup"
	// MeaningUserAction: the user must complete something (a security challenge); the grant is kept.
	MeaningUserAction Meaning = "user_action"
	// MeaningTransient: Lark or the network failed; the same call may work later.
	MeaningTransient Meaning = "transient"
	// MeaningAwaitTicket: a store app has no app_ticket Lark accepts. Ask Lark to push a new one
	// (ResendAppTicket) and answer "waiting for Lark's app_ticket" until the app_ticket event
	// arrives; retrying with the same ticket cannot help.
	MeaningAwaitTicket Meaning = "await_ticket"
	// MeaningTenantUnavailable: one tenant of a store app cannot be served, because Lark does not
	// know its tenant key or the app is not (or no longer) installed and enabled there. The app
	// and its other tenants are fine; only that tenant's administrator (or a corrected tenant key)
	// helps.
	MeaningTenantUnavailable Meaning = "tenant_unavailable"
	// MeaningStaleToken: a token the call presented (an app, tenant or user access token) is no
	// longer accepted. Drop the cached token, fetch a fresh one and try once more; nothing needs
	// a person yet.
	MeaningStaleToken Meaning = "stale_token"
	// MeaningUnknown: anything else; keep everything, warn, count.
	MeaningUnknown Meaning = "unknown"
)

// Meaning says who has to act on this failure.
func (e *Error) Meaning() Meaning {
	switch e.Kind {
	case KindReauthRequired, KindUserRefused:
		return MeaningGrantOver
	case KindAppSecretRejected, KindAppNotFound, KindAppSetup, KindAppTypeMismatch:
		return MeaningAppSetup
	case KindUserChallenge:
		return MeaningUserAction
	case KindUnavailable, KindRateLimited, KindBadResponse:
		return MeaningTransient
	case KindAppTicketInvalid:
		return MeaningAwaitTicket
	case KindTenantKeyInvalid:
		return MeaningTenantUnavailable
	case KindAppTokenInvalid, KindTenantTokenInvalid, KindUserTokenInvalid:
		return MeaningStaleToken
	}
	return MeaningUnknown
}
