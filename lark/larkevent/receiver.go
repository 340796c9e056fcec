package larkevent

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"strings"
)

// DefaultMaxBodyBytes bounds a body when Config.MaxBodyBytes is 0. The events the plugin acts on
// are well under 4 KB; the margin is for the other events an app may have subscribed to on the
// same URL (an app has one event URL for all its events), which the caller ignores but should
// still answer with 200 so Lark stops redelivering them.
const DefaultMaxBodyBytes = 1 << 20

const (
	// maxDepth bounds JSON nesting. Lark's events nest four or five levels; the bound keeps a
	// hostile body from making any decoder work hard.
	maxDepth = 32
	// maxSecretLen bounds the configured Verification Token and Encrypt Key.
	maxSecretLen = 1 << 10
	// Bounds of identifiers and values taken from an event. Lark documents no lengths; these are
	// generous and only keep garbage out of storage keys and logs.
	maxIDLen        = 128
	maxTypeLen      = 128
	maxTenantKeyLen = 256
	maxTicketLen    = 1 << 10
	maxChallengeLen = 1 << 10
	maxApplicants   = 100
	maxReasonText   = 200
)

// Config is one app's event settings, from its developer console ("Events and callbacks" →
// "Encryption strategy").
type Config struct {
	// AppID is the app the receiver serves; events for another app are refused.
	AppID string
	// VerificationToken is required: every event and challenge carries it.
	VerificationToken string
	// EncryptKey, when set, makes the receiver accept encrypted bodies only (Lark encrypts every
	// delivery once a key is set). Empty means plain JSON only.
	EncryptKey string
	// MaxBodyBytes bounds the body; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int
}

// Receiver decodes and verifies the events of one app. It is immutable and safe for concurrent use.
type Receiver struct {
	appID     string
	tokenHash [sha256.Size]byte
	key       []byte // AES-256 key; nil without an Encrypt Key
	maxBody   int
}

// NewReceiver checks cfg. Its errors never repeat the token or key.
func NewReceiver(cfg Config) (*Receiver, error) {
	switch {
	case !visible(cfg.AppID, maxIDLen):
		return nil, errors.New("larkevent: app id is empty or malformed")
	case cfg.VerificationToken == "":
		return nil, errors.New("larkevent: the app's verification token is required")
	case len(cfg.VerificationToken) > maxSecretLen || hasControl(cfg.VerificationToken):
		return nil, errors.New("larkevent: verification token is malformed (too long or control characters)")
	case len(cfg.EncryptKey) > maxSecretLen || hasControl(cfg.EncryptKey):
		return nil, errors.New("larkevent: encrypt key is malformed (too long or control characters)")
	case cfg.MaxBodyBytes < 0:
		return nil, errors.New("larkevent: max body size must not be negative")
	}
	r := &Receiver{appID: cfg.AppID, tokenHash: sha256.Sum256([]byte(cfg.VerificationToken)), maxBody: cfg.MaxBodyBytes}
	if cfg.EncryptKey != "" {
		r.key = deriveKey(cfg.EncryptKey)
	}
	if r.maxBody == 0 {
		r.maxBody = DefaultMaxBodyBytes
	}
	return r, nil
}

// AppID is the app the receiver serves.
func (r *Receiver) AppID() string { return r.appID }

// Encrypted reports whether the receiver expects encrypted bodies.
func (r *Receiver) Encrypted() bool { return r.key != nil }

// Decode verifies and decodes a raw request body. Every failure is a *Error.
func (r *Receiver) Decode(body []byte) (*Event, error) {
	if len(body) > r.maxBody {
		return nil, refuse(ReasonTooLarge, "body larger than the limit")
	}
	var outer wireEvent
	if e := parseObject(body, &outer, ReasonMalformed); e != nil {
		return nil, e
	}
	if outer.Encrypt == nil {
		if r.key != nil {
			return nil, refuse(ReasonPlaintextRefused, "plain body, but the app's events are encrypted")
		}
		ev, e := r.verify(&outer)
		if e != nil {
			return nil, e
		}
		return ev, nil
	}
	if r.key == nil {
		return nil, refuse(ReasonEncryptedUnexpected, "encrypted body, but no encrypt key is configured")
	}
	ev, e := r.open(*outer.Encrypt)
	if e != nil {
		e.Encrypted = true
		return nil, e
	}
	ev.Encrypted = true
	return ev, nil
}

// DecodeMap verifies and decodes a body that has already been parsed, as Vault hands a plugin its
// request body (map[string]interface{} with json.Number or float64 numbers). The map is re-encoded
// and decoded like a raw body. That is exact for encrypted bodies, whose only field is a string,
// and harmless for plain ones, where the checks look at values, not bytes. Before encoding, the
// map is walked once to bound its size and depth, so a huge or hostile map costs no more than a
// huge body would.
func (r *Receiver) DecodeMap(body map[string]any) (*Event, error) {
	if body == nil {
		return nil, refuse(ReasonMalformed, "empty body")
	}
	w := mapWalker{budget: r.maxBody}
	if e := w.walk(body, 1); e != nil {
		return nil, e
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // escaping would only inflate the size the limit is checked against
	if err := enc.Encode(body); err != nil {
		return nil, refuse(ReasonMalformed, "parsed body cannot be encoded as JSON")
	}
	return r.Decode(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

// open decrypts and verifies an encrypted body. Anything that fails once the key is involved is
// reported with Encrypted set by the caller, which makes all those failures look alike outside.
func (r *Receiver) open(encrypted string) (*Event, *Error) {
	plain, err := decrypt(r.key, encrypted)
	if err != nil {
		return nil, refuse(ReasonUndecryptable, "does not decrypt under the encrypt key")
	}
	var inner wireEvent
	if e := parseObject(plain, &inner, ReasonUndecryptable); e != nil {
		return nil, e
	}
	if inner.Encrypt != nil {
		return nil, refuse(ReasonMalformed, "encrypted body inside an encrypted body")
	}
	return r.verify(&inner)
}

// verify checks token and app and builds the Event. The token is checked before anything else is
// read from the event, so an unauthenticated body gets no further than that.
func (r *Receiver) verify(w *wireEvent) (*Event, *Error) {
	var ev *Event
	var payload json.RawMessage
	switch {
	case w.Schema != "":
		if w.Schema != Schema2 {
			return nil, refuse(ReasonMalformed, "unsupported event schema")
		}
		h := w.Header
		if h == nil {
			return nil, refuse(ReasonMalformed, "schema 2.0 event without header")
		}
		if !r.tokenMatches(h.Token) {
			return nil, refuse(ReasonBadToken, "verification token does not match")
		}
		if h.AppID != r.appID {
			return nil, refuse(ReasonWrongApp, "event is for another app")
		}
		ev = &Event{Schema: Schema2, ID: h.EventID, Type: h.EventType, AppID: h.AppID, TenantKey: h.TenantKey, CreatedAt: parseEpoch(string(h.CreateTime))}
		payload = w.Event
	case w.Type == TypeURLVerification:
		if !r.tokenMatches(w.Token) {
			return nil, refuse(ReasonBadToken, "verification token does not match")
		}
		if !visible(w.Challenge, maxChallengeLen) {
			return nil, refuse(ReasonMalformed, "challenge is missing or malformed")
		}
		return &Event{Type: TypeURLVerification, Challenge: w.Challenge}, nil
	case w.Type == "event_callback":
		if !r.tokenMatches(w.Token) {
			return nil, refuse(ReasonBadToken, "verification token does not match")
		}
		var common struct {
			AppID     string `json:"app_id"`
			TenantKey string `json:"tenant_key"`
			Type      string `json:"type"`
		}
		if !isObject(w.Event) || json.Unmarshal(w.Event, &common) != nil {
			return nil, refuse(ReasonMalformed, "schema 1.0 event without an event object")
		}
		if common.AppID != r.appID {
			return nil, refuse(ReasonWrongApp, "event is for another app")
		}
		ev = &Event{Schema: Schema1, ID: w.UUID, Type: common.Type, AppID: common.AppID, TenantKey: common.TenantKey, CreatedAt: parseEpoch(string(w.TS))}
		payload = w.Event
	default:
		return nil, refuse(ReasonMalformed, "not a Lark event")
	}
	switch {
	case !visible(ev.ID, maxIDLen):
		return nil, refuse(ReasonMalformed, "event id is missing or malformed")
	case !visible(ev.Type, maxTypeLen):
		return nil, refuse(ReasonMalformed, "event type is missing or malformed")
	case ev.TenantKey != "" && !visible(ev.TenantKey, maxTenantKeyLen):
		return nil, refuse(ReasonMalformed, "tenant key is malformed")
	}
	if e := decodePayload(ev, payload); e != nil {
		return nil, e
	}
	return ev, nil
}

// tokenMatches compares in constant time. Hashing first makes the comparison independent of the
// lengths too, so timing reveals neither the token nor its length.
func (r *Receiver) tokenMatches(token string) bool {
	h := sha256.Sum256([]byte(token))
	return token != "" && subtle.ConstantTimeCompare(h[:], r.tokenHash[:]) == 1
}

// wireEvent is the union of the top-level shapes: encrypted, challenge, 1.0 and 2.0.
type wireEvent struct {
	Encrypt *string `json:"encrypt"`

	Challenge string `json:"challenge"`
	Token     string `json:"token"`
	Type      string `json:"type"`

	UUID  string          `json:"uuid"`
	TS    looseString     `json:"ts"`
	Event json.RawMessage `json:"event"`

	Schema string      `json:"schema"`
	Header *wireHeader `json:"header"`
}

type wireHeader struct {
	EventID    string      `json:"event_id"`
	Token      string      `json:"token"`
	CreateTime looseString `json:"create_time"`
	EventType  string      `json:"event_type"`
	TenantKey  string      `json:"tenant_key"`
	AppID      string      `json:"app_id"`
}

// looseString reads a JSON string or number as text: timestamps are documented as strings, and
// nothing is lost by accepting a number too.
type looseString string

func (s *looseString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = looseString(v)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		// null, an object, ...: no timestamp rather than no event.
		*s = ""
		return nil
	}
	*s = looseString(n)
	return nil
}

// parseObject decodes data, which must be one bounded JSON object, into v.
func parseObject(data []byte, v any, reason Reason) *Error {
	if !isObject(data) {
		return refuse(reason, "body is not a JSON object")
	}
	if !withinDepth(data, maxDepth) {
		return refuse(reason, "body is nested too deeply")
	}
	if err := json.Unmarshal(data, v); err != nil {
		return refuse(reason, "body is not a well-formed event")
	}
	return nil
}

func isObject(data []byte) bool {
	data = bytes.TrimLeft(data, " \t\r\n")
	return len(data) > 0 && data[0] == '{'
}

// withinDepth scans JSON text for its nesting depth without decoding it. Brackets inside strings do
// not count; the text need not be valid (json.Unmarshal checks that afterwards).
func withinDepth(data []byte, max int) bool {
	depth, inString, escaped := 0, false, false
	for _, c := range data {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			if depth > max {
				return false
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return true
}

// visible accepts a non-empty value of at most max bytes of visible ASCII: what ids, types, keys,
// tickets and challenges look like, and nothing that could smuggle control characters into storage
// paths or logs.
func visible(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f })
}
