package larksecrets

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/lark-vault/vault-plugin-secrets-lark/larkemu"
)

// Store (marketplace) apps: the app_ticket, per-tenant tokens, the tenant list.

func TestStoreAppTokenWaitsForTicketThenUsesTheEncryptedEvent(t *testing.T) {
	env := newStoreTestEnv(t)
	env.addStoreApp(storeEncrypt)

	// No ticket yet: a clear 503 at once, and Lark is asked to push one.
	_, err := env.read("app-token/" + storeAppID)
	require.Error(t, err)
	require.Equal(t, http.StatusServiceUnavailable, codedStatus(t, err))
	require.Contains(t, err.Error(), "waiting for Lark's app_ticket")
	require.Contains(t, err.Error(), "Lark was asked to resend it")
	require.Equal(t, 1, env.emu.Calls(larkemu.EndpointAppTicketResend))

	// Lark pushes the ticket (encrypted) to events/<app_id>; Vault stores it.
	// The emulator files the delivery once Vault's answer is back, just after Vault stored the ticket.
	require.Eventually(t, func() bool {
		d := env.emu.Events(storeAppID, 0)
		return len(d) == 1 && d[0].State != larkemu.DeliveryPending
	}, 10*time.Second, 20*time.Millisecond)
	deliveries := env.emu.Events(storeAppID, 0)
	require.Len(t, deliveries, 1)
	require.True(t, deliveries[0].Encrypted)
	require.Equal(t, larkemu.DeliveryDelivered, deliveries[0].State)
	st, err := env.read("apps/" + storeAppID + "/ticket")
	require.NoError(t, err)
	require.Equal(t, "event", st.Data["source"])
	require.Equal(t, secretFingerprint(env.emu.Tickets(storeAppID)[0].Ticket), st.Data["ticket_fingerprint"])

	resp, err := env.read("app-token/" + storeAppID)
	require.NoError(t, err)
	tok := resp.Data["access_token"].(string)
	owner, ok := env.emu.StoreAppTokenApp(tok)
	require.True(t, ok)
	require.Equal(t, storeAppID, owner)
	require.Equal(t, 1, env.emu.Calls(larkemu.EndpointStoreAppAccessToken))
	require.Equal(t, uint64(1), env.b.metrics.events.get("app_ticket", eventAccepted))
}

func TestStoreResendIsAskedAtMostOncePerMinute(t *testing.T) {
	env := newStoreTestEnv(t)
	// The app has no event URL at Lark: resends push nowhere, so the plugin keeps waiting.
	require.NoError(t, env.emu.RegisterApp(larkemu.App{ID: storeAppID, Secret: storeSecret, AppType: larkemu.AppTypeStore}))
	env.mustWrite("apps/"+storeAppID, map[string]interface{}{"app_secret": storeSecret, "base_url": env.emuURL, "app_type": "store", "verification_token": storeVerify})

	for i := 0; i < 5; i++ {
		_, err := env.read("app-token/" + storeAppID)
		require.Equal(t, http.StatusServiceUnavailable, codedStatus(t, err))
	}
	require.Equal(t, 1, env.emu.Calls(larkemu.EndpointAppTicketResend))
	env.clock.Advance(59 * time.Second)
	_, err := env.read("app-token/" + storeAppID)
	require.Equal(t, http.StatusServiceUnavailable, codedStatus(t, err))
	require.Equal(t, 1, env.emu.Calls(larkemu.EndpointAppTicketResend))
	env.clock.Advance(time.Second)
	_, err = env.read("app-token/" + storeAppID)
	require.Equal(t, http.StatusServiceUnavailable, codedStatus(t, err))
	require.Equal(t, 2, env.emu.Calls(larkemu.EndpointAppTicketResend))
	require.Zero(t, env.emu.Calls(larkemu.EndpointStoreAppAccessToken), "no ticket, no app token call")

	// 1,000 readers at once still ask once.
	env.clock.Advance(time.Minute)
	var wg sync.WaitGroup
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = env.read("app-token/" + storeAppID)
		}()
	}
	wg.Wait()
	require.Equal(t, 3, env.emu.Calls(larkemu.EndpointAppTicketResend))
}

func TestStoreLostTicketIsRecoveredByResend(t *testing.T) {
	env := newStoreTestEnv(t)
	env.addStoreApp(storeEncrypt, tenantA)
	env.giveTicket(storeAppID)
	_, err := env.read("tenant-token/" + storeAppID + "/" + tenantA)
	require.NoError(t, err)

	// Three hours on, Lark accepts neither the held ticket nor the cached tokens.
	env.clock.Advance(3 * time.Hour)
	_, err = env.read("app-token/" + storeAppID)
	require.Equal(t, http.StatusServiceUnavailable, codedStatus(t, err))
	require.Contains(t, err.Error(), "Lark no longer accepts the held app_ticket")
	require.Equal(t, 1, env.emu.Calls(larkemu.EndpointAppTicketResend))

	require.Eventually(t, func() bool {
		_, err := env.read("app-token/" + storeAppID)
		return err == nil
	}, 10*time.Second, 20*time.Millisecond)
	resp, err := env.read("tenant-token/" + storeAppID + "/" + tenantA)
	require.NoError(t, err)
	require.True(t, env.emu.TenantTokenValid(resp.Data["access_token"].(string)))
	require.Equal(t, 1, env.emu.Calls(larkemu.EndpointAppTicketResend))
}

func TestStoreTenantTokensAreCachedPerTenantAndSingleFlight(t *testing.T) {
	env := newStoreTestEnv(t)
	env.addStoreApp(storeEncrypt, tenantA, tenantB)
	env.giveTicket(storeAppID)

	const readers = 1000
	var wg sync.WaitGroup
	tokens := make([]string, readers)
	errs := make([]error, readers)
	start := make(chan struct{})
	for i := 0; i < readers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			resp, err := env.read("tenant-token/" + storeAppID + "/" + tenantA)
			errs[i] = err
			if err == nil {
				tokens[i] = resp.Data["access_token"].(string)
			}
		}(i)
	}
	close(start)
	wg.Wait()
	for i := range errs {
		require.NoError(t, errs[i])
		require.Equal(t, tokens[0], tokens[i])
	}
	require.True(t, env.emu.TenantTokenValid(tokens[0]))
	calls := func() map[string]int {
		out := map[string]int{}
		for _, ti := range env.emu.Tenants(storeAppID) {
			out[ti.TenantKey] = ti.TenantAccessTokenCalls
		}
		return out
	}
	require.Equal(t, map[string]int{tenantA: 1, tenantB: 0}, calls())
	require.Equal(t, 1, env.emu.Calls(larkemu.EndpointStoreAppAccessToken))

	b, err := env.read("tenant-token/" + storeAppID + "/" + tenantB)
	require.NoError(t, err)
	require.NotEqual(t, tokens[0], b.Data["access_token"])
	require.Equal(t, tenantB, b.Data["tenant_key"])
	require.Equal(t, "tenant_access_token", b.Data["token_type"])
	require.Equal(t, 2*time.Hour-defaultLeaseMargin, b.Secret.TTL)
	require.Equal(t, map[string]int{tenantA: 1, tenantB: 1}, calls())
	require.Equal(t, 1, env.emu.Calls(larkemu.EndpointStoreAppAccessToken), "one app token serves every tenant")

	// Stored per tenant; a restarted backend serves both from storage.
	require.ElementsMatch(t, []string{tenantA, tenantB}, env.storedKeys(tokenStoragePrefix+storeAppID+"/tenant/"))
	require.Len(t, env.emu.Tenants(storeAppID), 2)
}

func TestStoreUnknownTenantIsRefusedByName(t *testing.T) {
	env := newStoreTestEnv(t)
	env.addStoreApp(storeEncrypt, tenantA)
	env.giveTicket(storeAppID)
	before := env.storageSnapshot()
	_, err := env.read("tenant-token/" + storeAppID + "/nosuchtenant")
	require.Error(t, err)
	require.Equal(t, http.StatusBadRequest, codedStatus(t, err))
	require.Contains(t, err.Error(), `tenant "nosuchtenant"`)
	after := env.storageSnapshot()
	// Only the app token (fetched to ask) may have been added.
	delete(after, tokenRef{App: storeAppID, Kind: kindApp}.storageKey())
	require.Equal(t, sortedKeys(before), sortedKeys(after))
	require.NotContains(t, env.b.tokens.usedRefs(), tenantTokenRef(storeAppID, "nosuchtenant"), "a made-up tenant leaves nothing in memory")

	env.addApp()
	for path, want := range map[string]string{
		"tenant-token/" + storeAppID + "/bad key":   "not a Lark tenant key",
		"tenant-token/" + storeAppID:                "is a store app",
		"tenant-token/" + testAppID + "/" + tenantA: "is self-built",
		"tenant-token/cli_nothere/" + tenantA:       "not configured",
	} {
		resp, err := env.read(path)
		if err == nil {
			require.True(t, resp.IsError(), path)
			err = resp.Error()
		}
		require.Contains(t, err.Error(), want, path)
	}
}

func TestStoreRejectedAppTokenIsFetchedAgainOnce(t *testing.T) {
	env := newStoreTestEnv(t)
	env.addStoreApp(storeEncrypt, tenantA)
	env.giveTicket(storeAppID)
	first, err := env.read("app-token/" + storeAppID)
	require.NoError(t, err)
	require.NoError(t, env.emu.InjectFailure(larkemu.Failure{Endpoint: larkemu.EndpointStoreTenantAccessToken, Mode: larkemu.FailError, Code: 99991664}))
	resp, err := env.read("tenant-token/" + storeAppID + "/" + tenantA)
	require.NoError(t, err)
	require.True(t, env.emu.TenantTokenValid(resp.Data["access_token"].(string)))
	require.Equal(t, 2, env.emu.Calls(larkemu.EndpointStoreAppAccessToken), "the rejected app token was fetched again")
	require.Equal(t, 2, env.emu.Calls(larkemu.EndpointStoreTenantAccessToken))
	again, err := env.read("app-token/" + storeAppID)
	require.NoError(t, err)
	require.Equal(t, first.Data["access_token"], again.Data["access_token"], "Lark hands out the same current token again")

	// Refused twice: the reader gets the failure, and only one extra app token call was made.
	require.NoError(t, env.emu.InjectFailure(larkemu.Failure{Endpoint: larkemu.EndpointStoreTenantAccessToken, Mode: larkemu.FailError, Code: 99991664, Count: 2}))
	_, err = env.read("tenant-token/" + storeAppID + "/" + tenantB)
	require.Error(t, err)
	require.Equal(t, 3, env.emu.Calls(larkemu.EndpointStoreAppAccessToken))
}

func TestStoreTenantsListFromAppOpenAndReads(t *testing.T) {
	env := newStoreTestEnv(t)
	env.addStoreApp(storeEncrypt, tenantB) // tenantB installed without an event
	env.giveTicket(storeAppID)
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "installer"}))
	isNew, d, err := env.emu.InstallTenant(larkemu.InstallRequest{AppID: storeAppID, TenantKey: tenantA, InstallerUserID: "installer"})
	require.NoError(t, err)
	require.True(t, isNew)
	require.Equal(t, larkemu.DeliveryDelivered, d.State, "%+v", d.Attempts)

	_, err = env.read("tenant-token/" + storeAppID + "/" + tenantB)
	require.NoError(t, err)
	resp, err := env.do(logical.ListOperation, "tenants/"+storeAppID+"/", nil)
	require.NoError(t, err)
	require.Equal(t, []string{tenantA, tenantB}, resp.Data["keys"])
	info := resp.Data["key_info"].(map[string]interface{})
	a := info[tenantA].(map[string]interface{})
	require.Equal(t, "app_open", a["source"])
	require.Equal(t, env.emu.OpenID(storeAppID, "installer"), a["installer_open_id"])
	require.Equal(t, "read", info[tenantB].(map[string]interface{})["source"])

	// The same app_open delivered again is a replay: refused, nothing changes.
	before := env.storageSnapshot()
	replay, err := env.emu.PushEvent(storeAppID, larkemu.PushRequest{ReplayOf: d.Seq})
	require.NoError(t, err)
	require.Equal(t, http.StatusBadRequest, lastAttempt(t, replay).Status)
	require.Equal(t, before, env.storageSnapshot())
}

func TestStoreTicketForwardedByAnOperator(t *testing.T) {
	env := newStoreTestEnv(t)
	// Lark cannot reach Vault: no event URL; the organisation's own receiver forwards the ticket.
	require.NoError(t, env.emu.RegisterApp(larkemu.App{ID: storeAppID, Secret: storeSecret, AppType: larkemu.AppTypeStore, Tenants: []string{tenantA}}))
	resp, err := env.write("apps/"+storeAppID, map[string]interface{}{"app_secret": storeSecret, "base_url": env.emuURL, "app_type": "store"})
	require.NoError(t, err)
	require.Len(t, resp.Warnings, 1)
	require.Contains(t, resp.Warnings[0], "apps/"+storeAppID+"/ticket")

	ticket, d, err := env.emu.PushAppTicket(storeAppID)
	require.NoError(t, err)
	require.Nil(t, d)
	for _, bad := range []string{"", "with space", strings.Repeat("x", maxTicketBytes+1), "new\nline"} {
		before := env.storageSnapshot()
		resp, err := env.write("apps/"+storeAppID+"/ticket", map[string]interface{}{"app_ticket": bad})
		require.NoError(t, err)
		require.True(t, resp.IsError(), "%q", bad)
		require.Equal(t, before, env.storageSnapshot())
	}
	resp, err = env.write("apps/"+storeAppID+"/ticket", map[string]interface{}{"app_ticket": ticket.Ticket})
	require.NoError(t, err)
	require.False(t, resp.IsError(), "%v", resp.Error())
	require.Equal(t, "write", resp.Data["source"])
	require.NotContains(t, resp.Data, "app_ticket")
	tok, err := env.read("tenant-token/" + storeAppID + "/" + tenantA)
	require.NoError(t, err)
	require.True(t, env.emu.TenantTokenValid(tok.Data["access_token"].(string)))

	// Only store apps hold tickets; the ticket never shows.
	env.addApp()
	resp, err = env.write("apps/"+testAppID+"/ticket", map[string]interface{}{"app_ticket": ticket.Ticket})
	require.NoError(t, err)
	require.True(t, resp.IsError())
	require.Contains(t, resp.Error().Error(), "self-built")
	st, err := env.read("apps/" + storeAppID + "/ticket")
	require.NoError(t, err)
	require.NotContains(t, st.Data, "app_ticket")
	require.NotContains(t, st.Data, "ticket")
}

func TestStoreSweepKeepsOnlyReadTenantTokensWarm(t *testing.T) {
	env := newStoreTestEnv(t)
	env.addStoreApp(storeEncrypt, tenantA, tenantB)
	env.giveTicket(storeAppID)
	read := func(tk string) string {
		resp, err := env.read("tenant-token/" + storeAppID + "/" + tk)
		require.NoError(t, err)
		return resp.Data["access_token"].(string)
	}
	a1, b1 := read(tenantA), read(tenantB)
	calls := func(tk string) int {
		for _, ti := range env.emu.Tenants(storeAppID) {
			if ti.TenantKey == tk {
				return ti.TenantAccessTokenCalls
			}
		}
		return -1
	}

	// Both were read during their life: at the refresh point the sweep renews both.
	env.clock.Advance(95 * time.Minute)
	r := env.sweep()
	require.Contains(t, r.AppTokensRefreshed, storeAppID+"/tenant/"+tenantA)
	require.Contains(t, r.AppTokensRefreshed, storeAppID+"/tenant/"+tenantB)
	require.Equal(t, 2, calls(tenantA))
	require.Equal(t, 2, calls(tenantB))
	a2 := read(tenantA)
	require.NotEqual(t, a1, a2)

	// Only tenant A is read in the new life: only A is renewed next time; B costs Lark nothing.
	env.clock.Advance(95 * time.Minute)
	r = env.sweep()
	require.Contains(t, r.AppTokensRefreshed, storeAppID+"/tenant/"+tenantA)
	require.NotContains(t, r.AppTokensRefreshed, storeAppID+"/tenant/"+tenantB)
	require.Equal(t, 3, calls(tenantA))
	require.Equal(t, 2, calls(tenantB))
	require.NotEqual(t, b1, read(tenantB), "B is fetched by its next reader")
}

func TestStoreAppSettings(t *testing.T) {
	env := newStoreTestEnv(t)
	env.addStoreApp(storeEncrypt)
	resp, err := env.read("apps/" + storeAppID)
	require.NoError(t, err)
	require.Equal(t, "store", resp.Data["app_type"])
	require.Equal(t, true, resp.Data["verification_token_set"])
	require.Equal(t, secretFingerprint(storeVerify), resp.Data["verification_token_fingerprint"])
	require.Equal(t, true, resp.Data["encrypt_key_set"])
	require.Equal(t, secretFingerprint(storeEncrypt), resp.Data["encrypt_key_fingerprint"])
	require.Equal(t, "/v1/lark/events/"+storeAppID, resp.Data["events_path"])
	for k, v := range resp.Data {
		if s, ok := v.(string); ok {
			require.NotContains(t, s, storeVerify, k)
			require.NotContains(t, s, storeEncrypt, k)
		}
	}

	// Bad values are refused and change nothing.
	for _, bad := range []map[string]interface{}{
		{"app_type": "marketplace"},
		{"tenant_token_endpoint": "v4"},
		{"tenant_token_endpoint": "v3"}, // store apps have tokens per tenant
		{"verification_token": "has space"},
		{"encrypt_key": strings.Repeat("k", maxEventSecretBytes+1)},
		{"encrypt_key": "tab\there"},
	} {
		before := env.storageSnapshot()
		resp, err := env.write("apps/"+storeAppID, bad)
		require.NoError(t, err)
		require.True(t, resp.IsError(), "%v", bad)
		require.Equal(t, before, env.storageSnapshot(), "%v", bad)
	}

	// Without an encrypt key, the operator is warned.
	resp, err = env.write("apps/"+storeAppID, map[string]interface{}{"encrypt_key": ""})
	require.NoError(t, err)
	require.Len(t, resp.Warnings, 1)
	require.Contains(t, resp.Warnings[0], "clear text")
}

func TestChangingAppTypeOrTenantEndpointDropsCachedTokens(t *testing.T) {
	env := newStoreTestEnv(t)
	env.addOAuthApp()
	_, err := env.read("tenant-token/" + testAppID)
	require.NoError(t, err)
	_, err = env.read("app-token/" + testAppID)
	require.NoError(t, err)
	require.NotEmpty(t, env.storedKeys(tokenStoragePrefix+testAppID+"/"))

	env.mustWrite("apps/"+testAppID, map[string]interface{}{"tenant_token_endpoint": "v3"})
	require.Empty(t, env.storedKeys(tokenStoragePrefix+testAppID+"/"))
	require.Nil(t, env.b.tokens.cached(testAppID, kindTenant))

	// Store → per-tenant tokens gone too when it turns back into a self-built app.
	env.addStoreApp(storeEncrypt, tenantA)
	env.giveTicket(storeAppID)
	_, err = env.read("tenant-token/" + storeAppID + "/" + tenantA)
	require.NoError(t, err)
	env.mustWrite("apps/"+storeAppID, map[string]interface{}{"app_type": "self_built"})
	require.Empty(t, env.storedKeys(tokenStoragePrefix+storeAppID+"/"))
	require.Empty(t, env.storedKeys(tokenStoragePrefix+storeAppID+"/tenant/"))
	require.Nil(t, env.b.tokens.cachedRef(tenantTokenRef(storeAppID, tenantA)))
}

func TestV3ClientCredentialsTenantTokenForSelfBuiltApp(t *testing.T) {
	env := newStoreTestEnv(t)
	env.addOAuthApp()
	env.mustWrite("apps/"+testAppID, map[string]interface{}{"tenant_token_endpoint": "v3"})
	resp, err := env.read("tenant-token/" + testAppID)
	require.NoError(t, err)
	tok := resp.Data["access_token"].(string)
	require.True(t, strings.HasPrefix(tok, "eyJ"), "a JWT")
	require.Greater(t, len(tok), 1000)
	require.True(t, env.emu.TenantTokenValid(tok))
	require.Equal(t, 1, env.emu.Calls(larkemu.EndpointClientCredentials))
	require.Zero(t, env.emu.Calls(larkemu.EndpointTenantAccessToken))
	again, err := env.read("tenant-token/" + testAppID)
	require.NoError(t, err)
	require.Equal(t, tok, again.Data["access_token"])
	require.Equal(t, 1, env.emu.Calls(larkemu.EndpointClientCredentials))
	read, err := env.read("apps/" + testAppID)
	require.NoError(t, err)
	require.Equal(t, "v3", read.Data["tenant_token_endpoint"])
}
