package larksecrets

// The backend type: which stores and services one mount has, how they are wired to one another,
// and the little state of the mount they share (whether this node may write, the mount path,
// Vault's event bus). backend.go puts Vault's framework around it; the path handlers are its
// methods.

import (
	"context"
	"net/http"
	"sync/atomic"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/time/rate"

	"github.com/lark-vault/vault-plugin-secrets-lark/clock"
)

// backend wires the mount's stores and services together. Multiplexing serves several mounts from
// one process, so nothing here may live in package globals. Path handlers (path_*.go, methods of
// backend) parse and answer; the state lives in the owned types below, which the sweep and the
// notifier use directly.
type backend struct {
	*framework.Backend

	clock clock.Clock
	// storage is the mount's storage view as given at setup, for work outside any request (Clean).
	storage logical.Storage
	// rawSystem is Vault's system view as given at setup; the framework gets a wrapper of it.
	rawSystem logical.SystemView

	config     *configStore
	apps       *appStore
	sessions   *sessions
	tokens     *tokenService
	tickets    *ticketStore
	tenants    *tenantStore
	seenEvents *seenEvents
	grants     *grantStore
	slots      slotStore
	states     *stateStore
	appStatus  *appStatusStore
	notifier   *notifier
	refresher  *refresher
	devices    *deviceLogins
	rollbacks  *rollbackStore
	sweeper    *sweeper
	metrics    *metrics
	contacts   *larkContacts
	status     *statusService

	// mount is the path this backend is mounted at, as last seen on a request; notices sent by the
	// periodic sweep use it in the commands they suggest.
	mount atomic.Value
}

// wire builds the stores and services of one mount and wires them to one another; newBackend
// puts Vault's framework around them.
func wire(clk clock.Clock, httpClient *http.Client) *backend {
	b := &backend{clock: clk, config: &configStore{}, apps: newAppStore(), metrics: newMetrics()}
	logger := func() hclog.Logger { return b.Logger() }
	b.sessions = newSessions(b.apps, b.config, httpClient, b.metrics.observeCall)
	b.contacts = newLarkContacts(clk.Now)
	b.sessions.contacts = b.contacts
	b.tickets = newTicketStore(clk, logger)
	b.tenants = newTenantStore(clk)
	b.seenEvents = newSeenEvents(clk)
	b.tokens = &tokenService{
		clock: clk, logger: logger, open: b.sessions.open, tickets: b.tickets, tenants: b.tenants,
		writable:    func() bool { return b.WriteSafeReplicationState() },
		entries:     map[string]*tokenEntry{},
		generations: map[string]uint64{},
		failing:     map[string]*fetchFailure{},
	}
	b.grants = newGrantStore(logger, clk, func(ctx context.Context, s logical.Storage) (levelThresholds, error) {
		cfg, err := b.config.get(ctx, s)
		if err != nil {
			return levelThresholds{}, err
		}
		return cfg.thresholds(), nil
	})
	b.metrics.grantLevels = b.grants.counts.total
	b.states = &stateStore{clock: clk}
	b.appStatus = newAppStatusStore(clk.Now, logger)
	b.metrics.appProblems = b.appStatus.count
	b.rollbacks = &rollbackStore{logger: logger}
	b.notifier = &notifier{clock: clk, logger: logger, sessions: b.sessions, tokens: b.tokens, grants: b.grants,
		states: b.states, apps: b.appStatus, metrics: b.metrics, rollbacks: b.rollbacks, remedies: b.remedies}
	b.refresher = &refresher{clock: clk, logger: logger, writable: func() bool { return b.WriteSafeReplicationState() },
		config: b.config, sessions: b.sessions, grants: b.grants, slots: &b.slots, appStatus: b.appStatus,
		rollbacks: b.rollbacks, metrics: b.metrics, events: b.sendEvent}
	b.sweeper = &sweeper{clock: clk, logger: logger, config: b.config, grants: b.grants, apps: b.apps, sessions: b.sessions,
		tokens: b.tokens, states: b.states, notifier: b.notifier, metrics: b.metrics, refresher: b.refresher,
		seenEvents: b.seenEvents, limits: map[string]*rate.Limiter{}}
	b.devices = newDeviceLogins(clk, logger, func() bool { return b.WriteSafeReplicationState() }, b.sessions, b.refresher, b.sweeper.limiter)
	b.status = &statusService{clock: clk, started: clk.Now(), config: b.config, apps: b.apps, grants: b.grants, tokens: b.tokens,
		problems: b.appStatus, contacts: b.contacts, metrics: b.metrics, history: &b.sweeper.history,
		sweepState: b.sweeper.loadState}
	return b
}

// WriteSafeReplicationState is the framework's check of whether this node may write, asked of
// Vault's own system view every time (replication.go).
func (b *backend) WriteSafeReplicationState() bool {
	if b.rawSystem == nil {
		return b.Backend.WriteSafeReplicationState()
	}
	return mayWrite(b.rawSystem)
}

// noteMount keeps the mount path of a request (HandleRequest, periodic) for remedies.
func (b *backend) noteMount(req *logical.Request) {
	if req != nil && req.MountPoint != "" {
		b.mount.Store(req.MountPoint)
	}
}

// remedies builds "what to do" text for work that has no request of its own (the sweep).
func (b *backend) remedies() remedies {
	if m, ok := b.mount.Load().(string); ok && m != "" {
		return remedies{mount: m}
	}
	return remedies{mount: "<mount>/"}
}

// sendEvent publishes an event on Vault's event bus, best effort (events.go).
func (b *backend) sendEvent(ctx context.Context, eventType string, id grantID, operation string) {
	publishEvent(ctx, b, b.Logger(), eventType, id, operation)
}
