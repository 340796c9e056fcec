package larksecrets

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lark-vault/vault-plugin-secrets-lark/larkemu"
)

// storeAppWithGrant sets up a store app installed in tenants A and B, with its ticket, an admin
// in tenant A, and a grant of a user of tenant B imported daysAgo into slot "bob".
func storeAppWithGrant(t *testing.T, daysAgo int) (*testEnv, string, string) {
	env := newStoreTestEnv(t)
	env.addStoreApp("", tenantA, tenantB)
	env.giveTicket(storeAppID)
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "admin", TenantKey: tenantA}))
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "bob", TenantKey: tenantB}))
	env.mustWrite("apps/"+storeAppID, map[string]interface{}{"accounts_base_url": env.emuURL})
	env.mustWrite("config", map[string]interface{}{"notify_schedule": "* * * * *"})

	minted, err := env.emu.MintGrant(larkemu.MintRequest{AppID: storeAppID, UserID: "bob", AuthorizedAgo: time.Duration(daysAgo) * 24 * time.Hour})
	require.NoError(t, err)
	env.mustWrite("user-token/"+storeAppID+"/bob", map[string]interface{}{
		"refresh_token": minted.RefreshToken,
		"authorized_at": env.clock.Now().Add(-time.Duration(daysAgo) * 24 * time.Hour).Format(time.RFC3339),
	})
	return env, env.emu.OpenID(storeAppID, "admin"), env.emu.OpenID(storeAppID, "bob")
}

// A store app has no tenant token of its own: each notice must go out with the tenant token of the
// recipient's organisation (the admins' is notify_tenant_key; a user's is the tenant Lark named
// when the grant was made), or Lark refuses the message and the grant's end goes unannounced.
func TestStoreAppNoticesUseEachRecipientsTenant(t *testing.T) {
	env, admin, bob := storeAppWithGrant(t, 362)
	g, err := env.b.grants.get(context.Background(), env.storage, grantID{storeAppID, "bob"})
	require.NoError(t, err)
	require.Equal(t, tenantB, g.TenantKey, "the grant remembers the tenant user_info named")
	env.mustWrite("apps/"+storeAppID, map[string]interface{}{
		"notify_open_ids": admin, "notify_tenant_key": tenantA, "notify_users": true,
	})

	var notified, failed []string
	for i := 0; i < 2; i++ {
		r := env.sweep()
		notified, failed = append(notified, r.Notified...), append(failed, r.NotifyFailed...)
		env.clock.Advance(time.Minute)
	}
	require.Empty(t, failed)
	require.Equal(t, []string{storeAppID + "/bob/critical"}, notified)

	sentIn := map[string]string{}
	for _, m := range env.emu.Messages() {
		require.Equal(t, "app", m.SenderType)
		sentIn[m.ReceiveID] = m.TenantKey
	}
	require.Equal(t, map[string]string{admin: tenantA, bob: tenantB}, sentIn)
}

// refusedWrite writes and returns the message of the 400 the write must get.
func (e *testEnv) refusedWrite(path string, data map[string]interface{}) string {
	e.t.Helper()
	resp, err := e.write(path, data)
	require.NoError(e.t, err)
	require.NotNil(e.t, resp)
	require.True(e.t, resp.IsError(), "write %s %v was accepted", path, data)
	return resp.Error().Error()
}

func TestStoreAppAdminNoticesNeedTheirTenant(t *testing.T) {
	env, admin, _ := storeAppWithGrant(t, 362)

	// Admins without their tenant cannot be reached: refused at the write, nothing changed.
	before := env.storageSnapshot()
	require.Contains(t, env.refusedWrite("apps/"+storeAppID, map[string]interface{}{"notify_open_ids": admin}), "set notify_tenant_key")
	for _, bad := range []string{"not a tenant", "x/y", strings.Repeat("a", 300)} {
		msg := env.refusedWrite("apps/"+storeAppID, map[string]interface{}{"notify_open_ids": admin, "notify_tenant_key": bad})
		require.Contains(t, msg, "notify_tenant_key", "%q", bad)
	}
	require.Equal(t, before, env.storageSnapshot())

	// A self-built app has one tenant: the setting means nothing there and is refused.
	env.addOAuthApp()
	require.Contains(t, env.refusedWrite("apps/"+testAppID, map[string]interface{}{"notify_tenant_key": tenantA}), "is for store apps")

	env.mustWrite("apps/"+storeAppID, map[string]interface{}{"notify_open_ids": admin, "notify_tenant_key": tenantA})
	resp, err := env.read("apps/" + storeAppID)
	require.NoError(t, err)
	require.Equal(t, tenantA, resp.Data["notify_tenant_key"])

	// Emptying notify_tenant_key while admins are listed is refused the same way.
	require.Contains(t, env.refusedWrite("apps/"+storeAppID, map[string]interface{}{"notify_tenant_key": ""}), "set notify_tenant_key")

	// Switching the app to self-built drops the key it no longer means anything for.
	env.mustWrite("apps/"+storeAppID, map[string]interface{}{"app_type": "self_built"})
	resp, err = env.read("apps/" + storeAppID)
	require.NoError(t, err)
	require.Equal(t, "", resp.Data["notify_tenant_key"])
}

// A store-app grant whose user's tenant Vault does not know (stored by an older version) cannot be
// announced to the user: the notice waits, says why, and goes out once a refresh has asked Lark.
func TestStoreAppUserTenantIsLearnedAtTheNextRefresh(t *testing.T) {
	env, _, bob := storeAppWithGrant(t, 362)
	env.mustWrite("apps/"+storeAppID, map[string]interface{}{"notify_users": true})
	id := grantID{storeAppID, "bob"}
	g, err := env.b.grants.get(context.Background(), env.storage, id)
	require.NoError(t, err)
	g.TenantKey = ""
	env.writeGrant(g)
	env.b = env.newBackend(nil) // a new process reads it as stored

	var failed []string
	for i := 0; i < 2; i++ {
		failed = append(failed, env.sweep().NotifyFailed...)
		env.clock.Advance(time.Minute)
	}
	require.Contains(t, failed, storeAppID+"/bob/critical")
	require.Empty(t, env.emu.Messages())
	raw, err := env.storage.Get(context.Background(), noticePrefix+storeAppID+"/bob/critical")
	require.NoError(t, err)
	require.NotNil(t, raw)
	require.Contains(t, string(raw.Value), "does not know the recipient's tenant")

	// The access token ends; the next read refreshes and learns the tenant from Lark.
	env.clock.Advance(3 * time.Hour)
	_, err = env.read("user-token/" + storeAppID + "/bob")
	require.NoError(t, err)
	g, err = env.b.grants.get(context.Background(), env.storage, id)
	require.NoError(t, err)
	require.Equal(t, tenantB, g.TenantKey)

	env.giveTicket(storeAppID) // the one from 3 hours ago has lapsed
	env.sweep()
	msgs := env.emu.Messages()
	require.Len(t, msgs, 1)
	require.Equal(t, bob, msgs[0].ReceiveID)
	require.Equal(t, tenantB, msgs[0].TenantKey)
}
