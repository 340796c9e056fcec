package larksecrets

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/require"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark/larkevent"
	"github.com/lark-vault/vault-plugin-secrets-lark/larkemu"
)

// ticketEventJSON is a schema 1.0 app_ticket event as Lark sends it.
func ticketEventJSON(appID, token, ticket, id string, at time.Time) string {
	return fmt.Sprintf(`{"ts":"%d.0000000","uuid":%q,"token":%q,"type":"event_callback","event":{"app_id":%q,"app_ticket":%q,"type":"app_ticket"}}`,
		at.Unix(), id, token, appID, ticket)
}

// revokedEventJSON is a schema 2.0 auth.user_access_token.revoked_v4 event.
func revokedEventJSON(appID, token, id, openID, tokenType string, at time.Time) string {
	return fmt.Sprintf(`{"schema":"2.0","header":{"event_id":%q,"event_type":"auth.user_access_token.revoked_v4","create_time":"%d","token":%q,"app_id":%q,"tenant_key":"736588c92lxf175d"},"event":{"revoke_token_type":%q,"revoke_reason":"Revoked by user action.","open_id":%q,"union_id":""}}`,
		id, at.UnixMilli(), token, appID, tokenType, openID)
}

func TestURLVerificationIsAnsweredPlainAndEncrypted(t *testing.T) {
	for name, key := range map[string]string{"plain": "", "encrypted": storeEncrypt} {
		t.Run(name, func(t *testing.T) {
			env := newStoreTestEnv(t)
			env.addStoreApp(key)
			before := env.storageSnapshot()
			d, err := env.emu.VerifyURL(storeAppID)
			require.NoError(t, err)
			require.Equal(t, key != "", d.Encrypted)
			require.NotNil(t, d.ChallengeAnswered)
			require.True(t, *d.ChallengeAnswered, "%+v", d.Attempts)
			require.Equal(t, http.StatusOK, lastAttempt(t, d).Status)
			require.Equal(t, before, env.storageSnapshot(), "a challenge stores nothing")
			require.Equal(t, uint64(1), env.b.metrics.events.get(larkevent.TypeURLVerification, eventAnswered))
		})
	}
}

func TestRefusedEventsChangeNothing(t *testing.T) {
	env := newStoreTestEnv(t)
	env.addStoreApp(storeEncrypt, tenantA)
	delivered := env.giveTicket(storeAppID)
	now := env.clock.Now()
	good := ticketEventJSON(storeAppID, storeVerify, "forged-ticket-0001", "evt-new-1", now)
	no := false
	raw := func(s string) *string { return &s }

	cases := []struct {
		name   string
		push   larkemu.PushRequest
		status int
		reason string // lark_events_total result
	}{
		{"wrong verification token", larkemu.PushRequest{Event: json.RawMessage(ticketEventJSON(storeAppID, "wrong-token", "t-x", "evt-a", now))}, 400, "bad_token"},
		{"forged encrypt key", larkemu.PushRequest{Event: json.RawMessage(good), EncryptKey: "not-the-key"}, 400, "undecryptable"},
		{"plain body to an encrypting app", larkemu.PushRequest{Event: json.RawMessage(good), Encrypt: &no}, 400, "plaintext_refused"},
		{"another app's event", larkemu.PushRequest{Event: json.RawMessage(ticketEventJSON("cli_someoneelse", storeVerify, "t-x", "evt-b", now))}, 400, "wrong_app"},
		{"not an event", larkemu.PushRequest{Event: json.RawMessage(`{"hello":"world"}`)}, 400, "malformed"},
		{"event without a ticket", larkemu.PushRequest{Event: json.RawMessage(`{"ts":"1","uuid":"u","token":"` + storeVerify + `","type":"event_callback","event":{"app_id":"` + storeAppID + `","type":"app_ticket"}}`)}, 400, "malformed"},
		{"undecryptable raw body", larkemu.PushRequest{RawBody: raw(`{"encrypt":"AAAA"}`)}, 400, "undecryptable"},
		{"oversized", larkemu.PushRequest{Event: json.RawMessage(good), PadBytes: 600 << 10}, 400, "too_large"},
		{"replayed delivery", larkemu.PushRequest{ReplayOf: delivered.Seq}, 400, eventReplayed},
		{"too old", larkemu.PushRequest{Event: json.RawMessage(ticketEventJSON(storeAppID, storeVerify, "t-old", "evt-old", now.Add(-8*time.Hour)))}, 400, eventTooOld},
		{"app_open with an unusable tenant key", larkemu.PushRequest{Event: json.RawMessage(`{"ts":"` + strconv.FormatInt(now.Unix(), 10) + `","uuid":"evt-c","token":"` + storeVerify + `","type":"event_callback","event":{"app_id":"` + storeAppID + `","tenant_key":"a/b","type":"app_open"}}`)}, 400, eventBadInput},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := env.storageSnapshot()
			counted := env.b.metrics.events.get("unknown", c.reason) + env.b.metrics.events.get("app_ticket", c.reason) + env.b.metrics.events.get("app_open", c.reason)
			d, err := env.emu.PushEvent(storeAppID, c.push)
			require.NoError(t, err)
			a := lastAttempt(t, d)
			require.Equal(t, c.status, a.Status, a.Response)
			require.JSONEq(t, `{"error":"event refused"}`, a.Response, "every refusal reads the same")
			require.Equal(t, before, env.storageSnapshot())
			after := env.b.metrics.events.get("unknown", c.reason) + env.b.metrics.events.get("app_ticket", c.reason) + env.b.metrics.events.get("app_open", c.reason)
			require.Equal(t, counted+1, after, "counted as %s", c.reason)
		})
	}

	// The ticket Vault holds is still Lark's, and works.
	resp, err := env.read("tenant-token/" + storeAppID + "/" + tenantA)
	require.NoError(t, err)
	require.True(t, env.emu.TenantTokenValid(resp.Data["access_token"].(string)))
}

func TestEventsForAppsWithoutEventSetupAreRefused(t *testing.T) {
	env := newStoreTestEnv(t)
	env.addApp() // no verification_token
	body, err := larkevent.EncryptBody(storeEncrypt, []byte(ticketEventJSON(testAppID, storeVerify, "t-x", "evt-1", env.clock.Now())))
	require.NoError(t, err)
	var data map[string]interface{}
	require.NoError(t, json.Unmarshal(body, &data))
	for _, path := range []string{"events/" + testAppID, "events/cli_notconfigured", "events/not-an-app-id"} {
		before := env.storageSnapshot()
		resp, err := env.do(logical.UpdateOperation, path, data)
		require.NoError(t, err, path)
		require.Equal(t, http.StatusBadRequest, resp.Data[logical.HTTPStatusCode], path)
		require.JSONEq(t, `{"error":"event refused"}`, string(resp.Data[logical.HTTPRawBody].([]byte)), path)
		require.Equal(t, before, env.storageSnapshot(), path)
	}
	resp, err := env.do(logical.UpdateOperation, "events/"+testAppID, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusBadRequest, resp.Data[logical.HTTPStatusCode])
}

func TestUnknownEventTypesAreAnsweredAndIgnored(t *testing.T) {
	env := newStoreTestEnv(t)
	env.addStoreApp(storeEncrypt)
	before := env.storageSnapshot()
	ev := fmt.Sprintf(`{"schema":"2.0","header":{"event_id":"evt-msg","event_type":"im.message.receive_v1","create_time":"%d","token":%q,"app_id":%q,"tenant_key":"t"},"event":{"message":{"content":"hi"}}}`,
		env.clock.Now().UnixMilli(), storeVerify, storeAppID)
	for i := 0; i < 2; i++ {
		d, err := env.emu.PushEvent(storeAppID, larkemu.PushRequest{Event: json.RawMessage(ev)})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, lastAttempt(t, d).Status)
		require.Equal(t, larkemu.DeliveryDelivered, d.State)
	}
	require.Equal(t, before, env.storageSnapshot())
	require.Equal(t, uint64(2), env.b.metrics.events.get("other", eventIgnored))
	text, err := env.b.metrics.expose(expfmt.NewFormat(expfmt.TypeTextPlain))
	require.NoError(t, err)
	require.Contains(t, string(text), `lark_events_total{result="ignored",type="other"} 2`)
}

func TestEventsOnAStandbyGoToTheActiveNode(t *testing.T) {
	env := newStoreTestEnv(t)
	env.addStoreApp(storeEncrypt)
	env.system.ReplicationStateVal = consts.ReplicationPerformanceStandby
	parsed := func(plain string) map[string]interface{} {
		body, err := larkevent.EncryptBody(storeEncrypt, []byte(plain))
		require.NoError(t, err)
		var m map[string]interface{}
		require.NoError(t, json.Unmarshal(body, &m))
		return m
	}
	_, err := env.do(logical.UpdateOperation, "events/"+storeAppID, parsed(ticketEventJSON(storeAppID, storeVerify, "t-standby", "evt-s", env.clock.Now())))
	require.ErrorIs(t, err, logical.ErrReadOnly)
	st, err := env.read("apps/" + storeAppID + "/ticket")
	require.NoError(t, err)
	require.Equal(t, false, st.Data["ticket_set"])

	// The URL check writes nothing and is answered anywhere.
	resp, err := env.do(logical.UpdateOperation, "events/"+storeAppID, parsed(`{"challenge":"ch-123","token":"`+storeVerify+`","type":"url_verification"}`))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.Data[logical.HTTPStatusCode])
	require.JSONEq(t, `{"challenge":"ch-123"}`, string(resp.Data[logical.HTTPRawBody].([]byte)))
}

func TestLateTicketEventDoesNotReplaceANewerTicket(t *testing.T) {
	env := newStoreTestEnv(t)
	env.addStoreApp(storeEncrypt, tenantA)
	env.giveTicket(storeAppID)
	held, err := env.b.tickets.get(context.Background(), env.storage, storeAppID)
	require.NoError(t, err)
	late := ticketEventJSON(storeAppID, storeVerify, "older-ticket", "evt-late", env.clock.Now().Add(-10*time.Minute))
	d, err := env.emu.PushEvent(storeAppID, larkemu.PushRequest{Event: json.RawMessage(late)})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, lastAttempt(t, d).Status, "authentic: answered 200 so Lark stops")
	now, err := env.b.tickets.load(context.Background(), env.storage, storeAppID)
	require.NoError(t, err)
	require.Equal(t, held.Ticket, now.Ticket)
	require.Equal(t, uint64(1), env.b.metrics.events.get("app_ticket", eventStale))
}

func TestUninstallDropsTheTenantAndItsToken(t *testing.T) {
	env := newStoreTestEnv(t)
	env.addStoreApp(storeEncrypt, tenantA)
	env.giveTicket(storeAppID)
	_, err := env.read("tenant-token/" + storeAppID + "/" + tenantA)
	require.NoError(t, err)
	ev := fmt.Sprintf(`{"ts":"%d","uuid":"evt-un","token":%q,"type":"event_callback","event":{"app_id":%q,"tenant_key":%q,"type":"app_uninstalled"}}`,
		env.clock.Now().Unix(), storeVerify, storeAppID, tenantA)
	d, err := env.emu.PushEvent(storeAppID, larkemu.PushRequest{Event: json.RawMessage(ev)})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, lastAttempt(t, d).Status)
	require.Empty(t, env.storedKeys(tenantStoragePrefix+storeAppID+"/"))
	require.Empty(t, env.storedKeys(tokenStoragePrefix+storeAppID+"/tenant/"))
	require.Nil(t, env.b.tokens.cachedRef(tenantTokenRef(storeAppID, tenantA)))
}

// addEventsToTestApp subscribes the self-built test app to revocation events at the emulator and
// stores its event secrets in Vault.
func (e *testEnv) addEventsToTestApp() {
	e.t.Helper()
	require.NoError(e.t, e.emu.RegisterApp(larkemu.App{ID: testAppID, Secret: testSecret, EventURL: e.eventURL(testAppID),
		VerificationToken: storeVerify, EncryptKey: storeEncrypt, EventTypes: []string{revokeSubEvent}}))
	e.mustWrite("apps/"+testAppID, map[string]interface{}{"verification_token": storeVerify, "encrypt_key": storeEncrypt})
}

func TestRevocationEventEndsTheGrantWithoutSpendingARefreshToken(t *testing.T) {
	env := newStoreTestEnv(t)
	env.addOAuthApp()
	env.addEventsToTestApp()
	env.grantUser("alice")
	refreshes := env.emu.Calls(larkemu.EndpointRefresh)

	n, err := env.emu.RevokeGrants(larkemu.GrantSelector{AppID: testAppID, Reason: larkemu.RevokeReasonAdministrator})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	events := env.emu.Events(testAppID, 0)
	require.Len(t, events, 1)
	require.Equal(t, larkemu.DeliveryDelivered, events[0].State, "%+v", events[0].Attempts)

	g := env.onDisk("alice")
	require.Equal(t, grantStateReauthRequired, g.State)
	require.Equal(t, "revoked", g.ReauthEnd)
	require.Contains(t, g.ReauthReason, "administrator")
	require.Equal(t, refreshes, env.emu.Calls(larkemu.EndpointRefresh), "no refresh token spent")
	require.Contains(t, env.storedKeys(noticePrefix+testAppID+"/alice/"), levelExpired, "the notice is queued")
	require.Equal(t, uint64(1), env.b.metrics.events.get(larkevent.TypeUserTokenRevoked, eventAccepted))

	_, err = env.read("user-token/" + testAppID + "/alice")
	require.Error(t, err)
	require.Equal(t, http.StatusConflict, codedStatus(t, err))
	require.Contains(t, err.Error(), "administrator revoked")
	require.Equal(t, refreshes, env.emu.Calls(larkemu.EndpointRefresh))
}

func TestRevocationOfTheAccessTokenOnlyKeepsTheGrant(t *testing.T) {
	env := newStoreTestEnv(t)
	env.addOAuthApp()
	env.addEventsToTestApp()
	env.grantUser("alice")
	openID := env.onDisk("alice").OpenID
	refreshes := env.emu.Calls(larkemu.EndpointRefresh)

	ev := revokedEventJSON(testAppID, storeVerify, "evt-access", openID, "user_access_token", env.clock.Now())
	d, err := env.emu.PushEvent(testAppID, larkemu.PushRequest{Event: json.RawMessage(ev)})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, lastAttempt(t, d).Status)
	g := env.onDisk("alice")
	require.Equal(t, grantStateOK, g.State)
	require.Empty(t, g.AccessToken)
	require.Equal(t, refreshes, env.emu.Calls(larkemu.EndpointRefresh))

	// The next read refreshes instead of serving the revoked token.
	resp, err := env.read("user-token/" + testAppID + "/alice")
	require.NoError(t, err)
	require.NotEmpty(t, resp.Data["access_token"])
	require.Equal(t, refreshes+1, env.emu.Calls(larkemu.EndpointRefresh))

	// A revocation from before the user's (new) authorization changes nothing.
	env.clock.Advance(time.Minute)
	env.grantUser("alice")
	before := env.onDisk("alice")
	old := revokedEventJSON(testAppID, storeVerify, "evt-old", openID, "user_access_token refresh_token", env.clock.Now().Add(-30*time.Second))
	d, err = env.emu.PushEvent(testAppID, larkemu.PushRequest{Event: json.RawMessage(old)})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, lastAttempt(t, d).Status)
	require.Equal(t, before, env.onDisk("alice"))
}

// A revocation event reads only the grants that may be the user's: those the sweep has read and
// nothing has changed since are told apart in memory. A grant changed elsewhere (Invalidate) is
// read again, so a grant that became the user's is still found.
func TestRevocationEventReadsOnlyTheUsersGrants(t *testing.T) {
	env := newStoreTestEnv(t)
	gets := &countingStorage{Storage: env.storage}
	env.storage = gets
	env.addOAuthApp()
	env.addEventsToTestApp()
	const n = 30
	for i := 0; i < n; i++ {
		user := fmt.Sprintf("u%02d", i)
		require.NoError(t, env.emu.AddUser(larkemu.User{UserID: user, Name: "User " + user}))
		env.importGrant(user, user, 10)
	}
	// A restart: nothing in memory until the sweep has read the grants.
	env.b = env.newBackend(nil)
	env.sweep()

	gets.grantGets()
	_, err := env.emu.RevokeGrants(larkemu.GrantSelector{AppID: testAppID, UserID: "u07"})
	require.NoError(t, err)
	require.LessOrEqual(t, gets.grantGets(), 2, "grants read for one user's revocation (the match, read and then locked)")
	require.Equal(t, grantStateReauthRequired, env.onDisk("u07").State)
	for _, other := range []string{"u06", "u08"} {
		require.Equal(t, grantStateOK, env.onDisk(other).State)
	}

	// Another node moves slot u09 to the user of u11 (as a re-authorization there would): only
	// Invalidate tells this node, and u11's revocation must end both grants.
	moved := env.onDisk("u09")
	moved.OpenID, moved.UnionID = env.onDisk("u11").OpenID, env.onDisk("u11").UnionID
	env.writeGrant(moved)
	env.b.invalidate(context.Background(), moved.id().storageKey())
	gets.grantGets()
	_, err = env.emu.RevokeGrants(larkemu.GrantSelector{AppID: testAppID, UserID: "u11"})
	require.NoError(t, err)
	require.LessOrEqual(t, gets.grantGets(), 4, "u11 and u09, each read and then locked")
	require.Equal(t, grantStateReauthRequired, env.onDisk("u11").State)
	require.Equal(t, grantStateReauthRequired, env.onDisk("u09").State, "a grant changed on another node was not matched")
}

// Deleting an app and configuring it again with the same keys must not reopen Lark's redelivery
// window: an event handled before the delete is still a replay afterwards, until its id ages out
// (eventMemory); then the sweep forgets it like any other.
func TestEventIDsOutliveTheAppUntilTheyAgeOut(t *testing.T) {
	env := newStoreTestEnv(t)
	env.addStoreApp(storeEncrypt, tenantA)
	delivered := env.giveTicket(storeAppID)
	require.NotEmpty(t, env.storedKeys(eventIDPrefix+storeAppID+"/"))

	_, err := env.do(logical.DeleteOperation, "apps/"+storeAppID, nil)
	require.NoError(t, err)
	env.mustWrite("apps/"+storeAppID, map[string]interface{}{
		"app_secret": storeSecret, "base_url": env.emuURL, "app_type": "store",
		"verification_token": storeVerify, "encrypt_key": storeEncrypt,
	})

	before := env.storageSnapshot()
	d, err := env.emu.PushEvent(storeAppID, larkemu.PushRequest{ReplayOf: delivered.Seq})
	require.NoError(t, err)
	a := lastAttempt(t, d)
	require.Equal(t, http.StatusBadRequest, a.Status, a.Response)
	require.JSONEq(t, `{"error":"event refused"}`, a.Response)
	require.Equal(t, before, env.storageSnapshot(), "the replayed ticket was taken")
	require.Equal(t, uint64(1), env.b.metrics.events.get(larkevent.TypeAppTicket, eventReplayed))

	// Still pruned: once the window has passed, the sweep forgets the ids, the deleted app's too.
	_, err = env.do(logical.DeleteOperation, "apps/"+storeAppID, nil)
	require.NoError(t, err)
	env.clock.Advance(eventMemory - time.Minute)
	env.sweep()
	require.NotEmpty(t, env.storedKeys(eventIDPrefix+storeAppID+"/"), "forgotten before its window passed")
	env.clock.Advance(2 * time.Minute)
	r := env.sweep()
	require.Equal(t, 1, r.EventIDsDropped)
	require.Empty(t, env.storedKeys(eventIDPrefix))
}

// Every refusal of the unauthenticated events path reads the same, whatever failed and whether or
// not the app id is configured: otherwise a stranger could probe which app ids Vault holds (an
// oversized body was answered 413 for a configured app and 400 for any other).
func TestEventRefusalsDoNotTellConfiguredAppsApart(t *testing.T) {
	env := newStoreTestEnv(t)
	env.addStoreApp(storeEncrypt, tenantA)
	env.addApp() // self-built, no verification_token
	now := env.clock.Now()
	good := ticketEventJSON(storeAppID, storeVerify, "forged-ticket-0001", "evt-probe", now)
	encrypted := func(key, plain string) string {
		body, err := larkevent.EncryptBody(key, []byte(plain))
		require.NoError(t, err)
		return string(body)
	}
	padded := strings.Replace(good, `"type":"event_callback"`, `"padding":"`+strings.Repeat("x", 600<<10)+`","type":"event_callback"`, 1)
	causes := map[string]string{
		"oversized, encrypted":   encrypted(storeEncrypt, padded),
		"oversized, plain":       padded,
		"not an event":           `{"hello":"world"}`,
		"empty object":           `{}`,
		"no body":                ``,
		"undecryptable":          `{"encrypt":"AAAA"}`,
		"forged encrypt key":     encrypted("not-the-key", good),
		"plain body":             good,
		"wrong token":            encrypted(storeEncrypt, ticketEventJSON(storeAppID, "wrong-token", "t-x", "evt-a", now)),
		"another app's event":    encrypted(storeEncrypt, ticketEventJSON("cli_someoneelse", storeVerify, "t-x", "evt-b", now)),
		"too old":                encrypted(storeEncrypt, ticketEventJSON(storeAppID, storeVerify, "t-old", "evt-old", now.Add(-8*time.Hour))),
		"challenge, wrong token": encrypted(storeEncrypt, `{"challenge":"c","token":"wrong","type":"url_verification"}`),
	}
	apps := map[string]string{
		"configured":                 storeAppID,
		"unknown":                    "cli_notconfigured0",
		"not an app id":              "not-an-app-id",
		"without verification_token": testAppID,
	}
	type answer struct {
		Status      int
		ContentType string
		Body        string
	}
	post := func(appID, body string) answer {
		resp, err := http.Post(env.eventURL(appID), "application/json", strings.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return answer{resp.StatusCode, resp.Header.Get("Content-Type"), string(b)}
	}
	want := answer{http.StatusBadRequest, "application/json", `{"error":"event refused"}`}
	for cause, body := range causes {
		for kind, appID := range apps {
			t.Run(cause+"/"+kind, func(t *testing.T) {
				before := env.storageSnapshot()
				require.Equal(t, want, post(appID, body))
				require.Equal(t, before, env.storageSnapshot())
			})
		}
	}
}
