package lark

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lark-vault/vault-plugin-secrets-lark/clock"
	"github.com/lark-vault/vault-plugin-secrets-lark/larkemu"
)

// newDeviceEmu starts an emulator on a fake clock, so intervals and expiry need no waiting.
func newDeviceEmu(t *testing.T) (*larkemu.Server, *clock.Fake, *Client) {
	t.Helper()
	fc := clock.NewFake(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	emu, ts := larkemu.NewTestServer(t, larkemu.Options{Clock: fc, Apps: map[string]string{emuApp: emuSecret}})
	return emu, fc, newClient(t, ts.URL, func(cfg *Config) { cfg.AccountsBaseURL = ts.URL })
}

func deviceApp(c *Client, ep TokenEndpoint) *App {
	return c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret, UserTokenEndpoint: ep})
}

// TestDeviceFlow walks a device login against the emulator, for apps configured with either token
// endpoint generation (the poll goes to v2 regardless): start, pending, slow_down, approval, tokens
// that work (refreshed on the configured endpoint), and a second use of the device code.
func TestDeviceFlow(t *testing.T) {
	for _, ep := range []TokenEndpoint{TokenEndpointV3, TokenEndpointV2} {
		t.Run(string(ep), func(t *testing.T) {
			emu, fc, c := newDeviceEmu(t)
			app := deviceApp(c, ep)
			ctx := t.Context()

			d, err := app.StartDeviceAuthorization(ctx, grantScopes)
			require.NoError(t, err)
			assert.NotEmpty(t, d.DeviceCode)
			assert.Regexp(t, `^[A-Z]{4}-[A-Z]{4}$`, d.UserCode)
			assert.Contains(t, d.VerificationURI, "/_emulator/device/verify")
			assert.Equal(t, d.VerificationURI+"?user_code="+d.UserCode, d.VerificationURIComplete)
			assert.Equal(t, larkemu.DefaultDeviceCodeTTL, d.ExpiresIn)
			assert.Equal(t, 5*time.Second, d.Interval)

			p, err := app.PollDeviceToken(ctx, d.DeviceCode, d.Interval)
			require.NoError(t, err)
			assert.Equal(t, &DevicePoll{Status: DevicePending, Interval: 5 * time.Second}, p)
			assert.False(t, p.Final())

			fc.Advance(time.Second) // too soon
			p, err = app.PollDeviceToken(ctx, d.DeviceCode, p.Interval)
			require.NoError(t, err)
			assert.Equal(t, &DevicePoll{Status: DeviceSlowDown, Interval: 10 * time.Second}, p)
			assert.False(t, p.Final())

			require.NoError(t, emu.ApproveDevice(d.UserCode, ""))
			fc.Advance(p.Interval) // the grown interval is what the emulator now enforces
			p, err = app.PollDeviceToken(ctx, d.DeviceCode, p.Interval)
			require.NoError(t, err)
			require.Equal(t, DeviceApproved, p.Status)
			assert.True(t, p.Final())
			require.NotNil(t, p.Token)
			assert.NotEmpty(t, p.Token.AccessToken)
			assert.NotEmpty(t, p.Token.RefreshToken)
			assert.Equal(t, larkemu.DefaultRefreshTokenTTL, p.Token.RefreshExpiresIn)
			assert.Equal(t, grantScopes, p.Token.Scope)

			// The grant is an ordinary one: user_info works and the refresh token rotates.
			info, err := c.UserInfo(ctx, p.Token.AccessToken)
			require.NoError(t, err)
			assert.Equal(t, emu.OpenID(emuApp, emu.CurrentUser().UserID), info.OpenID)
			_, err = app.RefreshUserToken(ctx, p.Token.RefreshToken)
			require.NoError(t, err)

			// A device code works once.
			fc.Advance(time.Minute)
			_, err = app.PollDeviceToken(ctx, d.DeviceCode, p.Interval)
			e := asError(t, err)
			assert.Equal(t, KindCodeInvalid, e.Kind)
			assert.Equal(t, EndpointDeviceToken, e.Endpoint)
			assert.False(t, e.ConsumedMaybe())
			assert.Equal(t, 4, emu.AppCounters(emuApp)[larkemu.EndpointDeviceToken])
		})
	}
}

func TestDeviceDeniedAndExpired(t *testing.T) {
	emu, fc, c := newDeviceEmu(t)
	app := deviceApp(c, TokenEndpointV3)
	ctx := t.Context()

	d, err := app.StartDeviceAuthorization(ctx, grantScopes)
	require.NoError(t, err)
	require.NoError(t, emu.DenyDevice(d.UserCode, ""))
	p, err := app.PollDeviceToken(ctx, d.DeviceCode, 0) // 0: the default interval
	require.NoError(t, err)
	assert.Equal(t, &DevicePoll{Status: DeviceDenied, Interval: DefaultDeviceInterval}, p)
	assert.True(t, p.Final())

	d, err = app.StartDeviceAuthorization(ctx, grantScopes)
	require.NoError(t, err)
	fc.Advance(d.ExpiresIn)
	p, err = app.PollDeviceToken(ctx, d.DeviceCode, d.Interval)
	require.NoError(t, err)
	assert.Equal(t, DeviceExpired, p.Status)
	assert.True(t, p.Final())
	assert.Empty(t, emu.Grants())
}

func TestDeviceAppCredentialErrors(t *testing.T) {
	emu, _, c := newDeviceEmu(t)
	ctx := t.Context()
	bad := c.App(AppCredentials{AppID: emuApp, AppSecret: "wrong-secret-value"})
	_, err := bad.StartDeviceAuthorization(ctx, grantScopes)
	e := asError(t, err)
	assert.Equal(t, KindAppSecretRejected, e.Kind)
	assert.Equal(t, 20002, e.Code)
	assert.NotContains(t, e.Error(), "wrong-secret-value")

	unknown := c.App(AppCredentials{AppID: "cli_nobody00000000", AppSecret: emuSecret})
	_, err = unknown.StartDeviceAuthorization(ctx, grantScopes)
	assert.Equal(t, KindAppNotFound, asError(t, err).Kind)

	d, err := deviceApp(c, TokenEndpointV3).StartDeviceAuthorization(ctx, grantScopes)
	require.NoError(t, err)
	_, err = bad.PollDeviceToken(ctx, d.DeviceCode, d.Interval)
	e = asError(t, err)
	assert.Equal(t, KindAppSecretRejected, e.Kind)
	assert.NotContains(t, e.Error(), d.DeviceCode)
	info, _ := emu.Device(d.UserCode)
	assert.Equal(t, 0, info.Polls, "a refused client does not count as a poll")
}

// TestDeviceRequestShapes pins the wire format the official CLI uses: the start is a form with
// client_id and scope on the accounts host with HTTP Basic; the poll is a form with the client
// credentials in the body and no Authorization header, on the open host's v2 endpoint even for an
// app configured for v3.
func TestDeviceRequestShapes(t *testing.T) {
	start := `{"device_code":"dc-123","user_code":"BCDF-GHJK","verification_uri":"https://accounts.example/verify",` +
		`"verification_uri_complete":"https://accounts.example/verify?code=BCDF-GHJK","expires_in":600,"interval":7}`
	accounts := newFake(t, reply(200, start))
	open := newFake(t, reply(200, tokenOK))
	c := newClient(t, open.srv.URL, func(cfg *Config) { cfg.AccountsBaseURL = accounts.srv.URL })
	app := c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret, UserTokenEndpoint: TokenEndpointV3})

	d, err := app.StartDeviceAuthorization(t.Context(), []string{"im:message", "offline_access"})
	require.NoError(t, err)
	assert.Equal(t, &DeviceAuthorization{
		DeviceCode: "dc-123", UserCode: "BCDF-GHJK", VerificationURI: "https://accounts.example/verify",
		VerificationURIComplete: "https://accounts.example/verify?code=BCDF-GHJK", ExpiresIn: 10 * time.Minute, Interval: 7 * time.Second,
	}, d)
	r := accounts.requests()[0]
	assert.Equal(t, "/oauth/v1/device_authorization", r.Path)
	assert.Equal(t, "application/x-www-form-urlencoded", r.Header.Get("Content-Type"))
	assert.Equal(t, "Basic "+base64.StdEncoding.EncodeToString([]byte(emuApp+":"+emuSecret)), r.Header.Get("Authorization"))
	form, err := url.ParseQuery(string(r.Body))
	require.NoError(t, err)
	assert.Equal(t, url.Values{"client_id": {emuApp}, "scope": {"im:message offline_access"}}, form)

	p, err := app.PollDeviceToken(t.Context(), d.DeviceCode, d.Interval)
	require.NoError(t, err)
	assert.Equal(t, DeviceApproved, p.Status)
	r = open.requests()[0]
	assert.Equal(t, "/open-apis/authen/v2/oauth/token", r.Path)
	assert.Empty(t, r.Header.Get("Authorization"))
	form, err = url.ParseQuery(string(r.Body))
	require.NoError(t, err)
	assert.Equal(t, url.Values{
		"grant_type": {GrantTypeDeviceCode}, "device_code": {"dc-123"}, "client_id": {emuApp}, "client_secret": {emuSecret},
	}, form)
}

// TestDevicePollOutcomeShapes: the outcome is read from the RFC 8628 error name whatever numeric
// code Lark adds (none is documented) and also when it comes with HTTP 200.
func TestDevicePollOutcomeShapes(t *testing.T) {
	cases := []struct {
		status int
		body   string
		want   DeviceStatus
	}{
		{400, `{"error":"authorization_pending","error_description":"wait"}`, DevicePending},
		{400, `{"code":20079,"error":"authorization_pending","error_description":"wait"}`, DevicePending},
		{200, `{"error":"authorization_pending"}`, DevicePending},
		{400, `{"code":20080,"error":"slow_down"}`, DeviceSlowDown},
		{200, `{"code":0,"error":"slow_down"}`, DeviceSlowDown},
		{400, `{"code":20081,"error":"access_denied"}`, DeviceDenied},
		{400, `{"error":"expired_token"}`, DeviceExpired},
	}
	for _, tc := range cases {
		fake := newFake(t, reply(tc.status, tc.body))
		app := newClient(t, fake.srv.URL, func(cfg *Config) { cfg.AccountsBaseURL = fake.srv.URL }).App(AppCredentials{AppID: emuApp, AppSecret: emuSecret})
		p, err := app.PollDeviceToken(t.Context(), "dc", 6*time.Second)
		require.NoError(t, err, tc.body)
		assert.Equal(t, tc.want, p.Status, tc.body)
		wantInterval := 6 * time.Second
		if tc.want == DeviceSlowDown {
			wantInterval += SlowDownStep
		}
		assert.Equal(t, wantInterval, p.Interval, tc.body)
		assert.Nil(t, p.Token)
		assert.Equal(t, 1, fake.hits(), "one poll, one request")
	}
}

func TestDevicePollErrors(t *testing.T) {
	cases := []struct {
		status int
		body   string
		want   ErrorKind
	}{
		{400, `{"error":"invalid_grant","error_description":"used"}`, KindCodeInvalid},
		{400, `{"code":20024,"error":"invalid_grant"}`, KindCodeInvalid},
		{400, `{"code":20002,"error":"invalid_client"}`, KindAppSecretRejected},
		{500, `{"code":20050,"error":"server_error"}`, KindUnavailable},
		{200, `{"error":"something_new"}`, KindLarkError},
		{400, `{"error":"unsupported_grant_type"}`, KindInvalidRequest},
		{200, `{"code":0,"access_token":"","expires_in":7200}`, KindBadResponse},
	}
	for _, tc := range cases {
		fake := newFake(t, reply(tc.status, tc.body))
		app := newClient(t, fake.srv.URL, func(cfg *Config) { cfg.AccountsBaseURL = fake.srv.URL }).App(AppCredentials{AppID: emuApp, AppSecret: emuSecret})
		_, err := app.PollDeviceToken(t.Context(), "device-code-secret-value", 5*time.Second)
		e := asError(t, err)
		assert.Equal(t, tc.want, e.Kind, tc.body)
		assert.Equal(t, 1, fake.hits(), "never retried: %s", tc.body)
		assert.NotContains(t, e.Error(), "device-code-secret-value")
		assert.NotContains(t, e.Error(), emuSecret)
		assert.NotContains(t, string(e.Kind), "device_", "internal outcome kinds never escape")
	}
}

func TestDeviceStartBadAnswers(t *testing.T) {
	good := map[string]string{
		"device_code": `"dc"`, "user_code": `"BCDF-GHJK"`, "verification_uri": `"https://a.example/v"`,
		"expires_in": `600`, "interval": `5`,
	}
	build := func(change map[string]string) string {
		var parts []string
		for k, v := range good {
			if nv, ok := change[k]; ok {
				v = nv
			}
			if v != "" {
				parts = append(parts, `"`+k+`":`+v)
			}
		}
		for k, v := range change {
			if _, ok := good[k]; !ok && v != "" {
				parts = append(parts, `"`+k+`":`+v)
			}
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	for name, change := range map[string]map[string]string{
		"no device_code":     {"device_code": ""},
		"no user_code":       {"user_code": ""},
		"spaced user_code":   {"user_code": `"BC DF"`},
		"no verification":    {"verification_uri": ""},
		"javascript link":    {"verification_uri": `"javascript:alert(1)"`},
		"link with password": {"verification_uri": `"https://u:p@a.example/v"`},
		"no expires_in":      {"expires_in": ""},
		"negative interval":  {"interval": `-1`},
		"interval > expiry":  {"interval": `601`},
		"bad complete link":  {"verification_uri_complete": `"ftp://a.example"`},
	} {
		fake := newFake(t, reply(200, build(change)))
		app := newClient(t, fake.srv.URL, func(cfg *Config) { cfg.AccountsBaseURL = fake.srv.URL }).App(AppCredentials{AppID: emuApp, AppSecret: emuSecret})
		_, err := app.StartDeviceAuthorization(t.Context(), nil)
		assert.Equal(t, KindBadResponse, asError(t, err).Kind, name)
	}
	// Without interval the RFC default applies.
	fake := newFake(t, reply(200, build(map[string]string{"interval": ""})))
	app := newClient(t, fake.srv.URL, func(cfg *Config) { cfg.AccountsBaseURL = fake.srv.URL }).App(AppCredentials{AppID: emuApp, AppSecret: emuSecret})
	d, err := app.StartDeviceAuthorization(t.Context(), nil)
	require.NoError(t, err)
	assert.Equal(t, DefaultDeviceInterval, d.Interval)
	assert.Empty(t, d.VerificationURIComplete)
}

func TestDeviceInvalidInput(t *testing.T) {
	fake := newFake(t, reply(500, `{}`))
	c := newClient(t, fake.srv.URL, func(cfg *Config) { cfg.AccountsBaseURL = fake.srv.URL })
	ctx := t.Context()
	ok := c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret})
	for name, call := range map[string]func() error{
		"empty secret": func() error {
			_, err := c.App(AppCredentials{AppID: emuApp}).StartDeviceAuthorization(ctx, nil)
			return err
		},
		"duplicate scope": func() error { _, err := ok.StartDeviceAuthorization(ctx, []string{"a", "a"}); return err },
		"scope with space": func() error {
			_, err := ok.StartDeviceAuthorization(ctx, []string{"a b"})
			return err
		},
		"empty device code": func() error { _, err := ok.PollDeviceToken(ctx, "", 0); return err },
		"spaced device code": func() error {
			_, err := ok.PollDeviceToken(ctx, "a b", 0)
			return err
		},
	} {
		assert.Equal(t, KindInvalidRequest, asError(t, call()).Kind, name)
	}
	assert.Equal(t, 0, fake.hits(), "nothing sent")
}
