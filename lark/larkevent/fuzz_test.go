package larkevent

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// Fuzz targets for event decoding. Their seeds run with go test; `go test -fuzz=FuzzX` explores.
// Properties: no panic; every failure is a *Error with a known Reason whose texts hold none of the
// secrets; every success is an event for this app whose payload matches its type.

var knownReasons = map[Reason]bool{
	ReasonTooLarge: true, ReasonMalformed: true, ReasonPlaintextRefused: true, ReasonEncryptedUnexpected: true,
	ReasonUndecryptable: true, ReasonBadToken: true, ReasonWrongApp: true,
}

func fuzzSeeds() []string {
	return []string{challengeBody, ticketBody, appOpenBody, uninstalledBody, statusBody, revokedBody, otherV2Body,
		`{"encrypt":"P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk="}`, `{}`, `[]`, `null`, `{"schema":"2.0"}`,
		`{"type":"event_callback","token":"` + testToken + `","uuid":"u","event":{"app_id":"` + testApp + `","type":"app_ticket"}}`}
}

func checkRefusal(t *testing.T, err error) *Error {
	t.Helper()
	e, ok := err.(*Error)
	if !ok {
		t.Fatalf("want *Error, got %T: %v", err, err)
	}
	if !knownReasons[e.Reason] {
		t.Fatalf("unknown reason %q", e.Reason)
	}
	for _, s := range []string{e.Error(), e.Public()} {
		for _, secret := range []string{testToken, testKey, testTicket} {
			if strings.Contains(s, secret) {
				t.Fatalf("secret in %q", s)
			}
		}
	}
	if e.Encrypted && e.Reason != ReasonTooLarge && e.Public() != "event refused" {
		t.Fatalf("an encrypted refusal tells the sender %q", e.Public())
	}
	return e
}

func checkEvent(t *testing.T, ev *Event) {
	t.Helper()
	if ev.IsChallenge() {
		if !visible(ev.Challenge, maxChallengeLen) || ev.ID != "" || ev.AppID != "" {
			t.Fatalf("odd challenge %+v", ev)
		}
		return
	}
	if ev.AppID != testApp || !visible(ev.ID, maxIDLen) || !visible(ev.Type, maxTypeLen) || (ev.Schema != Schema1 && ev.Schema != Schema2) {
		t.Fatalf("event fails its invariants: %+v", ev)
	}
	if ev.TenantKey != "" && !visible(ev.TenantKey, maxTenantKeyLen) {
		t.Fatalf("tenant key %q", ev.TenantKey)
	}
	payloads := map[string]bool{
		TypeAppTicket: ev.AppTicket != nil, TypeAppOpen: ev.AppOpen != nil, TypeAppUninstalled: ev.AppUninstalled != nil,
		TypeAppStatusChange: ev.AppStatusChange != nil, TypeUserTokenRevoked: ev.TokenRevoked != nil,
	}
	for typ, set := range payloads {
		if set != (typ == ev.Type) {
			t.Fatalf("type %q with payload for %q: %v", ev.Type, typ, set)
		}
	}
	if ev.AppTicket != nil && !visible(ev.AppTicket.Ticket, maxTicketLen) {
		t.Fatal("malformed ticket accepted")
	}
	if ev.AppOpen != nil && ev.AppOpen.TenantKey == "" {
		t.Fatal("app_open without tenant")
	}
	if ev.TokenRevoked != nil && ev.TokenRevoked.OpenID == "" && ev.TokenRevoked.UnionID == "" && ev.TokenRevoked.UserID == "" {
		t.Fatal("revocation without user")
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	plain, err := NewReceiver(Config{AppID: testApp, VerificationToken: testToken})
	if err != nil {
		f.Fatal(err)
	}
	keyed, err := NewReceiver(Config{AppID: testApp, VerificationToken: testToken, EncryptKey: testKey})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, encrypted bool) {
		r := plain
		if encrypted {
			r = keyed
		}
		ev, err := r.Decode(body)
		if err != nil {
			_ = checkRefusal(t, err)
			return
		}
		checkEvent(t, ev)
	})
}

// FuzzEncryptedMatchesPlain: whatever the plaintext, an encrypting receiver decides about its
// encrypted form exactly what a plain receiver decides about the plaintext, apart from the known
// differences (content that is not one JSON object reads as undecryptable; an "encrypt" field
// inside is refused as nesting). This exercises everything after decryption with random content.
func FuzzEncryptedMatchesPlain(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(s))
	}
	plain, _ := NewReceiver(Config{AppID: testApp, VerificationToken: testToken})
	keyed, _ := NewReceiver(Config{AppID: testApp, VerificationToken: testToken, EncryptKey: testKey})
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > DefaultMaxBodyBytes/2 {
			return // encryption adds a third; the limit would differ
		}
		enc, err := EncryptBody(testKey, body)
		if err != nil {
			t.Fatal(err)
		}
		pev, perr := plain.Decode(body)
		kev, kerr := keyed.Decode(enc)
		switch {
		case perr == nil && kerr == nil:
			pev.Encrypted = true
			if !reflect.DeepEqual(pev, kev) {
				t.Fatalf("plain %+v, encrypted %+v", pev, kev)
			}
		case perr != nil && kerr != nil:
			pe, ke := checkRefusal(t, perr), checkRefusal(t, kerr)
			want := pe.Reason
			switch {
			case parseObject(body, &wireEvent{}, ReasonMalformed) != nil:
				want = ReasonUndecryptable
			case pe.Reason == ReasonEncryptedUnexpected:
				want = ReasonMalformed
			}
			if ke.Reason != want || !ke.Encrypted {
				t.Fatalf("plain refused for %s, encrypted for %s (encrypted=%v)", pe.Reason, ke.Reason, ke.Encrypted)
			}
		default:
			t.Fatalf("plain: %v, encrypted: %v", perr, kerr)
		}
	})
}

// FuzzDecrypt feeds arbitrary "encrypt" values: decryption must fail cleanly or yield less than it
// was given.
func FuzzDecrypt(f *testing.F) {
	f.Add("P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=")
	f.Add("")
	f.Add(strings.Repeat("A", 44))
	key := deriveKey("test key")
	f.Fuzz(func(t *testing.T, s string) {
		plain, err := decrypt(key, s)
		if err != nil {
			if err != errUndecryptable {
				t.Fatalf("distinguishable failure %v", err)
			}
			return
		}
		if len(plain) >= len(s) {
			t.Fatalf("%d bytes out of %d", len(plain), len(s))
		}
	})
}

// FuzzDecodeMap parses bodies the way Vault does and decodes the map.
func FuzzDecodeMap(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(s), false)
	}
	f.Add([]byte(`{"a":1e400}`), true)
	plain, _ := NewReceiver(Config{AppID: testApp, VerificationToken: testToken})
	f.Fuzz(func(t *testing.T, body []byte, useNumber bool) {
		dec := json.NewDecoder(bytes.NewReader(body))
		if useNumber {
			dec.UseNumber()
		}
		var m map[string]any
		if dec.Decode(&m) != nil {
			return
		}
		ev, err := plain.DecodeMap(m)
		if err != nil {
			_ = checkRefusal(t, err)
			return
		}
		checkEvent(t, ev)
	})
}
