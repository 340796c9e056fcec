package lark

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The device authorization grant (RFC 8628) as Lark's official CLI uses it (docs/lark-api.md §14):
// StartDeviceAuthorization asks the accounts host for a device code and a user code; a person opens
// the verification link and approves; PollDeviceToken asks the token endpoint, once per call, whether
// the approval has happened. The caller keeps the device code secret, waits the interval between
// polls, and stops at the first final answer.

// Endpoint names of the device flow, used in errors and Observe calls.
const (
	EndpointDeviceAuthorization = "device_authorization"
	EndpointDeviceToken         = "device_token"
)

// GrantTypeDeviceCode is RFC 8628's grant_type for polling the token endpoint.
const GrantTypeDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"

const (
	// DefaultDeviceInterval is the polling interval when Lark names none (RFC 8628 §3.2).
	DefaultDeviceInterval = 5 * time.Second
	// SlowDownStep is how much a slow_down answer adds to the interval, for this and every later poll
	// (RFC 8628 §3.5).
	SlowDownStep = 5 * time.Second

	maxDeviceCodeLen = 4096
	maxUserCodeLen   = 64
	maxURILen        = 2048
)

// DeviceAuthorization is Lark's answer to StartDeviceAuthorization.
type DeviceAuthorization struct {
	// DeviceCode is what PollDeviceToken presents. It is a credential: whoever holds it, with the
	// app's secret, gets the user's tokens after approval. Store it like a refresh token.
	DeviceCode string
	// UserCode is what the person types or confirms on the verification page. Not a secret.
	UserCode string
	// VerificationURI is the page where the person enters UserCode.
	VerificationURI string
	// VerificationURIComplete is the same page with the code filled in; "" when Lark sends none.
	VerificationURIComplete string
	// ExpiresIn is how long the device code and user code stay valid from now.
	ExpiresIn time.Duration
	// Interval is the minimum wait between two polls (DefaultDeviceInterval when Lark names none).
	Interval time.Duration
}

// DeviceStatus is what one poll found out.
type DeviceStatus string

// Poll outcomes. Pending and SlowDown mean "poll again after Interval"; the others are final.
const (
	DevicePending  DeviceStatus = "pending"   // authorization_pending: the person has not decided yet
	DeviceSlowDown DeviceStatus = "slow_down" // polled too fast: Interval is 5 s longer now, for good
	DeviceDenied   DeviceStatus = "denied"    // access_denied: the person refused
	DeviceExpired  DeviceStatus = "expired"   // expired_token: the codes ran out; start again
	DeviceApproved DeviceStatus = "approved"  // Token holds the user's tokens; the device code is spent
)

// DevicePoll is the outcome of one PollDeviceToken call.
type DevicePoll struct {
	Status DeviceStatus
	// Interval is the wait before the next poll: the interval passed in, plus SlowDownStep after a
	// slow_down. Meaningful for DevicePending and DeviceSlowDown.
	Interval time.Duration
	// Token is set for DeviceApproved only.
	Token *UserToken
}

// Final reports whether polling must stop.
func (p *DevicePoll) Final() bool { return p.Status != DevicePending && p.Status != DeviceSlowDown }

// StartDeviceAuthorization asks Lark for a device code and a user code for this app
// (POST {accounts}/oauth/v1/device_authorization). The app authenticates with HTTP Basic and names
// itself in the form, as the official CLI does. Scopes are sent as given; the caller includes
// offline_access, without which Lark issues no refresh token. A lost answer only leaves an unused
// device code behind at Lark, so the call is retried like any idempotent one.
func (a *App) StartDeviceAuthorization(ctx context.Context, scopes []string) (*DeviceAuthorization, error) {
	appID, appSecret := a.creds.AppID, a.creds.AppSecret
	if err := checkAppCredentials(EndpointDeviceAuthorization, appID, appSecret); err != nil {
		return nil, err
	}
	if err := validateScopes(scopes); err != nil {
		return nil, invalid(EndpointDeviceAuthorization, err.Error())
	}
	form := url.Values{"client_id": {appID}}
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
	basic := base64.StdEncoding.EncodeToString([]byte(appID + ":" + appSecret))
	var resp deviceAuthResponse
	err := a.do(ctx, request{
		endpoint: EndpointDeviceAuthorization, method: http.MethodPost,
		url: a.accounts("/oauth/v1/device_authorization"), body: form,
		header:  http.Header{"Authorization": {"Basic " + basic}},
		secrets: []string{appSecret, basic}, classify: classifyOAuthCommon,
	}, &resp)
	if err != nil {
		return nil, err
	}
	d := &DeviceAuthorization{
		DeviceCode: resp.DeviceCode, UserCode: resp.UserCode,
		VerificationURI: resp.VerificationURI, VerificationURIComplete: resp.VerificationURIComplete,
		ExpiresIn: time.Duration(resp.ExpiresIn) * time.Second, Interval: time.Duration(resp.Interval) * time.Second,
	}
	if d.Interval == 0 {
		d.Interval = DefaultDeviceInterval
	}
	return d, nil
}

type deviceAuthResponse struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int64  `json:"expires_in"`
	Interval                int64  `json:"interval"`
}

// validate refuses an answer the plugin could not act on or must not show to a person. Messages
// never quote the values.
func (r *deviceAuthResponse) validate() error {
	if err := checkToken("device_code", r.DeviceCode, true); err != nil {
		return err
	}
	if len(r.DeviceCode) > maxDeviceCodeLen {
		return errors.New("device_code is implausibly long")
	}
	switch {
	case r.UserCode == "":
		return errors.New("missing user_code")
	case len(r.UserCode) > maxUserCodeLen || strings.ContainsFunc(r.UserCode, func(c rune) bool { return c <= ' ' || c == 0x7f }):
		return errors.New("user_code is too long or contains spaces or control characters")
	}
	if err := checkVerificationURI("verification_uri", r.VerificationURI, true); err != nil {
		return err
	}
	if err := checkVerificationURI("verification_uri_complete", r.VerificationURIComplete, false); err != nil {
		return err
	}
	if err := checkSeconds("expires_in", r.ExpiresIn); err != nil {
		return err
	}
	if r.Interval < 0 || r.Interval > r.ExpiresIn {
		return errors.New("interval is negative or longer than expires_in")
	}
	return nil
}

// checkVerificationURI accepts an absolute http(s) link without credentials, control characters or
// absurd length: it is shown to a person who is told to open it.
func checkVerificationURI(field, s string, required bool) error {
	if s == "" {
		if required {
			return errors.New("missing " + field)
		}
		return nil
	}
	u, err := url.Parse(s)
	switch {
	case len(s) > maxURILen || strings.ContainsFunc(s, func(c rune) bool { return c <= ' ' || c == 0x7f }):
		return errors.New(field + " is too long or contains spaces or control characters")
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil:
		return errors.New(field + " is not an absolute http(s) link")
	}
	return nil
}

// Poll outcomes travel through do() as these kinds and are turned into a DevicePoll before
// PollDeviceToken returns; no caller ever sees them in an *Error.
const (
	kindDevicePending  ErrorKind = "device_pending"
	kindDeviceSlowDown ErrorKind = "device_slow_down"
	kindDeviceDenied   ErrorKind = "device_denied"
	kindDeviceExpired  ErrorKind = "device_expired"
)

var deviceOutcomes = map[string]ErrorKind{
	"authorization_pending": kindDevicePending,
	"slow_down":             kindDeviceSlowDown,
	"access_denied":         kindDeviceDenied,
	"expired_token":         kindDeviceExpired,
}

// classifyDevicePoll branches on the RFC 8628 error name first: Lark's numeric codes for the poll
// outcomes are not documented, so none is relied on. invalid_grant (a device code Lark does not
// know, or one already redeemed) and 20024 (another app's code) mean this authorization is over.
func classifyDevicePoll(code int, errName string) ErrorKind {
	if k, ok := deviceOutcomes[errName]; ok {
		return k
	}
	if code == oauthClientMismatch || (errName == "invalid_grant" && classifyOAuthCommon(code, errName) == "") {
		return KindCodeInvalid
	}
	return classifyOAuthCommon(code, errName)
}

// PollDeviceToken asks once whether the device authorization has been approved, at
// POST {open}/open-apis/authen/v2/oauth/token whatever the app's UserTokenEndpoint. interval is the
// interval in force (the one from StartDeviceAuthorization, grown by earlier slow_downs; 0 means
// DefaultDeviceInterval); the result says what to wait before the next poll.
//
// Pending, slow_down, denied and expired are results, not errors. Errors are the usual *Error:
// KindCodeInvalid when Lark no longer knows the device code (unknown, or already redeemed: a device
// code works once), KindAppSecretRejected and friends for the app's setup, KindUnavailable and
// KindRateLimited for transient failures. The call makes exactly one attempt: an approved code is
// spent by the answer that carries the tokens, so after a lost answer (Error.ConsumedMaybe) the next
// poll will most likely get KindCodeInvalid and the person must start again.
func (a *App) PollDeviceToken(ctx context.Context, deviceCode string, interval time.Duration) (*DevicePoll, error) {
	appID, appSecret := a.creds.AppID, a.creds.AppSecret
	if err := checkAppCredentials(EndpointDeviceToken, appID, appSecret); err != nil {
		return nil, err
	}
	if err := checkToken("device code", deviceCode, true); err != nil || len(deviceCode) > maxDeviceCodeLen {
		return nil, invalid(EndpointDeviceToken, "device code is empty, too long or contains spaces or control characters")
	}
	if interval <= 0 {
		interval = DefaultDeviceInterval
	}
	// Always v2 on the open host, whatever the app's UserTokenEndpoint: that is where the official
	// CLI polls, the only place this grant is known to work (lark-api.md §14). The tokens it returns
	// are the same as v3's, so refreshing them on the app's configured endpoint is fine.
	u, _ := a.tokenURL(TokenEndpointV2)
	// A form, as the official CLI sends it: the only shape this grant is known to be accepted in.
	form := url.Values{
		"grant_type": {GrantTypeDeviceCode}, "device_code": {deviceCode},
		"client_id": {appID}, "client_secret": {appSecret},
	}
	var resp deviceTokenResponse
	err := a.do(ctx, request{
		endpoint: EndpointDeviceToken, method: http.MethodPost, url: u, body: form,
		secrets: []string{appSecret, deviceCode}, maxAttempts: 1, classify: classifyDevicePoll,
	}, &resp)
	var e *Error
	switch {
	case errors.As(err, &e):
		if p := devicePollOf(e.Kind, interval); p != nil {
			return p, nil
		}
		return nil, err
	case err != nil:
		return nil, err
	case resp.Error != "":
		// An outcome sent with HTTP 200 and no code: read it the same way.
		if p := devicePollOf(deviceOutcomes[resp.Error], interval); p != nil {
			return p, nil
		}
		kind := classifyDevicePoll(0, resp.Error)
		if kind == "" {
			kind = KindLarkError
		}
		return nil, &Error{Endpoint: EndpointDeviceToken, Kind: kind, HTTPStatus: http.StatusOK,
			Msg: cleanMsg(resp.Error, []string{appSecret, deviceCode}), status: StatusLarkError}
	}
	return &DevicePoll{Status: DeviceApproved, Interval: interval, Token: resp.userToken()}, nil
}

// devicePollOf turns an internal outcome kind into a result, nil for any other kind.
func devicePollOf(k ErrorKind, interval time.Duration) *DevicePoll {
	switch k {
	case kindDevicePending:
		return &DevicePoll{Status: DevicePending, Interval: interval}
	case kindDeviceSlowDown:
		return &DevicePoll{Status: DeviceSlowDown, Interval: interval + SlowDownStep}
	case kindDeviceDenied:
		return &DevicePoll{Status: DeviceDenied, Interval: interval}
	case kindDeviceExpired:
		return &DevicePoll{Status: DeviceExpired, Interval: interval}
	}
	return nil
}

// deviceTokenResponse is a token answer that may instead carry an RFC 8628 outcome with HTTP 200.
type deviceTokenResponse struct {
	userTokenResponse
	Error string `json:"error"`
}

func (r *deviceTokenResponse) validate() error {
	if r.Error != "" {
		return nil // PollDeviceToken reads it
	}
	return r.userTokenResponse.validate()
}
