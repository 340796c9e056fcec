package larkevent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	testApp    = "cli_9f5343c580712544"
	testToken  = "VeRiFiCaTiOn-ToKeN-do-not-leak"
	testKey    = "EnCrYpT-KeY-do-not-leak"
	testTicket = "TiCkEt-do-not-leak-0001"
)

// Bodies composed from the event pages' examples (docs/lark-api.md §3, §11), with this test's app
// and token.
var (
	challengeBody = `{"challenge":"ajls384kdjxxxx","token":"` + testToken + `","type":"url_verification"}`
	ticketBody    = `{"ts":"1502199207.7171419","uuid":"bc447199585340d1f3728d26b1c0297a","token":"` + testToken + `","type":"event_callback",` +
		`"event":{"app_id":"` + testApp + `","app_ticket":"` + testTicket + `","type":"app_ticket"}}`
	appOpenBody = `{"ts":"1502199207.7171419","uuid":"bc447199585340d1f3728d26b1c0297b","token":"` + testToken + `","type":"event_callback",` +
		`"event":{"app_id":"` + testApp + `","tenant_key":"2ca1d211f64f6438","type":"app_open","applicants":[{"open_id":"ou_a1"},{"open_id":"ou_a2"}],` +
		`"installer":{"open_id":"ou_admin"}}}`
	uninstalledBody = `{"ts":"1502199207.7171419","uuid":"bc447199585340d1f3728d26b1c0297c","token":"` + testToken + `","type":"event_callback",` +
		`"event":{"app_id":"` + testApp + `","tenant_key":"2ca1d211f64f6438","type":"app_uninstalled"}}`
	statusBody = `{"ts":"1502199207.7171419","uuid":"bc447199585340d1f3728d26b1c0297d","token":"` + testToken + `","type":"event_callback",` +
		`"event":{"app_id":"` + testApp + `","tenant_key":"2ca1d211f64f6438","type":"app_status_change","status":"stop_by_tenant"}}`
	revokedBody = `{"schema":"2.0","header":{"event_id":"5e3702a84e847582be8db7fb73283c02","event_type":"auth.user_access_token.revoked_v4",` +
		`"create_time":"1608725989000","token":"` + testToken + `","app_id":"` + testApp + `","tenant_key":"2ca1d211f64f6438"},` +
		`"event":{"revoke_token_type":"user_access_token refresh_token","revoke_reason":"Revoked by security and risk control action.",` +
		`"open_id":"ou_c99c5f35d542efc7ee492afe11af19ef","union_id":"on_cad4860e7af114fb4ff6c5d496d1dd76","user_id":"gg895344"}}`
	otherV2Body = `{"schema":"2.0","header":{"event_id":"f7984f25108f8137722bb63cee927e66","token":"` + testToken + `","create_time":"1603977298000000",` +
		`"event_type":"contact.user_group.created_v3","tenant_key":"xxxxxxx","app_id":"` + testApp + `"},"event":{}}`
)

func receiver(t *testing.T, encryptKey string) *Receiver {
	t.Helper()
	r, err := NewReceiver(Config{AppID: testApp, VerificationToken: testToken, EncryptKey: encryptKey})
	require.NoError(t, err)
	return r
}

func encryptedBody(t *testing.T, plain string) []byte {
	t.Helper()
	b, err := EncryptBody(testKey, []byte(plain))
	require.NoError(t, err)
	return b
}

func TestDecodeDocumentedEvents(t *testing.T) {
	sent := time.Unix(1502199207, 717141900).UTC()
	tests := []struct {
		name string
		body string
		want Event
	}{
		{"challenge", challengeBody, Event{Type: TypeURLVerification, Challenge: "ajls384kdjxxxx"}},
		{"app_ticket", ticketBody, Event{Schema: Schema1, ID: "bc447199585340d1f3728d26b1c0297a", Type: TypeAppTicket, AppID: testApp, CreatedAt: sent,
			AppTicket: &AppTicket{AppID: testApp, Ticket: testTicket}}},
		{"app_open", appOpenBody, Event{Schema: Schema1, ID: "bc447199585340d1f3728d26b1c0297b", Type: TypeAppOpen, AppID: testApp, TenantKey: "2ca1d211f64f6438", CreatedAt: sent,
			AppOpen: &AppOpen{TenantKey: "2ca1d211f64f6438", InstallerOpenID: "ou_admin", ApplicantOpenIDs: []string{"ou_a1", "ou_a2"}}}},
		{"app_uninstalled", uninstalledBody, Event{Schema: Schema1, ID: "bc447199585340d1f3728d26b1c0297c", Type: TypeAppUninstalled, AppID: testApp, TenantKey: "2ca1d211f64f6438", CreatedAt: sent,
			AppUninstalled: &AppUninstalled{TenantKey: "2ca1d211f64f6438"}}},
		{"app_status_change", statusBody, Event{Schema: Schema1, ID: "bc447199585340d1f3728d26b1c0297d", Type: TypeAppStatusChange, AppID: testApp, TenantKey: "2ca1d211f64f6438", CreatedAt: sent,
			AppStatusChange: &AppStatusChange{TenantKey: "2ca1d211f64f6438", Status: StatusStopByTenant}}},
		{"revoked", revokedBody, Event{Schema: Schema2, ID: "5e3702a84e847582be8db7fb73283c02", Type: TypeUserTokenRevoked, AppID: testApp, TenantKey: "2ca1d211f64f6438",
			CreatedAt: time.UnixMilli(1608725989000).UTC(),
			TokenRevoked: &UserTokenRevoked{OpenID: "ou_c99c5f35d542efc7ee492afe11af19ef", UnionID: "on_cad4860e7af114fb4ff6c5d496d1dd76", UserID: "gg895344",
				AccessTokenRevoked: true, RefreshTokenRevoked: true, Reason: RevokeReasonRiskControl, ReasonText: "Revoked by security and risk control action."}}},
		{"other 2.0 event", otherV2Body, Event{Schema: Schema2, ID: "f7984f25108f8137722bb63cee927e66", Type: "contact.user_group.created_v3", AppID: testApp, TenantKey: "xxxxxxx",
			CreatedAt: time.UnixMicro(1603977298000000).UTC()}},
	}
	plain, keyed := receiver(t, ""), receiver(t, testKey)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := plain.Decode([]byte(tt.body))
			require.NoError(t, err)
			assert.Equal(t, tt.want, *ev)

			enc, err := keyed.Decode(encryptedBody(t, tt.body))
			require.NoError(t, err)
			want := tt.want
			want.Encrypted = true
			assert.Equal(t, want, *enc)

			// The map Vault hands a plugin decodes to the same event, with either number type.
			for _, useNumber := range []bool{true, false} {
				ev, err = plain.DecodeMap(vaultParse(t, []byte(tt.body), useNumber))
				require.NoError(t, err)
				assert.Equal(t, tt.want, *ev)
				ev, err = keyed.DecodeMap(vaultParse(t, encryptedBody(t, tt.body), useNumber))
				require.NoError(t, err)
				assert.Equal(t, want, *ev)
			}
		})
	}
}

// vaultParse parses a body the way Vault's HTTP layer hands it to a plugin.
func vaultParse(t *testing.T, body []byte, useNumber bool) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	if useNumber {
		dec.UseNumber()
	}
	var m map[string]any
	require.NoError(t, dec.Decode(&m))
	return m
}

func TestChallengeResponse(t *testing.T) {
	for _, r := range []struct {
		rcv  *Receiver
		body []byte
	}{{receiver(t, ""), []byte(challengeBody)}, {receiver(t, testKey), encryptedBody(t, challengeBody)}} {
		ev, err := r.rcv.Decode(r.body)
		require.NoError(t, err)
		assert.True(t, ev.IsChallenge())
		assert.JSONEq(t, `{"challenge":"ajls384kdjxxxx"}`, string(ev.ChallengeResponse()), "answered in plain JSON, encrypted or not")
	}
	ev, err := receiver(t, "").Decode([]byte(ticketBody))
	require.NoError(t, err)
	assert.False(t, ev.IsChallenge())
	assert.Nil(t, ev.ChallengeResponse())
}

// TestRefusals covers every check, for plain and encrypted delivery.
func TestRefusals(t *testing.T) {
	replace := func(body, old, repl string) string {
		require.Contains(t, body, old)
		return strings.Replace(body, old, repl, 1)
	}
	deep := strings.Repeat(`{"a":`, maxDepth+1) + "1" + strings.Repeat("}", maxDepth+1)
	tests := []struct {
		name   string
		body   string
		reason Reason
	}{
		{"wrong token", replace(ticketBody, testToken, "guessed-token"), ReasonBadToken},
		{"token prefix", replace(ticketBody, testToken, testToken[:10]), ReasonBadToken},
		{"no token", replace(ticketBody, `"token":"`+testToken+`",`, ""), ReasonBadToken},
		{"wrong token in challenge", replace(challengeBody, testToken, "x"), ReasonBadToken},
		{"wrong token in 2.0 header", replace(revokedBody, testToken, "x"), ReasonBadToken},
		{"token at the top of a 2.0 event does not count", replace(replace(revokedBody, `"token":"`+testToken+`",`, ""), `"schema":"2.0",`, `"schema":"2.0","token":"`+testToken+`",`), ReasonBadToken},
		{"other app (1.0)", replace(ticketBody, `"app_id":"`+testApp+`"`, `"app_id":"cli_other"`), ReasonWrongApp},
		{"no app (1.0)", replace(ticketBody, `"app_id":"`+testApp+`",`, ""), ReasonWrongApp},
		{"other app (2.0)", replace(revokedBody, `"app_id":"`+testApp+`"`, `"app_id":"cli_other"`), ReasonWrongApp},
		{"not JSON", "hello", ReasonMalformed},
		{"array", `[` + ticketBody + `]`, ReasonMalformed},
		{"null", `null`, ReasonMalformed},
		{"empty", ``, ReasonMalformed},
		{"truncated", ticketBody[:len(ticketBody)-3], ReasonMalformed},
		{"too deep", deep, ReasonMalformed},
		{"unknown shape", `{"hello":"world"}`, ReasonMalformed},
		{"unknown schema", replace(revokedBody, `"schema":"2.0"`, `"schema":"3.0"`), ReasonMalformed},
		{"2.0 without header", `{"schema":"2.0","event":{}}`, ReasonMalformed},
		{"1.0 without event", `{"uuid":"u1","token":"` + testToken + `","type":"event_callback"}`, ReasonMalformed},
		{"1.0 with event as a string", `{"uuid":"u1","token":"` + testToken + `","type":"event_callback","event":"x"}`, ReasonMalformed},
		{"no uuid", replace(ticketBody, `"uuid":"bc447199585340d1f3728d26b1c0297a",`, ""), ReasonMalformed},
		{"uuid with a newline", replace(ticketBody, `"uuid":"bc447199585340d1f3728d26b1c0297a"`, `"uuid":"bc44\n7199"`), ReasonMalformed},
		{"no event type", replace(ticketBody, `,"type":"app_ticket"`, ""), ReasonMalformed},
		{"tenant key with a space", replace(appOpenBody, `"tenant_key":"2ca1d211f64f6438"`, `"tenant_key":"2ca1 d211"`), ReasonMalformed},
		{"ticket missing", replace(ticketBody, `"app_ticket":"`+testTicket+`",`, ""), ReasonMalformed},
		{"ticket with control characters", replace(ticketBody, testTicket, `a\u0000b`), ReasonMalformed},
		{"ticket not a string", replace(ticketBody, `"`+testTicket+`"`, `42`), ReasonMalformed},
		{"app_open without tenant", replace(appOpenBody, `"tenant_key":"2ca1d211f64f6438",`, ""), ReasonMalformed},
		{"app_uninstalled without tenant", replace(uninstalledBody, `"tenant_key":"2ca1d211f64f6438",`, ""), ReasonMalformed},
		{"status change without status", replace(statusBody, `,"status":"stop_by_tenant"`, ""), ReasonMalformed},
		{"revocation naming no user", `{"schema":"2.0","header":{"event_id":"e1","event_type":"auth.user_access_token.revoked_v4","token":"` + testToken + `","app_id":"` + testApp + `"},"event":{"revoke_token_type":"refresh_token"}}`, ReasonMalformed},
		{"revocation without event", `{"schema":"2.0","header":{"event_id":"e1","event_type":"auth.user_access_token.revoked_v4","token":"` + testToken + `","app_id":"` + testApp + `"}}`, ReasonMalformed},
		{"revocation with a malformed open_id", replace(revokedBody, `"open_id":"ou_c99c5f35d542efc7ee492afe11af19ef"`, `"open_id":"ou_c9 9"`), ReasonMalformed},
		{"challenge missing", replace(challengeBody, `"challenge":"ajls384kdjxxxx",`, ""), ReasonMalformed},
		{"challenge too long", replace(challengeBody, "ajls384kdjxxxx", strings.Repeat("c", maxChallengeLen+1)), ReasonMalformed},
		{"encrypt field not a string", `{"encrypt":42}`, ReasonMalformed},
	}
	plain, keyed := receiver(t, ""), receiver(t, testKey)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := plain.Decode([]byte(tt.body))
			e := asError(t, err)
			assert.Equal(t, tt.reason, e.Reason, e.Error())
			assert.False(t, e.Encrypted)
			assert.Equal(t, 400, e.HTTPStatus())

			if tt.body == `{"encrypt":42}` {
				return
			}
			// Encrypted, the same content fails the same check, but the sender cannot tell which:
			// anything decided after decryption reads "event refused". Content that is not one
			// well-formed JSON object counts as not decrypting.
			_, err = keyed.Decode(encryptedBody(t, tt.body))
			e = asError(t, err)
			want := tt.reason
			if parseObject([]byte(tt.body), &wireEvent{}, ReasonMalformed) != nil {
				want = ReasonUndecryptable
			}
			assert.Equal(t, want, e.Reason, e.Error())
			assert.True(t, e.Encrypted)
			assert.Equal(t, "event refused", e.Public())
			assert.Equal(t, 400, e.HTTPStatus())
		})
	}
}

func TestEncryptionIsEnforced(t *testing.T) {
	plain, keyed := receiver(t, ""), receiver(t, testKey)
	other, err := EncryptBody("another key", []byte(ticketBody))
	require.NoError(t, err)
	tests := []struct {
		name   string
		rcv    *Receiver
		body   []byte
		reason Reason
		public string
	}{
		{"plain body to an encrypting app", keyed, []byte(ticketBody), ReasonPlaintextRefused, "event refused"},
		{"plain challenge to an encrypting app", keyed, []byte(challengeBody), ReasonPlaintextRefused, "event refused"},
		{"encrypted body to a plain app", plain, encryptedBody(t, ticketBody), ReasonEncryptedUnexpected, "event refused"},
		{"wrong key", keyed, other, ReasonUndecryptable, "event refused"},
		{"garbage", keyed, []byte(`{"encrypt":"bm90IGEgY2lwaGVydGV4dA=="}`), ReasonUndecryptable, "event refused"},
		{"not base64", keyed, []byte(`{"encrypt":"***"}`), ReasonUndecryptable, "event refused"},
		{"empty", keyed, []byte(`{"encrypt":""}`), ReasonUndecryptable, "event refused"},
		{"encrypted twice", keyed, encryptedBody(t, string(encryptedBody(t, ticketBody))), ReasonMalformed, "event refused"},
		{"encrypted non-JSON", keyed, encryptedBody(t, "hello world"), ReasonUndecryptable, "event refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.rcv.Decode(tt.body)
			e := asError(t, err)
			assert.Equal(t, tt.reason, e.Reason, e.Error())
			assert.Equal(t, tt.public, e.Public())
			assert.Equal(t, 400, e.HTTPStatus())
		})
	}
	// Extra top-level fields beside "encrypt" are ignored: only what decrypts is trusted.
	withExtra := bytes.Replace(encryptedBody(t, ticketBody), []byte(`{`), []byte(`{"token":"forged","type":"x",`), 1)
	ev, err := keyed.Decode(withExtra)
	require.NoError(t, err)
	assert.Equal(t, testTicket, ev.AppTicket.Ticket)
}

func TestSizeLimits(t *testing.T) {
	r, err := NewReceiver(Config{AppID: testApp, VerificationToken: testToken, MaxBodyBytes: 512})
	require.NoError(t, err)
	padded := strings.Replace(ticketBody, `"type":"event_callback"`, `"pad":"`+strings.Repeat("p", 512)+`","type":"event_callback"`, 1)
	_, err = r.Decode([]byte(padded))
	e := asError(t, err)
	assert.Equal(t, ReasonTooLarge, e.Reason)
	assert.Equal(t, 413, e.HTTPStatus())
	assert.Equal(t, "event body too large", e.Public())
	_, err = r.DecodeMap(vaultParse(t, []byte(padded), true))
	assert.Equal(t, ReasonTooLarge, asError(t, err).Reason, "the parsed map is bounded before it is encoded")
	_, err = r.Decode([]byte(ticketBody))
	require.NoError(t, err, "a normal event fits in 512 bytes")

	// The default allows a large event of another type, which the caller then ignores.
	big := strings.Replace(otherV2Body, `"event":{}`, `"event":{"text":"`+strings.Repeat("t", 200<<10)+`"}`, 1)
	ev, err := receiver(t, "").Decode([]byte(big))
	require.NoError(t, err)
	assert.Equal(t, "contact.user_group.created_v3", ev.Type)
	_, err = receiver(t, "").Decode(bytes.Repeat([]byte(" "), DefaultMaxBodyBytes+1))
	assert.Equal(t, ReasonTooLarge, asError(t, err).Reason)
}

func TestDecodeMapBoundsAndTypes(t *testing.T) {
	r := receiver(t, "")
	deep := map[string]any{}
	cur := deep
	for range maxDepth + 2 {
		next := map[string]any{}
		cur["a"] = next
		cur = next
	}
	tests := []struct {
		name   string
		body   map[string]any
		reason Reason
	}{
		{"nil", nil, ReasonMalformed},
		{"empty", map[string]any{}, ReasonMalformed},
		{"too deep", deep, ReasonMalformed},
		{"channel", map[string]any{"encrypt": make(chan int)}, ReasonMalformed},
		{"NaN is not JSON", map[string]any{"type": "event_callback", "ts": nanValue()}, ReasonMalformed},
		{"huge list", map[string]any{"x": make([]any, DefaultMaxBodyBytes)}, ReasonTooLarge},
		{"huge key", map[string]any{strings.Repeat("k", DefaultMaxBodyBytes): 1}, ReasonTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.DecodeMap(tt.body)
			assert.Equal(t, tt.reason, asError(t, err).Reason, err.Error())
		})
	}
}

func nanValue() float64 {
	zero := 0.0
	return zero / zero
}

func TestNewReceiverValidates(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no app", Config{VerificationToken: testToken}, "app id is empty or malformed"},
		{"app with a space", Config{AppID: "cli x", VerificationToken: testToken}, "app id is empty or malformed"},
		{"no token", Config{AppID: testApp}, "verification token is required"},
		{"token with a newline", Config{AppID: testApp, VerificationToken: testToken + "\n"}, "verification token is malformed"},
		{"huge token", Config{AppID: testApp, VerificationToken: strings.Repeat(testToken, 100)}, "verification token is malformed"},
		{"key with a newline", Config{AppID: testApp, VerificationToken: testToken, EncryptKey: testKey + "\n"}, "encrypt key is malformed"},
		{"negative limit", Config{AppID: testApp, VerificationToken: testToken, MaxBodyBytes: -1}, "must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewReceiver(tt.cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.NotContains(t, err.Error(), testToken)
			assert.NotContains(t, err.Error(), testKey)
		})
	}
	r := receiver(t, testKey)
	assert.Equal(t, testApp, r.AppID())
	assert.True(t, r.Encrypted())
	assert.False(t, receiver(t, "").Encrypted())
}

// TestSecretsNeverLeak: however a refusal or an event is printed, neither the Verification Token,
// the Encrypt Key nor the app_ticket shows, nor does the body.
func TestSecretsNeverLeak(t *testing.T) {
	secrets := []string{testToken, testKey, testTicket}
	bodies := [][]byte{
		[]byte(strings.Replace(ticketBody, `"app_id":"`+testApp+`"`, `"app_id":"`+testTicket+testToken+`"`, 1)),
		[]byte(strings.Replace(ticketBody, testToken, testKey+testTicket, 1)),
		[]byte(`{"hello":"` + testToken + testKey + testTicket + `"}`),
		[]byte(`{"encrypt":"` + testKey + testToken + `"}`),
		[]byte(testToken + testKey),
	}
	for _, keyed := range []bool{false, true} {
		key := ""
		if keyed {
			key = testKey
		}
		r := receiver(t, key)
		for i, b := range bodies {
			for _, body := range [][]byte{b, encryptedBody(t, string(b))} {
				_, err := r.Decode(body)
				e := asError(t, err)
				for _, s := range []string{e.Error(), e.Public(), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e)} {
					for _, sec := range secrets {
						assert.NotContains(t, s, sec, "body %d", i)
					}
				}
			}
		}
	}
	ev, err := receiver(t, testKey).Decode(encryptedBody(t, ticketBody))
	require.NoError(t, err)
	for _, s := range []string{fmt.Sprintf("%v", *ev.AppTicket), fmt.Sprintf("%+v", ev.AppTicket), fmt.Sprintf("%#v", ev.AppTicket), fmt.Sprint(ev.AppTicket)} {
		assert.NotContains(t, s, testTicket)
		assert.Contains(t, s, "[redacted]")
	}
	assert.Equal(t, testTicket, ev.AppTicket.Ticket, "the caller still gets the ticket itself")
}

func asError(t *testing.T, err error) *Error {
	t.Helper()
	require.Error(t, err)
	e, ok := err.(*Error)
	require.Truef(t, ok, "want *larkevent.Error, got %T: %v", err, err)
	return e
}
