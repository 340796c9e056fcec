package larkemu

import (
	"net/http"
	"strings"
	"testing"
)

func TestControlRegisterStoreApp(t *testing.T) {
	rc := newReceiver(t)
	s, ts, _ := newFakeEmu(t, Options{Apps: map[string]string{}})
	ctl := ts.URL + ControlPrefix

	body := `{"app_id":"` + storeApp + `","app_secret":"` + storeSecret + `","app_type":"store","event_url":"` + rc.url() +
		`","verification_token":"` + verifyToken + `","encrypt_key":"` + encryptKey + `","event_types":["app_open"],"tenants":["` + tenantA + `"]}`
	expectEqual(t, "register", postJSON(t, ctl+"apps", body).body, `{"ok":true}`)
	r := get(t, ctl+"apps")
	expectEqual(t, "list", r.body, `{"apps":[{"app_id":"`+storeApp+`","refresh_disabled":false,"scopes":[],"app_type":"store","event_url":"`+
		rc.url()+`","event_types":["app_open"],"encrypt_key_set":true}]}`)
	for _, secret := range []string{storeSecret, verifyToken, encryptKey} {
		if strings.Contains(r.body, secret) {
			t.Errorf("the app listing shows a secret")
		}
	}
	expectEqual(t, "silently installed", len(s.Tenants(storeApp)), 1)
	expectEqual(t, "no event for it", len(rc.requests()), 0)

	for name, bad := range map[string]string{
		"bad type":       `{"app_id":"cli_x","app_secret":"x","app_type":"isv"}`,
		"url, no token":  `{"app_id":"cli_x","app_secret":"x","event_url":"http://127.0.0.1/e"}`,
		"unknown event":  `{"app_id":"cli_x","app_secret":"x","event_types":["nope"]}`,
		"tenants typo":   `{"app_id":"cli_x","app_secret":"x","app_type":"store","tenant":["a"]}`,
		"app_open on sb": `{"app_id":"cli_x","app_secret":"x","event_types":["app_open"]}`,
	} {
		r := postJSON(t, ctl+"apps", bad)
		expectEqual(t, name, r.status, http.StatusBadRequest)
	}
	expectEqual(t, "nothing registered", len(s.Apps()), 1)

	// URL verification over the control API, encrypted.
	rc.setAnswer(func(_ int, r received) (int, string) {
		return http.StatusOK, mustJSON(t, map[string]any{"challenge": openEvent(t, r, encryptKey)["challenge"]})
	})
	r = postJSON(t, ctl+"apps/"+storeApp+"/url-verification", "")
	m := decode(t, r.body)
	expectEqual(t, "challenge answered", m["challenge_answered"], any(true))
	expectEqual(t, "event type", m["event_type"], any(EventURLVerification))
	// An app without an event URL cannot be verified or pushed to.
	postJSON(t, ctl+"apps", `{"app_id":"cli_quiet","app_secret":"x"}`)
	expectEqual(t, "no URL", postJSON(t, ctl+"apps/cli_quiet/url-verification", "").status, http.StatusBadRequest)
	expectEqual(t, "no URL push", postJSON(t, ctl+"apps/cli_quiet/events/push", `{"raw_body":"x"}`).status, http.StatusBadRequest)
	expectEqual(t, "ticket for self-built", postJSON(t, ctl+"apps/cli_quiet/tickets", "").status, http.StatusBadRequest)
	expectEqual(t, "install self-built", postJSON(t, ctl+"apps/cli_quiet/tenants", `{"tenant_key":"k"}`).status, http.StatusBadRequest)
	// Removing the app forgets its tenants and tickets.
	if _, _, err := s.PushAppTicket(storeApp); err != nil {
		t.Fatal(err)
	}
	expectEqual(t, "remove", del(t, ctl+"apps/"+storeApp).body, `{"removed":true}`)
	expectEqual(t, "tenants gone", len(s.Tenants(storeApp)), 0)
	expectEqual(t, "tickets gone", len(s.Tickets(storeApp)), 0)
	expectEqual(t, "control on a removed app", get(t, ctl+"apps/"+storeApp+"/tenants").status, http.StatusNotFound)
}
