package larkemu

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Event bodies as Lark documents them. Schema 1.0 (app_ticket, app_open) puts the Verification
// Token at the top and the event type inside "event"; schema 2.0 (the revocation event) puts both
// in "header". Field order follows Lark's examples.

// eventV1 is the schema 1.0 envelope.
type eventV1 struct {
	TS    string `json:"ts"`
	UUID  string `json:"uuid"`
	Token string `json:"token"`
	Type  string `json:"type"` // always "event_callback"
	Event any    `json:"event"`
}

type appTicketEvent struct {
	AppID     string `json:"app_id"`
	AppTicket string `json:"app_ticket"`
	Type      string `json:"type"`
}

type openIDRef struct {
	OpenID string `json:"open_id"`
}

// appOpenEvent is "app first enabled": a tenant admin installed the app, so Lark names them as
// installer (a member's review-free install would name installer_employee instead).
type appOpenEvent struct {
	AppID      string      `json:"app_id"`
	TenantKey  string      `json:"tenant_key"`
	Type       string      `json:"type"`
	Applicants []openIDRef `json:"applicants"`
	Installer  *openIDRef  `json:"installer,omitempty"`
}

// eventV2 is the schema 2.0 envelope.
type eventV2 struct {
	Schema string        `json:"schema"`
	Header eventV2Header `json:"header"`
	Event  any           `json:"event"`
}

type eventV2Header struct {
	EventID    string `json:"event_id"`
	EventType  string `json:"event_type"`
	CreateTime string `json:"create_time"` // milliseconds, as a string
	Token      string `json:"token"`
	AppID      string `json:"app_id"`
	TenantKey  string `json:"tenant_key"`
}

type revokedEvent struct {
	RevokeTokenType string `json:"revoke_token_type"`
	RevokeReason    string `json:"revoke_reason"`
	OpenID          string `json:"open_id"`
	UnionID         string `json:"union_id"`
	UserID          string `json:"user_id,omitempty"`
}

type urlVerificationBody struct {
	Challenge string `json:"challenge"`
	Token     string `json:"token"`
	Type      string `json:"type"`
}

// Revocation reasons: the control API names them with a word, the event carries Lark's sentence.
const (
	RevokeReasonUnknown       = "unknown"
	RevokeReasonUser          = "user"
	RevokeReasonAdministrator = "administrator"
	RevokeReasonSecurity      = "security"
	RevokeReasonRestriction   = "restriction"
)

var revokeReasonText = map[string]string{
	RevokeReasonUnknown:       "Revoked by unknown action.",
	RevokeReasonUser:          "Revoked by user action.",
	RevokeReasonAdministrator: "Revoked by administrator action.",
	RevokeReasonSecurity:      "Revoked by security and risk control action.",
	RevokeReasonRestriction:   "Revoked by restriction action.",
}

// revokeBothTokens is the revoke_token_type when access and refresh token die together.
const revokeBothTokens = "user_access_token refresh_token"

// eventTS is schema 1.0's "ts": seconds with a seven-digit fraction, as in Lark's examples.
func eventTS(now time.Time) string {
	return fmt.Sprintf("%d.%07d", now.Unix(), now.Nanosecond()/100)
}

func newEventID() string { return randomHex(16) }

func appTicketPayload(a *App, ticket string, now time.Time) eventV1 {
	return eventV1{TS: eventTS(now), UUID: newEventID(), Token: a.VerificationToken, Type: "event_callback",
		Event: appTicketEvent{AppID: a.ID, AppTicket: ticket, Type: EventAppTicket}}
}

func appOpenPayload(a *App, tenantKey, installerOpenID string, now time.Time) eventV1 {
	return eventV1{TS: eventTS(now), UUID: newEventID(), Token: a.VerificationToken, Type: "event_callback",
		Event: appOpenEvent{AppID: a.ID, TenantKey: tenantKey, Type: EventAppOpen, Applicants: []openIDRef{},
			Installer: &openIDRef{OpenID: installerOpenID}}}
}

func revokedPayload(a *App, tenantKey string, ev revokedEvent, now time.Time) eventV2 {
	return eventV2{Schema: "2.0", Header: eventV2Header{
		EventID: newEventID(), EventType: EventUserTokenRevoked, CreateTime: strconv.FormatInt(now.UnixMilli(), 10),
		Token: a.VerificationToken, AppID: a.ID, TenantKey: tenantKey,
	}, Event: ev}
}

func urlVerificationPayload(a *App) urlVerificationBody {
	return urlVerificationBody{Challenge: randomHex(16), Token: a.VerificationToken, Type: EventURLVerification}
}

// describeEvent reads the type and id a receiver would de-duplicate on from a plaintext event:
// header.event_type / header.event_id (2.0), event.type / uuid (1.0), or type (url_verification).
func describeEvent(plaintext []byte) (eventType, eventID string) {
	var probe struct {
		UUID   string `json:"uuid"`
		Type   string `json:"type"`
		Header struct {
			EventID   string `json:"event_id"`
			EventType string `json:"event_type"`
		} `json:"header"`
		Event struct {
			Type string `json:"type"`
		} `json:"event"`
	}
	if json.Unmarshal(plaintext, &probe) != nil {
		return "", ""
	}
	switch {
	case probe.Header.EventType != "" || probe.Header.EventID != "":
		return probe.Header.EventType, probe.Header.EventID
	case probe.Event.Type != "":
		return probe.Event.Type, probe.UUID
	}
	return probe.Type, probe.UUID
}

// encryptEvent is Lark's event encryption (lark-api.md §3): AES-256-CBC with key SHA-256(encrypt
// key), PKCS#7 padding, and the base64 (standard alphabet) of the random 16-byte IV followed by
// the ciphertext.
func encryptEvent(encryptKey string, plaintext []byte) string {
	key := sha256.Sum256([]byte(encryptKey))
	block, err := aes.NewCipher(key[:])
	if err != nil {
		panic("larkemu: AES with a 32-byte key: " + err.Error()) // cannot happen
	}
	pad := aes.BlockSize - len(plaintext)%aes.BlockSize
	padded := append(bytes.Clone(plaintext), bytes.Repeat([]byte{byte(pad)}, pad)...)
	out := make([]byte, aes.BlockSize+len(padded))
	_, _ = rand.Read(out[:aes.BlockSize])
	cipher.NewCBCEncrypter(block, out[:aes.BlockSize]).CryptBlocks(out[aes.BlockSize:], padded)
	return base64.StdEncoding.EncodeToString(out)
}

// encryptedBody is the body Lark posts when the app has an Encrypt Key.
func encryptedBody(encryptKey string, plaintext []byte) []byte {
	b, _ := json.Marshal(struct {
		Encrypt string `json:"encrypt"`
	}{encryptEvent(encryptKey, plaintext)})
	return b
}

// Signature headers Lark adds when the app has an Encrypt Key.
const (
	HeaderLarkTimestamp = "X-Lark-Request-Timestamp"
	HeaderLarkNonce     = "X-Lark-Request-Nonce"
	HeaderLarkSignature = "X-Lark-Signature"
)

// larkSignature is hex(SHA-256(timestamp + nonce + encrypt key + raw body)).
func larkSignature(timestamp, nonce, encryptKey string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(timestamp))
	h.Write([]byte(nonce))
	h.Write([]byte(encryptKey))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// signatureHeaders signs body at now with a fresh nonce.
func signatureHeaders(encryptKey string, body []byte, now time.Time) map[string]string {
	ts := strconv.FormatInt(now.Unix(), 10)
	nonce := randomHex(8)
	return map[string]string{
		HeaderLarkTimestamp: ts,
		HeaderLarkNonce:     nonce,
		HeaderLarkSignature: larkSignature(ts, nonce, encryptKey, body),
	}
}
