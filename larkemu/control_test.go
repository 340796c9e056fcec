package larkemu

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lark-vault/vault-plugin-secrets-lark/clock"
)

func del(t *testing.T, url string) response {
	t.Helper()
	return do(t, http.MethodDelete, url, "", nil)
}

func TestControlApps(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{Apps: map[string]string{}})
	ctl := ts.URL + ControlPrefix

	r := postJSON(t, ctl+"apps", `{"app_id":"cli_demo","app_secret":"demo-secret"}`)
	expectEqual(t, "add status", r.status, 200)
	expectEqual(t, "add body", r.body, `{"ok":true}`)
	r = postJSON(t, ts.URL+PathTenantAccessToken, credentials("cli_demo", "demo-secret"))
	expectEqual(t, "token code", decode(t, r.body)["code"], any(json.Number("0")))
	tok := decode(t, r.body)["tenant_access_token"].(string)

	r = get(t, ctl+"apps")
	expectEqual(t, "list", r.body, `{"apps":[{"app_id":"cli_demo","refresh_disabled":false,"scopes":[]}]}`)

	for name, body := range map[string]string{
		"malformed id":  `{"app_id":"demo","app_secret":"x"}`,
		"no secret":     `{"app_id":"cli_demo2"}`,
		"unknown field": `{"app_id":"cli_demo2","app_secret":"x","secret":"x"}`,
		"not JSON":      `app_id=cli_demo2`,
	} {
		r := postJSON(t, ctl+"apps", body)
		expectEqual(t, name+" status", r.status, http.StatusBadRequest)
		if _, ok := decode(t, r.body)["error"]; !ok {
			t.Errorf("%s: no error field in %s", name, r.body)
		}
		if strings.Contains(r.body, `"x"`) {
			t.Errorf("%s: error echoes the secret: %s", name, r.body)
		}
	}

	r = del(t, ctl+"apps/cli_demo")
	expectEqual(t, "delete", r.body, `{"removed":true}`)
	r = del(t, ctl+"apps/cli_demo")
	expectEqual(t, "delete again", r.body, `{"removed":false}`)
	if s.TenantTokenValid(tok) {
		t.Fatal("token survived its app")
	}
	r = postJSON(t, ts.URL+PathTenantAccessToken, credentials("cli_demo", "demo-secret"))
	expectEqual(t, "after delete", r.body, `{"code":10014,"msg":"app id not exists"}`)
}

func TestControlClock(t *testing.T) {
	off := &clock.Offset{}
	s, ts := NewTestServer(t, Options{Clock: off})
	ctl := ts.URL + ControlPrefix

	m := decode(t, get(t, ctl+"clock").body)
	expectEqual(t, "initial offset", m["offset_seconds"], any(json.Number("0")))
	now, err := time.Parse(time.RFC3339Nano, m["now"].(string))
	if err != nil || time.Since(now).Abs() > time.Minute {
		t.Fatalf("now = %v (%v)", m["now"], err)
	}

	r := postJSON(t, ctl+"clock/advance", `{"seconds":1.5}`)
	expectEqual(t, "advance status", r.status, 200)
	expectEqual(t, "offset after advance", decode(t, r.body)["offset_seconds"], any(json.Number("1.5")))
	if err := s.Advance(3600 * time.Second); err != nil {
		t.Fatal(err)
	}
	expectEqual(t, "offset after Advance", decode(t, get(t, ctl+"clock").body)["offset_seconds"], any(json.Number("3601.5")))
	if d := time.Until(s.Now()); d < 3601*time.Second || d > 3602*time.Second {
		t.Fatalf("server clock is %v ahead", d)
	}

	for _, body := range []string{`{}`, `{"seconds":0}`, `{"seconds":-5}`, `{"seconds":"10"}`, `{"secs":10}`} {
		expectEqual(t, body, postJSON(t, ctl+"clock/advance", body).status, http.StatusBadRequest)
	}

	_, fixed := NewTestServer(t, Options{Clock: clock.Real{}})
	expectEqual(t, "fixed clock", postJSON(t, fixed.URL+ControlPrefix+"clock/advance", `{"seconds":1}`).status, http.StatusConflict)
}

func TestControlFailures(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	ctl := ts.URL + ControlPrefix

	r := postJSON(t, ctl+"failures", `{"endpoint":"tenant_access_token","mode":"slow","delay_ms":50,"count":2}`)
	expectEqual(t, "inject", r.body, `{"ok":true}`)
	r = postJSON(t, ctl+"failures", `{"endpoint":"*","mode":"429","reset_seconds":3}`)
	expectEqual(t, "inject 429", r.status, 200)
	expectEqual(t, "list", get(t, ctl+"failures").body,
		`{"failures":[{"endpoint":"tenant_access_token","mode":"slow","count":2,"delay_ms":50},`+
			`{"endpoint":"*","mode":"429","count":1,"delay_ms":0,"reset_seconds":3}]}`)
	pending := s.PendingFailures()
	expectEqual(t, "delay", pending[0].Delay, 50*time.Millisecond)

	r = postJSON(t, ts.URL+PathAppAccessToken, credentials(testApp, testSecret))
	expectEqual(t, "wildcard hit app endpoint", r.status, 429)
	expectEqual(t, "reset header", r.header.Get("X-Ogw-Ratelimit-Reset"), "3")

	for _, body := range []string{
		`{"endpoint":"nope","mode":"5xx"}`,
		`{"endpoint":"*","mode":"boom"}`,
		`{"endpoint":"*","mode":"5xx","delay_ms":-1}`,
		`{"endpoint":"*","mode":"5xx","count":-3}`,
		`{"endpoint":"*","mode":"5xx","colour":"red"}`,
	} {
		expectEqual(t, body, postJSON(t, ctl+"failures", body).status, http.StatusBadRequest)
	}

	expectEqual(t, "clear", del(t, ctl+"failures").body, `{"ok":true}`)
	expectEqual(t, "list after clear", get(t, ctl+"failures").body, `{"failures":[]}`)
}

func TestControlCountersAndReset(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	ctl := ts.URL + ControlPrefix
	old := fetchToken(t, ts, PathTenantAccessToken).TenantAccessToken
	fetchToken(t, ts, PathAppAccessToken)
	postJSON(t, ts.URL+PathAppAccessToken, "garbage")
	inject(t, s, Failure{Endpoint: EndpointAppAccessToken, Mode: Fail5xx})
	postJSON(t, ts.URL+PathAppAccessToken, credentials(testApp, testSecret))
	inject(t, s, Failure{Endpoint: EndpointAppAccessToken, Mode: Fail5xx})
	postJSON(t, ts.URL+"/open-apis/unknown", "{}") // not an endpoint: not counted
	get(t, ts.URL+PathTenantAccessToken)           // wrong method: not counted

	m := decode(t, get(t, ctl+"counters").body)
	want := map[string]string{
		EndpointAppAccessToken: "3", EndpointTenantAccessToken: "1", EndpointAuthorize: "0",
		EndpointOAuthToken: "0", EndpointCodeExchange: "0", EndpointRefresh: "0", EndpointRefreshReuse: "0",
		EndpointRevoke: "0", EndpointUserInfo: "0", EndpointMessages: "0", EndpointClientCredentials: "0",
		EndpointAppTicketResend: "0", EndpointStoreAppAccessToken: "0", EndpointStoreTenantAccessToken: "0",
		EndpointEventDelivery:       "0",
		EndpointAuthenV1:            "0",
		EndpointDeviceAuthorization: "0", EndpointDeviceToken: "0",
	}
	if len(m) != len(want) {
		t.Fatalf("counters %v, want keys %v", m, want)
	}
	for k, v := range want {
		expectEqual(t, "counter "+k, m[k], any(json.Number(v)))
	}
	expectEqual(t, "Calls", s.Calls(EndpointAppAccessToken), 3)
	expectEqual(t, "Counters", s.Counters()[EndpointAppAccessToken], 3)

	expectEqual(t, "reset", postJSON(t, ctl+"reset", "").body, `{"ok":true}`)
	for k, v := range s.Counters() {
		expectEqual(t, "counter after reset "+k, v, 0)
	}
	if len(s.PendingFailures()) != 0 {
		t.Fatal("reset kept failures")
	}
	if s.TenantTokenValid(old) {
		t.Fatal("reset kept tokens")
	}
	if fresh := fetchToken(t, ts, PathTenantAccessToken); fresh.TenantAccessToken == old {
		t.Fatal("reset did not forget the current token")
	}
	expectEqual(t, "apps survive reset", len(s.Apps()), 1)
}

func TestControlRouting(t *testing.T) {
	_, ts, _ := newFakeEmu(t, Options{})
	ctl := ts.URL + ControlPrefix
	expectEqual(t, "unknown", get(t, ctl+"nothing").status, http.StatusNotFound)
	expectEqual(t, "apps/ without id", del(t, ctl+"apps/").status, http.StatusNotFound)
	r := get(t, ctl+"reset")
	expectEqual(t, "wrong method", r.status, http.StatusMethodNotAllowed)
	expectEqual(t, "allow", r.header.Get("Allow"), "POST")
	expectEqual(t, "GET app by id", get(t, ctl+"apps/"+testApp).status, http.StatusMethodNotAllowed)
}
