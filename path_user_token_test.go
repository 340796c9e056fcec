package larksecrets

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
	"github.com/lark-vault/vault-plugin-secrets-lark/larkemu"
)

const testRedirect = "https://vault.example/v1/lark/oauth/callback"

// addOAuthApp configures the test app for user authorization against the emulator.
func (e *testEnv) addOAuthApp() {
	e.t.Helper()
	e.mustWrite("apps/"+testAppID, map[string]interface{}{
		"app_secret":        testSecret,
		"base_url":          e.emuURL,
		"accounts_base_url": e.emuURL,
		"redirect_uri":      testRedirect,
		"scopes":            "auth:user.id:read",
	})
}

// bindSlot binds a slot to an emulator user, as an administrator does before a person's first
// self-service authorization.
func (e *testEnv) bindSlot(slot, userID string) {
	e.t.Helper()
	e.mustWrite("slots/"+testAppID+"/"+slot, map[string]interface{}{"open_id": e.emu.OpenID(testAppID, userID)})
}

// authorize runs the browser's part: ask Vault for the URL, open it at the emulator (which approves
// at once), and return the code and state Lark put on the redirect. A self-service authorization of
// a slot that is neither bound nor filled gets the administrator's binding to the signed-in user
// first, the way a real setup starts.
func (e *testEnv) authorize(path string, data map[string]interface{}) (code, state string) {
	e.t.Helper()
	if strings.Contains(path, "/authorize") {
		slot, _ := data["user"].(string)
		if i := strings.LastIndex(path, "/authorize/"); i >= 0 {
			slot = path[i+len("/authorize/"):]
		}
		if e.storedGrant(slot) == nil {
			if b, _ := e.b.slots.get(context.Background(), e.storage, grantID{testAppID, slot}); b == nil {
				e.bindSlot(slot, e.emu.CurrentUser().UserID)
			}
		}
	}
	resp, err := e.do(logical.UpdateOperation, path, data)
	require.NoError(e.t, err)
	require.False(e.t, resp.IsError(), "authorize: %v", resp.Error())
	authURL := resp.Data["authorize_url"].(string)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := client.Get(authURL)
	require.NoError(e.t, err)
	r.Body.Close()
	require.Equal(e.t, http.StatusFound, r.StatusCode)
	loc, err := url.Parse(r.Header.Get("Location"))
	require.NoError(e.t, err)
	require.True(e.t, strings.HasPrefix(loc.String(), testRedirect+"?"), loc.String())
	return loc.Query().Get("code"), loc.Query().Get("state")
}

// callback calls the unauthenticated callback the way Vault routes a browser's GET.
func (e *testEnv) callback(params map[string]interface{}) (int, string) {
	e.t.Helper()
	resp, err := e.do(logical.ReadOperation, "oauth/callback", params)
	require.NoError(e.t, err)
	return resp.Data[logical.HTTPStatusCode].(int), string(resp.Data[logical.HTTPRawBody].([]byte))
}

// grantUser runs a whole authorization for slot and returns the callback page.
func (e *testEnv) grantUser(slot string) string {
	e.t.Helper()
	code, state := e.authorize("oauth/"+testAppID+"/authorize", map[string]interface{}{"user": slot})
	status, page := e.callback(map[string]interface{}{"code": code, "state": state})
	require.Equal(e.t, http.StatusOK, status, page)
	return page
}

func (e *testEnv) storedKeys(prefix string) []string {
	e.t.Helper()
	keys, err := e.storage.List(context.Background(), prefix)
	require.NoError(e.t, err)
	return keys
}

func TestAuthorizeCallbackAndRead(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "alice", Name: "Alice <Admin>"}))
	env.bindSlot("alice", "alice")

	resp, err := env.do(logical.UpdateOperation, "oauth/"+testAppID+"/authorize", map[string]interface{}{"user": "alice", "scopes": "im:message"})
	require.NoError(t, err)
	u, err := url.Parse(resp.Data["authorize_url"].(string))
	require.NoError(t, err)
	q := u.Query()
	require.Equal(t, "S256", q.Get("code_challenge_method"))
	require.Len(t, q.Get("state"), 43, "256 random bits, base64url")
	require.Equal(t, "auth:user.id:read im:message offline_access", q.Get("scope"))
	require.Equal(t, testRedirect, q.Get("redirect_uri"))
	// Storage holds the state only hashed.
	keys := env.storedKeys(oauthStatePrefix)
	require.Len(t, keys, 1)
	require.NotContains(t, keys[0], q.Get("state"))

	page := env.grantUser("alice")
	require.Contains(t, page, "Alice &lt;Admin&gt;", "names are HTML-escaped")

	read, err := env.read("user-token/" + testAppID + "/alice")
	require.NoError(t, err)
	tok := read.Data["access_token"].(string)
	require.NotEmpty(t, tok)
	require.NotContains(t, page, tok)
	require.False(t, read.Secret.Renewable)
	require.Equal(t, 2*time.Hour-defaultLeaseMargin, read.Secret.TTL)
	require.Equal(t, env.emu.OpenID(testAppID, "alice"), read.Data["open_id"])
	require.Equal(t, "2027-11-27T09:00:00Z", read.Data["grant_expires_at"])

	client, err := lark.New(lark.Config{Brand: lark.BrandFeishu, BaseURL: env.emuURL})
	require.NoError(t, err)
	info, err := client.UserInfo(context.Background(), tok)
	require.NoError(t, err)
	require.Equal(t, read.Data["open_id"], info.OpenID)

	list, err := env.do(logical.ListOperation, "user-token/"+testAppID+"/", nil)
	require.NoError(t, err)
	require.Equal(t, []string{"alice"}, list.Data["keys"])
	status := list.Data["grants"].(map[string]interface{})["alice"].(map[string]interface{})
	require.Equal(t, grantStateOK, status["state"])
	require.Equal(t, false, status["reauth_required"])
	for _, v := range status {
		require.NotContains(t, fmt.Sprint(v), tok)
	}
}

func TestRefreshRotatesOnceAcrossConcurrentReaders(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	env.grantUser("bob")
	first, err := env.read("user-token/" + testAppID + "/bob")
	require.NoError(t, err)

	env.clock.Advance(2*time.Hour - 10*time.Minute) // inside the 25-minute refresh window
	const readers = 200
	var wg sync.WaitGroup
	tokens := make([]string, readers)
	errs := make([]error, readers)
	for i := 0; i < readers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			resp, err := env.read("user-token/" + testAppID + "/bob")
			errs[i] = err
			if err == nil {
				tokens[i] = resp.Data["access_token"].(string)
			}
		}(i)
	}
	wg.Wait()
	for i := range errs {
		require.NoError(t, errs[i])
		require.Equal(t, tokens[0], tokens[i])
	}
	require.NotEqual(t, first.Data["access_token"], tokens[0])
	require.Equal(t, 1, env.emu.Calls(larkemu.EndpointRefresh))
	require.Zero(t, env.emu.Calls(larkemu.EndpointRefreshReuse))

	// 60 days with a read every 6 days: the grant stays usable, one refresh per read due.
	for day := 0; day < 10; day++ {
		env.clock.Advance(6 * 24 * time.Hour)
		_, err := env.read("user-token/" + testAppID + "/bob")
		require.NoError(t, err, "day %d", day*6)
	}
	require.Equal(t, 11, env.emu.Calls(larkemu.EndpointRefresh))
	require.Zero(t, env.emu.Calls(larkemu.EndpointRefreshReuse))
}

func TestLostRefreshAnswerIsDetectedAndReported(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	env.grantUser("carol")
	env.clock.Advance(2 * time.Hour)
	// Lark uses the refresh token, then the answer is lost. The plugin asks once more with the same
	// token, learns it was used, and says so instead of failing silently later.
	require.NoError(t, env.emu.InjectFailure(larkemu.Failure{Endpoint: larkemu.EndpointRefresh, Mode: larkemu.FailLostResponse}))
	_, err := env.read("user-token/" + testAppID + "/carol")
	var coded logical.HTTPCodedError
	require.True(t, errors.As(err, &coded), "%v", err)
	require.Equal(t, http.StatusConflict, coded.Code())
	require.Contains(t, err.Error(), "lost in transit")
	require.Contains(t, err.Error(), "oauth/"+testAppID+"/authorize user=carol")

	// Stored as such: every later read says so, without calling Lark again.
	calls := env.emu.Calls(larkemu.EndpointRefresh)
	_, err = env.read("user-token/" + testAppID + "/carol")
	require.ErrorContains(t, err, "needs re-authorization")
	require.Equal(t, calls, env.emu.Calls(larkemu.EndpointRefresh))
	g := env.storedGrant("carol")
	require.Equal(t, grantStateReauthRequired, g.State)
	require.Equal(t, 20073, g.ReauthCode)
	require.Nil(t, g.InFlight)
}

func TestInterruptedRefreshIsReportedAfterRestart(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	env.grantUser("dave")
	g := env.storedGrant("dave")

	// A previous process recorded a refresh, sent it, and died before storing Lark's answer.
	client, err := lark.New(lark.Config{Brand: lark.BrandFeishu, BaseURL: env.emuURL, AccountsBaseURL: env.emuURL})
	require.NoError(t, err)
	_, err = client.App(lark.AppCredentials{AppID: testAppID, AppSecret: testSecret}).RefreshUserToken(context.Background(), g.RefreshToken)
	require.NoError(t, err)
	g.InFlight = &refreshInFlight{StartedAt: env.clock.Now(), RefreshTokenHash: tokenHash(g.RefreshToken)}
	env.writeGrant(g)

	env.b = env.newBackend(nil) // restart
	_, err = env.read("user-token/" + testAppID + "/dave")
	require.ErrorContains(t, err, "was interrupted after Lark had used the refresh token")
	g = env.storedGrant("dave")
	require.Equal(t, grantStateReauthRequired, g.State)
	require.Equal(t, string(endInterrupted), g.ReauthEnd, "an interrupted refresh is not taken for a storage rollback")
	recs, err := env.b.rollbacks.due(context.Background(), env.storage)
	require.NoError(t, err)
	require.Empty(t, recs)
}

func TestInterruptedRefreshThatNeverReachedLarkRecovers(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	env.grantUser("erin")
	g := env.storedGrant("erin")
	g.InFlight = &refreshInFlight{StartedAt: env.clock.Now(), RefreshTokenHash: tokenHash(g.RefreshToken)}
	env.writeGrant(g)

	// The mark forces a refresh even though the access token is fresh; Lark accepts the token.
	resp, err := env.read("user-token/" + testAppID + "/erin")
	require.NoError(t, err)
	require.NotEqual(t, g.AccessToken, resp.Data["access_token"])
	g = env.storedGrant("erin")
	require.Nil(t, g.InFlight)
	require.Equal(t, grantStateOK, g.State)
}

func TestRotatedTokenSurvivesAFailedStorageWrite(t *testing.T) {
	env := newTestEnv(t)
	flaky := &flakyStorage{Storage: env.storage}
	env.storage = flaky
	env.addOAuthApp()
	env.grantUser("frank")
	env.clock.Advance(2 * time.Hour)

	// The in-flight mark cannot be written: Lark is not called at all.
	flaky.failing = true
	_, err := env.read("user-token/" + testAppID + "/frank")
	require.ErrorContains(t, err, "could not record the refresh first")
	require.Zero(t, env.emu.Calls(larkemu.EndpointRefresh))

	// Storage fails only after Lark rotated the token: the new pair stays in memory ...
	flaky.failing = false
	env.storage = &failAfterStorage{Storage: flaky.Storage, okPuts: 1} // the in-flight mark only
	_, err = env.read("user-token/" + testAppID + "/frank")
	require.ErrorContains(t, err, "kept in memory")
	calls := env.emu.Calls(larkemu.EndpointRefresh)
	require.Equal(t, 1, calls)

	// ... and is stored by the next read, which serves it without spending it again.
	env.storage = flaky.Storage
	resp, err := env.read("user-token/" + testAppID + "/frank")
	require.NoError(t, err)
	require.NotEmpty(t, resp.Data["access_token"])
	require.Equal(t, calls, env.emu.Calls(larkemu.EndpointRefresh))
	require.Zero(t, env.emu.Calls(larkemu.EndpointRefreshReuse))
	env.clock.Advance(2 * time.Hour)
	_, err = env.read("user-token/" + testAppID + "/frank")
	require.NoError(t, err, "the stored refresh token must be the live one")
	require.Zero(t, env.emu.Calls(larkemu.EndpointRefreshReuse))
}

func TestStandbyServesValidTokensAndForwardsRefreshes(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	env.grantUser("gina")
	env.system.ReplicationStateVal = consts.ReplicationPerformanceStandby
	_, err := env.read("user-token/" + testAppID + "/gina")
	require.NoError(t, err, "a valid token is served locally")
	env.clock.Advance(2*time.Hour - 10*time.Minute)
	_, err = env.read("user-token/" + testAppID + "/gina")
	require.NoError(t, err, "a refresh is due, but the token outlives its lease: served locally")
	env.clock.Advance(6 * time.Minute)
	_, err = env.read("user-token/" + testAppID + "/gina")
	require.ErrorIs(t, err, logical.ErrReadOnly, "a due refresh is forwarded, not done here")
	require.Zero(t, env.emu.Calls(larkemu.EndpointRefresh))
}

func TestCallbackBadInputStoresNothing(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	code, state := env.authorize("oauth/"+testAppID+"/authorize", map[string]interface{}{"user": "hank"})
	cases := []struct {
		name   string
		params map[string]interface{}
		want   string
	}{
		{"no state", map[string]interface{}{"code": code}, "no state parameter"},
		{"tampered state", map[string]interface{}{"code": code, "state": state + "x"}, "unknown or already used"},
		{"huge state", map[string]interface{}{"code": code, "state": strings.Repeat("s", 10000)}, "far too long"},
		// A link that cannot succeed leaves the state alone (the next case still finds it); a
		// declined one uses it up.
		{"bad code", map[string]interface{}{"code": "<script>", "state": state}, "no valid authorization code"},
		{"declined", map[string]interface{}{"error": "access_denied", "state": state}, "declined"},
		{"replayed state", map[string]interface{}{"code": code, "state": state}, "unknown or already used"},
	}
	for _, tc := range cases {
		status, page := env.callback(tc.params)
		require.Equal(t, http.StatusBadRequest, status, tc.name)
		require.Contains(t, page, tc.want, tc.name)
		require.NotContains(t, page, "<script>", tc.name)
		require.Empty(t, env.storedKeys(grantStoragePrefix), tc.name)
	}

	// Expired: the state is older than 10 minutes.
	code, state = env.authorize("oauth/"+testAppID+"/authorize", map[string]interface{}{"user": "hank"})
	env.clock.Advance(oauthStateTTL)
	status, page := env.callback(map[string]interface{}{"code": code, "state": state})
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, page, "expired")

	// Declined.
	require.NoError(t, env.emu.SetAuthorizeMode(larkemu.AuthorizeDeny))
	_, state = env.authorize("oauth/"+testAppID+"/authorize", map[string]interface{}{"user": "hank"})
	status, page = env.callback(map[string]interface{}{"error": "access_denied", "state": state})
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, page, "declined")
	require.Empty(t, env.storedKeys(grantStoragePrefix))
	require.Empty(t, env.storedKeys(oauthStatePrefix), "every state was used up")
}

func TestCodeReplayIsRefused(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	code, state := env.authorize("oauth/"+testAppID+"/authorize", map[string]interface{}{"user": "ivy"})
	status, _ := env.callback(map[string]interface{}{"code": code, "state": state})
	require.Equal(t, http.StatusOK, status)
	_, state2 := env.authorize("oauth/"+testAppID+"/authorize", map[string]interface{}{"user": "ivy2"})
	status, page := env.callback(map[string]interface{}{"code": code, "state": state2})
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, page, "refused the authorization code")
	require.Equal(t, []string{"ivy"}, env.storedKeys(grantStoragePrefix+testAppID+"/"))
}

func TestSlotBelongsToOneLarkUser(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "owner"}))
	env.grantUser("shared")
	owner := env.emu.OpenID(testAppID, "owner")

	// Someone else signs in through a link for the same slot: refused, revoked, slot unchanged.
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "intruder"}))
	code, state := env.authorize("oauth/"+testAppID+"/authorize", map[string]interface{}{"user": "shared"})
	status, page := env.callback(map[string]interface{}{"code": code, "state": state})
	require.Equal(t, http.StatusForbidden, status)
	require.Contains(t, page, "different Lark user than this link was made for")
	g := env.storedGrant("shared")
	require.Equal(t, owner, g.OpenID)

	// A binding pins the user of an empty slot.
	env.bindSlot("pinned", "owner")
	code, state = env.authorize("oauth/"+testAppID+"/authorize", map[string]interface{}{"user": "pinned", "expected_open_id": owner})
	status, _ = env.callback(map[string]interface{}{"code": code, "state": state})
	require.Equal(t, http.StatusForbidden, status)
	require.Empty(t, env.storedKeys(grantStoragePrefix+testAppID+"/pinned"))

	// An administrator's replace hands the slot over.
	code, state = env.authorize("oauth/"+testAppID+"/replace/shared", nil)
	status, page = env.callback(map[string]interface{}{"code": code, "state": state})
	require.Equal(t, http.StatusOK, status, page)
	g = env.storedGrant("shared")
	require.Equal(t, env.emu.OpenID(testAppID, "intruder"), g.OpenID)
}

func TestAuthorizeBadInput(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	for _, tc := range []struct {
		path string
		data map[string]interface{}
		want string
	}{
		{"oauth/" + testAppID + "/authorize", map[string]interface{}{"user": "a/b"}, "not a valid slot"},
		{"oauth/" + testAppID + "/authorize", map[string]interface{}{"user": "a..b"}, "not a valid slot"},
		{"oauth/" + testAppID + "/authorize", map[string]interface{}{"user": "a b"}, "not a valid slot"},
		{"oauth/" + testAppID + "/authorize", map[string]interface{}{"user": strings.Repeat("u", 500)}, "too long"},
		{"oauth/" + testAppID + "/authorize", map[string]interface{}{}, "user is required"},
		{"oauth/" + testAppID + "/authorize/alice", map[string]interface{}{"user": "mallory"}, "differ"},
		{"oauth/" + testAppID + "/authorize", map[string]interface{}{"user": "a", "scopes": "a b"}, "not a Lark scope"},
		{"oauth/" + testAppID + "/authorize", map[string]interface{}{"user": "a", "expected_open_id": "x"}, "not a Lark open_id"},
		{"oauth/" + testAppID + "/authorize", map[string]interface{}{"user": "a", "bogus": 1}, "unknown field"},
		{"oauth/cli_unknown/authorize", map[string]interface{}{"user": "a"}, "not configured"},
	} {
		resp, err := env.do(logical.UpdateOperation, tc.path, tc.data)
		if err != nil {
			require.Contains(t, err.Error(), tc.want, tc.path)
		} else {
			require.True(t, resp.IsError(), "%s %v", tc.path, tc.data)
			require.Contains(t, resp.Error().Error(), tc.want)
		}
	}
	require.Empty(t, env.storedKeys(oauthStatePrefix))
}

// startAs starts an authorization of slot as a given requester and runs the browser's part,
// returning the code and state that Lark redirects with.
func (e *testEnv) startAs(slot, entityID, accessor string) (code, state string) {
	e.t.Helper()
	resp, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.UpdateOperation,
		Path: "oauth/" + testAppID + "/authorize", Storage: e.storage, Data: map[string]interface{}{"user": slot},
		EntityID: entityID, ClientTokenAccessor: accessor, MountPoint: "lark/"})
	require.NoError(e.t, err)
	require.False(e.t, resp.IsError(), "%v", resp.Error())
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := client.Get(resp.Data["authorize_url"].(string))
	require.NoError(e.t, err)
	r.Body.Close()
	loc, err := url.Parse(r.Header.Get("Location"))
	require.NoError(e.t, err)
	return loc.Query().Get("code"), loc.Query().Get("state")
}

func (e *testEnv) exchangeAs(code, state, entityID, accessor string) (*logical.Response, error) {
	return e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.UpdateOperation,
		Path: "oauth/" + testAppID + "/exchange", Storage: e.storage, EntityID: entityID, ClientTokenAccessor: accessor,
		MountPoint: "lark/", Data: map[string]interface{}{"code": code, "state": state}})
}

func TestExchangeRequiresTheStartingIdentity(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	env.bindSlot("jay", env.emu.CurrentUser().UserID)
	code, state := env.startAs("jay", "entity-jay", "accessor-jay")
	resp, err := env.exchangeAs(code, state, "entity-mallory", "accessor-mallory")
	require.ErrorContains(t, err, "another Vault identity")
	require.Nil(t, resp)
	require.Empty(t, env.storedKeys(grantStoragePrefix))
}

// Root tokens and tokens from "vault token create" have no entity: the starter is then known by
// its token accessor, and nobody else may complete the authorization (issue 12, defect 1).
func TestExchangeWithoutEntityIsBoundToTheStartingToken(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	env.bindSlot("root-started", env.emu.CurrentUser().UserID)
	code, state := env.startAs("root-started", "", "accessor-root")

	// Another entity-less token, and a userpass user with an entity, are refused.
	_, err := env.exchangeAs(code, state, "", "accessor-other")
	require.ErrorContains(t, err, "another Vault identity")
	require.Empty(t, env.storedKeys(grantStoragePrefix))

	code, state = env.startAs("root-started", "", "accessor-root")
	_, err = env.exchangeAs(code, state, "entity-userpass", "accessor-userpass")
	require.ErrorContains(t, err, "another Vault identity")
	require.Empty(t, env.storedKeys(grantStoragePrefix))

	// The starting token completes it.
	code, state = env.startAs("root-started", "", "accessor-root")
	resp, err := env.exchangeAs(code, state, "", "accessor-root")
	require.NoError(t, err)
	require.False(t, resp.IsError(), "%v", resp.Error())
	require.Equal(t, []string{"root-started"}, env.storedKeys(grantStoragePrefix+testAppID+"/"))
}

func TestImportAndDelete(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	minted, err := env.emu.MintGrant(larkemu.MintRequest{AppID: testAppID, AuthorizedAgo: 300 * 24 * time.Hour})
	require.NoError(t, err)
	authorizedAt := env.clock.Now().Add(-300 * 24 * time.Hour).Format(time.RFC3339)
	resp, err := env.write("user-token/"+testAppID+"/kim", map[string]interface{}{"refresh_token": minted.RefreshToken, "authorized_at": authorizedAt})
	require.NoError(t, err)
	require.False(t, resp.IsError(), "%v", resp.Error())
	require.Equal(t, minted.OpenID, resp.Data["open_id"])
	require.Equal(t, env.clock.Now().Add(65*24*time.Hour).UTC().Format(time.RFC3339), resp.Data["grant_expires_at"])
	for _, v := range resp.Data {
		require.NotContains(t, fmt.Sprint(v), minted.RefreshToken)
	}

	// Garbage and used tokens are refused, nothing stored.
	for _, bad := range []string{"garbage", minted.RefreshToken, "has space"} {
		resp, err = env.write("user-token/"+testAppID+"/lee", map[string]interface{}{"refresh_token": bad})
		require.NoError(t, err)
		require.True(t, resp.IsError(), bad)
		require.NotContains(t, resp.Error().Error(), bad)
	}
	require.Equal(t, []string{"kim"}, env.storedKeys(grantStoragePrefix+testAppID+"/"))

	// Delete forgets the grant and revokes it at Lark.
	_, err = env.do(logical.DeleteOperation, "user-token/"+testAppID+"/kim", nil)
	require.NoError(t, err)
	require.Empty(t, env.storedKeys(grantStoragePrefix+testAppID+"/"))
	grants := env.emu.Grants()
	require.Len(t, grants, 1)
	require.Equal(t, larkemu.GrantRevoked, grants[0].Status)
}

func TestGrantPastTheYearNeedsReauth(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	env.grantUser("old")
	env.clock.Advance(grantMaxAge)
	_, err := env.read("user-token/" + testAppID + "/old")
	var coded logical.HTTPCodedError
	require.True(t, errors.As(err, &coded), "%v", err)
	require.Equal(t, http.StatusConflict, coded.Code())
	require.Contains(t, err.Error(), "365-day")
	list, err := env.do(logical.ListOperation, "user-token/"+testAppID+"/", nil)
	require.NoError(t, err)
	st := list.Data["grants"].(map[string]interface{})["old"].(map[string]interface{})
	require.Equal(t, true, st["reauth_required"])
	require.Equal(t, "the grant reached Lark's 365-day limit after authorization", st["reauth_reason"])
	require.Equal(t, 0, env.emu.Calls(larkemu.EndpointRefresh), "Vault knew without asking Lark")
}

func TestRevokedGrantBecomesReauthRequired(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	env.grantUser("mia")
	_, err := env.emu.RevokeGrants(larkemu.GrantSelector{AppID: testAppID})
	require.NoError(t, err)
	env.clock.Advance(2 * time.Hour)
	_, err = env.read("user-token/" + testAppID + "/mia")
	require.ErrorContains(t, err, "revoked")
	require.ErrorContains(t, err, "needs re-authorization")
}

func TestAppWithGrantsCannotBeDeleted(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	env.grantUser("ned")
	resp, err := env.do(logical.DeleteOperation, "apps/"+testAppID, nil)
	require.NoError(t, err)
	require.Contains(t, resp.Error().Error(), "still holds 1 user grant")
	app, err := env.b.apps.get(context.Background(), env.storage, testAppID)
	require.NoError(t, err)
	require.NotNil(t, app)
}

func TestCallbackRepeatedParameterGetsAPage(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	_, state := env.authorize("oauth/"+testAppID+"/authorize", map[string]interface{}{"user": "rep"})
	status, page := env.callback(map[string]interface{}{"code": "abc", "state": []interface{}{state, "other"}})
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, page, "more than once")
	require.NotContains(t, page, state)
}

func TestExchangeFailureIsAnErrorWithItsReason(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	code, state := env.authorize("oauth/"+testAppID+"/authorize", map[string]interface{}{"user": "x1"})
	status, _ := env.callback(map[string]interface{}{"code": code, "state": state})
	require.Equal(t, http.StatusOK, status)
	_, state2 := env.authorize("oauth/"+testAppID+"/authorize", map[string]interface{}{"user": "x2"})
	_, err := env.do(logical.UpdateOperation, "oauth/"+testAppID+"/exchange", map[string]interface{}{"code": code, "state": state2})
	var coded logical.HTTPCodedError
	require.True(t, errors.As(err, &coded), "%v", err)
	require.Equal(t, http.StatusBadRequest, coded.Code())
	require.Contains(t, err.Error(), "refused the authorization code")
}

// When the same Lark user authorizes again, the old grant's tokens are left to expire: Lark may end
// the whole authorization on a revoke, new tokens included (issue 8, edge 9). Only a slot that
// passes to another user has the old user's tokens revoked.
func TestReauthorizationRevokesOnlyAnotherUsersGrant(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	env.grantUser("again")
	env.grantUser("again")
	statuses := func() map[string]int {
		out := map[string]int{}
		for _, g := range env.emu.Grants() {
			out[g.Status]++
		}
		return out
	}
	require.Equal(t, 0, statuses()[larkemu.GrantRevoked], "%v", statuses())
	resp, err := env.read("user-token/" + testAppID + "/again")
	require.NoError(t, err)
	require.NotEmpty(t, resp.Data["access_token"])

	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "successor"}))
	code, state := env.authorize("oauth/"+testAppID+"/replace/again", nil)
	status, page := env.callback(map[string]interface{}{"code": code, "state": state})
	require.Equal(t, http.StatusOK, status, page)
	require.Equal(t, 1, statuses()[larkemu.GrantRevoked], "the previous user's grant is revoked: %v", statuses())
}
