package lark

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestGrantCallsNeverLeak extends TestSecretsNeverLeak to the user-grant calls: a Lark that echoes
// the whole request (body and Authorization header) and hands out tokens in answers it then breaks,
// across every failure shape and every error kind. No app secret, code, verifier, refresh token,
// user or tenant token may show up however the error is printed.
func TestGrantCallsNeverLeak(t *testing.T) {
	const (
		appSecret = "SeCrEt-4242-do-not-leak"
		code      = "CoDe-7777-do-not-leak"
		verifier  = "VeRiFiEr-8888-do-not-leak-padding-padding-xx"
		refresh   = "ReFrEsH-5555-do-not-leak"
		userTok   = "UsErToKeN-3333-do-not-leak"
		tenantTok = "TeNaNt-2222-do-not-leak"
		revokeTok = "ReVoKe-1111-do-not-leak"
		issued    = "IsSuEd-9999-do-not-leak"
		device    = "DeViCe-6666-do-not-leak"
	)
	basic := base64.StdEncoding.EncodeToString([]byte(emuApp + ":" + appSecret)) // the device start's Basic credentials
	values := []string{appSecret, code, verifier, refresh, userTok, tenantTok, revokeTok, issued, device, basic}
	echo := func(r *http.Request) string {
		body, _ := io.ReadAll(r.Body)
		return strings.NewReplacer(`"`, `'`, `\`, `/`, "\n", " ").Replace(string(body) + " auth=" + r.Header.Get("Authorization") + " " + issued)
	}
	oauthEcho := func(status, code int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			reply(status, fmt.Sprintf(`{"code":%d,"error":"invalid_grant","error_description":"%s","access_token":"%s"}`, code, echo(r), issued))(w, r)
		}
	}
	msgEcho := func(status, code int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			reply(status, fmt.Sprintf(`{"code":%d,"msg":"%s","data":{"token":"%s"}}`, code, echo(r), issued))(w, r)
		}
	}
	calls := map[string]func(c *Client) error{
		"exchange": func(c *Client) error {
			_, err := c.App(AppCredentials{AppID: emuApp, AppSecret: appSecret, UserTokenEndpoint: TokenEndpointV3}).ExchangeCode(context.Background(), code, emuRedirect, verifier)
			return err
		},
		"refresh": func(c *Client) error {
			_, err := c.App(AppCredentials{AppID: emuApp, AppSecret: appSecret, UserTokenEndpoint: TokenEndpointV2}).RefreshUserToken(context.Background(), refresh)
			return err
		},
		"revoke": func(c *Client) error {
			return c.App(AppCredentials{AppID: emuApp, AppSecret: appSecret}).RevokeToken(context.Background(), revokeTok, TokenTypeHintRefreshToken)
		},
		"user_info": func(c *Client) error {
			_, err := c.UserInfo(context.Background(), userTok)
			return err
		},
		"send_text": func(c *Client) error {
			_, err := c.SendText(context.Background(), tenantTok, "ou_1", "hello", "uuid-1")
			return err
		},
		"device_start": func(c *Client) error {
			_, err := c.App(AppCredentials{AppID: emuApp, AppSecret: appSecret}).StartDeviceAuthorization(context.Background(), []string{"offline_access"})
			return err
		},
		"device_poll": func(c *Client) error {
			_, err := c.App(AppCredentials{AppID: emuApp, AppSecret: appSecret}).PollDeviceToken(context.Background(), device, 5*time.Second)
			return err
		},
	}
	// Each call's own refusal code, so that every new kind is produced.
	refusal := map[string]int{"exchange": 20065, "refresh": 20073, "revoke": 20002, "user_info": 20005, "send_text": 99991663,
		"device_start": 20002, "device_poll": 20024}
	scenarios := []struct {
		name    string
		handler func(call string) http.HandlerFunc
		cfg     func(*Config)
		// revokeOK: revoke reads nothing from a success answer, so a broken one is no error.
		revokeOK bool
	}{
		{"refused", func(call string) http.HandlerFunc {
			if call == "user_info" || call == "send_text" {
				return msgEcho(400, refusal[call])
			}
			return oauthEcho(400, refusal[call])
		}, nil, false},
		{"app not found", func(string) http.HandlerFunc { return oauthEcho(400, 20048) }, nil, false},
		{"malformed", func(string) http.HandlerFunc { return oauthEcho(400, 20001) }, nil, false},
		{"other code", func(string) http.HandlerFunc { return msgEcho(400, 230001) }, nil, false},
		{"server error", func(string) http.HandlerFunc { return oauthEcho(500, 20050) }, nil, false},
		{"rate limited", func(string) http.HandlerFunc { return msgEcho(429, 99991400) }, nil, false},
		{"plain 503", func(string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { replyType(503, "text/plain", echo(r))(w, r) }
		}, nil, false},
		{"html", func(string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { replyType(200, "text/html", "<p>"+echo(r)+"</p>")(w, r) }
		}, nil, false},
		{"truncated", func(string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				reply(200, `{"code":0,"access_token":"`+issued+`","msg":"`+echo(r))(w, r)
			}
		}, nil, false},
		{"unusable success", func(string) http.HandlerFunc {
			return reply(200, `{"code":0,"access_token":"`+issued+` x","expires_in":7200,"refresh_token":"`+issued+`","data":{"message_id":""}}`)
		}, nil, true},
		{"wrong type", func(string) http.HandlerFunc {
			return reply(200, `{"code":0,"access_token":"`+issued+`","expires_in":{"v":"`+issued+`"},"data":"`+issued+`"}`)
		}, nil, true},
		{"redirect", func(string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "/x?s="+appSecret+refresh, http.StatusFound)
			}
		}, nil, false},
		{"timeout", func(string) http.HandlerFunc { return hang }, func(c *Config) { c.Timeout = 50 * time.Millisecond }, false},
		{"connection dropped", func(string) http.HandlerFunc {
			return func(w http.ResponseWriter, _ *http.Request) {
				if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
					_ = conn.Close()
				}
			}
		}, nil, false},
	}
	seen := map[ErrorKind]bool{}
	check := func(t *testing.T, err error) {
		t.Helper()
		e := asError(t, err)
		seen[e.Kind] = true
		for _, s := range []string{e.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%v", err), fmt.Sprintf("%#v", *e), fmt.Sprintf("%+v", e.Err)} {
			for _, v := range values {
				assert.NotContains(t, s, v)
			}
		}
	}
	for _, sc := range scenarios {
		for name, call := range calls {
			t.Run(sc.name+"/"+name, func(t *testing.T) {
				fake := newFake(t, sc.handler(name))
				c := newClient(t, fake.srv.URL, func(cfg *Config) {
					cfg.AccountsBaseURL, cfg.MaxAttempts = fake.srv.URL, 1
					if sc.cfg != nil {
						sc.cfg(cfg)
					}
				})
				err := call(c)
				if sc.revokeOK && name == "revoke" {
					assert.NoError(t, err)
					return
				}
				check(t, err)
			})
		}
	}
	t.Run("refused locally", func(t *testing.T) {
		c := newClient(t, "http://127.0.0.1:1")
		_, err := c.App(AppCredentials{AppID: emuApp, AppSecret: appSecret, UserTokenEndpoint: TokenEndpointV3}).ExchangeCode(context.Background(), code, emuRedirect, verifier+"\n")
		check(t, err)
		_, err = c.UserInfo(context.Background(), userTok+" "+appSecret)
		check(t, err)
		_, err = c.SendText(context.Background(), tenantTok+"\r\n", "ou_1", "hi", "")
		check(t, err)
		_, err = c.AuthorizeURL(AuthorizeRequest{AppID: emuApp, RedirectURI: emuRedirect, State: appSecret + "\n", CodeChallenge: PKCEChallengeS256(verifier)})
		check(t, err)
		_, err = c.AuthorizeURL(AuthorizeRequest{AppID: emuApp, RedirectURI: emuRedirect, State: "s", CodeChallenge: verifier + " "})
		check(t, err)
		_, err = c.AuthorizeURL(AuthorizeRequest{AppID: emuApp, RedirectURI: emuRedirect + "#" + appSecret, State: "s", CodeChallenge: PKCEChallengeS256(verifier)})
		check(t, err)
		_, err = c.App(AppCredentials{AppID: emuApp, AppSecret: appSecret}).PollDeviceToken(context.Background(), device+"\n", 0)
		check(t, err)
	})
	for _, k := range []ErrorKind{
		KindAppSecretRejected, KindAppNotFound, KindInvalidRequest, KindRateLimited, KindUnavailable, KindBadResponse,
		KindLarkError, KindReauthRequired, KindCodeInvalid, KindUserTokenInvalid, KindTenantTokenInvalid,
	} {
		require.True(t, seen[k], "kind %s not exercised", k)
	}
}
