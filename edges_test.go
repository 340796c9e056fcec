package larksecrets

// Tests for the refresh edges of issue 8: each one failed on the code before the grant store and
// passes now.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/lark-vault/vault-plugin-secrets-lark/larkemu"
)

// hookTransport lets a test step into each OAuth token request (code exchange and refresh) the
// backend sends; forward sends it on to the emulator. path is the token path hooked: the v3 one when
// empty; larkemu.PathOAuthTokenV2 for device-login polls, which always go to v2 on the open host.
type hookTransport struct {
	next http.RoundTripper
	mu   sync.Mutex
	hook func(n int, forward func() (*http.Response, error)) (*http.Response, error)
	n    int
	path string
}

func (h *hookTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	h.mu.Lock()
	hook := h.hook
	n := h.n
	path := h.path
	if path == "" {
		path = larkemu.PathOAuthTokenV3
	}
	if hook != nil && strings.HasSuffix(req.URL.Path, path) {
		h.n++
	} else {
		hook = nil
	}
	h.mu.Unlock()
	if hook == nil {
		return h.next.RoundTrip(req)
	}
	body, _ := io.ReadAll(req.Body)
	forward := func() (*http.Response, error) {
		r := req.Clone(context.WithoutCancel(req.Context()))
		r.Body = io.NopCloser(bytes.NewReader(body))
		return h.next.RoundTrip(r)
	}
	return hook(n, forward)
}

func (h *hookTransport) set(hook func(n int, forward func() (*http.Response, error)) (*http.Response, error)) {
	h.mu.Lock()
	h.hook, h.n = hook, 0
	h.mu.Unlock()
}

// hookPath makes the hook step into requests to path instead (larkemu.PathOAuthTokenV2: device polls).
func (h *hookTransport) hookPath(path string) {
	h.mu.Lock()
	h.path = path
	h.mu.Unlock()
}

// newHookedEnv is a test env whose backend talks to the emulator through a hookTransport.
func newHookedEnv(t *testing.T) (*testEnv, *hookTransport) {
	env := newTestEnv(t)
	base := env.b.sessions.client
	hooks := &hookTransport{next: base.Transport}
	env.b = env.newBackend(&http.Client{Transport: hooks})
	return env, hooks
}

// Edge 1: the outcome of a refresh Lark has answered is stored even when the reader is gone.
func TestRotatedTokenIsStoredAfterTheReaderGaveUp(t *testing.T) {
	env, hooks := newHookedEnv(t)
	env.storage = ctxStorage{env.storage}
	env.addOAuthApp()
	env.grantUser("gone")
	before := env.onDisk("gone")
	env.clock.Advance(2 * time.Hour)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hooks.set(func(_ int, forward func() (*http.Response, error)) (*http.Response, error) {
		resp, err := forward()
		cancel() // the reader (Agent, curl) gives up just as Lark's answer arrives
		return resp, err
	})
	_, err := env.b.HandleRequest(ctx, &logical.Request{Operation: logical.ReadOperation, Path: "user-token/" + testAppID + "/gone",
		Storage: env.storage, MountPoint: "lark/"})
	require.ErrorContains(t, err, "it is stored, but your request ended first")

	after := env.onDisk("gone")
	require.NotEqual(t, before.RefreshToken, after.RefreshToken, "the rotated refresh token is in storage")
	require.Nil(t, after.InFlight)
	require.Zero(t, env.b.grants.unsavedCount())

	// A restart loses nothing: the stored token is the live one.
	hooks.set(nil)
	env.b = env.newBackend(&http.Client{Transport: hooks})
	env.clock.Advance(2 * time.Hour)
	_, err = env.read("user-token/" + testAppID + "/gone")
	require.NoError(t, err)
	require.Zero(t, env.emu.Calls(larkemu.EndpointRefreshReuse))
}

// Edge 1, the import and OAuth paths: a caller who leaves while Lark answers still gets its grant
// stored.
func TestImportIsStoredAfterTheCallerGaveUp(t *testing.T) {
	env, hooks := newHookedEnv(t)
	env.storage = ctxStorage{env.storage}
	env.addOAuthApp()
	minted, err := env.emu.MintGrant(larkemu.MintRequest{AppID: testAppID})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hooks.set(func(_ int, forward func() (*http.Response, error)) (*http.Response, error) {
		resp, err := forward()
		cancel()
		return resp, err
	})
	_, _ = env.b.HandleRequest(ctx, &logical.Request{Operation: logical.UpdateOperation, Path: "user-token/" + testAppID + "/imp",
		Storage: env.storage, MountPoint: "lark/", Data: map[string]interface{}{"refresh_token": minted.RefreshToken}})
	g := env.onDisk("imp")
	require.NotNil(t, g, "Lark spent the imported token; its successor must be stored")
	require.NotEqual(t, minted.RefreshToken, g.RefreshToken)
}

// Edge 1: Clean stores what storage refused so far.
func TestCleanStoresWhatStorageRefused(t *testing.T) {
	env := newTestEnv(t)
	flaky := &flakyStorage{Storage: env.storage}
	env.storage = flaky
	env.b = env.newBackend(nil)
	env.addOAuthApp()
	env.grantUser("late")
	env.clock.Advance(2 * time.Hour)
	env.storage = &failAfterStorage{Storage: flaky.Storage, okPuts: 1}
	_, err := env.read("user-token/" + testAppID + "/late")
	require.ErrorContains(t, err, "kept in memory")
	require.Equal(t, 1, env.b.grants.unsavedCount())
	stale := env.onDisk("late")

	env.b.storage = flaky.Storage // storage works again by the time Vault unmounts
	env.b.clean(context.Background())
	require.Zero(t, env.b.grants.unsavedCount())
	require.NotEqual(t, stale.RefreshToken, env.onDisk("late").RefreshToken)
}

// Edge 2: Lark refuses the app's setup (20074, refresh switched off). The grant and its tokens stay,
// a valid token is served with a warning, the app is flagged (metric, admin notice), and refreshes
// resume by themselves after the fix.
func TestAppSetupRefusalKeepsTheGrantAndFlagsTheApp(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "admin"}))
	env.mustWrite("apps/"+testAppID, map[string]interface{}{"notify_locale": "en_us", "notify_open_ids": env.emu.OpenID(testAppID, "admin")})
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "u1"}))
	env.grantUser("u1")
	before := env.onDisk("u1")
	require.NoError(t, env.emu.RegisterApp(larkemu.App{ID: testAppID, Secret: testSecret, RefreshDisabled: true}))

	env.clock.Advance(2*time.Hour - 20*time.Minute) // inside the refresh window, token still servable
	resp, err := env.read("user-token/" + testAppID + "/u1")
	require.NoError(t, err)
	require.Equal(t, before.AccessToken, resp.Data["access_token"])
	require.Contains(t, strings.Join(resp.Warnings, "\n"), "Lark refuses to refresh user tokens of app")
	g := env.onDisk("u1")
	require.Equal(t, grantStateOK, g.State)
	require.Equal(t, before.RefreshToken, g.RefreshToken)
	problems, err := env.b.appStatus.listProblems(context.Background(), env.storage)
	require.NoError(t, err)
	require.Contains(t, problems, testAppID)

	require.Equal(t, 1.0, gaugeValue(t, env.scrapeMetrics(), "lark_apps_with_setup_problems", nil))

	// The admins hear of it once, at the next scheduled time. Once the failures outlast the grace,
	// the grant's own notice says to fix the app, not to authorize again.
	env.sweep()
	env.clock.Advance(13 * time.Hour) // past 21:00 UTC
	env.sweep()
	msgs := env.emu.Messages()
	require.Len(t, msgs, 2, "%v", msgs)
	require.Contains(t, msgs[0].Text, "Lark refuses this app's setup")
	require.Contains(t, msgs[0].Text, "(Lark code 20074)")
	require.Contains(t, msgs[1].Text, "fixes the app's setup")
	require.NotContains(t, msgs[1].Text, "the user authorizes again; start it with")
	env.clock.Advance(12 * time.Hour)
	env.sweep()
	require.Len(t, env.emu.Messages(), 2, "each sent once")

	// Fixed at Lark: the grant had expired access meanwhile but its refresh token lives; it recovers.
	require.NoError(t, env.emu.RegisterApp(larkemu.App{ID: testAppID, Secret: testSecret}))
	env.clock.Advance(10 * time.Minute)
	resp, err = env.read("user-token/" + testAppID + "/u1")
	require.NoError(t, err)
	require.NotEqual(t, before.AccessToken, resp.Data["access_token"])
	require.Empty(t, resp.Warnings)
	problems, err = env.b.appStatus.listProblems(context.Background(), env.storage)
	require.NoError(t, err)
	require.Empty(t, problems)
}

// Edge 2: a security challenge keeps the grant and tells what to do.
func TestSecurityChallengeKeepsTheGrant(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	env.grantUser("chal")
	env.clock.Advance(2*time.Hour - 20*time.Minute)
	require.NoError(t, env.emu.InjectFailure(larkemu.Failure{Endpoint: larkemu.EndpointRefresh, Mode: larkemu.FailError, Code: 21000}))
	resp, err := env.read("user-token/" + testAppID + "/chal")
	require.NoError(t, err)
	require.Contains(t, strings.Join(resp.Warnings, "\n"), "complete a verification")
	g := env.onDisk("chal")
	require.Equal(t, grantStateOK, g.State)
	require.Equal(t, 1, g.FailuresInRow)
}

// Edge 2: transient failures back off, so concurrent readers during an outage do not each call
// Lark; the grant recovers once Lark does.
func TestTransientFailuresBackOffAndRecover(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	env.grantUser("flaky")
	env.clock.Advance(2*time.Hour - 20*time.Minute)
	require.NoError(t, env.emu.InjectFailure(larkemu.Failure{Endpoint: larkemu.EndpointRefresh, Mode: larkemu.FailError, Code: 20050, Count: -1}))
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := env.read("user-token/" + testAppID + "/flaky")
			if err == nil {
				require.NotEmpty(t, resp.Warnings)
			}
		}()
	}
	wg.Wait()
	require.Equal(t, 1, env.emu.Calls(larkemu.EndpointRefresh), "one attempt, then backoff")
	g := env.onDisk("flaky")
	require.Equal(t, grantStateOK, g.State)
	require.Equal(t, string("transient"), g.FailureMeaning)

	env.emu.ClearFailures()
	env.clock.Advance(retryBackoff(1))
	resp, err := env.read("user-token/" + testAppID + "/flaky")
	require.NoError(t, err)
	require.Empty(t, resp.Warnings)
	require.Equal(t, 2, env.emu.Calls(larkemu.EndpointRefresh))
	require.Zero(t, env.onDisk("flaky").FailuresInRow)
}

// Edge 2: codes that prove the grant is over end it, with the reason.
func TestGrantOverCodesEndTheGrant(t *testing.T) {
	for _, code := range []int{20008, 20010, 20066, 20026, 20064} {
		env := newTestEnv(t)
		env.addOAuthApp()
		env.grantUser("over")
		env.clock.Advance(2 * time.Hour)
		require.NoError(t, env.emu.InjectFailure(larkemu.Failure{Endpoint: larkemu.EndpointRefresh, Mode: larkemu.FailError, Code: code}))
		_, err := env.read("user-token/" + testAppID + "/over")
		var coded logical.HTTPCodedError
		require.True(t, errors.As(err, &coded), "%d: %v", code, err)
		require.Equal(t, http.StatusConflict, coded.Code(), "%d", code)
		g := env.onDisk("over")
		require.Equal(t, grantStateReauthRequired, g.State, "%d", code)
		require.Equal(t, code, g.ReauthCode)
	}
}

// Edge 2: a tenant token Lark rejects is dropped and fetched again, once.
func TestRejectedTenantTokenIsFetchedAgain(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "admin"}))
	admin := env.emu.OpenID(testAppID, "admin")
	env.mustWrite("apps/"+testAppID, map[string]interface{}{"notify_open_ids": admin})
	first, _, err := env.b.tokens.get(context.Background(), env.storage, testAppID, kindTenant)
	require.NoError(t, err)
	require.NoError(t, env.emu.InjectFailure(larkemu.Failure{Endpoint: larkemu.EndpointMessages, Mode: larkemu.FailError, Code: 99991663}))
	sess, err := env.b.sessions.open(context.Background(), env.storage, testAppID)
	require.NoError(t, err)
	require.NoError(t, env.b.notifier.sendNotice(context.Background(), env.storage, sess, outgoing{to: admin, text: "hello"}, "uuid-1"))
	second := env.b.tokens.cached(testAppID, kindTenant)
	require.NotNil(t, second)
	require.Equal(t, 2, env.emu.Calls(larkemu.EndpointTenantAccessToken), "fetched again after the rejection")
	require.NotSame(t, first, second)
	require.Len(t, env.emu.Messages(), 1)
}

// Edge 3: when storing a new grant over an existing one fails, reads serve the new grant (kept in
// memory), never the old one, and the next access stores it.
func TestFailedStoreOverAnExistingGrantServesTheNewGrant(t *testing.T) {
	env := newTestEnv(t)
	flaky := &flakyStorage{Storage: env.storage}
	env.storage = flaky
	env.addOAuthApp()
	env.grantUser("over")
	old := env.onDisk("over")
	minted, err := env.emu.MintGrant(larkemu.MintRequest{AppID: testAppID})
	require.NoError(t, err)

	flaky.mu.Lock()
	flaky.failing = true
	flaky.mu.Unlock()
	resp, err := env.write("user-token/"+testAppID+"/over", map[string]interface{}{"refresh_token": minted.RefreshToken})
	require.Error(t, err)
	require.Nil(t, resp)
	read, err := env.read("user-token/" + testAppID + "/over")
	require.NoError(t, err)
	require.NotEqual(t, old.AccessToken, read.Data["access_token"], "the new grant wins")

	flaky.mu.Lock()
	flaky.failing = false
	flaky.mu.Unlock()
	env.clock.Advance(2 * time.Hour) // due: the refresh runs under the lock and first stores the pending grant
	_, err = env.read("user-token/" + testAppID + "/over")
	require.NoError(t, err)
	require.Zero(t, env.b.grants.unsavedCount())
	require.Zero(t, env.emu.Calls(larkemu.EndpointRefreshReuse))
}

// Edge 4: a sweep whose grant visiting uses up the budget still sends notices.
func TestNoticesAreSentEvenWhenGrantsUseTheBudget(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "admin"}))
	env.mustWrite("apps/"+testAppID, map[string]interface{}{"notify_open_ids": env.emu.OpenID(testAppID, "admin")})
	env.mustWrite("config", map[string]interface{}{"sweep_budget": 1, "keepalive_rate": 1})
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "u-ending"}))
	env.importGrant("a-ending", "u-ending", 360) // warning level; visited first
	// Grants due for keep-alive at 1/s keep the visiting busy for the whole grant share.
	now := env.clock.Now()
	for i := 0; i < 20; i++ {
		minted, err := env.emu.MintGrant(larkemu.MintRequest{AppID: testAppID})
		require.NoError(t, err)
		env.writeGrant(&grantEntry{AppID: testAppID, Slot: "busy" + itoa(i), State: grantStateOK, AccessToken: "x",
			AccessExpiresAt: now.Add(time.Hour), RefreshToken: minted.RefreshToken, LastRefreshAt: now.Add(-6 * 24 * time.Hour),
			RefreshExpiresAt: now.Add(24 * time.Hour), AuthorizedAt: now, GrantExpiresAt: now.Add(grantMaxAge)})
	}
	r := env.sweep() // 09:00 UTC: a scheduled time
	require.True(t, r.BudgetExhausted, "grant visiting ran out of its share")
	require.Contains(t, r.Notified, testAppID+"/a-ending/warning")
}

// Edge 4: a notification pass cut short stays pending: the next sweep goes on with it, without
// waiting for the next scheduled time.
func TestNotificationPassCutShortStaysPending(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "admin"}))
	env.mustWrite("apps/"+testAppID, map[string]interface{}{"notify_open_ids": env.emu.OpenID(testAppID, "admin")})
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "u-ending"}))
	env.clock.Advance(time.Hour) // 10:00: nothing scheduled (09:00 and 21:00 UTC are)
	env.importGrant("ending", "u-ending", 360)
	cfg, err := env.b.config.get(context.Background(), env.storage)
	require.NoError(t, err)
	env.sweep() // queues the notice; the schedule has not fired
	require.Empty(t, env.emu.Messages())
	env.clock.Advance(11*time.Hour + time.Minute) // 21:01

	r := &sweepReport{}
	require.NoError(t, env.b.notifier.send(context.Background(), env.storage, cfg, time.Now().Add(-time.Second), r))
	require.True(t, r.NoticesLeft)
	require.Empty(t, r.Notified)

	env.clock.Advance(time.Hour) // 22:01: no scheduled time since the last check
	r = &sweepReport{}
	require.NoError(t, env.b.notifier.send(context.Background(), env.storage, cfg, time.Now().Add(time.Minute), r))
	require.Equal(t, []string{testAppID + "/ending/warning"}, r.Notified)
}

// Edge 5: deleting on a node that may not write is forwarded before anything is revoked at Lark.
func TestDeleteOnAStandbyRevokesNothing(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	env.grantUser("keep")
	env.system.ReplicationStateVal = consts.ReplicationPerformanceStandby
	_, err := env.do(logical.DeleteOperation, "user-token/"+testAppID+"/keep", nil)
	require.ErrorIs(t, err, logical.ErrReadOnly)
	require.Zero(t, env.emu.Calls(larkemu.EndpointRevoke))
	require.NotNil(t, env.onDisk("keep"))
}

// Edge 6: an import while Lark's user_info fails keeps the slot's binding; the next refresh checks
// it, and a token of another user ends there.
func TestImportWithoutUserInfoKeepsTheBinding(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "holder"}))
	env.grantUser("held")
	holder := env.onDisk("held").OpenID

	// Same user, user_info down: the binding stays, the check is pending and then settles.
	minted, err := env.emu.MintGrant(larkemu.MintRequest{AppID: testAppID, UserID: "holder"})
	require.NoError(t, err)
	require.NoError(t, env.emu.InjectFailure(larkemu.Failure{Endpoint: larkemu.EndpointUserInfo, Mode: larkemu.Fail5xx, Count: -1}))
	resp, err := env.write("user-token/"+testAppID+"/held", map[string]interface{}{"refresh_token": minted.RefreshToken})
	require.NoError(t, err)
	require.False(t, resp.IsError(), "%v", resp.Error())
	g := env.onDisk("held")
	require.Equal(t, holder, g.OpenID, "never cleared")
	require.True(t, g.IdentityPending)
	env.emu.ClearFailures()
	_, err = env.read("user-token/" + testAppID + "/held") // identity pending: refreshes and asks
	require.NoError(t, err)
	g = env.onDisk("held")
	require.False(t, g.IdentityPending)
	require.Equal(t, holder, g.OpenID)

	// Another user's token, user_info down: stored under the holder's binding, then found out.
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "stranger"}))
	minted, err = env.emu.MintGrant(larkemu.MintRequest{AppID: testAppID, UserID: "stranger"})
	require.NoError(t, err)
	require.NoError(t, env.emu.InjectFailure(larkemu.Failure{Endpoint: larkemu.EndpointUserInfo, Mode: larkemu.Fail5xx, Count: -1}))
	_, err = env.write("user-token/"+testAppID+"/held", map[string]interface{}{"refresh_token": minted.RefreshToken})
	require.NoError(t, err)
	require.Equal(t, holder, env.onDisk("held").OpenID)
	env.emu.ClearFailures()
	_, err = env.read("user-token/" + testAppID + "/held")
	require.ErrorContains(t, err, "belongs to Lark user")
	g = env.onDisk("held")
	require.Equal(t, grantStateReauthRequired, g.State)
	require.Equal(t, holder, g.OpenID)
}

// Edge 7: a first attempt that may have reached Lark, followed by a probe that never left, keeps the
// in-flight mark, so the "already used" that follows is explained.
func TestInFlightMarkSurvivesAProbeThatNeverLeft(t *testing.T) {
	env, hooks := newHookedEnv(t)
	env.addOAuthApp()
	env.grantUser("probe")
	env.clock.Advance(2 * time.Hour)
	hooks.set(func(n int, forward func() (*http.Response, error)) (*http.Response, error) {
		if n == 0 {
			if resp, err := forward(); err == nil { // Lark rotates the token ...
				resp.Body.Close()
			}
			return nil, io.ErrUnexpectedEOF // ... and its answer is lost
		}
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED} // the probe never leaves
	})
	_, err := env.read("user-token/" + testAppID + "/probe")
	require.Error(t, err)
	g := env.onDisk("probe")
	require.NotNil(t, g.InFlight, "the token may be spent: the mark stays")
	require.Equal(t, grantStateOK, g.State)

	hooks.set(nil)
	env.clock.Advance(retryBackoff(1))
	_, err = env.read("user-token/" + testAppID + "/probe")
	require.ErrorContains(t, err, "was interrupted after Lark had used the refresh token")
}

// Edge 8: a deleted grant leaves the levels gauge at once.
func TestDeletedGrantLeavesTheGauge(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	env.grantUser("gauge")
	_, err := env.read("user-token/" + testAppID + "/gauge")
	require.NoError(t, err)
	require.Equal(t, 1.0, grantsGauge(t, env.scrapeMetrics())[levelOK])
	_, err = env.do(logical.DeleteOperation, "user-token/"+testAppID+"/gauge", nil)
	require.NoError(t, err)
	require.Equal(t, 0.0, grantsGauge(t, env.scrapeMetrics())[levelOK])
}

// The one HTTP transport bounds connection phases only: how long Lark may take is the per-attempt
// timeout from lark_request_timeout, which a fixed response-header timeout used to cap at 15 s.
func TestTransportDoesNotCapTheRequestTimeout(t *testing.T) {
	require.Zero(t, newTransport().ResponseHeaderTimeout)
	env := newTestEnv(t)
	env.addApp()
	env.mustWrite("config", map[string]interface{}{"lark_request_timeout": 3})
	require.NoError(t, env.emu.InjectFailure(larkemu.Failure{Endpoint: larkemu.EndpointTenantAccessToken, Mode: larkemu.FailSlow, Delay: 1500 * time.Millisecond}))
	_, err := env.read("tenant-token/" + testAppID)
	require.NoError(t, err)
}
