package larksecrets

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/lark-vault/vault-plugin-secrets-lark/clock"
	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
)

// The mount's health at a glance (path_status.go answers with it). Everything here is read from
// memory or from one storage entry per app, never from the grants themselves: the grants' levels
// come from the level counts kept in storage with every grant write (grant_index.go).

const (
	// sweepStaleAfter: Vault runs the sweep about once a minute on the active node.
	sweepStaleAfter = 5 * time.Minute
	// cycleOverdueAfter: building the grant indexes (a walk at full speed over every grant, within
	// each run's budget) should take well under an hour.
	cycleOverdueAfter = time.Hour
	// The answer stays bounded however many apps and grants there are: apps in detail and reasons
	// past these limits are counted, not listed.
	statusMaxApps    = 20
	statusMaxReasons = 20
	statusMaxText    = 200
)

// statusService builds the mount's status. It owns nothing: it reads the stores, the sweep's
// history, the Lark contacts and the level counts.
type statusService struct {
	clock    clock.Clock
	started  time.Time
	config   *configStore
	apps     *appStore
	grants   *grantStore
	tokens   *tokenService
	problems *appStatusStore
	contacts *larkContacts
	metrics  *metrics
	history  *sweepHistory
	// sweepState reads where the sweep stands in storage: whether the level counts cover every grant.
	sweepState func(context.Context, logical.Storage) (*sweepState, error)
}

// appHealth is one app's part of the status.
type appHealth struct {
	AppID            string
	Type             string
	Grants           int
	Levels           map[string]int
	Unclassified     int
	Secret           string // accepted, rejected, unknown
	SecretAcceptedAt time.Time
	SecretRejectedAt time.Time
	Lark             string // reachable, unreachable, unknown
	LarkReachedAt    time.Time
	LarkError        string
	LarkErrorAt      time.Time
	Tokens           map[tokenKind]*tokenEntry
	TenantTokens     int
	Problem          *appProblem
	Reasons          []string
}

func (a *appHealth) healthy() bool { return len(a.Reasons) == 0 }

// mountStatus is the whole answer.
type mountStatus struct {
	At            time.Time
	Started       time.Time
	Apps          []*appHealth // at most statusMaxApps, unhealthy first
	AppsTotal     int
	AppsUnhealthy int
	Levels        map[string]int // mount-wide, every level present
	GrantsTotal   int
	Unclassified  int
	Sweep         sweepSnapshot
	NextNotice    time.Time
	Schedule      string
	Timezone      string
	Budget        time.Duration // sweep_budget as configured now
	Unsaved       int
	// LevelsComplete: the level counts cover every grant (the indexes are built, sweep_walk.go).
	LevelsComplete bool
	Reasons        []string // at most statusMaxReasons
	ReasonsTotal   int
}

func (m *mountStatus) healthy() bool { return m.ReasonsTotal == 0 }

// levelsComplete: the level counts cover every grant; before, grants not yet counted are
// unclassified.
func (m *mountStatus) levelsComplete() bool { return m.LevelsComplete }

func (st *statusService) mountStatus(ctx context.Context, s logical.Storage, rem remedies) (*mountStatus, error) {
	cfg, err := st.config.get(ctx, s)
	if err != nil {
		return nil, err
	}
	now := st.clock.Now()
	m := &mountStatus{At: now, Started: st.started, Levels: map[string]int{}, Sweep: st.history.snapshot(),
		Schedule: cfg.NotifySchedule, Timezone: cfg.NotifyTimezone, Budget: cfg.SweepBudget, Unsaved: st.grants.unsavedCount()}
	for _, l := range gaugeLevels {
		m.Levels[l] = 0
	}
	if m.LevelsComplete, err = st.levelsCounted(ctx, s); err != nil {
		return nil, err
	}
	ids, err := st.apps.list(ctx, s)
	if err != nil {
		return nil, err
	}
	all, err := st.appsHealth(ctx, s, ids, m.LevelsComplete, rem)
	if err != nil {
		return nil, err
	}
	var reasons []string
	for _, a := range all {
		m.GrantsTotal += a.Grants
		m.Unclassified += a.Unclassified
		for l, n := range a.Levels {
			m.Levels[l] += n
		}
		if !a.healthy() {
			m.AppsUnhealthy++
			reasons = append(reasons, a.Reasons...)
		}
	}
	sort.SliceStable(all, func(i, j int) bool {
		if all[i].healthy() != all[j].healthy() {
			return !all[i].healthy()
		}
		return all[i].AppID < all[j].AppID
	})
	m.AppsTotal = len(all)
	if len(all) > statusMaxApps {
		all = all[:statusMaxApps]
	}
	m.Apps = all

	reasons = append(reasons, st.sweepReasons(m, cfg, rem)...)
	if sched, err := parseSchedule(cfg.NotifySchedule, cfg.NotifyTimezone); err == nil {
		m.NextNotice = sched.sched.Next(now.In(sched.loc))
	}
	if n := m.Sweep.Notices; n != nil && n.Failed > 0 {
		next := "the next scheduled time"
		if !m.NextNotice.IsZero() {
			next = formatTime(m.NextNotice)
		}
		reasons = append(reasons, fmt.Sprintf("%d notice(s) could not be sent at %s (last error: %s). Check that each app has the im:message:send_as_bot scope and that its recipients are within its availability; they are retried at %s.",
			n.Failed, formatTime(n.At), clip(n.LastError), next))
	}
	if m.Unsaved > 0 {
		reasons = append(reasons, fmt.Sprintf("%d grant(s) hold rotated refresh tokens that Vault's storage refused; they are kept in memory and retried at every sweep. Check Vault's storage and log now: a restart would lose them.", m.Unsaved))
	}
	m.ReasonsTotal = len(reasons)
	if len(reasons) > statusMaxReasons {
		reasons = reasons[:statusMaxReasons]
	}
	m.Reasons = reasons
	return m, nil
}

// levelsCounted loads the level counts and reports whether they cover every grant (the grant
// indexes are built with the thresholds in use).
func (st *statusService) levelsCounted(ctx context.Context, s logical.Storage) (bool, error) {
	idx, err := st.sweepState(ctx, s)
	if err != nil {
		return false, err
	}
	if err := st.grants.counts.load(ctx, s); err != nil {
		return false, err
	}
	return idx.countsComplete(), nil
}

// appsHealth looks at the given apps (those that still exist), in the given order.
// With counted (see levelsCounted) no app's grants are listed.
func (st *statusService) appsHealth(ctx context.Context, s logical.Storage, ids []string, counted bool, rem remedies) ([]*appHealth, error) {
	byApp := st.grants.counts.all()
	out := make([]*appHealth, 0, len(ids))
	for _, id := range ids {
		a, err := st.appHealth(ctx, s, id, byApp[id], counted, rem)
		if err != nil {
			return nil, err
		}
		if a != nil {
			out = append(out, a)
		}
	}
	return out, nil
}

func (st *statusService) sweepReasons(m *mountStatus, cfg *configEntry, rem remedies) []string {
	var out []string
	sw, now := m.Sweep, m.At
	runNow := fmt.Sprintf("vault write %ssweep", rem.mount)
	switch {
	case sw.Runs == 0 && now.Sub(m.Started) > sweepStaleAfter:
		out = append(out, fmt.Sprintf("No sweep has run on this node since it started at %s; Vault runs it about once a minute on the active node. Check Vault's log, or run it now: %s",
			formatTime(m.Started), runNow))
	case sw.Runs > 0 && now.Sub(sw.Last.At) > sweepStaleAfter:
		out = append(out, fmt.Sprintf("The last sweep started at %s, more than %s ago; Vault runs it about once a minute on the active node. Check Vault's log, or run it now: %s",
			formatTime(sw.Last.At), sweepStaleAfter, runNow))
	}
	if sw.Runs > 0 && sw.Last.Err != "" {
		out = append(out, fmt.Sprintf("The last sweep, at %s, failed: %s. Check Vault's storage and log; it is tried again every minute.", formatTime(sw.Last.At), clip(sw.Last.Err)))
	}
	if sw.Runs > 0 && sw.Last.Budget > 0 && sw.Last.Took > 2*sw.Last.Budget {
		out = append(out, fmt.Sprintf("The last sweep took %s against a sweep_budget of %s: Lark or Vault's storage answers slowly (see lark_api_call_duration_seconds in %smetrics).",
			sw.Last.Took.Round(time.Second), sw.Last.Budget, rem.mount))
	}
	if !sw.CycleStart.IsZero() && now.Sub(sw.CycleStart) > cycleOverdueAfter {
		out = append(out, fmt.Sprintf("The sweep has been building the grant indexes (reading every grant once) since %s: each run stops at sweep_budget (%s). Raise it (vault write %sconfig sweep_budget=40s) or keepalive_rate.",
			formatTime(sw.CycleStart), cfg.SweepBudget, rem.mount))
	}
	return out
}

// appHealth looks at one app: nil when it no longer exists. With counted (the level counts cover
// every grant) the app's grants are what its counts add up to; before, they are listed, and those
// not yet counted are unclassified.
func (st *statusService) appHealth(ctx context.Context, s logical.Storage, appID string, levels map[string]int, counted bool, rem remedies) (*appHealth, error) {
	app, err := st.apps.get(ctx, s, appID)
	if err != nil || app == nil {
		return nil, err
	}
	a := &appHealth{AppID: appID, Type: string(app.appType()), Levels: map[string]int{},
		Tokens: map[tokenKind]*tokenEntry{}, Secret: "unknown", Lark: "unknown"}
	classified := 0
	for _, l := range gaugeLevels {
		a.Levels[l] = levels[l]
		classified += levels[l]
	}
	a.Grants = classified
	if !counted {
		slots, err := st.grants.list(ctx, s, appID)
		if err != nil {
			return nil, err
		}
		a.Grants = len(slots)
	}
	a.Unclassified = max(0, a.Grants-classified)

	// Cached tokens: memory first, else what storage holds (after a restart).
	kinds := allTokenKinds
	if app.isStore() {
		kinds = []tokenKind{kindApp}
		a.TenantTokens = st.tokens.tenantTokensHeld(appID)
	}
	var newestFetch time.Time
	for _, k := range kinds {
		e := st.tokens.cached(appID, k)
		if e == nil {
			if e, err = st.tokens.load(ctx, s, appID, k); err != nil {
				return nil, err
			}
		}
		if e != nil {
			a.Tokens[k] = e
			if e.FetchedAt.After(newestFetch) {
				newestFetch = e.FetchedAt
			}
		}
	}

	ct := st.contacts.get(appID)
	accepted := laterOf(ct.SecretAcceptedAt, newestFetch)
	if !accepted.IsZero() && !accepted.Before(app.SecretUpdatedAt) {
		a.Secret, a.SecretAcceptedAt = "accepted", accepted
	}
	if !ct.ReachedAt.IsZero() {
		a.Lark, a.LarkReachedAt = "reachable", ct.ReachedAt
	}
	if ct.unreachable() {
		a.Lark, a.LarkErrorAt = "unreachable", ct.FailedAt
		a.LarkError = fmt.Sprintf("%s on %s", ct.FailStatus, ct.FailEndpoint)
	}

	// Token fetches failing now, worst first.
	var unreachableSince time.Time
	failures := st.tokens.appFailures(appID)
	for _, key := range sortedFailureKeys(failures) {
		f := failures[key]
		if f.last == nil {
			continue
		}
		var le *lark.Error
		errors.As(f.last, &le)
		switch {
		case le != nil && le.Kind == lark.KindAppSecretRejected:
			if a.Secret != "rejected" {
				a.Secret, a.SecretRejectedAt = "rejected", f.at
				a.Reasons = append(a.Reasons, fmt.Sprintf("App %s: Lark rejects its app secret (since %s). %s", appID, formatTime(f.since), rem.fixSecret(appID)))
			}
		case meaningOf(f.last) == lark.MeaningTransient && (le == nil || le.Kind != lark.KindRateLimited):
			a.Lark, a.LarkErrorAt, a.LarkError = "unreachable", f.at, clip(f.last.Error())
			if unreachableSince.IsZero() || f.since.Before(unreachableSince) {
				unreachableSince = f.since
			}
		default:
			a.Reasons = append(a.Reasons, fmt.Sprintf("App %s: Lark has not issued its %s since %s: %s", appID, tokenLabel(key), formatTime(f.since), clip(f.last.Error())))
		}
	}
	if a.Lark == "unreachable" {
		since := unreachableSince
		if since.IsZero() {
			since = a.LarkErrorAt
		}
		a.Reasons = append(a.Reasons, fmt.Sprintf("App %s: Lark could not be reached since %s (%s). Check the network path to Lark (proxy, firewall, the app's base_url); Vault keeps retrying.",
			appID, formatTime(since), a.LarkError))
	}

	// A refusal recorded by a user token refresh (it stays until a refresh succeeds).
	p, err := st.problems.load(ctx, s, appID)
	if err != nil {
		return nil, err
	}
	if p != nil {
		a.Problem = p
		switch {
		case p.Kind == string(lark.KindAppSecretRejected) && (p.Since.Before(app.SecretUpdatedAt) || a.SecretAcceptedAt.After(p.Since)):
			// Recorded against a secret since replaced, or Lark has accepted it since.
		case p.Kind == string(lark.KindAppSecretRejected):
			if a.Secret != "rejected" {
				a.Secret, a.SecretRejectedAt = "rejected", p.Since
				a.Reasons = append(a.Reasons, fmt.Sprintf("App %s: Lark rejects its app secret (since %s). %s", appID, formatTime(p.Since), rem.fixSecret(appID)))
			}
		default:
			a.Reasons = append(a.Reasons, fmt.Sprintf("App %s: Lark refuses the app's setup since %s: %s (Lark code %d). Fix it in the Lark developer console; refreshes resume by themselves.",
				appID, formatTime(p.Since), clip(p.Reason), p.Code))
		}
	}

	for _, lv := range []struct {
		level, what string
	}{
		{levelReauthRequired, "need re-authorization (reauth_required)"},
		{levelExpired, "have ended (expired)"},
		{levelCritical, "end within critical_days (critical)"},
	} {
		if n := a.Levels[lv.level]; n > 0 {
			a.Reasons = append(a.Reasons, fmt.Sprintf("App %s: %d grant(s) %s. Each user must authorize again; see them with: vault list %sreauth",
				appID, n, lv.what, rem.mount))
		}
	}
	return a, nil
}

func sortedFailureKeys(m map[string]fetchFailure) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// tokenLabel names a token by its key ("<app>/tenant/<tenant_key>" → "tenant token of <tenant_key>").
func tokenLabel(key string) string {
	ref, ok := parseTokenRef(key)
	if !ok {
		return "token"
	}
	if ref.Tenant != "" {
		return string(ref.Kind) + " token of tenant " + ref.Tenant
	}
	return string(ref.Kind) + " token"
}

// clip keeps a message from Lark or storage short and on one line inside a reason.
func clip(s string) string { return plainText(s, statusMaxText) }
