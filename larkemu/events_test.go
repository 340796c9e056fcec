package larkemu

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTestDecryptMatchesLark anchors the test's decryptor to the example in Lark's event
// documentation, so the round trips below do not merely check the emulator against itself.
func TestTestDecryptMatchesLark(t *testing.T) {
	got := testDecrypt(t, "test key", "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=")
	expectEqual(t, "Lark's documented vector", string(got), "hello world")
}

func TestEncryptionRoundTrip(t *testing.T) {
	for _, plain := range []string{"", "x", strings.Repeat("y", 15), strings.Repeat("z", 16), `{"challenge":"c"}`, strings.Repeat("é", 1000)} {
		enc := encryptEvent(encryptKey, []byte(plain))
		expectEqual(t, "decrypts", string(testDecrypt(t, encryptKey, enc)), plain)
		if enc == encryptEvent(encryptKey, []byte(plain)) {
			t.Fatal("two encryptions share an IV")
		}
	}
}

func TestEncryptedSignedDelivery(t *testing.T) {
	rc := newReceiver(t)
	s, _, _ := newStoreEmu(t, storeAppConfig(rc, encryptKey), Options{})
	ticket, d, err := s.PushAppTicket(storeApp)
	if err != nil || d == nil {
		t.Fatalf("push: %v %v", d, err)
	}
	r := rc.requests()[0]
	expectEqual(t, "content type", r.header.Get("Content-Type"), "application/json; charset=utf-8")
	ev := openEvent(t, r, encryptKey) // checks the {"encrypt"} shape and X-Lark-Signature
	expectEqual(t, "ticket", ticketFrom(t, ev), ticket.Ticket)
	expectEqual(t, "recorded body", d.Body, string(r.body))
	expectEqual(t, "recorded headers", d.Attempts[0].Headers[HeaderLarkSignature], r.header.Get("X-Lark-Signature"))
	if !d.Encrypted || !strings.Contains(string(d.Plaintext), ticket.Ticket) {
		t.Fatal("the record should hold the plaintext and say it was encrypted")
	}
	expectEqual(t, "timestamp is the emulator clock in seconds", r.header.Get(HeaderLarkTimestamp), strconv.FormatInt(epoch.Unix(), 10))
	// With another key nothing sensible comes out.
	var env map[string]string
	_ = json.Unmarshal(r.body, &env)
	if plain, err := decryptLark("another key", env["encrypt"]); err == nil && string(plain) == string(d.Plaintext) {
		t.Fatal("another key decrypted the event")
	}
}

func jsonInt(n int64) string { return strconv.FormatInt(n, 10) }

func TestURLVerification(t *testing.T) {
	for _, key := range []string{"", encryptKey} {
		rc := newReceiver(t)
		s, base, _ := newStoreEmu(t, storeAppConfig(rc, key), Options{})
		rc.setAnswer(func(_ int, r received) (int, string) {
			ev := openEvent(t, r, key)
			return http.StatusOK, mustJSON(t, map[string]any{"challenge": ev["challenge"]})
		})
		d, err := s.VerifyURL(storeApp)
		if err != nil {
			t.Fatal(err)
		}
		ev := openEvent(t, rc.requests()[0], key)
		expectEqual(t, "type", ev["type"], any("url_verification"))
		expectEqual(t, "token", ev["token"], any(verifyToken))
		if d.ChallengeAnswered == nil || !*d.ChallengeAnswered || d.State != DeliveryDelivered {
			t.Fatalf("key %q: a correct answer was not recognised: %+v", key, d)
		}

		// Over HTTP, with answers that do not count.
		for name, answer := range map[string]func(int, received) (int, string){
			"wrong challenge": func(int, received) (int, string) { return http.StatusOK, `{"challenge":"nope"}` },
			"Vault-wrapped": func(_ int, r received) (int, string) {
				return http.StatusOK, mustJSON(t, map[string]any{"data": map[string]any{"challenge": openEvent(t, r, key)["challenge"]}})
			},
			"status 201": func(_ int, r received) (int, string) {
				return http.StatusCreated, mustJSON(t, map[string]any{"challenge": openEvent(t, r, key)["challenge"]})
			},
		} {
			rc.setAnswer(answer)
			r := postJSON(t, base+ControlPrefix+"apps/"+storeApp+"/url-verification", "")
			expectEqual(t, name+" status", r.status, http.StatusOK)
			var got EventDelivery
			if err := json.Unmarshal([]byte(r.body), &got); err != nil {
				t.Fatal(err)
			}
			if got.ChallengeAnswered == nil || *got.ChallengeAnswered {
				t.Errorf("key %q, %s: counted as answered", key, name)
			}
			if len(got.Attempts) != 1 || got.State != DeliveryFailed {
				t.Errorf("%s: a challenge is tried once and fails: %+v", name, got)
			}
		}
	}
}

func TestEventRetriesOnTheEmulatorClock(t *testing.T) {
	rc := newReceiver(t)
	rc.setAnswer(func(n int, _ received) (int, string) {
		if n < 3 {
			return http.StatusInternalServerError, `{"error":"busy"}`
		}
		return http.StatusOK, `{}`
	})
	s, _, fc := newStoreEmu(t, storeAppConfig(rc, ""), Options{
		EventRetryDelays: []time.Duration{5 * time.Second, 5 * time.Minute, time.Hour}, TicketInterval: 1000 * time.Hour})
	_, d, err := s.PushAppTicket(storeApp)
	if err != nil {
		t.Fatal(err)
	}
	if d.State != DeliveryPending || d.NextAttemptAt == nil || !d.NextAttemptAt.Equal(epoch.Add(5*time.Second)) {
		t.Fatalf("after a failed first attempt: %+v", d)
	}
	expectEqual(t, "first response", d.Attempts[0].Response, `{"error":"busy"}`)
	expectEqual(t, "first status", d.Attempts[0].Status, 500)

	fc.Advance(4 * time.Second)
	time.Sleep(5 * schedulerPoll)
	expectEqual(t, "no retry before it is due", len(rc.requests()), 1)
	fc.Advance(time.Second)
	waitRetryScheduled(t, s, 2)
	fc.Advance(5 * time.Minute)
	rc.waitRequests(t, 3)
	waitFor(t, func() bool { return s.Events(storeApp, 0)[0].State == DeliveryDelivered })
	got := s.Events(storeApp, 0)[0]
	expectEqual(t, "attempts", len(got.Attempts), 3)
	expectEqual(t, "third status", got.Attempts[2].Status, 200)
	// A retry is the same event: same bytes, same uuid.
	reqs := rc.requests()
	if string(reqs[0].body) != string(reqs[2].body) {
		t.Fatal("a retry changed the body")
	}
	expectEqual(t, "deliveries counted", s.Calls(EndpointEventDelivery), 3)
	fc.Advance(2 * time.Hour)
	time.Sleep(5 * schedulerPoll)
	expectEqual(t, "nothing after delivery", len(rc.requests()), 3)
}

// waitRetryScheduled waits until the app's first delivery has filed its attempts-th attempt and
// scheduled the next, so that moving the clock afterwards cannot race the filing.
func waitRetryScheduled(t *testing.T, s *Server, attempts int) {
	t.Helper()
	waitFor(t, func() bool {
		d := s.Events(storeApp, 0)[0]
		return len(d.Attempts) == attempts && d.NextAttemptAt != nil
	})
}

func TestEventRetriesGiveUp(t *testing.T) {
	rc := newReceiver(t)
	rc.setAnswer(func(int, received) (int, string) { return http.StatusForbidden, "no" })
	s, _, fc := newStoreEmu(t, storeAppConfig(rc, encryptKey), Options{
		EventRetryDelays: []time.Duration{time.Second, time.Second}, TicketInterval: 1000 * time.Hour})
	if _, _, err := s.PushAppTicket(storeApp); err != nil {
		t.Fatal(err)
	}
	fc.Advance(time.Second)
	waitRetryScheduled(t, s, 2)
	fc.Advance(time.Second)
	rc.waitRequests(t, 3)
	waitFor(t, func() bool { return s.Events(storeApp, 0)[0].State == DeliveryFailed })
	reqs := rc.requests()
	// Each attempt is signed afresh over the same body.
	if reqs[0].header.Get("X-Lark-Request-Nonce") == reqs[1].header.Get("X-Lark-Request-Nonce") {
		t.Fatal("a retry reused the nonce")
	}
	for _, r := range reqs {
		openEvent(t, r, encryptKey)
	}
	fc.Advance(time.Hour)
	time.Sleep(5 * schedulerPoll)
	expectEqual(t, "no attempt after giving up", len(rc.requests()), 3)
}

func TestEventTimeoutAndRedirect(t *testing.T) {
	rc := newReceiver(t)
	release := make(chan struct{})
	rc.setAnswer(func(n int, _ received) (int, string) {
		if n == 1 {
			<-release
		}
		if n == 2 {
			return http.StatusFound, ""
		}
		return http.StatusOK, "{}"
	})
	s, _, _ := newStoreEmu(t, storeAppConfig(rc, ""), Options{EventTimeout: 100 * time.Millisecond, EventRetryDelays: []time.Duration{}})
	_, d, _ := s.PushAppTicket(storeApp)
	close(release)
	if d.State != DeliveryFailed || d.Attempts[0].Status != 0 || !strings.Contains(d.Attempts[0].Error, "no answer within 100ms") {
		t.Fatalf("a slow receiver is a failed delivery: %+v", d)
	}
	_, d, _ = s.PushAppTicket(storeApp)
	if d.State != DeliveryFailed || d.Attempts[0].Status != http.StatusFound {
		t.Fatalf("a redirect is not followed and fails: %+v", d)
	}
	_, d, _ = s.PushAppTicket(storeApp)
	expectEqual(t, "third", d.State, DeliveryDelivered)
}

func TestPushReplayAndForgery(t *testing.T) {
	rc := newReceiver(t)
	s, base, _ := newStoreEmu(t, storeAppConfig(rc, encryptKey), Options{})
	ctl := base + ControlPrefix + "apps/" + storeApp + "/events/push"
	_, orig, _ := s.PushAppTicket(storeApp)

	// A replay sends the captured request again: same bytes, same signature headers.
	r := postJSON(t, ctl, `{"replay_of":`+jsonInt(int64(orig.Seq))+`}`)
	expectEqual(t, "replay status", r.status, http.StatusOK)
	var replay EventDelivery
	_ = json.Unmarshal([]byte(r.body), &replay)
	reqs := rc.requests()
	expectEqual(t, "replay body", string(reqs[1].body), string(reqs[0].body))
	for _, h := range []string{HeaderLarkTimestamp, HeaderLarkNonce, HeaderLarkSignature} {
		expectEqual(t, "replay "+h, reqs[1].header.Get(h), reqs[0].header.Get(h))
	}
	expectEqual(t, "replay source", replay.Source, SourceReplay)
	expectEqual(t, "replay event id", replay.EventID, orig.EventID)

	// A forged event encrypted with the attacker's key: the receiver cannot read it.
	forged := `{"ts":"1","uuid":"forged-1","token":"` + verifyToken + `","type":"event_callback","event":{"app_id":"` +
		storeApp + `","app_ticket":"evil","type":"app_ticket"}}`
	r = postJSON(t, ctl, `{"event":`+forged+`,"encrypt_key":"attacker"}`)
	var fd EventDelivery
	_ = json.Unmarshal([]byte(r.body), &fd)
	expectEqual(t, "forged source", fd.Source, SourcePush)
	expectEqual(t, "forged id", fd.EventID, "forged-1")
	expectEqual(t, "forged type", fd.EventType, EventAppTicket)
	var env map[string]string
	_ = json.Unmarshal(rc.requests()[2].body, &env)
	expectEqual(t, "attacker's key decrypts", string(testDecrypt(t, "attacker", env["encrypt"])), forged)

	// A plaintext event to an app with a key, and a raw body, go out as given.
	postJSON(t, ctl, `{"event":{"type":"url_verification","challenge":"c","token":"x"},"encrypt":false}`)
	expectEqual(t, "plaintext push", string(rc.requests()[3].body), `{"type":"url_verification","challenge":"c","token":"x"}`)
	if rc.requests()[3].header.Get("X-Lark-Signature") != "" {
		t.Fatal("an unencrypted push was signed")
	}
	postJSON(t, ctl, `{"raw_body":"{not json"}`)
	expectEqual(t, "raw push", string(rc.requests()[4].body), "{not json")

	// A forged push is tried once by default, and with retry on Lark's schedule.
	rc.setAnswer(func(int, received) (int, string) { return http.StatusBadRequest, `{"error":"forged"}` })
	r = postJSON(t, ctl, `{"event":{"a":1}}`)
	_ = json.Unmarshal([]byte(r.body), &fd)
	expectEqual(t, "forged refused", fd.State, DeliveryFailed)
	expectEqual(t, "recorded answer", fd.Attempts[0].Response, `{"error":"forged"}`)
	r = postJSON(t, ctl, `{"event":{"a":1},"retry":true}`)
	_ = json.Unmarshal([]byte(r.body), &fd)
	expectEqual(t, "with retry", fd.State, DeliveryPending)

	// Oversized but valid: a padded, encrypted event and a padded raw body.
	rc.setAnswer(nil)
	r = postJSON(t, ctl, `{"event":{"type":"x"},"pad_bytes":200000}`)
	var big EventDelivery
	_ = json.Unmarshal([]byte(r.body), &big)
	last := rc.requests()[len(rc.requests())-1]
	padded := openEvent(t, last, encryptKey)
	expectEqual(t, "padding", len(padded["padding"].(string)), 200000)
	expectEqual(t, "body_bytes", big.BodyBytes, len(last.body))
	expectEqual(t, "listed body is cut", len(big.Body), 64<<10)
	if big.Plaintext != nil {
		t.Fatal("a huge plaintext is listed")
	}
	postJSON(t, ctl, `{"raw_body":"{}","pad_bytes":100}`)
	expectEqual(t, "padded raw", string(rc.requests()[len(rc.requests())-1].body), "{}"+strings.Repeat(" ", 100))

	for name, body := range map[string]string{
		"pad a replay":    `{"replay_of":1,"pad_bytes":10}`,
		"pad an array":    `{"event":[1],"pad_bytes":10}`,
		"negative pad":    `{"raw_body":"x","pad_bytes":-1}`,
		"nothing":         `{}`,
		"two things":      `{"event":{},"raw_body":"x"}`,
		"unknown replay":  `{"replay_of":999}`,
		"encrypt w/o evt": `{"raw_body":"x","encrypt":true}`,
		"unknown field":   `{"evnt":{}}`,
	} {
		expectEqual(t, name, postJSON(t, ctl, body).status, http.StatusBadRequest)
	}
	expectEqual(t, "unknown app", postJSON(t, base+ControlPrefix+"apps/cli_nobody/events/push", `{"raw_body":"x"}`).status, http.StatusNotFound)
}

func TestRevocationEvent(t *testing.T) {
	rc := newReceiver(t)
	selfBuilt := App{ID: "cli_selfbuilt", Secret: "sb-secret", EventURL: rc.url(), VerificationToken: verifyToken,
		EncryptKey: encryptKey, EventTypes: []string{EventUserTokenRevoked}}
	s, base, _ := newStoreEmu(t, selfBuilt, Options{})
	if err := s.AddUser(User{UserID: "bob"}); err != nil {
		t.Fatal(err)
	}
	g, err := s.MintGrant(MintRequest{AppID: "cli_selfbuilt", UserID: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	r := postJSON(t, base+ControlPrefix+"grants/revoke", `{"grant_id":"`+g.GrantID+`","reason":"security"}`)
	expectEqual(t, "revoke status", r.status, http.StatusOK)
	var reply revokeGrantsReply
	if err := json.Unmarshal([]byte(r.body), &reply); err != nil {
		t.Fatal(err)
	}
	if reply.Grants != 1 || len(reply.Events) != 1 || reply.Events[0].State != DeliveryDelivered {
		t.Fatalf("revoke reply: %s", r.body)
	}
	ev := openEvent(t, rc.requests()[0], encryptKey)
	expectEqual(t, "schema", ev["schema"], any("2.0"))
	h := ev["header"].(map[string]any)
	expectEqual(t, "event_type", h["event_type"], any(EventUserTokenRevoked))
	expectEqual(t, "token", h["token"], any(verifyToken))
	expectEqual(t, "app_id", h["app_id"], any("cli_selfbuilt"))
	expectEqual(t, "tenant_key", h["tenant_key"], any(DefaultTenantKey))
	expectEqual(t, "create_time", h["create_time"], any(jsonInt(epoch.UnixMilli())))
	expectEqual(t, "event id recorded", reply.Events[0].EventID, h["event_id"].(string))
	wantEvent := map[string]any{
		"revoke_token_type": "user_access_token refresh_token",
		"revoke_reason":     "Revoked by security and risk control action.",
		"open_id":           g.OpenID, "union_id": s.UnionID("bob"), "user_id": "bob",
	}
	expectEqual(t, "event", mustJSON(t, ev["event"]), mustJSON(t, wantEvent))

	// Revoking again tells Lark nothing new; the grant still matches.
	r = postJSON(t, base+ControlPrefix+"grants/revoke", `{"grant_id":"`+g.GrantID+`"}`)
	expectEqual(t, "second revoke", r.body, `{"grants":1}`)
	expectEqual(t, "requests", len(rc.requests()), 1)

	// Each reason word maps to Lark's sentence; the default is the user.
	for word, text := range map[string]string{"": "Revoked by user action.", "administrator": "Revoked by administrator action.",
		"restriction": "Revoked by restriction action.", "unknown": "Revoked by unknown action."} {
		g, _ := s.MintGrant(MintRequest{AppID: "cli_selfbuilt", UserID: "bob"})
		n, err := s.RevokeGrants(GrantSelector{GrantID: g.GrantID, Reason: word})
		if err != nil || n != 1 {
			t.Fatal(n, err)
		}
		reqs := rc.requests()
		got := openEvent(t, reqs[len(reqs)-1], encryptKey)["event"].(map[string]any)
		expectEqual(t, "reason "+word, got["revoke_reason"], any(text))
	}
	expectEqual(t, "bad reason", postJSON(t, base+ControlPrefix+"grants/revoke", `{"app_id":"cli_selfbuilt","reason":"boredom"}`).status, http.StatusBadRequest)
	expectEqual(t, "reason on expire", postJSON(t, base+ControlPrefix+"grants/expire", `{"app_id":"cli_selfbuilt","reason":"user"}`).status, http.StatusBadRequest)

	// An app that did not subscribe gets nothing; store apps get no user_id.
	before := len(rc.requests())
	g2, _ := s.MintGrant(MintRequest{AppID: testApp, UserID: "bob"})
	if _, err := s.RevokeGrants(GrantSelector{GrantID: g2.GrantID}); err != nil {
		t.Fatal(err)
	}
	expectEqual(t, "unsubscribed app", len(rc.requests()), before)
	if err := s.RegisterApp(storeAppConfig(rc, "", EventUserTokenRevoked)); err != nil {
		t.Fatal(err)
	}
	g3, _ := s.MintGrant(MintRequest{AppID: storeApp, UserID: "bob"})
	if _, err := s.RevokeGrants(GrantSelector{GrantID: g3.GrantID}); err != nil {
		t.Fatal(err)
	}
	reqs := rc.requests()
	got := openEvent(t, reqs[len(reqs)-1], "")["event"].(map[string]any)
	if _, ok := got["user_id"]; ok {
		t.Fatal("a store app got user_id")
	}
	expectEqual(t, "store app open_id", got["open_id"], any(s.OpenID(storeApp, "bob")))
}

func TestEventsControlAndReset(t *testing.T) {
	rc := newReceiver(t)
	s, base, _ := newStoreEmu(t, storeAppConfig(rc, "", EventAppOpen), Options{})
	ctl := base + ControlPrefix + "apps/" + storeApp + "/"

	r := postJSON(t, ctl+"tenants", `{"tenant_key":"`+tenantA+`"}`)
	var inst installReply
	if err := json.Unmarshal([]byte(r.body), &inst); err != nil || !inst.Installed || inst.Event == nil || inst.Event.EventType != EventAppOpen {
		t.Fatalf("install: %s", r.body)
	}
	r = postJSON(t, ctl+"tenants", `{"tenant_key":"`+tenantA+`"}`)
	expectEqual(t, "install again", r.body, `{"installed":false,"event":null}`)
	expectEqual(t, "bad tenant", postJSON(t, ctl+"tenants", `{"tenant_key":"a b"}`).status, http.StatusBadRequest)
	r = postJSON(t, ctl+"tickets", "")
	var pt pushTicketReply
	if err := json.Unmarshal([]byte(r.body), &pt); err != nil || pt.Event == nil || pt.Ticket.Ticket == "" {
		t.Fatalf("push ticket: %s", r.body)
	}
	tickets := decode(t, get(t, ctl+"tickets").body)["tickets"].([]any)
	expectEqual(t, "tickets", len(tickets), 1)
	tenants := decode(t, get(t, ctl+"tenants").body)["tenants"].([]any)
	expectEqual(t, "tenants", tenants[0].(map[string]any)["tenant_key"], any(tenantA))

	all := decode(t, get(t, ctl+"events").body)["events"].([]any)
	expectEqual(t, "events", len(all), 2)
	onlyTickets := decode(t, get(t, ctl+"events?type=app_ticket").body)["events"].([]any)
	expectEqual(t, "filtered", len(onlyTickets), 1)
	after := decode(t, get(t, ctl+"events?after="+jsonInt(int64(inst.Event.Seq))).body)["events"].([]any)
	expectEqual(t, "after", len(after), 1)
	expectEqual(t, "bad after", get(t, ctl+"events?after=x").status, http.StatusBadRequest)

	expectEqual(t, "uninstall", del(t, ctl+"tenants/"+tenantA).body, `{"removed":true}`)
	expectEqual(t, "uninstall again", del(t, ctl+"tenants/"+tenantA).body, `{"removed":false}`)
	expectEqual(t, "clear", del(t, ctl+"events").body, `{"ok":true}`)
	expectEqual(t, "cleared", get(t, ctl+"events").body, `{"events":[]}`)
	expectEqual(t, "unknown app", get(t, base+ControlPrefix+"apps/cli_nobody/events").status, http.StatusNotFound)
	expectEqual(t, "unknown sub-path", get(t, ctl+"nothing").status, http.StatusNotFound)
	expectEqual(t, "wrong method", get(t, ctl+"url-verification").status, http.StatusMethodNotAllowed)

	// Reset forgets tickets and deliveries but keeps installations.
	postJSON(t, ctl+"tenants", `{"tenant_key":"`+tenantB+`","silent":true}`)
	if _, _, err := s.PushAppTicket(storeApp); err != nil {
		t.Fatal(err)
	}
	s.Reset()
	expectEqual(t, "tickets after reset", len(s.Tickets(storeApp)), 0)
	expectEqual(t, "events after reset", len(s.Events("", 0)), 0)
	expectEqual(t, "tenants after reset", len(s.Tenants(storeApp)), 1)
}

func TestCloseStopsDeliveries(t *testing.T) {
	rc := newReceiver(t)
	rc.setAnswer(func(int, received) (int, string) { return http.StatusServiceUnavailable, "" })
	s := New(Options{RegisterApps: []App{storeAppConfig(rc, "")}, EventRetryDelays: []time.Duration{time.Millisecond}})
	if _, _, err := s.PushAppTicket(storeApp); err != nil {
		t.Fatal(err)
	}
	s.Close()
	n := len(rc.requests())
	time.Sleep(10 * schedulerPoll)
	expectEqual(t, "no delivery after Close", len(rc.requests()), n)
	if _, d, _ := s.PushAppTicket(storeApp); d == nil || d.Attempts[0].Status != 0 {
		t.Fatal("after Close a push must not reach the receiver")
	}
}
