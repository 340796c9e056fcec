package larkemu

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

type deviceStart struct {
	Code                    int    `json:"code"`
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int64  `json:"expires_in"`
	Interval                int64  `json:"interval"`
}

func basic(id, secret string) []string {
	return []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))}
}

// startDevice asks for a device authorization the way the official CLI does: a form with client_id
// and scope, the app's credentials in HTTP Basic.
func startDevice(t *testing.T, ts *httptest.Server, scope string) deviceStart {
	t.Helper()
	r := postForm(t, ts.URL+PathDeviceAuthorization, map[string]string{"client_id": testApp, "scope": scope}, basic(testApp, testSecret)...)
	if r.status != http.StatusOK {
		t.Fatalf("device authorization: %d %s", r.status, r.body)
	}
	var d deviceStart
	if err := json.Unmarshal([]byte(r.body), &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func devicePollParams(deviceCode string) map[string]string {
	return map[string]string{"grant_type": GrantTypeDeviceCode, "client_id": testApp, "client_secret": testSecret, "device_code": deviceCode}
}

// pollDevice polls the v2 endpoint with a form, as the official CLI does.
func pollDeviceV2(t *testing.T, ts *httptest.Server, deviceCode string) response {
	t.Helper()
	return postForm(t, ts.URL+PathOAuthTokenV2, devicePollParams(deviceCode))
}

func wantDeviceError(t *testing.T, r response, name string) {
	t.Helper()
	want := `{"error":"` + name + `","error_description":"` + deviceErrDescriptions[name] + `"}`
	if r.status != http.StatusBadRequest || r.body != want {
		t.Errorf("got %d %s\nwant 400 %s", r.status, r.body, want)
	}
}

func TestDeviceAuthorizationAnswer(t *testing.T) {
	s, ts, fc := newFakeEmu(t, Options{})
	d := startDevice(t, ts, "auth:user.id:read offline_access")
	if len(d.DeviceCode) < 40 {
		t.Errorf("device_code %d characters, want a long random value", len(d.DeviceCode))
	}
	if !regexp.MustCompile(`^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$`).MatchString(d.UserCode) {
		t.Errorf("user_code %q", d.UserCode)
	}
	expectEqual(t, "verification_uri", d.VerificationURI, ts.URL+"/_emulator/device/verify")
	expectEqual(t, "verification_uri_complete", d.VerificationURIComplete, d.VerificationURI+"?user_code="+d.UserCode)
	expectEqual(t, "expires_in", d.ExpiresIn, int64(600))
	expectEqual(t, "interval", d.Interval, int64(5))
	info, ok := s.Device(d.UserCode)
	if !ok {
		t.Fatal("Device: not found")
	}
	expectEqual(t, "status", info.Status, DevicePending)
	expectEqual(t, "scopes", strings.Join(info.Scopes, " "), "auth:user.id:read offline_access")
	expectEqual(t, "expires_at", info.ExpiresAt, fc.Now().Add(10*time.Minute))
	// The verification page names the code and how to approve.
	page := get(t, d.VerificationURIComplete)
	if page.status != http.StatusOK || !strings.Contains(page.body, d.UserCode) || !strings.Contains(page.body, "device/approve") {
		t.Errorf("verify page: %d %s", page.status, page.body)
	}
	expectEqual(t, "device_authorization calls", s.Calls(EndpointDeviceAuthorization), 1)
	expectEqual(t, "per-app device_authorization", s.AppCounters(testApp)[EndpointDeviceAuthorization], 1)
	// The device code is the app's secret until redeemed: the listing never shows it.
	if strings.Contains(mustJSON(t, s.DeviceAuthorizations()), d.DeviceCode) {
		t.Error("DeviceAuthorizations shows the device code")
	}
}

func TestDeviceAuthorizationOptions(t *testing.T) {
	_, ts, _ := newFakeEmu(t, Options{DeviceCodeTTL: 90 * time.Second, DeviceInterval: 2 * time.Second})
	d := startDevice(t, ts, "")
	expectEqual(t, "expires_in", d.ExpiresIn, int64(90))
	expectEqual(t, "interval", d.Interval, int64(2))
}

func TestDeviceAuthorizationClientAuthentication(t *testing.T) {
	_, ts, _ := newFakeEmu(t, Options{})
	target := ts.URL + PathDeviceAuthorization
	// Credentials in the body work as well as Basic.
	r := postForm(t, target, map[string]string{"client_id": testApp, "client_secret": testSecret})
	expectEqual(t, "body credentials status", r.status, http.StatusOK)
	// JSON too.
	r = postJSON(t, target, mustJSON(t, map[string]string{"client_id": testApp, "client_secret": testSecret}))
	expectEqual(t, "JSON status", r.status, http.StatusOK)

	wantOAuthError(t, postForm(t, target, map[string]string{"client_id": testApp, "client_secret": "wrong"}), oauthBadSecret)
	wantOAuthError(t, postForm(t, target, map[string]string{}, basic(testApp, "wrong")...), oauthBadSecret)
	wantOAuthError(t, postForm(t, target, map[string]string{}, basic("cli_nobody0000000", testSecret)...), oauthNoSuchApp)
	wantOAuthError(t, postForm(t, target, map[string]string{"client_id": testApp}), oauthMissingParam)
	// Both ways at once, or Basic for one app and the form for another: 20070.
	wantOAuthError(t, postForm(t, target, map[string]string{"client_secret": testSecret}, basic(testApp, testSecret)...), oauthMultipleAuth)
	wantOAuthError(t, postForm(t, target, map[string]string{"client_id": "cli_other000000000"}, basic(testApp, testSecret)...), oauthMultipleAuth)
	wantOAuthError(t, postJSON(t, target, "{not json"), oauthMalformed)
	// GET is not the endpoint.
	expectEqual(t, "GET status", get(t, target).status, http.StatusMethodNotAllowed)
}

func TestDeviceAuthorizationScopes(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	if err := s.RegisterApp(App{ID: "cli_scoped000000000", Secret: "sec", Scopes: []string{"offline_access", "im:message"}}); err != nil {
		t.Fatal(err)
	}
	target := ts.URL + PathDeviceAuthorization
	wantOAuthError(t, postForm(t, target, map[string]string{"scope": "offline_access offline_access"}, basic(testApp, testSecret)...), oauthDuplicateScope)
	wantOAuthError(t, postForm(t, target, map[string]string{"scope": "contact:read"}, basic("cli_scoped000000000", "sec")...), oauthScopeNotAllowed)
	r := postForm(t, target, map[string]string{"scope": "im:message offline_access"}, basic("cli_scoped000000000", "sec")...)
	expectEqual(t, "allowed scopes status", r.status, http.StatusOK)
	expectEqual(t, "device authorizations stored", len(s.DeviceAuthorizations()), 1)
}

func TestDevicePendingThenApprovedGrant(t *testing.T) {
	s, ts, fc := newFakeEmu(t, Options{})
	d := startDevice(t, ts, "auth:user.id:read offline_access")
	wantDeviceError(t, pollDeviceV2(t, ts, d.DeviceCode), "authorization_pending")
	fc.Advance(5 * time.Second)
	wantDeviceError(t, pollDeviceV2(t, ts, d.DeviceCode), "authorization_pending")

	if err := s.AddUser(User{UserID: "alice", Name: "Alice"}); err != nil {
		t.Fatal(err)
	}
	if err := s.ApproveDevice(strings.ToLower(d.UserCode), "alice"); err != nil { // codes are case-insensitive
		t.Fatal(err)
	}
	fc.Advance(5 * time.Second)
	tok := okTokens(t, pollDeviceV2(t, ts, d.DeviceCode))
	if tok.AccessToken == "" || tok.RefreshToken == "" || tok.TokenType != "Bearer" {
		t.Fatalf("tokens: %+v", tok)
	}
	expectEqual(t, "scope", tok.Scope, "auth:user.id:read offline_access")
	expectEqual(t, "refresh lifetime", tok.RefreshTokenExpiresIn, int64(DefaultRefreshTokenTTL/time.Second))

	info, _ := s.Device(d.UserCode)
	expectEqual(t, "status", info.Status, DeviceUsed)
	expectEqual(t, "user", info.UserID, "alice")
	expectEqual(t, "polls", info.Polls, 3)
	grants := s.Grants()
	if len(grants) != 1 || grants[0].GrantID != info.GrantID || grants[0].UserID != "alice" {
		t.Fatalf("grants %+v, device %+v", grants, info)
	}
	// The 365-day cap counts from the approval's redemption.
	expectEqual(t, "grant ends", grants[0].EndsAt, fc.Now().Add(DefaultGrantMaxAge))

	// A normal grant: user_info names the approving user, the refresh token is single use.
	ui := get(t, ts.URL+PathUserInfo, bearer(tok.AccessToken)...)
	expectEqual(t, "user_info status", ui.status, http.StatusOK)
	if !strings.Contains(ui.body, s.OpenID(testApp, "alice")) {
		t.Errorf("user_info %s does not name alice", ui.body)
	}
	okTokens(t, tokenV2(t, ts, refreshParams(tok.RefreshToken)))
	wantOAuthError(t, tokenV2(t, ts, refreshParams(tok.RefreshToken)), oauthRefreshUsed)

	expectEqual(t, "device_token calls", s.Calls(EndpointDeviceToken), 3)
	expectEqual(t, "oauth_token calls", s.Calls(EndpointOAuthToken), 5)
	expectEqual(t, "per-app device_token", s.AppCounters(testApp)[EndpointDeviceToken], 3)
}

func TestDeviceCodeSingleUse(t *testing.T) {
	s, ts, fc := newFakeEmu(t, Options{})
	d := startDevice(t, ts, "offline_access")
	if err := s.ApproveDevice(d.UserCode, ""); err != nil {
		t.Fatal(err)
	}
	okTokens(t, pollDeviceV2(t, ts, d.DeviceCode))
	fc.Advance(5 * time.Second)
	wantDeviceError(t, pollDeviceV2(t, ts, d.DeviceCode), "invalid_grant")
	// Still refused on the other generation of the endpoint, and after the code's expiry.
	fc.Advance(time.Hour)
	wantDeviceError(t, postJSON(t, ts.URL+PathOAuthTokenV3, mustJSON(t, devicePollParams(d.DeviceCode))), "invalid_grant")
	expectEqual(t, "grants issued", len(s.Grants()), 1)
	// Approving a used code is refused too.
	if err := s.ApproveDevice(d.UserCode, ""); err != ErrDeviceExpired && err != ErrDeviceDecided {
		t.Errorf("approve used code: %v", err)
	}
}

func TestDeviceDenied(t *testing.T) {
	s, ts, fc := newFakeEmu(t, Options{})
	d := startDevice(t, ts, "offline_access")
	if err := s.DenyDevice(d.UserCode, ""); err != nil {
		t.Fatal(err)
	}
	wantDeviceError(t, pollDeviceV2(t, ts, d.DeviceCode), "access_denied")
	// A denied code stays denied (polling fast does not change that), and cannot be approved later.
	wantDeviceError(t, pollDeviceV2(t, ts, d.DeviceCode), "access_denied")
	expectEqual(t, "approve after deny", s.ApproveDevice(d.UserCode, ""), ErrDeviceDecided)
	fc.Advance(11 * time.Minute)
	wantDeviceError(t, pollDeviceV2(t, ts, d.DeviceCode), "expired_token")
	expectEqual(t, "grants", len(s.Grants()), 0)
}

func TestDeviceExpiry(t *testing.T) {
	s, ts, fc := newFakeEmu(t, Options{})
	d := startDevice(t, ts, "offline_access")
	fc.Advance(10*time.Minute - time.Second)
	if err := s.ApproveDevice(d.UserCode, ""); err != nil {
		t.Fatal(err)
	}
	fc.Advance(time.Second) // exactly expires_in: over
	wantDeviceError(t, pollDeviceV2(t, ts, d.DeviceCode), "expired_token")
	info, _ := s.Device(d.UserCode)
	expectEqual(t, "status", info.Status, DeviceExpired)
	expectEqual(t, "grants", len(s.Grants()), 0)
	// An expired user code cannot be approved.
	d2 := startDevice(t, ts, "offline_access")
	fc.Advance(10 * time.Minute)
	expectEqual(t, "approve expired", s.ApproveDevice(d2.UserCode, ""), ErrDeviceExpired)
	// A day later the code is forgotten: unknown, like any made-up code.
	fc.Advance(25 * time.Hour)
	startDevice(t, ts, "") // prunes
	wantDeviceError(t, pollDeviceV2(t, ts, d.DeviceCode), "invalid_grant")
}

func TestDeviceSlowDown(t *testing.T) {
	s, ts, fc := newFakeEmu(t, Options{})
	d := startDevice(t, ts, "offline_access")
	wantDeviceError(t, pollDeviceV2(t, ts, d.DeviceCode), "authorization_pending") // the first poll may come at once
	fc.Advance(4 * time.Second)
	wantDeviceError(t, pollDeviceV2(t, ts, d.DeviceCode), "slow_down")
	info, _ := s.Device(d.UserCode)
	expectEqual(t, "interval after one slow_down", info.IntervalSeconds, int64(10))
	// The old interval is no longer enough: 5 s later is too soon again, and the interval grows.
	fc.Advance(5 * time.Second)
	wantDeviceError(t, pollDeviceV2(t, ts, d.DeviceCode), "slow_down")
	info, _ = s.Device(d.UserCode)
	expectEqual(t, "interval after two", info.IntervalSeconds, int64(15))
	expectEqual(t, "slow_downs", info.SlowDowns, 2)
	// Waiting the new interval is fine, and an approved code still needs the interval honoured.
	fc.Advance(15 * time.Second)
	wantDeviceError(t, pollDeviceV2(t, ts, d.DeviceCode), "authorization_pending")
	if err := s.ApproveDevice(d.UserCode, ""); err != nil {
		t.Fatal(err)
	}
	fc.Advance(time.Second)
	wantDeviceError(t, pollDeviceV2(t, ts, d.DeviceCode), "slow_down")
	fc.Advance(20 * time.Second)
	okTokens(t, pollDeviceV2(t, ts, d.DeviceCode))
}

func TestDevicePollRefusals(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	if err := s.AddApp("cli_other000000000", "otherSecret"); err != nil {
		t.Fatal(err)
	}
	d := startDevice(t, ts, "offline_access")
	if err := s.ApproveDevice(d.UserCode, ""); err != nil {
		t.Fatal(err)
	}
	p := devicePollParams(d.DeviceCode)
	p["client_secret"] = "wrong"
	wantOAuthError(t, postForm(t, ts.URL+PathOAuthTokenV2, p), oauthBadSecret)
	// Another app may not redeem this app's code.
	p = devicePollParams(d.DeviceCode)
	p["client_id"], p["client_secret"] = "cli_other000000000", "otherSecret"
	wantOAuthError(t, postForm(t, ts.URL+PathOAuthTokenV2, p), oauthClientMismatch)
	p = devicePollParams("")
	wantOAuthError(t, postForm(t, ts.URL+PathOAuthTokenV2, p), oauthMissingParam)
	wantDeviceError(t, pollDeviceV2(t, ts, "made-up-device-code"), "invalid_grant")
	// None of that spent the code or counted as a poll.
	info, _ := s.Device(d.UserCode)
	expectEqual(t, "status", info.Status, DeviceApproved)
	expectEqual(t, "polls", info.Polls, 0)
	okTokens(t, pollDeviceV2(t, ts, d.DeviceCode))
}

func TestDeviceControlAPI(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	ctl := ts.URL + ControlPrefix
	d := startDevice(t, ts, "offline_access")
	d2 := startDevice(t, ts, "offline_access")

	r := postJSON(t, ctl+"device/approve", `{"user_code":"`+d.UserCode+`"}`)
	expectEqual(t, "approve status", r.status, http.StatusOK)
	expectEqual(t, "approve reply status", decode(t, r.body)["status"], any(DeviceApproved))
	expectEqual(t, "approve again", postJSON(t, ctl+"device/approve", `{"user_code":"`+d.UserCode+`"}`).status, http.StatusConflict)
	expectEqual(t, "unknown code", postJSON(t, ctl+"device/deny", `{"user_code":"BBBB-BBBB"}`).status, http.StatusNotFound)
	expectEqual(t, "missing code", postJSON(t, ctl+"device/deny", `{}`).status, http.StatusBadRequest)
	expectEqual(t, "unknown field", postJSON(t, ctl+"device/deny", `{"user_code":"`+d2.UserCode+`","x":1}`).status, http.StatusBadRequest)
	expectEqual(t, "unknown user", postJSON(t, ctl+"device/deny", `{"user_code":"`+d2.UserCode+`","user_id":"nobody"}`).status, http.StatusBadRequest)
	r = postJSON(t, ctl+"device/deny", `{"user_code":"`+d2.UserCode+`"}`)
	expectEqual(t, "deny status", r.status, http.StatusOK)

	var list struct {
		Devices []DeviceInfo `json:"devices"`
	}
	if err := json.Unmarshal([]byte(get(t, ctl+"devices").body), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Devices) != 2 || list.Devices[0].Status != DeviceApproved || list.Devices[1].Status != DeviceDenied {
		t.Fatalf("devices %+v", list.Devices)
	}
	// Reset forgets device authorizations.
	s.Reset()
	expectEqual(t, "after reset", len(s.DeviceAuthorizations()), 0)
	wantDeviceError(t, pollDeviceV2(t, ts, d.DeviceCode), "invalid_grant")
}

func TestDeviceFailureInjection(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	d := startDevice(t, ts, "offline_access")
	if err := s.ApproveDevice(d.UserCode, ""); err != nil {
		t.Fatal(err)
	}
	// A lost answer after Lark acted spends the code: the next poll is refused.
	inject(t, s, Failure{Endpoint: EndpointDeviceToken, Mode: FailLostResponse})
	req, _ := http.NewRequest(http.MethodPost, ts.URL+PathOAuthTokenV2, strings.NewReader("grant_type="+GrantTypeDeviceCode+
		"&client_id="+testApp+"&client_secret="+testSecret+"&device_code="+d.DeviceCode))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		_ = resp.Body.Close()
		t.Fatal("lost response: got an answer")
	}
	wantDeviceError(t, pollDeviceV2(t, ts, d.DeviceCode), "invalid_grant")
	// Injected errors speak the OAuth dialect on both device endpoints.
	inject(t, s, Failure{Endpoint: EndpointDeviceAuthorization, Mode: FailError, Code: 20050})
	wantOAuthError(t, postForm(t, ts.URL+PathDeviceAuthorization, map[string]string{}, basic(testApp, testSecret)...), 20050)
}
