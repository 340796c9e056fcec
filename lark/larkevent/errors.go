package larkevent

import "net/http"

// Reason says why an event was refused. The values are stable: they are metric labels and appear
// in the plugin's logs. They are for the operator, never for the sender: see Error.Public.
type Reason string

// Why an event was refused.
const (
	ReasonTooLarge            Reason = "too_large"            // body above the size limit
	ReasonMalformed           Reason = "malformed"            // not an event: bad JSON, too deep, a field missing or malformed
	ReasonPlaintextRefused    Reason = "plaintext_refused"    // the app has an Encrypt Key, so Lark would have encrypted it
	ReasonEncryptedUnexpected Reason = "encrypted_unexpected" // encrypted, but no Encrypt Key is configured
	ReasonUndecryptable       Reason = "undecryptable"        // does not decrypt under the Encrypt Key
	ReasonBadToken            Reason = "bad_token"            // the Verification Token does not match
	ReasonWrongApp            Reason = "wrong_app"            // the event is for another app (or names none)
)

// Error is a refused event. Error() is for logs: it names the check that failed, never a value.
type Error struct {
	Reason Reason
	// Encrypted: the body came encrypted. Then every refusal after decryption answers the sender
	// the same way (Public, HTTPStatus), whatever Reason says.
	Encrypted bool
	detail    string // fixed phrase, no input
}

func (e *Error) Error() string {
	s := "larkevent: event refused (" + string(e.Reason) + ")"
	if e.detail != "" {
		s += ": " + e.detail
	}
	return s
}

// Public is the text a receiver may send back. It distinguishes only what the sender already knows
// (the body is too large, or is not JSON at all); everything that depends on the Encrypt Key, the
// Verification Token or the decrypted content reads "event refused", so the answers cannot be used
// to decrypt or forge events.
func (e *Error) Public() string {
	switch {
	case e.Reason == ReasonTooLarge:
		return "event body too large"
	case e.Reason == ReasonMalformed && !e.Encrypted:
		return "malformed event"
	}
	return "event refused"
}

// HTTPStatus is the status to answer with: 413 for a body over the limit, 400 for everything else
// (one status, for the same reason as Public). Any non-2xx makes Lark retry later.
func (e *Error) HTTPStatus() int {
	if e.Reason == ReasonTooLarge {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

func refuse(r Reason, detail string) *Error { return &Error{Reason: r, detail: detail} }
