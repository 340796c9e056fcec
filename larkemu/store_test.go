package larkemu

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestStoreAppTicketToTenantToken walks the store-app chain: resend pushes a ticket, the ticket
// buys an app token, the app token buys a tenant token per installed tenant.
func TestStoreAppTicketToTenantToken(t *testing.T) {
	rc := newReceiver(t)
	s, base, _ := newStoreEmu(t, storeAppConfig(rc, ""), Options{})
	for _, tk := range []string{tenantA, tenantB} {
		if err := s.AddUser(User{UserID: "admin_" + tk, TenantKey: tk}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.InstallTenant(InstallRequest{AppID: storeApp, TenantKey: tk, Silent: true}); err != nil {
			t.Fatal(err)
		}
	}

	r := postJSON(t, base+PathAppTicketResend, credentials(storeApp, storeSecret))
	expectEqual(t, "resend", r.body, `{"code":0,"msg":"success"}`)
	ev := openEvent(t, rc.waitRequests(t, 1)[0], "")
	expectEqual(t, "token", ev["token"], any(verifyToken))
	expectEqual(t, "type", ev["type"], any("event_callback"))
	if uuid, _ := ev["uuid"].(string); len(uuid) != 32 {
		t.Errorf("uuid %q", uuid)
	}
	if ts, _ := ev["ts"].(string); !strings.Contains(ts, ".") {
		t.Errorf("ts %q is not seconds with a fraction", ts)
	}
	inner := ev["event"].(map[string]any)
	expectEqual(t, "event.app_id", inner["app_id"], any(storeApp))
	ticket := ticketFrom(t, ev)
	expectEqual(t, "the ticket pushed is the one listed", s.Tickets(storeApp)[0].Ticket, ticket)

	appTok, exp := mustToken(t, storeAppToken(t, base, ticket), "app_access_token")
	if !strings.HasPrefix(appTok, "a-") || exp != 7200 {
		t.Fatalf("app token %q expire %d", appTok[:2], exp)
	}
	if got := decode(t, storeAppToken(t, base, ticket).body); len(got) != 4 || got["app_access_token"] != appTok {
		t.Fatalf("a second call within the window must return the same token and only code, msg, app_access_token, expire: %v", got)
	}
	if s.TenantTokenValid(appTok) {
		t.Fatal("an app token must not pass as a tenant token")
	}

	tokA, expA := mustToken(t, storeTenantToken(t, base, appTok, tenantA), "tenant_access_token")
	tokB, _ := mustToken(t, storeTenantToken(t, base, appTok, tenantB), "tenant_access_token")
	if !strings.HasPrefix(tokA, "t-") || expA != 7200 || tokA == tokB {
		t.Fatalf("want distinct t- tokens per tenant, 7200 s (got expire %d, same=%v)", expA, tokA == tokB)
	}
	again, _ := mustToken(t, storeTenantToken(t, base, appTok, tenantA), "tenant_access_token")
	expectEqual(t, "tenant A again", again, tokA)

	// Each tenant token sends as its own tenant, and reaches only that tenant's users.
	for tk, tok := range map[string]string{tenantA: tokA, tenantB: tokB} {
		other := map[string]string{tenantA: tenantB, tenantB: tenantA}[tk]
		r := postJSON(t, sendURL(base, "user_id"), textBody(t, "admin_"+other, "hi", ""), bearer(tok)...)
		expectEqual(t, "send to another tenant's user", r.status, http.StatusBadRequest)
		expectEqual(t, "code for another tenant's user", gatewayCode(t, r), 230013)
		r = postJSON(t, sendURL(base, "user_id"), textBody(t, "admin_"+tk, "hi", ""), bearer(tok)...)
		expectEqual(t, "send status", r.status, http.StatusOK)
		var reply messageReply
		if err := json.Unmarshal([]byte(r.body), &reply); err != nil {
			t.Fatal(err)
		}
		expectEqual(t, "sender tenant", reply.Data.Sender.TenantKey, tk)
		expectEqual(t, "sender app", reply.Data.Sender.ID, storeApp)
	}
	msgs := s.Messages()
	if len(msgs) != 2 || msgs[0].TenantKey == msgs[1].TenantKey || msgs[0].TenantKey == "" {
		t.Fatalf("recorded messages should name their tenants: %+v", msgs)
	}
	// The app token is not a tenant token on business APIs.
	r = postJSON(t, sendURL(base, "user_id"), textBody(t, "admin_"+tenantA, "hi", ""), bearer(appTok)...)
	expectEqual(t, "app token on messages", gatewayCode(t, r), 99991663)

	tenants := s.Tenants(storeApp)
	expectEqual(t, "tenant A calls", tenants[0].TenantAccessTokenCalls, 2)
	expectEqual(t, "tenant B calls", tenants[1].TenantAccessTokenCalls, 1)
	for _, ti := range tenants {
		expectEqual(t, ti.TenantKey+" tokens issued", ti.TokensIssued, 1)
	}
	c := s.AppCounters(storeApp)
	expectEqual(t, "per-app resend", c[EndpointAppTicketResend], 1)
	expectEqual(t, "per-app store app token", c[EndpointStoreAppAccessToken], 2)
	expectEqual(t, "per-app store tenant token", c[EndpointStoreTenantAccessToken], 3)
	expectEqual(t, "per-app deliveries", c[EndpointEventDelivery], 1)
}

func TestStoreTokensReuseRulePerTenant(t *testing.T) {
	s, base, fc := newStoreEmu(t, storeAppConfig(nil, "", EventAppOpen), Options{})
	for _, tk := range []string{tenantA, tenantB} {
		if _, _, err := s.InstallTenant(InstallRequest{AppID: storeApp, TenantKey: tk}); err != nil {
			t.Fatal(err)
		}
	}
	ticket, _, err := s.PushAppTicket(storeApp)
	if err != nil {
		t.Fatal(err)
	}
	appTok, _ := mustToken(t, storeAppToken(t, base, ticket.Ticket), "app_access_token")
	tokA, _ := mustToken(t, storeTenantToken(t, base, appTok, tenantA), "tenant_access_token")

	fc.Advance(20 * time.Minute) // tenant B's first token starts 20 minutes after A's
	tokB, _ := mustToken(t, storeTenantToken(t, base, appTok, tenantB), "tenant_access_token")

	fc.Advance(70 * time.Minute) // A: exactly 30 min left; B: 50 min left
	sameA, expA := mustToken(t, storeTenantToken(t, base, appTok, tenantA), "tenant_access_token")
	if sameA != tokA || expA != 1800 {
		t.Fatalf("with 30 min left tenant A keeps its token (same=%v expire=%d)", sameA == tokA, expA)
	}
	fc.Advance(time.Second)
	newA, expNewA := mustToken(t, storeTenantToken(t, base, appTok, tenantA), "tenant_access_token")
	if newA == tokA || expNewA != 7200 {
		t.Fatalf("below 30 min tenant A gets a fresh 7200 s token (same=%v expire=%d)", newA == tokA, expNewA)
	}
	sameB, expB := mustToken(t, storeTenantToken(t, base, appTok, tenantB), "tenant_access_token")
	if sameB != tokB || expB != 2999 {
		t.Fatalf("tenant B's token is untouched by A's rotation (same=%v expire=%d)", sameB == tokB, expB)
	}
	if !s.TenantTokenValid(tokA) || !s.TenantTokenValid(newA) {
		t.Fatal("old and new token of tenant A must both work until the old one expires")
	}
	// The app token has the same rule: it also has 29:59 left now and rotates.
	newApp, appExp := mustToken(t, storeAppToken(t, base, ticket.Ticket), "app_access_token")
	if newApp == appTok || appExp != 7200 {
		t.Fatalf("app token: same=%v expire=%d", newApp == appTok, appExp)
	}
	// The old app token still buys tenant tokens until it expires, then it does not.
	mustToken(t, storeTenantToken(t, base, appTok, tenantB), "tenant_access_token")
	fc.Advance(30 * time.Minute)
	expectEqual(t, "expired app token", storeTenantToken(t, base, appTok, tenantB).body, `{"code":99991664,"msg":"invalid app token"}`)
	if s.TenantTokenValid(tokA) {
		t.Fatal("tenant A's old token outlived its expiry")
	}
}

func TestStoreTicketRules(t *testing.T) {
	s, base, fc := newStoreEmu(t, storeAppConfig(nil, ""), Options{TicketTTL: 2 * time.Hour})
	first, _, err := s.PushAppTicket(storeApp)
	if err != nil {
		t.Fatal(err)
	}
	fc.Advance(time.Hour)
	second, _, _ := s.PushAppTicket(storeApp)
	if first.Ticket == second.Ticket {
		t.Fatal("tickets must rotate")
	}
	// Both are good while the first has life left.
	mustToken(t, storeAppToken(t, base, first.Ticket), "app_access_token")
	mustToken(t, storeAppToken(t, base, second.Ticket), "app_access_token")

	const invalidTicket = `{"code":10012,"msg":"app ticket invalid"}`
	fc.Advance(time.Hour) // the first ticket is now exactly 2 h old
	expectEqual(t, "expired ticket", storeAppToken(t, base, first.Ticket).body, invalidTicket)
	mustToken(t, storeAppToken(t, base, second.Ticket), "app_access_token")
	expectEqual(t, "unknown ticket", storeAppToken(t, base, "made-up").body, invalidTicket)
	fc.Advance(time.Hour)
	expectEqual(t, "every ticket expired", storeAppToken(t, base, second.Ticket).body, invalidTicket)

	// Another store app's ticket is not this app's.
	other := storeAppConfig(nil, "")
	other.ID, other.Secret = "cli_otherstore", "other-secret"
	if err := s.RegisterApp(other); err != nil {
		t.Fatal(err)
	}
	foreign, _, _ := s.PushAppTicket("cli_otherstore")
	expectEqual(t, "foreign ticket", storeAppToken(t, base, foreign.Ticket).body, invalidTicket)

	listed := s.Tickets(storeApp)
	if len(listed) != 2 || listed[0].Valid || listed[1].Valid {
		t.Fatalf("tickets listing: %+v", listed)
	}
}

func TestStoreEndpointErrors(t *testing.T) {
	s, base, _ := newStoreEmu(t, storeAppConfig(nil, ""), Options{})
	ticket, _, _ := s.PushAppTicket(storeApp)
	const (
		invalid   = `{"code":10003,"data":{},"msg":"invalid param"}`
		notExists = `{"code":10014,"msg":"app id not exists"}`
		badSecret = `{"code":10014,"msg":"app secret invalid"}`
		wrongType = `{"code":10016,"msg":"app type not supported"}`
	)
	body := func(kv ...string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return mustJSON(t, m)
	}
	cases := []struct {
		name, path, body, want string
	}{
		{"resend: empty", PathAppTicketResend, "", invalid},
		{"resend: unknown app", PathAppTicketResend, credentials("cli_nobody", "x"), notExists},
		{"resend: wrong secret", PathAppTicketResend, credentials(storeApp, "wrong"), badSecret},
		{"resend: self-built app", PathAppTicketResend, credentials(testApp, testSecret), wrongType},
		{"app token: no ticket", PathStoreAppAccessToken, credentials(storeApp, storeSecret), invalid},
		{"app token: empty ticket", PathStoreAppAccessToken, body("app_id", storeApp, "app_secret", storeSecret, "app_ticket", ""), invalid},
		{"app token: numeric ticket", PathStoreAppAccessToken, `{"app_id":"` + storeApp + `","app_secret":"x","app_ticket":1}`, invalid},
		{"app token: malformed id", PathStoreAppAccessToken, body("app_id", "store", "app_secret", storeSecret, "app_ticket", ticket.Ticket), invalid},
		{"app token: unknown app", PathStoreAppAccessToken, body("app_id", "cli_nobody", "app_secret", "x", "app_ticket", ticket.Ticket), notExists},
		{"app token: wrong secret", PathStoreAppAccessToken, body("app_id", storeApp, "app_secret", "wrong", "app_ticket", ticket.Ticket), badSecret},
		{"app token: self-built app", PathStoreAppAccessToken, body("app_id", testApp, "app_secret", testSecret, "app_ticket", ticket.Ticket), wrongType},
		{"tenant token: empty", PathStoreTenantAccessToken, "{}", invalid},
		{"tenant token: no tenant", PathStoreTenantAccessToken, body("app_access_token", "a-x"), invalid},
		{"tenant token: bad app token", PathStoreTenantAccessToken, body("app_access_token", "a-x", "tenant_key", tenantA), `{"code":99991664,"msg":"invalid app token"}`},
		{"internal app token: store app", PathAppAccessToken, credentials(storeApp, storeSecret), wrongType},
		{"internal tenant token: store app", PathTenantAccessToken, credentials(storeApp, storeSecret), wrongType},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := postJSON(t, base+c.path, c.body)
			expectEqual(t, "status", r.status, http.StatusOK)
			expectEqual(t, "body", r.body, c.want)
		})
	}

	// A self-built app's tenant token (or its app token) is no store app token.
	selfBuilt := fetchTokenAt(t, base, PathAppAccessToken)
	expectEqual(t, "self-built app token", storeTenantToken(t, base, selfBuilt, tenantA).body, `{"code":99991664,"msg":"invalid app token"}`)

	// An app token is good, but the tenant never installed the app.
	appTok, _ := mustToken(t, storeAppToken(t, base, ticket.Ticket), "app_access_token")
	expectEqual(t, "not installed", storeTenantToken(t, base, appTok, tenantA).body, `{"code":99991665,"msg":"invalid tenant code"}`)
	if _, _, err := s.InstallTenant(InstallRequest{AppID: storeApp, TenantKey: tenantA}); err != nil {
		t.Fatal(err)
	}
	tok, _ := mustToken(t, storeTenantToken(t, base, appTok, tenantA), "tenant_access_token")
	// Uninstalling kills the tenant's tokens and refuses new ones.
	if !s.UninstallTenant(storeApp, tenantA) || s.UninstallTenant(storeApp, tenantA) {
		t.Fatal("uninstall should succeed once")
	}
	if s.TenantTokenValid(tok) {
		t.Fatal("a tenant token survived the uninstall")
	}
	expectEqual(t, "uninstalled", storeTenantToken(t, base, appTok, tenantA).body, `{"code":99991665,"msg":"invalid tenant code"}`)
	// Removing the app kills its app token.
	s.RemoveApp(storeApp)
	expectEqual(t, "removed app", storeTenantToken(t, base, appTok, tenantA).body, `{"code":99991664,"msg":"invalid app token"}`)
}

// fetchTokenAt is fetchToken for a base URL.
func fetchTokenAt(t *testing.T, base, path string) string {
	t.Helper()
	r := postJSON(t, base+path, credentials(testApp, testSecret))
	tok, _ := decode(t, r.body)["tenant_access_token"].(string)
	if tok == "" {
		t.Fatalf("no token: %s", r.body)
	}
	return tok
}

func TestScheduledTicketPush(t *testing.T) {
	rc := newReceiver(t)
	s, base, fc := newStoreEmu(t, storeAppConfig(rc, encryptKey), Options{TicketInterval: time.Hour})
	time.Sleep(5 * schedulerPoll)
	if n := len(rc.requests()); n != 0 {
		t.Fatalf("a ticket was pushed before the first interval: %d", n)
	}
	fc.Advance(time.Hour)
	ticket := ticketFrom(t, openEvent(t, rc.waitRequests(t, 1)[0], encryptKey))
	mustToken(t, storeAppToken(t, base, ticket), "app_access_token")

	// A long pause yields one push, not one per missed interval; the next comes an interval later.
	fc.Advance(5 * time.Hour)
	rc.waitRequests(t, 2)
	time.Sleep(5 * schedulerPoll)
	expectEqual(t, "pushes after a 5 h jump", len(rc.requests()), 2)
	fc.Advance(59 * time.Minute)
	time.Sleep(5 * schedulerPoll)
	expectEqual(t, "no push before the interval", len(rc.requests()), 2)
	fc.Advance(time.Minute)
	third := ticketFrom(t, openEvent(t, rc.waitRequests(t, 3)[2], encryptKey))
	if third == ticket {
		t.Fatal("the scheduled ticket did not rotate")
	}
	expectEqual(t, "deliveries", len(s.Events(storeApp, 0)), 3)
}

func TestAppOpenOnInstall(t *testing.T) {
	rc := newReceiver(t)
	s, _, _ := newStoreEmu(t, storeAppConfig(rc, encryptKey, EventAppOpen), Options{})
	if err := s.AddUser(User{UserID: "tenant_admin"}); err != nil {
		t.Fatal(err)
	}
	isNew, d, err := s.InstallTenant(InstallRequest{AppID: storeApp, TenantKey: tenantA})
	if err != nil || !isNew || d == nil {
		t.Fatalf("install: new=%v delivery=%v err=%v", isNew, d, err)
	}
	// The first attempt was made before InstallTenant returned.
	expectEqual(t, "state", d.State, DeliveryDelivered)
	expectEqual(t, "type", d.EventType, EventAppOpen)
	ev := openEvent(t, rc.requests()[0], encryptKey)
	expectEqual(t, "event id", d.EventID, ev["uuid"].(string))
	expectEqual(t, "token", ev["token"], any(verifyToken))
	want := `{"app_id":"` + storeApp + `","tenant_key":"` + tenantA + `","type":"app_open","applicants":[],"installer":{"open_id":"` +
		s.OpenID(storeApp, "tenant_admin") + `"}}`
	expectEqual(t, "event", mustJSON(t, ev["event"]), mustJSON(t, decode(t, want)))

	again, d, _ := s.InstallTenant(InstallRequest{AppID: storeApp, TenantKey: tenantA})
	if again || d != nil {
		t.Fatal("a second install of the same tenant must send nothing")
	}
	_, d, _ = s.InstallTenant(InstallRequest{AppID: storeApp, TenantKey: tenantB, Silent: true})
	if d != nil {
		t.Fatal("a silent install sent app_open")
	}
	expectEqual(t, "requests", len(rc.requests()), 1)

	// Without the subscription there is no app_open.
	if err := s.RegisterApp(storeAppConfig(rc, encryptKey)); err != nil {
		t.Fatal(err)
	}
	if _, d, _ = s.InstallTenant(InstallRequest{AppID: storeApp, TenantKey: "tenant_c"}); d != nil {
		t.Fatal("app_open without a subscription")
	}
	// Re-registering kept the installations.
	expectEqual(t, "tenants", len(s.Tenants(storeApp)), 3)
	if _, _, err := s.InstallTenant(InstallRequest{AppID: testApp, TenantKey: tenantA}); err == nil {
		t.Fatal("a self-built app was installed in a tenant")
	}
	if _, _, err := s.InstallTenant(InstallRequest{AppID: storeApp, TenantKey: "bad key"}); err == nil {
		t.Fatal("a malformed tenant key was accepted")
	}
}

func TestRegisterStoreAppValidation(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	base := App{ID: storeApp, Secret: storeSecret, AppType: AppTypeStore}
	with := func(f func(a *App)) App {
		a := base
		f(&a)
		return a
	}
	bad := map[string]App{
		"unknown type":          with(func(a *App) { a.AppType = "isv" }),
		"relative event URL":    with(func(a *App) { a.EventURL, a.VerificationToken = "/events", "vt" }),
		"ftp event URL":         with(func(a *App) { a.EventURL, a.VerificationToken = "ftp://x/events", "vt" }),
		"URL without token":     with(func(a *App) { a.EventURL = "http://127.0.0.1/events" }),
		"unknown event":         with(func(a *App) { a.EventTypes = []string{"im.message.receive_v1"} }),
		"self-built app_open":   with(func(a *App) { a.AppType, a.EventTypes = AppTypeSelfBuilt, []string{EventAppOpen} }),
		"self-built tenants":    with(func(a *App) { a.AppType, a.Tenants = "", []string{tenantA} }),
		"malformed tenant":      with(func(a *App) { a.Tenants = []string{"a b"} }),
		"oversized encrypt key": with(func(a *App) { a.EncryptKey = strings.Repeat("k", 257) }),
	}
	for name, a := range bad {
		if err := s.RegisterApp(a); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if len(s.Apps()) != 0 {
		t.Fatal("a refused app was registered")
	}
	good := with(func(a *App) {
		a.EventURL, a.VerificationToken = "https://vault.example/v1/lark/events/"+storeApp, "vt"
		a.EventTypes = []string{EventUserTokenRevoked, EventAppOpen, EventAppOpen}
		a.Tenants = []string{tenantA}
	})
	if err := s.RegisterApp(good); err != nil {
		t.Fatal(err)
	}
	got := s.Apps()[0]
	expectEqual(t, "event types sorted and unique", strings.Join(got.EventTypes, ","), EventAppOpen+","+EventUserTokenRevoked)
	expectEqual(t, "tenant installed", len(s.Tenants(storeApp)), 1)
	if err := s.RegisterApp(App{ID: "cli_plain", Secret: "x"}); err != nil {
		t.Fatal(err)
	}
	expectEqual(t, "default type", s.Apps()[0].AppType, AppTypeSelfBuilt)
}
