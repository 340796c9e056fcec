package larksecrets

import (
	"context"
	"net/http"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
	"github.com/lark-vault/vault-plugin-secrets-lark/larkemu"
)

// authorizeAs starts a self-service authorization as an entity.
func (e *testEnv) authorizeAs(slot, entityID string, data map[string]interface{}) (*logical.Response, error) {
	if data == nil {
		data = map[string]interface{}{}
	}
	data["user"] = slot
	return e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.UpdateOperation,
		Path: "oauth/" + testAppID + "/authorize", Storage: e.storage, Data: data,
		EntityID: entityID, ClientTokenAccessor: "accessor-" + entityID, MountPoint: "lark/"})
}

// openAt opens an authorize link at the emulator as whoever is signed in there, and returns the
// callback's status and page.
func (e *testEnv) openAt(resp *logical.Response) (int, string) {
	e.t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := client.Get(resp.Data["authorize_url"].(string))
	require.NoError(e.t, err)
	r.Body.Close()
	loc := r.Header.Get("Location")
	u, err := http.NewRequest(http.MethodGet, loc, nil)
	require.NoError(e.t, err)
	q := u.URL.Query()
	return e.callback(map[string]interface{}{"code": q.Get("code"), "state": q.Get("state")})
}

// Edge 10: a non-admin may not start an authorization for an unbound slot that Vault cannot tie to
// their Lark identity; the error says how to set it up.
func TestUnboundSlotWithoutIdentityIsRefused(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	_, err := env.authorizeAs("alice", "entity-alice", nil)
	require.ErrorContains(t, err, "not bound to a Lark user")
	require.ErrorContains(t, err, "vault write lark/slots/"+testAppID+"/alice open_id=ou_")
	require.ErrorContains(t, err, "identity_metadata_key")
	require.Empty(t, env.storedKeys(oauthStatePrefix))
}

// Edge 10: with the app taking Lark identities from entity metadata, a link forwarded to a
// colleague cannot capture the colleague's grant into the requester's slot.
func TestForwardedLinkCannotCaptureAColleaguesGrant(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	env.mustWrite("apps/"+testAppID, map[string]interface{}{"identity_metadata_key": "lark_union_id"})
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "mallory"}))
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "colleague"}))
	env.system.EntityVal = &logical.Entity{ID: "entity-mallory", Name: "mallory",
		Metadata: map[string]string{"lark_union_id": env.emu.UnionID("mallory")}}

	resp, err := env.authorizeAs("mallory", "entity-mallory", nil)
	require.NoError(t, err)
	require.Equal(t, env.emu.UnionID("mallory"), resp.Data["expected_union_id"])
	// The colleague (signed in at Lark) approves the forwarded link: refused and revoked.
	status, page := env.openAt(resp)
	require.Equal(t, http.StatusForbidden, status)
	require.Contains(t, page, "different Lark user")
	require.Empty(t, env.storedKeys(grantStoragePrefix))
	for _, g := range env.emu.Grants() {
		require.Equal(t, larkemu.GrantRevoked, g.Status)
	}

	// Mallory cannot name the colleague either.
	_, err = env.authorizeAs("mallory", "entity-mallory", map[string]interface{}{"expected_open_id": env.emu.OpenID(testAppID, "colleague")})
	require.ErrorContains(t, err, "may only name the slot's own Lark user")

	// Mallory's own approval works.
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "mallory"}))
	resp, err = env.authorizeAs("mallory", "entity-mallory", nil)
	require.NoError(t, err)
	status, page = env.openAt(resp)
	require.Equal(t, http.StatusOK, status, page)
	require.Equal(t, env.emu.OpenID(testAppID, "mallory"), env.storedGrant("mallory").OpenID)
}

// Edge 10: the identity may come from the alias of a configured auth mount (an OIDC login through
// Feishu), and a requester whose identity disagrees with the slot's owner is refused.
func TestIdentityFromAnAuthMountAlias(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	const accessor = "auth_oidc_1a2b3c4d"
	env.mustWrite("apps/"+testAppID, map[string]interface{}{"identity_alias_mount": accessor})
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "bob"}))
	bob := env.emu.OpenID(testAppID, "bob")
	env.system.EntityVal = &logical.Entity{ID: "entity-bob", Aliases: []*logical.Alias{{MountAccessor: accessor, Name: bob}}}

	resp, err := env.authorizeAs("bob", "entity-bob", nil)
	require.NoError(t, err)
	require.Equal(t, bob, resp.Data["expected_open_id"])
	status, page := env.openAt(resp)
	require.Equal(t, http.StatusOK, status, page)

	// Someone else's entity asking for bob's slot is refused before any link exists.
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "eve"}))
	env.system.EntityVal = &logical.Entity{ID: "entity-eve", Aliases: []*logical.Alias{{MountAccessor: accessor, Name: env.emu.OpenID(testAppID, "eve")}}}
	_, err = env.authorizeAs("bob", "entity-eve", nil)
	require.ErrorContains(t, err, "only the slot's user may authorize it")

	// A malformed value is an error that names the source.
	env.system.EntityVal = &logical.Entity{ID: "entity-x", Aliases: []*logical.Alias{{MountAccessor: accessor, Name: "bob@example.com"}}}
	_, err = env.authorizeAs("new-slot", "entity-x", nil)
	require.ErrorContains(t, err, "neither a Lark open_id")
}

func TestSlotBindingPath(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	for _, data := range []map[string]interface{}{{}, {"open_id": "x"}, {"union_id": "ou_wrongkind"}, {"open_id": "ou_a", "bogus": 1}} {
		resp, err := env.write("slots/"+testAppID+"/s1", data)
		require.NoError(t, err)
		require.True(t, resp.IsError(), "%v", data)
	}
	require.Empty(t, env.storedKeys(slotStoragePrefix))
	env.mustWrite("slots/"+testAppID+"/s1", map[string]interface{}{"open_id": "ou_abc", "union_id": "on_def"})
	resp, err := env.read("slots/" + testAppID + "/s1")
	require.NoError(t, err)
	require.Equal(t, "ou_abc", resp.Data["open_id"])
	require.Equal(t, "on_def", resp.Data["union_id"])

	// A slot holding another user's grant cannot be rebound.
	env.grantUser("held")
	resp, err = env.write("slots/"+testAppID+"/held", map[string]interface{}{"open_id": "ou_someoneelse"})
	require.NoError(t, err)
	require.Contains(t, resp.Error().Error(), "holds a grant of Lark user")
}

func TestIdentityMatching(t *testing.T) {
	tests := []struct {
		want     larkIdentity
		open, on string
		ok       bool
	}{
		{larkIdentity{OpenID: "ou_1"}, "ou_1", "on_9", true},
		{larkIdentity{OpenID: "ou_1"}, "ou_2", "on_9", false},
		{larkIdentity{UnionID: "on_9"}, "ou_1", "on_9", true},
		{larkIdentity{OpenID: "ou_1", UnionID: "on_9"}, "ou_1", "on_8", false},
		{larkIdentity{}, "ou_1", "on_9", false},
	}
	for _, tt := range tests {
		require.Equal(t, tt.ok, tt.want.matches(&lark.UserInfo{OpenID: tt.open, UnionID: tt.on}), "%+v", tt)
	}
	merged, ok := larkIdentity{OpenID: "ou_1"}.merge(larkIdentity{UnionID: "on_9"})
	require.True(t, ok)
	require.Equal(t, larkIdentity{OpenID: "ou_1", UnionID: "on_9"}, merged)
	_, ok = larkIdentity{OpenID: "ou_1"}.merge(larkIdentity{OpenID: "ou_2"})
	require.False(t, ok)
}
