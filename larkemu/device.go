package larkemu

import (
	"cmp"
	"crypto/rand"
	"fmt"
	"html"
	"net/http"
	"slices"
	"strings"
	"time"
)

// The device authorization grant (RFC 8628) as docs/lark-api.md §14 describes it: the app asks the
// accounts host for a device code and a user code, a person approves the user code in a browser,
// and the app polls the token endpoint with grant_type=urn:ietf:params:oauth:grant-type:device_code.
// The emulator has no browser session, so approval and denial come from the control API
// (ApproveDevice, DenyDevice; POST /_emulator/device/approve and /deny).

// GrantTypeDeviceCode is the grant_type of a device-code poll on the token endpoint.
const GrantTypeDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"

// Defaults of the device flow. Lark's own values are not documented; 600 s is what users of the
// official CLI see (lark-api.md §14), 5 s is RFC 8628's default interval.
const (
	DefaultDeviceCodeTTL  = 10 * time.Minute
	DefaultDeviceInterval = 5 * time.Second
	// SlowDownStep is how much the required interval grows with every slow_down (RFC 8628 §3.5).
	SlowDownStep = 5 * time.Second
)

// Device authorization statuses reported by DeviceAuthorizations.
const (
	DevicePending  = "pending"  // waiting for the user
	DeviceApproved = "approved" // approved, not yet redeemed
	DeviceDenied   = "denied"   // the user refused
	DeviceUsed     = "used"     // redeemed: the grant exists
	DeviceExpired  = "expired"  // past expires_in without being redeemed
)

// Device-flow refusals on the token endpoint. Lark's numeric codes for these are not known, so
// the emulator sends only the RFC 8628 / RFC 6749 error names (HTTP 400) and no "code": a client
// tested against it cannot come to depend on a number nobody has seen.
const (
	deviceErrPending = "authorization_pending"
	deviceErrSlow    = "slow_down"
	deviceErrDenied  = "access_denied"
	deviceErrExpired = "expired_token"
	deviceErrInvalid = "invalid_grant"
)

var deviceErrDescriptions = map[string]string{
	deviceErrPending: "The user has not yet approved the authorization request.",
	deviceErrSlow:    "Polling too fast: wait longer between requests (the interval has grown by 5 seconds).",
	deviceErrDenied:  "The user denied the authorization request.",
	deviceErrExpired: "The device code has expired. Start a new authorization.",
	deviceErrInvalid: "The device code is invalid or has already been used.",
}

// deviceError is the shape of a device-flow refusal: an OAuth error without a numeric code.
type deviceError struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

func writeDeviceError(w http.ResponseWriter, name string) {
	writeJSON(w, http.StatusBadRequest, deviceError{Error: name, ErrorDescription: deviceErrDescriptions[name]})
}

// deviceAuth is one device authorization. Guarded by Server.mu.
type deviceAuth struct {
	seq        uint64 // creation order, for listings
	appID      string
	deviceCode string
	userCode   string
	scopes     []string
	issuedAt   time.Time
	expiresAt  time.Time
	interval   time.Duration // grows by SlowDownStep with every slow_down
	lastPoll   time.Time     // zero until the first poll
	status     string        // DevicePending, DeviceApproved, DeviceDenied or DeviceUsed
	userID     string        // who approved or denied
	grantID    string        // the grant issued on redemption
	polls      int
	slowDowns  int
}

// deviceAuthReply is the answer of the device authorization endpoint.
type deviceAuthReply struct {
	Code                    int    `json:"code"`
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int64  `json:"expires_in"`
	Interval                int64  `json:"interval"`
}

// handleDeviceAuthorization is POST /oauth/v1/device_authorization. The app authenticates like on
// the token endpoint: HTTP Basic (what the official CLI sends, with client_id repeated in the form)
// or client_id and client_secret in the body, never both (20070).
func (s *Server) handleDeviceAuthorization(w http.ResponseWriter, req *request) {
	p, code := parseOAuthParams(req)
	var clientID, secret string
	if code == 0 {
		clientID, secret, code = clientCredentials(req, p)
	}
	if code != 0 {
		s.oauthFail(w, EndpointDeviceAuthorization, clientID, "", code)
		return
	}
	scopes := splitScopes(p["scope"])
	now := s.clk.Now()
	s.mu.Lock()
	a, code := s.checkClientLocked(clientID, secret)
	if code == 0 {
		code = checkDeviceScopes(a, scopes)
	}
	var d *deviceAuth
	if code == 0 {
		s.pruneDevices(now)
		s.grants.deviceSeq++
		d = &deviceAuth{
			seq: s.grants.deviceSeq, appID: clientID, deviceCode: newCode(), userCode: s.newUserCodeLocked(), scopes: scopes,
			issuedAt: now, expiresAt: now.Add(s.opts.DeviceCodeTTL), interval: s.opts.DeviceInterval,
			status: DevicePending,
		}
		s.grants.devices[d.deviceCode] = d
		s.grants.userCodes[d.userCode] = d
	}
	s.mu.Unlock()
	if code != 0 {
		s.oauthFail(w, EndpointDeviceAuthorization, clientID, "", code)
		return
	}
	verify := requestBase(req.Request) + ControlPrefix + "device/verify"
	s.logf("%s: app_id=%s code=0 scopes=%d", EndpointDeviceAuthorization, clientID, len(scopes))
	writeJSON(w, http.StatusOK, deviceAuthReply{
		DeviceCode: d.deviceCode, UserCode: d.userCode,
		VerificationURI: verify, VerificationURIComplete: verify + "?user_code=" + d.userCode,
		ExpiresIn: remainingSeconds(d.expiresAt, now), Interval: int64(d.interval / time.Second),
	})
}

// checkDeviceScopes applies the token endpoint's scope rules to the requested list: no duplicates
// (20067) and, when the app has a scope list, nothing outside it (20068).
func checkDeviceScopes(a *app, scopes []string) int {
	for i, sc := range scopes {
		if slices.Contains(scopes[:i], sc) {
			return oauthDuplicateScope
		}
		if len(a.Scopes) > 0 && !slices.Contains(a.Scopes, sc) {
			return oauthScopeNotAllowed
		}
	}
	return 0
}

// requestBase is scheme://host of the request, so verification links point back at this emulator.
func requestBase(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// userCodeAlphabet is RFC 8628 §6.1's suggestion: consonants only, no look-alikes, no words.
const userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

// newUserCodeLocked makes an unused XXXX-XXXX user code. Callers hold s.mu.
func (s *Server) newUserCodeLocked() string {
	for {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		var sb strings.Builder
		for i, c := range b {
			if i == 4 {
				sb.WriteByte('-')
			}
			sb.WriteByte(userCodeAlphabet[int(c)%len(userCodeAlphabet)])
		}
		if _, taken := s.grants.userCodes[sb.String()]; !taken {
			return sb.String()
		}
	}
}

// pruneDevices forgets device codes a day past expiry, like pruneCodes. Callers hold s.mu.
func (s *Server) pruneDevices(now time.Time) {
	for c, d := range s.grants.devices {
		if now.After(d.expiresAt.Add(24 * time.Hour)) {
			delete(s.grants.devices, c)
			delete(s.grants.userCodes, d.userCode)
		}
	}
}

// serveDeviceToken answers a device-code poll on the token endpoint (either generation). Client
// authentication (body or Basic) was read by the dispatcher.
func (s *Server) serveDeviceToken(w http.ResponseWriter, req *request, p map[string]string, clientID, secret string) {
	s.countFor(EndpointDeviceToken, clientID)
	s.withFailures(w, req, EndpointDeviceToken, false, func(w http.ResponseWriter) {
		pair, refusal, code := s.pollDevice(p["device_code"], clientID, secret)
		switch {
		case code != 0:
			s.oauthFail(w, EndpointDeviceToken, clientID, GrantTypeDeviceCode, code)
		case refusal != "":
			s.logf("%s: app_id=%s error=%s", EndpointDeviceToken, logAppID(clientID), refusal)
			writeDeviceError(w, refusal)
		default:
			s.writeTokenPair(w, EndpointDeviceToken, clientID, pair, 0)
		}
	})
}

// pollDevice applies the rules of a poll in order: the app's credentials, the code's existence and
// owner, single use, expiry, denial, the polling interval, and finally approval or pending. It
// returns a token pair, an RFC 8628 error name, or an OAuth error code.
func (s *Server) pollDevice(deviceCode, clientID, secret string) (tokenPair, string, int) {
	now := s.clk.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, code := s.checkClientLocked(clientID, secret); code != 0 {
		return tokenPair{}, "", code
	}
	if deviceCode == "" {
		return tokenPair{}, "", oauthMissingParam
	}
	d := s.grants.devices[deviceCode]
	switch {
	case d == nil:
		return tokenPair{}, deviceErrInvalid, 0
	case d.appID != clientID:
		return tokenPair{}, "", oauthClientMismatch
	case d.status == DeviceUsed:
		return tokenPair{}, deviceErrInvalid, 0
	}
	d.polls++
	switch {
	case !now.Before(d.expiresAt):
		return tokenPair{}, deviceErrExpired, 0
	case d.status == DeviceDenied:
		return tokenPair{}, deviceErrDenied, 0
	}
	tooSoon := !d.lastPoll.IsZero() && now.Sub(d.lastPoll) < d.interval
	d.lastPoll = now
	if tooSoon {
		d.interval += SlowDownStep
		d.slowDowns++
		return tokenPair{}, deviceErrSlow, 0
	}
	if d.status != DeviceApproved {
		return tokenPair{}, deviceErrPending, 0
	}
	d.status = DeviceUsed
	g, pair := s.newGrant(d.appID, d.userID, d.scopes, now, now)
	d.grantID = g.id
	return pair, "", 0
}

// DeviceInfo describes a device authorization for tests. It never includes the device code, which
// is the app's secret until it is redeemed.
type DeviceInfo struct {
	AppID     string    `json:"app_id"`
	UserCode  string    `json:"user_code"`
	Scopes    []string  `json:"scopes"`
	Status    string    `json:"status"`
	UserID    string    `json:"user_id,omitempty"`  // who approved or denied
	GrantID   string    `json:"grant_id,omitempty"` // the grant issued on redemption
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// IntervalSeconds is the interval the emulator enforces now: the first one plus 5 s per slow_down.
	IntervalSeconds int64 `json:"interval_seconds"`
	Polls           int   `json:"polls"`
	SlowDowns       int   `json:"slow_downs"`
}

// DeviceAuthorizations lists the device authorizations the emulator remembers, oldest first.
func (s *Server) DeviceAuthorizations() []DeviceInfo {
	now := s.clk.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	ds := make([]*deviceAuth, 0, len(s.grants.devices))
	for _, d := range s.grants.devices {
		ds = append(ds, d)
	}
	// Creation order: several may be issued at the same instant of the emulator's clock.
	slices.SortFunc(ds, func(a, b *deviceAuth) int { return cmp.Compare(a.seq, b.seq) })
	out := make([]DeviceInfo, 0, len(ds))
	for _, d := range ds {
		out = append(out, deviceInfoOf(d, now))
	}
	return out
}

// Device describes the device authorization with userCode.
func (s *Server) Device(userCode string) (DeviceInfo, bool) {
	now := s.clk.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.grants.userCodes[userCode]
	if !ok {
		return DeviceInfo{}, false
	}
	return deviceInfoOf(d, now), true
}

func deviceInfoOf(d *deviceAuth, now time.Time) DeviceInfo {
	status := d.status
	if status != DeviceUsed && !now.Before(d.expiresAt) {
		status = DeviceExpired
	}
	return DeviceInfo{
		AppID: d.appID, UserCode: d.userCode, Scopes: slices.Clone(d.scopes), Status: status,
		UserID: d.userID, GrantID: d.grantID, IssuedAt: d.issuedAt, ExpiresAt: d.expiresAt,
		IntervalSeconds: int64(d.interval / time.Second), Polls: d.polls, SlowDowns: d.slowDowns,
	}
}

// Errors of ApproveDevice and DenyDevice.
var (
	ErrDeviceUnknown = fmt.Errorf("larkemu: no device authorization has this user code")
	ErrDeviceExpired = fmt.Errorf("larkemu: the device authorization has expired")
	ErrDeviceDecided = fmt.Errorf("larkemu: the device authorization was already approved or denied")
)

// ApproveDevice approves the device authorization with userCode as userID ("" means the signed-in
// user), as the user would on Lark's verification page. The app's next poll gets the tokens. As on
// the authorize page, the grant carries every scope the user ever gave the app.
func (s *Server) ApproveDevice(userCode, userID string) error {
	return s.decideDevice(userCode, userID, true)
}

// DenyDevice refuses the device authorization with userCode as userID ("" means the signed-in
// user); the app's next poll gets access_denied.
func (s *Server) DenyDevice(userCode, userID string) error {
	return s.decideDevice(userCode, userID, false)
}

func (s *Server) decideDevice(userCode, userID string, approve bool) error {
	now := s.clk.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.grants.userCodes[strings.ToUpper(strings.TrimSpace(userCode))]
	switch {
	case !ok:
		return ErrDeviceUnknown
	case !now.Before(d.expiresAt):
		return ErrDeviceExpired
	case d.status != DevicePending:
		return ErrDeviceDecided
	}
	if userID == "" {
		userID = s.identity.current
	}
	if _, ok := s.identity.users[userID]; !ok {
		return fmt.Errorf("larkemu: user %q is not registered", userID)
	}
	d.userID = userID
	if !approve {
		d.status = DeviceDenied
		return nil
	}
	key := [2]string{d.appID, userID}
	granted := dedupScopes(append(slices.Clone(s.grants.consent[key]), d.scopes...))
	s.grants.consent[key] = granted
	d.scopes = granted
	d.status = DeviceApproved
	return nil
}

func (s *Server) ctlListDevices(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, map[string][]DeviceInfo{"devices": s.DeviceAuthorizations()})
	return nil
}

func (s *Server) ctlApproveDevice(w http.ResponseWriter, r *http.Request) error {
	return s.ctlDecideDevice(w, r, true)
}

func (s *Server) ctlDenyDevice(w http.ResponseWriter, r *http.Request) error {
	return s.ctlDecideDevice(w, r, false)
}

func (s *Server) ctlDecideDevice(w http.ResponseWriter, r *http.Request, approve bool) error {
	var body struct {
		UserCode string `json:"user_code"`
		UserID   string `json:"user_id"`
	}
	if err := decodeControl(r, &body); err != nil {
		return err
	}
	if body.UserCode == "" {
		return badRequest("user_code is required")
	}
	err := s.decideDevice(body.UserCode, body.UserID, approve)
	switch err {
	case nil:
	case ErrDeviceUnknown:
		return &controlError{http.StatusNotFound, err.Error()}
	case ErrDeviceExpired, ErrDeviceDecided:
		return &controlError{http.StatusConflict, err.Error()}
	default:
		return badRequest("%v", err)
	}
	info, _ := s.Device(body.UserCode)
	writeJSON(w, http.StatusOK, info)
	return nil
}

// ctlDeviceVerify is the verification_uri the emulator hands out. Real Lark shows a consent page
// there; the emulator only says how a test approves, so a person trying `make dev` is not lost.
func (s *Server) ctlDeviceVerify(w http.ResponseWriter, r *http.Request) error {
	code := r.URL.Query().Get("user_code")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	// A viewport and wrapping, so the page reads on a phone (where a device login is often approved).
	_, _ = fmt.Fprintf(w, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"+
		"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"+
		"<title>Lark emulator: device login</title><style>body{font-family:sans-serif;line-height:1.5;overflow-wrap:anywhere}</style></head><body>"+
		"<h1>Device login</h1><p>User code: <code id=\"user_code\">%s</code></p>"+
		"<p>This emulator has no consent screen. Approve with <code>POST %sdevice/approve</code> and the body "+
		"<code>{\"user_code\":\"…\"}</code> (optionally <code>\"user_id\"</code>), or refuse with <code>%sdevice/deny</code>.</p>"+
		"</body></html>\n", html.EscapeString(code), ControlPrefix, ControlPrefix)
	return nil
}
