package lark

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"
)

// Version is reported in the default User-Agent. The plugin's main sets it (or the build does, with
// -ldflags "-X github.com/lark-vault/vault-plugin-secrets-lark/lark.Version=..."), so Lark-side logs
// can tell plugin releases apart.
var Version = "dev"

// DefaultUserAgent is the User-Agent used when Config.UserAgent is empty.
func DefaultUserAgent() string { return "vault-plugin-secrets-lark/" + Version }

const (
	defaultTimeout      = 10 * time.Second
	defaultMaxAttempts  = 3
	defaultBackoffBase  = 200 * time.Millisecond
	defaultMaxBodyBytes = 1 << 20

	// backoffCap bounds a single exponential wait so a retry never stalls a Vault request for long.
	backoffCap = 2 * time.Second
	// maxRateLimitWait bounds how long we honour x-ogw-ratelimit-reset inside one call. A longer reset
	// means the caller (a Vault request with its own deadline) is better served by the error now.
	maxRateLimitWait = 5 * time.Second
)

// Observe statuses, one per HTTP attempt. They are metric label values, so they stay stable.
const (
	StatusOK          = "ok"
	StatusHTTP5xx     = "http_5xx"
	StatusTimeout     = "timeout"
	StatusRateLimited = "rate_limited"
	StatusLarkError   = "lark_error"
	StatusBadResponse = "bad_response"
	StatusNetwork     = "network"
)

// Call describes one HTTP attempt, for the Observe hook.
type Call struct {
	Endpoint string
	Status   string // one of the Status* constants
	Duration time.Duration
}

// Config configures a Client. Zero values mean the documented defaults.
type Config struct {
	Brand        Brand
	BaseURL      string       // OpenAPI host override, e.g. http://127.0.0.1:8787; the client appends /open-apis/...
	HTTPClient   *http.Client // default: a private client with dial/TLS/header timeouts; redirects are never followed, even with a caller's client
	Timeout      time.Duration
	MaxAttempts  int
	BackoffBase  time.Duration
	MaxBodyBytes int64
	UserAgent    string
	Observe      func(Call) // called synchronously once per HTTP attempt; keep it cheap

	// AccountsBaseURL overrides the accounts host (authorize page, v3 token, revoke), under the same
	// rules as BaseURL. It is separate because Lark serves those from a host of their own.
	AccountsBaseURL string
}

// Client calls Lark. It is immutable after New and safe for concurrent use. Create one per app
// configuration and reuse it: each default client owns a connection pool.
type Client struct {
	brand       Brand
	openBase    string
	hc          *http.Client
	timeout     time.Duration
	maxAttempts int
	backoffBase time.Duration
	maxBody     int64
	userAgent   string
	observe     func(Call)

	accountsBase string
}

// New validates cfg and returns a client.
func New(cfg Config) (*Client, error) {
	if _, err := ParseBrand(string(cfg.Brand)); err != nil {
		return nil, err
	}
	c := &Client{
		brand:       cfg.Brand,
		openBase:    cfg.Brand.OpenBaseURL(),
		hc:          cfg.HTTPClient,
		timeout:     cfg.Timeout,
		maxAttempts: cfg.MaxAttempts,
		backoffBase: cfg.BackoffBase,
		maxBody:     cfg.MaxBodyBytes,
		userAgent:   cfg.UserAgent,
		observe:     cfg.Observe,

		accountsBase: cfg.Brand.AccountsBaseURL(),
	}
	if cfg.BaseURL != "" {
		if err := ValidateBaseURL(cfg.BaseURL); err != nil {
			return nil, err
		}
		c.openBase = strings.TrimSuffix(cfg.BaseURL, "/")
	}
	if cfg.AccountsBaseURL != "" {
		if err := ValidateBaseURL(cfg.AccountsBaseURL); err != nil {
			// Say which of the two overrides is wrong; both share ValidateBaseURL's wording.
			return nil, errors.New("lark: accounts " + strings.TrimPrefix(err.Error(), "lark: "))
		}
		c.accountsBase = strings.TrimSuffix(cfg.AccountsBaseURL, "/")
	}
	if c.timeout <= 0 {
		c.timeout = defaultTimeout
	}
	if c.maxAttempts <= 0 {
		c.maxAttempts = defaultMaxAttempts
	}
	if c.backoffBase <= 0 {
		c.backoffBase = defaultBackoffBase
	}
	if c.maxBody <= 0 {
		c.maxBody = defaultMaxBodyBytes
	}
	if c.userAgent == "" {
		c.userAgent = DefaultUserAgent()
	} else if strings.ContainsAny(c.userAgent, "\r\n") {
		return nil, errors.New("lark: user agent must be a single line")
	}
	if c.hc == nil {
		c.hc = defaultHTTPClient(c.timeout)
	} else {
		// A shallow copy shares the caller's transport and pool but not its redirect policy: see
		// noRedirect. The caller's client is left untouched.
		hc := *c.hc
		hc.CheckRedirect = noRedirect
		c.hc = &hc
	}
	return c, nil
}

// Brand returns the brand the client was built for.
func (c *Client) Brand() Brand { return c.brand }

// CloseIdleConnections releases pooled connections, for when the backend drops a client after a
// configuration change.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// openAPI builds a URL on the OpenAPI host; path starts with "/open-apis/".
func (c *Client) openAPI(path string) string { return c.openBase + path }

// accounts builds a URL on the accounts host; path starts with "/".
func (c *Client) accounts(path string) string { return c.accountsBase + path }

func defaultHTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		// A private transport, not http.DefaultTransport: other code in the Vault process must not be
		// able to change how (or through which proxy) the app secret travels.
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: timeout,
			ExpectContinueTimeout: time.Second,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConns:          16,
			MaxIdleConnsPerHost:   8,
			ForceAttemptHTTP2:     true,
			TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		},
		CheckRedirect: noRedirect,
	}
}

// noRedirect makes a redirect an error. Lark's APIs do not redirect, and following one would re-send
// a 307/308 POST body, which holds the app secret, to wherever the Location points.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
