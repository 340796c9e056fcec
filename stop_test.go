package larksecrets

// Orderly stops (issue 17, item 1): Cleanup — reload, unmount, shutdown, step-down — admits no new
// call that can spend a single-use credential and waits until every call in flight has answered and
// its outcome is stored. Each test failed on the code before the refresher (clean returned at once).

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/lark-vault/vault-plugin-secrets-lark/larkemu"
)

// heldAnswer lets Lark act on the next token request at once and holds its answer until released:
// Lark "takes long to answer" while the caller has long given up.
type heldAnswer struct {
	reached chan struct{}
	release chan struct{}
}

func holdNextAnswer(hooks *hookTransport) *heldAnswer {
	h := &heldAnswer{reached: make(chan struct{}), release: make(chan struct{})}
	hooks.set(func(n int, forward func() (*http.Response, error)) (*http.Response, error) {
		resp, err := forward()
		if n == 0 {
			close(h.reached)
			<-h.release
		}
		return resp, err
	})
	return h
}

// stopInBackground runs the backend's Cleanup as Vault does and reports when it returned.
func stopInBackground(b *backend) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		b.Cleanup(context.Background())
		close(done)
	}()
	return done
}

func requireStillStopping(t *testing.T, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
		t.Fatal("Cleanup returned while Lark still held an answer: the process would end and the rotated token be lost")
	case <-time.After(300 * time.Millisecond):
	}
}

func requireStopped(t *testing.T, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Cleanup did not return after the last call in flight ended")
	}
}

func TestCleanupWaitsForARefreshWhoseReaderGaveUp(t *testing.T) {
	env, hooks := newHookedEnv(t)
	env.addOAuthApp()
	env.grantUser("slow")
	env.grantUser("other")
	before, otherBefore := env.onDisk("slow"), env.onDisk("other")
	env.clock.Advance(2 * time.Hour)

	held := holdNextAnswer(hooks)
	ctx, cancel := context.WithCancel(context.Background())
	readDone := make(chan error, 1)
	go func() {
		_, err := env.b.HandleRequest(ctx, &logical.Request{Operation: logical.ReadOperation,
			Path: "user-token/" + testAppID + "/slow", Storage: env.storage, MountPoint: "lark/"})
		readDone <- err
	}()
	<-held.reached
	cancel() // the reader gives up; Vault answers it and would now reload the plugin

	stopped := stopInBackground(env.b)
	requireStillStopping(t, stopped)

	// While stopping, no new call spends a refresh token: a due grant whose token is gone gets a 503
	// that says to retry.
	_, err := env.read("user-token/" + testAppID + "/other")
	require.Error(t, err)
	require.Equal(t, http.StatusServiceUnavailable, codedStatus(t, err))
	require.ErrorContains(t, err, "try again in a few seconds")
	require.Equal(t, otherBefore.RefreshToken, env.onDisk("other").RefreshToken, "no refresh was started")

	close(held.release)
	requireStopped(t, stopped)
	require.ErrorContains(t, <-readDone, "it is stored, but your request ended first")

	after := env.onDisk("slow")
	require.NotEqual(t, before.RefreshToken, after.RefreshToken, "the rotated refresh token is stored before Cleanup returns")
	require.Nil(t, after.InFlight)

	// The next plugin process reads with the stored token: nothing was used twice at Lark.
	hooks.set(nil)
	env.b = env.newBackend(&http.Client{Transport: hooks})
	env.clock.Advance(2 * time.Hour)
	_, err = env.read("user-token/" + testAppID + "/slow")
	require.NoError(t, err)
	require.Zero(t, env.emu.Calls(larkemu.EndpointRefreshReuse))
}

func TestCleanupWaitsForACodeExchangeWhoseBrowserGaveUp(t *testing.T) {
	env, hooks := newHookedEnv(t)
	env.addOAuthApp()
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "late"}))
	env.bindSlot("late", "late")
	code, state := env.authorize("oauth/"+testAppID+"/authorize", map[string]interface{}{"user": "late"})

	held := holdNextAnswer(hooks)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = env.b.HandleRequest(ctx, &logical.Request{Operation: logical.ReadOperation, Path: callbackPath,
			Storage: env.storage, MountPoint: "lark/", Data: map[string]interface{}{"code": code, "state": state}})
	}()
	<-held.reached
	cancel() // the browser gives up

	stopped := stopInBackground(env.b)
	requireStillStopping(t, stopped)
	close(held.release)
	requireStopped(t, stopped)
	<-done

	g := env.onDisk("late")
	require.NotNil(t, g, "the grant Lark issued is stored before Cleanup returns")
	require.Equal(t, env.emu.OpenID(testAppID, "late"), g.OpenID)
}

func TestCallbackWhileStoppingDoesNotUseUpTheLink(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "u"}))
	env.bindSlot("u", "u")
	code, state := env.authorize("oauth/"+testAppID+"/authorize", map[string]interface{}{"user": "u"})

	env.b.Cleanup(context.Background()) // nothing in flight: returns at once
	status, page := env.callback(map[string]interface{}{"code": code, "state": state})
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.Contains(t, page, "open the same link again")

	// The new plugin completes the same link.
	env.b = env.newBackend(nil)
	status, page = env.callback(map[string]interface{}{"code": code, "state": state})
	require.Equal(t, http.StatusOK, status, page)
	require.NotNil(t, env.onDisk("u"))
}

// A grant whose rotated tokens storage refuses until the stop is revoked at Lark by the stop
// (refresher.stop): nobody could use it again, and Lark must not keep a live token Vault forgot.
// Checked: with the revoke in refresher.stop removed, this test fails.
func TestCleanupRevokesAGrantItCannotStore(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	env.grantUser("lost")
	env.clock.Advance(2 * time.Hour)
	broken := &failAfterStorage{Storage: env.storage, okPuts: 1}
	env.storage = broken
	_, err := env.read("user-token/" + testAppID + "/lost")
	require.ErrorContains(t, err, "kept in memory")
	g := env.b.grants.pending(grantID{testAppID, "lost"})
	require.NotNil(t, g)

	env.b.storage = broken // storage still refuses at stop
	env.b.Cleanup(context.Background())
	revoked := false
	for _, info := range env.emu.Grants() {
		if info.OpenID == g.OpenID {
			revoked = info.Status == larkemu.GrantRevoked
		}
	}
	require.True(t, revoked, "a grant whose rotated refresh token cannot be stored is revoked at Lark")
}

// A device-login poll whose answer carries the approval spends the device code at Lark: Cleanup
// waits for it as for a refresh, so the grant Lark issued is stored before the process may end.
// The poll here comes from Vault's periodic call (the fallback to the device loop), so the only
// thing that can hold Cleanup is the call tracker, not the loop's own stop.
func TestCleanupWaitsForADeviceLoginPollInFlight(t *testing.T) {
	env, hooks := newHookedEnv(t)
	env.addOAuthApp()
	env.b.devices.stopLoop() // the poll below is the periodic call's
	hooks.hookPath(larkemu.PathOAuthTokenV2)
	code := env.startDevice("box", "dora")["user_code"].(string)
	require.NoError(t, env.emu.ApproveDevice(code, "dora"))
	env.clock.Advance(5 * time.Second)
	// Storing the login's new state takes a while: Cleanup must wait for that write too, not only
	// for Lark's answer and the grant.
	env.storage = slowPutStorage{Storage: env.storage, prefix: devicePrefix, delay: 500 * time.Millisecond}

	held := holdNextAnswer(hooks)
	polled := make(chan int, 1)
	go func() { polled <- env.pollDevices() }()
	<-held.reached // Lark has redeemed the device code; its answer is on the way

	// Cleanup runs concurrently; when it returns, look at storage at once, as the next process would.
	id := grantID{testAppID, "box"}
	type atStop struct {
		grant  *logical.StorageEntry
		status string
	}
	seen := make(chan atStop, 1)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		env.b.Cleanup(context.Background())
		var st atStop
		st.grant, _ = env.storage.Get(context.Background(), id.storageKey())
		if dl, err := env.b.devices.load(context.Background(), env.storage, id); err == nil && dl != nil {
			st.status = dl.Status
		}
		seen <- st
	}()
	requireStillStopping(t, stopped)
	close(held.release)
	requireStopped(t, stopped)
	st := <-seen
	require.NotNil(t, st.grant, "the grant Lark issued for the device code is stored before Cleanup returns")
	require.Equal(t, deviceStatusApproved, st.status, "the login's outcome is stored before Cleanup returns")
	require.Equal(t, 1, <-polled)

	// The next plugin process has the grant and it works; the device code was spent once at Lark and
	// is never presented again.
	hooks.set(nil)
	env.b = env.newBackend(&http.Client{Transport: hooks})
	env.b.devices.stopLoop()
	g := env.onDisk("box")
	require.Equal(t, env.emu.OpenID(testAppID, "dora"), g.OpenID)
	_, err := env.read("user-token/" + testAppID + "/box")
	require.NoError(t, err)
	env.clock.Advance(time.Minute)
	require.Zero(t, env.pollDevices())
	info, ok := env.emu.Device(code)
	require.True(t, ok)
	require.Equal(t, larkemu.DeviceUsed, info.Status)
	require.Equal(t, 1, info.Polls, "one poll at Lark: the one that redeemed the device code")
	require.Equal(t, 1, env.emu.Calls(larkemu.EndpointDeviceToken))
}
