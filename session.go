package larksecrets

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
	"github.com/lark-vault/vault-plugin-secrets-lark/lark/larkevent"
)

// appSession is what a request about one app needs: the app's settings, the mount's settings and a
// Lark client bound to the app. Everything that calls Lark for an app gets it from sessions.open, so
// the app → config → client lookup is written once.
type appSession struct {
	app  *appEntry
	cfg  *configEntry
	lark *lark.App
	// events verifies and decodes what Lark posts to events/<app_id>; nil while the app has no
	// verification_token.
	events *larkevent.Receiver
}

// sessions builds app sessions and keeps their Lark clients: one per (app entry, config entry), so
// a change to either (which replaces the entry) builds a new client, and the HTTP transport, with
// its connection pool, is shared by all.
type sessions struct {
	apps    *appStore
	config  *configStore
	client  *http.Client
	observe func(lark.Call)
	// contacts, when set, learns each app's Lark calls for the status path.
	contacts *larkContacts

	mu     sync.Mutex
	cached map[string]*appSession
}

func newSessions(apps *appStore, config *configStore, client *http.Client, observe func(lark.Call)) *sessions {
	if client == nil {
		client = &http.Client{Transport: newTransport()}
	}
	return &sessions{apps: apps, config: config, client: client, observe: observe, cached: map[string]*appSession{}}
}

// open returns the session for appID, or errAppNotConfigured.
func (ss *sessions) open(ctx context.Context, s logical.Storage, appID string) (*appSession, error) {
	cfg, err := ss.config.get(ctx, s)
	if err != nil {
		return nil, err
	}
	app, err := ss.apps.get(ctx, s, appID)
	if err != nil {
		return nil, err
	}
	if app == nil {
		return nil, errAppNotConfigured
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if sess := ss.cached[appID]; sess != nil && sess.app == app && sess.cfg == cfg {
		return sess, nil
	}
	client, err := lark.New(lark.Config{
		Brand:           lark.Brand(app.Brand),
		BaseURL:         app.BaseURL,
		AccountsBaseURL: app.AccountsBaseURL,
		HTTPClient:      ss.client,
		Timeout:         cfg.LarkRequestTimeout,
		MaxAttempts:     cfg.LarkMaxAttempts,
		UserAgent:       "vault-plugin-secrets-lark/" + Version,
		Observe:         ss.observerFor(app.AppID),
	})
	if err != nil {
		return nil, err
	}
	sess := &appSession{app: app, cfg: cfg, lark: client.App(app.credentials())}
	if ec, ok := app.eventConfig(); ok {
		// The values were checked when they were written; a receiver that cannot be built leaves
		// events refused rather than the app's tokens unavailable.
		sess.events, _ = larkevent.NewReceiver(ec)
	}
	ss.cached[appID] = sess
	return sess, nil
}

// observerFor is the Lark client's hook for one app: the mount's metrics, and the app's contacts.
func (ss *sessions) observerFor(appID string) func(lark.Call) {
	return func(c lark.Call) {
		if ss.observe != nil {
			ss.observe(c)
		}
		if ss.contacts != nil {
			ss.contacts.record(appID, c)
		}
	}
}

// forget drops the client of an app that was changed or deleted.
func (ss *sessions) forget(appID string) {
	ss.mu.Lock()
	delete(ss.cached, appID)
	ss.mu.Unlock()
}

// newTransport is the one HTTP transport of a backend. It bounds only the connection phases; how
// long Lark may take to answer is the per-attempt timeout the Lark client sets from
// lark_request_timeout, so no transport setting can silently cap a longer configured timeout.
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          32,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
	}
}
