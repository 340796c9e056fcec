package larksecrets

import (
	"context"
	"strings"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
)

const appStatusPrefix = "app-status/"

// appProblem is a refusal by Lark that is about an app's setup rather than any user's grant (token
// refresh switched off, app not enabled or not installed): every grant of the app is stuck until an
// operator fixes the app, so operators are told once, by a notice to the app's admins.
type appProblem struct {
	Version int    `json:"version"`
	Reason  string `json:"reason"`
	Code    int    `json:"code"`
	// Kind is the lark.ErrorKind of the refusal (app_secret_rejected, app_not_found, app_setup, ...);
	// empty in records written before it was kept.
	Kind     string    `json:"kind,omitempty"`
	Since    time.Time `json:"since"`
	Notified time.Time `json:"notified,omitempty"`
}

// appStatusStore owns the problem records. Every successful refresh asks it to clear its app's
// record, so memory (cachedStore, which remembers "no problem" too) knows which apps are clear and
// storage is read at most once per app and process for that.
type appStatusStore struct {
	clock  func() time.Time
	logger func() hclog.Logger

	mem cachedStore[appProblem, appStatusLayout]
}

type appStatusLayout struct{}

const appProblemVersion = 1

var appStatusSpec = &storeSpec[appProblem]{
	prefix:     appStatusPrefix,
	what:       func(appID string) string { return "the status of app " + appID },
	version:    appProblemVersion,
	versionOf:  func(p *appProblem) *int { return &p.Version },
	keepAbsent: true,
}

func (appStatusLayout) spec() *storeSpec[appProblem] { return appStatusSpec }

func newAppStatusStore(now func() time.Time, logger func() hclog.Logger) *appStatusStore {
	return &appStatusStore{clock: now, logger: logger}
}

func (as *appStatusStore) load(ctx context.Context, s logical.Storage, appID string) (*appProblem, error) {
	return as.mem.get(ctx, s, appID)
}

func (as *appStatusStore) put(ctx context.Context, s logical.Storage, appID string, p *appProblem) error {
	return as.mem.put(ctx, s, appID, p)
}

// flag records that Lark refuses the app's setup; the same refusal again changes nothing.
func (as *appStatusStore) flag(ctx context.Context, s logical.Storage, appID string, le *lark.Error) {
	cur, err := as.load(ctx, s, appID)
	if err == nil && cur != nil && cur.Code == le.Code {
		return
	}
	p := &appProblem{Reason: le.Reason(), Code: le.Code, Kind: string(le.Kind), Since: as.clock()}
	if err := as.put(context.WithoutCancel(ctx), s, appID, p); err != nil {
		as.logger().Warn("could not record an app setup problem", "app_id", appID, "error", err)
		return
	}
	as.logger().Error("Lark refuses the app's setup; every user grant of the app is stuck until it is fixed",
		"app_id", appID, "code", le.Code, "reason", p.Reason)
}

// clear forgets the app's problem after Lark accepted a refresh again.
func (as *appStatusStore) clear(ctx context.Context, s logical.Storage, appID string) {
	cur, err := as.load(ctx, s, appID)
	if err != nil || cur == nil {
		return
	}
	if err := as.mem.delete(context.WithoutCancel(ctx), s, appID); err != nil {
		as.logger().Warn("could not clear an app setup problem", "app_id", appID, "error", err)
		return
	}
	as.logger().Info("Lark accepts the app's setup again", "app_id", appID)
}

// listProblems returns every app with a recorded problem.
func (as *appStatusStore) listProblems(ctx context.Context, s logical.Storage) (map[string]*appProblem, error) {
	ids, err := as.mem.list(ctx, s, "")
	if err != nil {
		return nil, err
	}
	out := map[string]*appProblem{}
	for _, id := range ids {
		id = strings.TrimSuffix(id, "/")
		p, err := as.load(ctx, s, id)
		if err != nil {
			return nil, err
		}
		if p != nil {
			out[id] = p
		}
	}
	return out, nil
}

func (as *appStatusStore) markNotified(ctx context.Context, s logical.Storage, appID string, p *appProblem) error {
	n := *p
	n.Notified = as.clock()
	return as.put(ctx, s, appID, &n)
}

// count is the number of apps known to have a problem, for the metrics gauge.
func (as *appStatusStore) count() int { return as.mem.count() }

// invalidate forgets what memory knows of the app after storage changed elsewhere.
func (as *appStatusStore) invalidate(appID string) { as.mem.invalidate(appID) }
