package lark

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	storeApp    = "cli_store0000000001"
	storeSecret = "store-secret-0001"
	storeTicket = "TiCkEt-0001-dskLLdkasd"
	storeTenant = "73658811060f175d"
)

func storeCreds() AppCredentials {
	return AppCredentials{AppID: storeApp, AppSecret: storeSecret, Type: AppTypeStore}
}

func TestParseAppType(t *testing.T) {
	for in, want := range map[string]AppType{"self_built": AppTypeSelfBuilt, "store": AppTypeStore} {
		got, err := ParseAppType(in)
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
	for _, in := range []string{"", "Store", "marketplace", "custom"} {
		_, err := ParseAppType(in)
		assert.Error(t, err, in)
	}
	assert.Equal(t, AppTypeSelfBuilt, newClient(t, "http://127.0.0.1:1").App(AppCredentials{AppID: "cli_x", AppSecret: "s"}).Type(), "self_built is the default")
}

// TestStoreAppCalls pins the wire format of the three store-app calls (docs/lark-api.md §3) with
// the answers the docs show.
func TestStoreAppCalls(t *testing.T) {
	fake := newFake(t,
		reply(200, `{"code":0,"msg":"success","app_access_token":"a-6U1SbDiM6XIH2DcTCPyeub","expire":7140}`),
		reply(200, `{"code":0,"msg":"success","tenant_access_token":"t-caecc734c2e3328a62489fe0648c4b98779515d3","expire":7140}`),
		reply(200, `{"code":0,"msg":"success"}`),
	)
	app := newClient(t, fake.srv.URL).App(storeCreds())
	assert.Equal(t, AppTypeStore, app.Type())

	appTok, err := app.AppAccessTokenWithTicket(t.Context(), storeTicket)
	require.NoError(t, err)
	assert.Equal(t, &AppToken{AppAccessToken: "a-6U1SbDiM6XIH2DcTCPyeub", ExpiresIn: 7140 * time.Second}, appTok)

	tenantTok, err := app.TenantAccessTokenFor(t.Context(), appTok.AppAccessToken, storeTenant)
	require.NoError(t, err)
	assert.Equal(t, &TenantToken{TenantAccessToken: "t-caecc734c2e3328a62489fe0648c4b98779515d3", ExpiresIn: 7140 * time.Second}, tenantTok)

	require.NoError(t, app.ResendAppTicket(t.Context()))

	want := []struct {
		path string
		body map[string]any
	}{
		{"/open-apis/auth/v3/app_access_token", map[string]any{"app_id": storeApp, "app_secret": storeSecret, "app_ticket": storeTicket}},
		{"/open-apis/auth/v3/tenant_access_token", map[string]any{"app_access_token": "a-6U1SbDiM6XIH2DcTCPyeub", "tenant_key": storeTenant}},
		{"/open-apis/auth/v3/app_ticket/resend", map[string]any{"app_id": storeApp, "app_secret": storeSecret}},
	}
	reqs := fake.requests()
	require.Len(t, reqs, len(want))
	for i, w := range want {
		r := reqs[i]
		assert.Equal(t, http.MethodPost, r.Method)
		assert.Equal(t, w.path, r.Path)
		assert.Equal(t, "application/json; charset=utf-8", r.Header.Get("Content-Type"))
		assert.Empty(t, r.Header.Get("Authorization"), "the auth/v3 endpoints take no Authorization header")
		var body map[string]any
		require.NoError(t, json.Unmarshal(r.Body, &body))
		assert.Equal(t, w.body, body)
	}
}

func TestStoreAppCallsUseBrandHosts(t *testing.T) {
	fake := newFake(t,
		reply(200, `{"code":0,"app_access_token":"a-1","expire":7200}`),
		reply(200, `{"code":0,"tenant_access_token":"t-1","expire":7200}`),
		reply(200, `{"code":0,"msg":"success"}`),
		reply(200, `{"code":0,"access_token":"eyJ.a.b","token_type":"Bearer","expires_in":7200}`),
	)
	target, _ := url.Parse(fake.srv.URL)
	rt := &rewriteTransport{target: target}
	c, err := New(Config{Brand: BrandLark, HTTPClient: &http.Client{Transport: rt}})
	require.NoError(t, err)
	store := c.App(storeCreds())
	_, err = store.AppAccessTokenWithTicket(t.Context(), storeTicket)
	require.NoError(t, err)
	_, err = store.TenantAccessTokenFor(t.Context(), "a-1", storeTenant)
	require.NoError(t, err)
	require.NoError(t, store.ResendAppTicket(t.Context()))
	_, err = c.App(AppCredentials{AppID: testAppID, AppSecret: testAppSecret, TenantTokenEndpoint: TenantTokenV3}).TenantAccessToken(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []string{
		"https://open.larksuite.com/open-apis/auth/v3/app_access_token",
		"https://open.larksuite.com/open-apis/auth/v3/tenant_access_token",
		"https://open.larksuite.com/open-apis/auth/v3/app_ticket/resend",
		"https://accounts.larksuite.com/oauth/v3/token",
	}, rt.asked)
}

// TestStoreErrorKinds is the table of what each store-endpoint answer means to the plugin.
func TestStoreErrorKinds(t *testing.T) {
	type call func(a *App) error
	appToken := func(a *App) error { _, err := a.AppAccessTokenWithTicket(t.Context(), storeTicket); return err }
	tenantToken := func(a *App) error {
		_, err := a.TenantAccessTokenFor(t.Context(), "a-apptoken", storeTenant)
		return err
	}
	resend := func(a *App) error { return a.ResendAppTicket(t.Context()) }
	tests := []struct {
		name     string
		call     call
		endpoint string
		step     http.HandlerFunc
		kind     ErrorKind
		meaning  Meaning
		attempts int
	}{
		{"ticket refused (10012)", appToken, EndpointStoreAppAccessToken, reply(200, `{"code":10012,"msg":"get app access token fail"}`), KindAppTicketInvalid, MeaningAwaitTicket, 1},
		{"ticket refused on 400", appToken, EndpointStoreAppAccessToken, reply(400, `{"code":10012,"msg":"app ticket invalid"}`), KindAppTicketInvalid, MeaningAwaitTicket, 1},
		{"wrong secret", appToken, EndpointStoreAppAccessToken, reply(200, `{"code":10014,"msg":"app secret invalid"}`), KindAppSecretRejected, MeaningAppSetup, 1},
		{"unknown app", appToken, EndpointStoreAppAccessToken, reply(200, `{"code":10014,"msg":"app id not exists"}`), KindAppNotFound, MeaningAppSetup, 1},
		{"invalid param", appToken, EndpointStoreAppAccessToken, reply(200, `{"code":10003,"data":{},"msg":"invalid param"}`), KindInvalidRequest, MeaningUnknown, 1},
		{"app token server error", appToken, EndpointStoreAppAccessToken, replyType(503, "text/plain", "busy"), KindUnavailable, MeaningTransient, 3},
		{"app token without token", appToken, EndpointStoreAppAccessToken, reply(200, `{"code":0,"expire":7200}`), KindBadResponse, MeaningTransient, 1},
		{"app token invalid (99991664)", tenantToken, EndpointStoreTenantAccessToken, reply(400, `{"code":99991664,"msg":"invalid app token"}`), KindAppTokenInvalid, MeaningStaleToken, 1},
		{"app token invalid (99991663)", tenantToken, EndpointStoreTenantAccessToken, reply(400, `{"code":99991663,"msg":"Invalid access token for authorization."}`), KindAppTokenInvalid, MeaningStaleToken, 1},
		{"app token malformed (99991671)", tenantToken, EndpointStoreTenantAccessToken, reply(400, `{"code":99991671,"msg":"Invalid token: must start with t-/u-"}`), KindAppTokenInvalid, MeaningStaleToken, 1},
		{"tenant key unknown (99992500)", tenantToken, EndpointStoreTenantAccessToken, reply(400, `{"code":99992500,"msg":"these ids not existed"}`), KindTenantKeyInvalid, MeaningTenantUnavailable, 1},
		{"tenant key unknown (99992501)", tenantToken, EndpointStoreTenantAccessToken, reply(200, `{"code":99992501,"msg":"these ids not existed"}`), KindTenantKeyInvalid, MeaningTenantUnavailable, 1},
		{"app not installed (99991673)", tenantToken, EndpointStoreTenantAccessToken, reply(400, `{"code":99991673,"msg":"unauthorized app"}`), KindTenantKeyInvalid, MeaningTenantUnavailable, 1},
		{"tenant code invalid (99991665)", tenantToken, EndpointStoreTenantAccessToken, reply(400, `{"code":99991665,"msg":"invalid tenant code"}`), KindTenantKeyInvalid, MeaningTenantUnavailable, 1},
		{"tenant info wrong (10005)", tenantToken, EndpointStoreTenantAccessToken, reply(200, `{"code":10005,"msg":"app id unauthorized"}`), KindTenantKeyInvalid, MeaningTenantUnavailable, 1},
		{"ambiguous 10013 stays unknown", tenantToken, EndpointStoreTenantAccessToken, reply(200, `{"code":10013,"msg":"get tenant access token fail"}`), KindLarkError, MeaningUnknown, 1},
		{"tenant rate limited", tenantToken, EndpointStoreTenantAccessToken, reply(400, `{"code":99991400,"msg":"request trigger frequency limit"}`), KindRateLimited, MeaningTransient, 3},
		{"not a store app (10016)", resend, EndpointAppTicketResend, reply(200, `{"code":10016,"msg":"app resend fail"}`), KindAppTypeMismatch, MeaningAppSetup, 1},
		{"resend wrong secret", resend, EndpointAppTicketResend, reply(200, `{"code":10014,"msg":"app secret invalid"}`), KindAppSecretRejected, MeaningAppSetup, 1},
		{"resend HTML", resend, EndpointAppTicketResend, replyType(200, "text/html", "<html>login</html>"), KindBadResponse, MeaningTransient, 1},
		{"resend 502", resend, EndpointAppTicketResend, replyType(502, "text/html", "<html>bad gateway</html>"), KindUnavailable, MeaningTransient, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake(t, tt.step)
			err := tt.call(newClient(t, fake.srv.URL).App(storeCreds()))
			e := asError(t, err)
			assert.Equal(t, tt.kind, e.Kind, e.Error())
			assert.Equal(t, tt.meaning, e.Meaning())
			assert.Equal(t, tt.endpoint, e.Endpoint)
			assert.Equal(t, tt.attempts, fake.hits(), "attempts")
		})
	}
}

func TestStoreErrorTexts(t *testing.T) {
	for kind, want := range map[ErrorKind]string{
		KindAppTicketInvalid: "lark: store_app_access_token: no app_ticket Lark accepts (missing, expired or replaced); ask Lark to resend it and wait for the app_ticket event (code 10012: get app access token fail)",
		KindTenantKeyInvalid: "lark: store_tenant_access_token: Lark refused the tenant key (unknown tenant, or the app is not installed or enabled there) (code 99992500: these ids not existed)",
		KindAppTokenInvalid:  "lark: store_tenant_access_token: Lark rejected the app access token (expired or invalid) (code 99991664: invalid app token)",
		KindAppTypeMismatch:  "lark: app_ticket_resend: Lark says this is not a store app (self-built apps get no app_ticket); configure it as self_built (code 10016: app resend fail)",
	} {
		var e *Error
		switch kind {
		case KindAppTicketInvalid:
			e = &Error{Endpoint: EndpointStoreAppAccessToken, Kind: kind, Code: 10012, Msg: "get app access token fail", HTTPStatus: 200}
		case KindTenantKeyInvalid:
			e = &Error{Endpoint: EndpointStoreTenantAccessToken, Kind: kind, Code: 99992500, Msg: "these ids not existed", HTTPStatus: 200}
		case KindAppTokenInvalid:
			e = &Error{Endpoint: EndpointStoreTenantAccessToken, Kind: kind, Code: 99991664, Msg: "invalid app token", HTTPStatus: 200}
		case KindAppTypeMismatch:
			e = &Error{Endpoint: EndpointAppTicketResend, Kind: kind, Code: 10016, Msg: "app resend fail", HTTPStatus: 200}
		}
		assert.Equal(t, want, e.Error())
		assert.False(t, e.Retryable(), "none of these is cured by repeating the same call")
	}
}

func TestResendIsRetriedLikeARead(t *testing.T) {
	fake := newFake(t, replyType(503, "text/plain", "busy"), reply(200, `{"code":0,"msg":"success"}`))
	require.NoError(t, newClient(t, fake.srv.URL).App(storeCreds()).ResendAppTicket(t.Context()))
	reqs := fake.requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, reqs[0].Body, reqs[1].Body)
}

// TestStoreCallsRejectBadInputLocally: a call for the other kind of app, or with values Lark would
// refuse, is refused before anything is sent.
func TestStoreCallsRejectBadInputLocally(t *testing.T) {
	fake := newFake(t, okTenant("t-1", 7200))
	c := newClient(t, fake.srv.URL, func(cfg *Config) { cfg.AccountsBaseURL = fake.srv.URL })
	ctx := t.Context()
	store := c.App(storeCreds())
	self := c.App(AppCredentials{AppID: testAppID, AppSecret: testAppSecret})
	odd := c.App(AppCredentials{AppID: testAppID, AppSecret: testAppSecret, Type: "marketplace"})
	check := func(err error, kind ErrorKind, want string) {
		t.Helper()
		e := asError(t, err)
		assert.Equal(t, kind, e.Kind, e.Error())
		assert.Contains(t, e.Error(), want)
		assert.Zero(t, e.Attempts)
		assert.False(t, e.ConsumedMaybe())
	}
	_, err := store.AppAccessTokenWithTicket(ctx, "")
	check(err, KindAppTicketInvalid, "no app_ticket held")
	assert.Equal(t, MeaningAwaitTicket, asError(t, err).Meaning(), "an empty ticket leads to the same recovery as a refused one")
	_, err = store.AppAccessTokenWithTicket(ctx, "tick et")
	check(err, KindAppTicketInvalid, "malformed")
	_, err = store.AppAccessTokenWithTicket(ctx, strings.Repeat("t", maxTicketLen+1))
	check(err, KindAppTicketInvalid, "malformed")
	_, err = c.App(AppCredentials{AppID: storeApp, Type: AppTypeStore}).AppAccessTokenWithTicket(ctx, storeTicket)
	check(err, KindInvalidRequest, "app_secret is empty")
	_, err = store.TenantAccessTokenFor(ctx, "", storeTenant)
	check(err, KindInvalidRequest, "app access token is empty or malformed")
	_, err = store.TenantAccessTokenFor(ctx, "a-1\r\nX: y", storeTenant)
	check(err, KindInvalidRequest, "app access token is empty or malformed")
	_, err = store.TenantAccessTokenFor(ctx, "a-1", "")
	check(err, KindInvalidRequest, "tenant_key is empty")
	_, err = store.TenantAccessTokenFor(ctx, "a-1", "../other")
	assert.NoError(t, err, "a tenant key is opaque to the client; the plugin guards its paths")
	_, err = store.TenantAccessTokenFor(ctx, "a-1", "tenant\nkey")
	check(err, KindInvalidRequest, "tenant_key is malformed")
	check(c.App(AppCredentials{AppID: "", AppSecret: storeSecret, Type: AppTypeStore}).ResendAppTicket(ctx), KindInvalidRequest, "app_id is empty")

	// The other kind of app.
	_, err = self.AppAccessTokenWithTicket(ctx, storeTicket)
	check(err, KindInvalidRequest, "this call is for store apps; the app is configured as self_built")
	_, err = self.TenantAccessTokenFor(ctx, "a-1", storeTenant)
	check(err, KindInvalidRequest, "for store apps")
	check(self.ResendAppTicket(ctx), KindInvalidRequest, "for store apps")
	_, err = store.AppAccessToken(ctx)
	check(err, KindInvalidRequest, "this call is for self_built apps; the app is configured as store")
	_, err = store.TenantAccessToken(ctx)
	check(err, KindInvalidRequest, "for self_built apps")
	_, err = c.App(AppCredentials{AppID: storeApp, AppSecret: storeSecret, Type: AppTypeStore, TenantTokenEndpoint: TenantTokenV3}).TenantAccessToken(ctx)
	check(err, KindInvalidRequest, "for self_built apps")
	_, err = odd.AppAccessToken(ctx)
	check(err, KindInvalidRequest, `app type must be "self_built" or "store"`)
	check(odd.ResendAppTicket(ctx), KindInvalidRequest, "app type must be")

	assert.Equal(t, 1, fake.hits(), "only the opaque tenant key was sent")
}

// TestStoreCallsNeverLeak: a Lark that echoes the whole request and hands out tokens in answers it
// then breaks. Neither the app secret nor the ticket nor any token may show up in an error.
func TestStoreCallsNeverLeak(t *testing.T) {
	const (
		secret   = "SeCrEt-store-do-not-leak"
		ticket   = "TiCkEt-store-do-not-leak"
		appTok   = "a-AppToken-do-not-leak-0001"
		issued   = "IsSuEd-store-do-not-leak"
		tenantTk = "t-TenantToken-do-not-leak-02"
	)
	values := []string{secret, ticket, appTok, issued, tenantTk}
	echo := func(r *http.Request) string {
		body, _ := io.ReadAll(r.Body)
		return strings.NewReplacer(`"`, `'`, `\`, `/`).Replace(string(body))
	}
	answer := func(status, code int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			reply(status, fmt.Sprintf(`{"code":%d,"msg":"%s %s","app_access_token":"%s","tenant_access_token":"%s"}`, code, echo(r), issued, issued, tenantTk))(w, r)
		}
	}
	calls := map[string]func(a *App) error{
		"app token": func(a *App) error { _, err := a.AppAccessTokenWithTicket(t.Context(), ticket); return err },
		"tenant":    func(a *App) error { _, err := a.TenantAccessTokenFor(t.Context(), appTok, storeTenant); return err },
		"resend":    func(a *App) error { return a.ResendAppTicket(t.Context()) },
	}
	steps := map[string]http.HandlerFunc{
		"10012":        answer(200, 10012),
		"99991664":     answer(400, 99991664),
		"99992500":     answer(400, 99992500),
		"10016":        answer(200, 10016),
		"10014":        answer(200, 10014),
		"other":        answer(400, 4242),
		"rate limited": answer(429, 99991400),
		"5xx":          answer(500, 0),
		"unusable success": func(w http.ResponseWriter, r *http.Request) {
			reply(200, `{"code":0,"app_access_token":"`+issued+` x","tenant_access_token":"`+tenantTk+` y","expire":0,"msg":"`+echo(r)+`"}`)(w, r)
		},
		"truncated": func(w http.ResponseWriter, r *http.Request) {
			reply(200, `{"code":0,"app_access_token":"`+issued+`","msg":"`+echo(r))(w, r)
		},
		"html": func(w http.ResponseWriter, r *http.Request) {
			replyType(200, "text/html", "<p>"+echo(r)+"</p>")(w, r)
		},
	}
	kinds := map[ErrorKind]bool{}
	for sname, step := range steps {
		for cname, call := range calls {
			t.Run(sname+"/"+cname, func(t *testing.T) {
				fake := newFake(t, step)
				err := call(newClient(t, fake.srv.URL, func(cfg *Config) { cfg.MaxAttempts = 1 }).App(AppCredentials{AppID: storeApp, AppSecret: secret, Type: AppTypeStore}))
				if sname == "unusable success" && cname == "resend" {
					assert.NoError(t, err, "resend reads nothing from a success")
					return
				}
				e := asError(t, err)
				kinds[e.Kind] = true
				for _, s := range []string{e.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", *e), fmt.Sprintf("%v", e.Err)} {
					for _, v := range values {
						assert.NotContains(t, s, v)
					}
				}
			})
		}
	}
	for _, k := range []ErrorKind{KindAppTicketInvalid, KindAppTokenInvalid, KindTenantKeyInvalid, KindAppTypeMismatch, KindAppSecretRejected, KindRateLimited, KindUnavailable, KindBadResponse, KindLarkError} {
		assert.True(t, kinds[k], "kind %s not exercised", k)
	}
}
