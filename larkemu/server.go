package larkemu

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lark-vault/vault-plugin-secrets-lark/clock"
)

// Defaults follow lark-api.md; each one can be overridden in Options so tests need not wait hours.
const (
	DefaultAppTokenTTL     = 2 * time.Hour
	DefaultReuseWindow     = 30 * time.Minute
	DefaultUserTokenTTL    = 2 * time.Hour
	DefaultRefreshTokenTTL = 7 * 24 * time.Hour
	DefaultGrantMaxAge     = 365 * 24 * time.Hour
	DefaultCodeTTL         = 5 * time.Minute
	DefaultDedupWindow     = time.Hour
	DefaultMaxBodyBytes    = 64 << 10
	DefaultTenantKey       = "736588c92lxf175d"
	DefaultTicketInterval  = time.Hour
	DefaultTicketTTL       = 2 * time.Hour
	DefaultEventTimeout    = time.Second
)

// DefaultEventRetryDelays are the waits before Lark's retries of a failed event delivery: 5 s,
// 5 min, 1 h and 6 h, at most four retries (see the package documentation).
var DefaultEventRetryDelays = []time.Duration{5 * time.Second, 5 * time.Minute, time.Hour, 6 * time.Hour}

// Options configure a Server. The zero value is usable: real clock with an adjustable offset, no apps,
// Lark's documented lifetimes, no logging.
type Options struct {
	// Clock is the source of "now". Share one clock with the code under test to move both at once.
	// Default: a fresh *clock.Offset, which Advance can move.
	Clock clock.Clock
	// Apps registers self-built apps up front: app_id → app_secret. An app_id that is not
	// well-formed (cli_ followed by letters, digits, '_' or '-') makes New panic.
	Apps map[string]string
	// AppTokenTTL is the lifetime of a freshly minted app/tenant token (default 2 h).
	AppTokenTTL time.Duration
	// ReuseWindow: a token with at least this much life left is handed out again instead of a new
	// one (default 30 min).
	ReuseWindow time.Duration
	// UserTokenTTL is the lifetime of a user access token (default 2 h).
	UserTokenTTL time.Duration
	// RefreshTokenTTL is the lifetime of a user refresh token (default 7 days).
	RefreshTokenTTL time.Duration
	// GrantMaxAge is how long after the user authorized a grant can still be refreshed (default 365 days).
	GrantMaxAge time.Duration
	// CodeTTL is the lifetime of an authorization code (default 5 min).
	CodeTTL time.Duration
	// DeviceCodeTTL is how long a device code and its user code stay valid (default 10 min).
	DeviceCodeTTL time.Duration
	// DeviceInterval is the polling interval a device authorization starts with (default 5 s);
	// every slow_down adds 5 s to it.
	DeviceInterval time.Duration
	// DedupWindow is how long a message uuid suppresses repeats (default 1 h).
	DedupWindow time.Duration
	// MaxBodyBytes caps request bodies of the token endpoints (default 64 KiB); message bodies get
	// eight times as much because Lark accepts text up to 150 KB.
	MaxBodyBytes int64
	// TenantKey is reported as the tenant of every user and message (default "736588c92lxf175d").
	TenantKey string
	// Logger receives one line per Lark request (endpoint, app_id, result code; never a secret or
	// token). Nil disables logging.
	Logger *log.Logger

	// RegisterApps registers apps with all their settings (store apps, event URLs, tenants) up
	// front, after Apps. An invalid one makes New panic.
	RegisterApps []App
	// TicketInterval is how often each store app with an event URL gets a fresh app_ticket pushed
	// (default 1 h, as Lark does). The first scheduled push comes one interval after the app is
	// registered; app_ticket/resend pushes at once.
	TicketInterval time.Duration
	// TicketTTL is how long an app_ticket is accepted after it was pushed (default 2 h: the newest
	// ticket and the one before it are both good). Lark does not document it.
	TicketTTL time.Duration
	// EventTimeout is how long one event delivery waits for the receiver's answer (default 1 s,
	// the time Lark gives).
	EventTimeout time.Duration
	// EventRetryDelays are the waits before each retry of a failed delivery, measured on the
	// emulator's clock. Nil means DefaultEventRetryDelays; an empty non-nil slice disables retries.
	EventRetryDelays []time.Duration
}

// Server is an in-memory Lark. It is an http.Handler; all methods are safe for concurrent use.
type Server struct {
	clk     clock.Clock
	opts    Options // with defaults filled in
	logger  *log.Logger
	routes  map[string]map[string]route
	control map[string]map[string]controlHandler

	// done is closed by Close so that requests held open by injected failures let go.
	done      chan struct{}
	closeOnce sync.Once

	// Event deliveries and the ticket scheduler run in the background; baseCtx ends their requests
	// on Close, which then waits for them (background). lifeMu guards closed against a late start.
	baseCtx       context.Context
	baseCancel    context.CancelFunc
	eventClient   *http.Client
	schedulerOnce sync.Once
	lifeMu        sync.Mutex
	closed        bool
	background    sync.WaitGroup

	// mu guards everything below. One lock keeps the emulator obviously correct; it is never held
	// while waiting or writing a response.
	mu           sync.Mutex
	apps         map[string]*app
	currentToken map[string]*appToken // app_id → the token the legacy endpoints hand out now
	tenantTokens map[string]*appToken // every unexpired app/tenant token ever issued
	counters     map[string]int
	appStats     map[string]*appStats // app_id → that app's counters
	failures     []*pendingFailure
	identity     identityState
	grants       grantState
	messages     messageState
	// userInfoCalls records the calls of user_info (userinfo.go).
	userInfoCalls []UserInfoCall
	store         storeState
	events        eventState
	revokeMode    RevokeMode
}

// route is one Lark endpoint behind a method and a path.
type route struct {
	endpoint string
	maxBody  int64
	handle   func(w http.ResponseWriter, req *request)
}

// New returns a Server configured by opts.
func New(opts Options) *Server {
	if opts.Clock == nil {
		opts.Clock = &clock.Offset{}
	}
	setDefault(&opts.AppTokenTTL, DefaultAppTokenTTL)
	setDefault(&opts.ReuseWindow, DefaultReuseWindow)
	setDefault(&opts.UserTokenTTL, DefaultUserTokenTTL)
	setDefault(&opts.RefreshTokenTTL, DefaultRefreshTokenTTL)
	setDefault(&opts.GrantMaxAge, DefaultGrantMaxAge)
	setDefault(&opts.CodeTTL, DefaultCodeTTL)
	setDefault(&opts.DedupWindow, DefaultDedupWindow)
	setDefault(&opts.DeviceCodeTTL, DefaultDeviceCodeTTL)
	setDefault(&opts.DeviceInterval, DefaultDeviceInterval)
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.TenantKey == "" {
		opts.TenantKey = DefaultTenantKey
	}
	setDefault(&opts.TicketInterval, DefaultTicketInterval)
	setDefault(&opts.TicketTTL, DefaultTicketTTL)
	setDefault(&opts.EventTimeout, DefaultEventTimeout)
	if opts.EventRetryDelays == nil {
		opts.EventRetryDelays = DefaultEventRetryDelays
	}
	opts.EventRetryDelays = slices.Clone(opts.EventRetryDelays)
	s := &Server{
		clk:          opts.Clock,
		opts:         opts,
		logger:       opts.Logger,
		done:         make(chan struct{}),
		apps:         make(map[string]*app),
		currentToken: make(map[string]*appToken),
		tenantTokens: make(map[string]*appToken),
		counters:     make(map[string]int),
		appStats:     make(map[string]*appStats),
	}
	s.baseCtx, s.baseCancel = context.WithCancel(context.Background())
	s.eventClient = newEventClient()
	s.identity.init()
	s.grants.init()
	s.messages.init()
	s.store.init()
	s.events.init()
	for id, secret := range opts.Apps {
		if err := s.AddApp(id, secret); err != nil {
			panic(fmt.Sprintf("larkemu: Options.Apps: %v", err))
		}
	}
	for _, a := range opts.RegisterApps {
		if err := s.RegisterApp(a); err != nil {
			panic(fmt.Sprintf("larkemu: Options.RegisterApps: %v", err))
		}
	}
	s.routes = s.buildRoutes()
	s.control = s.controlRoutes()
	return s
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

func (s *Server) buildRoutes() map[string]map[string]route {
	small, large := s.opts.MaxBodyBytes, 8*s.opts.MaxBodyBytes
	return map[string]map[string]route{
		PathAppAccessToken:      {http.MethodPost: {EndpointAppAccessToken, small, s.handleAppAccessToken}},
		PathTenantAccessToken:   {http.MethodPost: {EndpointTenantAccessToken, small, s.handleTenantAccessToken}},
		PathAuthorize:           {http.MethodGet: {EndpointAuthorize, small, s.handleAuthorize}},
		PathOAuthTokenV2:        {http.MethodPost: {EndpointOAuthToken, small, s.handleOAuthTokenV2}},
		PathOAuthTokenV3:        {http.MethodPost: {EndpointOAuthToken, small, s.handleOAuthTokenV3}},
		PathRevoke:              {http.MethodPost: {EndpointRevoke, small, s.handleRevoke}},
		PathDeviceAuthorization: {http.MethodPost: {EndpointDeviceAuthorization, small, s.handleDeviceAuthorization}},
		PathUserInfo:            {http.MethodGet: {EndpointUserInfo, small, s.handleUserInfo}},
		PathMessages:            {http.MethodPost: {EndpointMessages, large, s.handleMessages}},

		PathAppTicketResend:          {http.MethodPost: {EndpointAppTicketResend, small, s.handleAppTicketResend}},
		PathStoreAppAccessToken:      {http.MethodPost: {EndpointStoreAppAccessToken, small, s.handleStoreAppAccessToken}},
		PathStoreTenantAccessToken:   {http.MethodPost: {EndpointStoreTenantAccessToken, small, s.handleStoreTenantAccessToken}},
		PathV1OIDCAccessToken:        {http.MethodPost: {EndpointAuthenV1, small, s.handleV1OIDCAccessToken}},
		PathV1OIDCRefreshAccessToken: {http.MethodPost: {EndpointAuthenV1, small, s.handleV1OIDCRefreshAccessToken}},
		PathV1AccessToken:            {http.MethodPost: {EndpointAuthenV1, small, s.handleV1AccessToken}},
		PathV1RefreshAccessToken:     {http.MethodPost: {EndpointAuthenV1, small, s.handleV1RefreshAccessToken}},
	}
}

// ServeHTTP serves the Lark endpoints and, under ControlPrefix, the control API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, ControlPrefix) {
		s.serveControl(w, r)
		return
	}
	methods, ok := s.routes[r.URL.Path]
	if !ok {
		writeJSON(w, http.StatusNotFound, codeMsg{Code: 404, Msg: "404 page not found"})
		return
	}
	rt, ok := methods[r.Method]
	if !ok {
		allowed := make([]string, 0, len(methods))
		for m := range methods {
			allowed = append(allowed, m)
		}
		sort.Strings(allowed)
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeJSON(w, http.StatusMethodNotAllowed, codeMsg{Code: 405, Msg: "405 method not allowed"})
		return
	}
	req := readRequest(w, r, rt.maxBody)
	s.countFor(rt.endpoint, s.requestAppID(req))
	s.withFailures(w, req, rt.endpoint, true, func(w http.ResponseWriter) { rt.handle(w, req) })
}

// Close releases requests held open by injected timeouts and slow answers, stops the ticket
// schedule and event retries, and waits for deliveries in flight to give up. The Server keeps
// serving afterwards, but never holds a request or sends an event again; call it before shutting
// the HTTP server down.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		s.baseCancel()
		s.lifeMu.Lock()
		s.closed = true
		s.lifeMu.Unlock()
		s.background.Wait()
	})
}

// Clock returns the clock the server reads.
func (s *Server) Clock() clock.Clock { return s.clk }

// Now is the emulator's current time.
func (s *Server) Now() time.Time { return s.clk.Now() }

// ErrClockFixed is returned by Advance when the clock cannot be moved.
var ErrClockFixed = fmt.Errorf("larkemu: the clock has no Advance method")

// Advance moves the emulator's clock forward by d (d must be positive). It works for any clock with
// an Advance(time.Duration) method, such as *clock.Offset and *clock.Fake.
func (s *Server) Advance(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("larkemu: advance must be positive, got %v", d)
	}
	a, ok := s.clk.(interface{ Advance(time.Duration) })
	if !ok {
		return ErrClockFixed
	}
	a.Advance(d)
	return nil
}

// Reset forgets everything that happened: counters, pending failures, every issued token, code,
// device authorization, grant, recorded message, app_ticket and event delivery (pending retries
// included), the authorize mode (back to approve) and the revoke mode (back to json). Apps, their tenants, the ticket schedule,
// users and the clock stay.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.currentToken = make(map[string]*appToken)
	s.tenantTokens = make(map[string]*appToken)
	s.counters = make(map[string]int)
	s.appStats = make(map[string]*appStats)
	s.failures = nil
	s.identity.mode = AuthorizeApprove
	s.revokeMode = RevokeReplyJSON
	s.grants.init()
	s.messages.init()
	s.userInfoCalls = nil
	s.store.resetTokens()
	for _, rec := range s.events.records {
		rec.retries = nil
	}
	s.events.init()
}

func (s *Server) logf(format string, args ...any) {
	if s.logger != nil {
		s.logger.Printf(format, args...)
	}
}
