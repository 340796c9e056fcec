package lark

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lark-vault/vault-plugin-secrets-lark/larkemu"
)

func TestSendText(t *testing.T) {
	emu, _, c := newEmu(t)
	tenant, err := c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret}).TenantAccessToken(t.Context())
	require.NoError(t, err)
	openID := emu.OpenID(emuApp, larkemu.DefaultUserID)
	const text = `Grant "ops" ends in 3 days <re-authorize> & 续期`

	id, err := c.SendText(t.Context(), tenant.TenantAccessToken, openID, text, "reauth-grant-1-critical")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(id, "om_"), id)
	again, err := c.SendText(t.Context(), tenant.TenantAccessToken, openID, text, "reauth-grant-1-critical")
	require.NoError(t, err)
	assert.Equal(t, id, again, "same uuid: Lark answers with the first message")

	msgs := emu.Messages()
	require.Len(t, msgs, 1)
	m := msgs[0]
	assert.Equal(t, id, m.MessageID)
	assert.Equal(t, "open_id", m.ReceiveIDType)
	assert.Equal(t, openID, m.ReceiveID)
	assert.Equal(t, "text", m.MsgType)
	assert.Equal(t, "reauth-grant-1-critical", m.UUID)
	assert.Equal(t, "app", m.SenderType)
	assert.Equal(t, `{"text":"Grant \"ops\" ends in 3 days <re-authorize> & 续期"}`, m.Content)
	var content struct{ Text string }
	require.NoError(t, json.Unmarshal([]byte(m.Content), &content))
	assert.Equal(t, text, content.Text)
}

func TestSendTextErrors(t *testing.T) {
	emu, _, c := newEmu(t)
	tenant, err := c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret}).TenantAccessToken(t.Context())
	require.NoError(t, err)
	openID := emu.OpenID(emuApp, larkemu.DefaultUserID)

	_, err = c.SendText(t.Context(), "t-g1045notarealtoken", openID, "hi", "u1")
	e := asError(t, err)
	assert.Equal(t, KindTenantTokenInvalid, e.Kind, e.Error())
	assert.Equal(t, 99991663, e.Code)
	assert.Equal(t, EndpointSendMessage, e.Endpoint)
	assert.Contains(t, e.Error(), "Lark rejected the tenant access token")

	_, err = c.SendText(t.Context(), tenant.TenantAccessToken, "ou_nobody", "hi", "u2")
	e = asError(t, err)
	assert.Equal(t, KindLarkError, e.Kind)
	assert.Equal(t, 230034, e.Code)
	assert.Equal(t, "receive_id is invalid", e.Msg)
	assert.Empty(t, emu.Messages())
}

func TestSendTextRetriesOnlyWithUUID(t *testing.T) {
	emu, _, c := newEmu(t)
	tenant, err := c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret}).TenantAccessToken(t.Context())
	require.NoError(t, err)
	openID := emu.OpenID(emuApp, larkemu.DefaultUserID)

	require.NoError(t, emu.InjectFailure(larkemu.Failure{Endpoint: larkemu.EndpointMessages, Mode: larkemu.Fail5xx}))
	_, err = c.SendText(t.Context(), tenant.TenantAccessToken, openID, "hi", "with-uuid")
	require.NoError(t, err)
	assert.Equal(t, 2, emu.Calls(larkemu.EndpointMessages))

	require.NoError(t, emu.InjectFailure(larkemu.Failure{Endpoint: larkemu.EndpointMessages, Mode: larkemu.Fail5xx}))
	_, err = c.SendText(t.Context(), tenant.TenantAccessToken, openID, "hi", "")
	e := asError(t, err)
	assert.Equal(t, KindUnavailable, e.Kind)
	assert.Equal(t, 1, e.Attempts, "without a uuid a retry could send twice")
	assert.Equal(t, 3, emu.Calls(larkemu.EndpointMessages))
}

func TestSendTextValidation(t *testing.T) {
	fake := newFake(t, reply(200, `{}`))
	c := newClient(t, fake.srv.URL)
	tests := []struct {
		name, token, openID, text, uuid, want string
	}{
		{"no token", "", "ou_1", "hi", "", "tenant access token"},
		{"token with newline", "t-abc\r\nX: y", "ou_1", "hi", "", "tenant access token"},
		{"no receiver", "t-abc", " ", "hi", "", "open_id"},
		{"no text", "t-abc", "ou_1", "", "", "text is empty"},
		{"text too long", "t-abc", "ou_1", strings.Repeat("x", 150<<10), "", "150 KB"},
		{"uuid too long", "t-abc", "ou_1", "hi", strings.Repeat("u", 51), "uuid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.SendText(t.Context(), tt.token, tt.openID, tt.text, tt.uuid)
			e := asError(t, err)
			assert.Equal(t, KindInvalidRequest, e.Kind)
			assert.Contains(t, e.Error(), tt.want)
		})
	}
	assert.Zero(t, fake.hits())
}

func TestSendTextRequestShapeAndBadAnswers(t *testing.T) {
	fake := newFake(t,
		reply(200, `{"code":0,"msg":"success","data":{}}`),
		reply(400, `{"code":230020,"msg":"rate limit"}`, "X-Ogw-Ratelimit-Reset", "60"),
		reply(400, `{"code":99991664,"msg":"invalid app token"}`))
	c := newClient(t, fake.srv.URL)
	_, err := c.SendText(t.Context(), "t-abc", "ou_1", "hi", "u-1")
	e := asError(t, err)
	assert.Equal(t, KindBadResponse, e.Kind)
	assert.Contains(t, e.Error(), "missing data.message_id")

	r := fake.requests()[0]
	assert.Equal(t, "POST", r.Method)
	assert.Equal(t, "/open-apis/im/v1/messages", r.Path)
	assert.Equal(t, "receive_id_type=open_id", r.Query)
	assert.Equal(t, "Bearer t-abc", r.Header.Get("Authorization"))
	assert.Equal(t, "application/json; charset=utf-8", r.Header.Get("Content-Type"))
	var body map[string]any
	require.NoError(t, json.Unmarshal(r.Body, &body))
	assert.Equal(t, map[string]any{"receive_id": "ou_1", "msg_type": "text", "content": `{"text":"hi"}`, "uuid": "u-1"}, body)

	_, err = c.SendText(t.Context(), "t-abc", "ou_1", "hi", "u-2")
	e = asError(t, err)
	assert.Equal(t, KindRateLimited, e.Kind, "Lark's per-user send limit")
	assert.Equal(t, 230020, e.Code)

	_, err = c.SendText(t.Context(), "t-abc", "ou_1", "hi", "u-3")
	assert.Equal(t, KindTenantTokenInvalid, asError(t, err).Kind)
}

func TestSendCardAndItsRefusal(t *testing.T) {
	emu, _, c := newEmu(t)
	tenant, err := c.App(AppCredentials{AppID: emuApp, AppSecret: emuSecret}).TenantAccessToken(t.Context())
	require.NoError(t, err)
	openID := emu.OpenID(emuApp, larkemu.DefaultUserID)
	card := []byte(`{"header":{"title":{"tag":"plain_text","content":"Grant ends & 续期"}},"elements":[{"tag":"div","text":{"tag":"lark_md","content":"**ends** soon"}}]}`)

	id, err := c.SendCard(t.Context(), tenant.TenantAccessToken, openID, card, "card-1")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(id, "om_"), id)
	msgs := emu.Messages()
	require.Len(t, msgs, 1)
	assert.Equal(t, "interactive", msgs[0].MsgType)
	assert.Equal(t, string(card), msgs[0].Content, "the card goes as written")
	require.NotNil(t, msgs[0].Card)

	// A card Lark cannot build, or a tenant that takes none: KindCardRefused, after one attempt.
	require.NoError(t, emu.SetCardMode(larkemu.CardsRefuse))
	before := emu.Calls(larkemu.EndpointMessages)
	_, err = c.SendCard(t.Context(), tenant.TenantAccessToken, openID, card, "card-2")
	e := asError(t, err)
	assert.Equal(t, KindCardRefused, e.Kind, e.Error())
	assert.Equal(t, 230099, e.Code)
	assert.Equal(t, 1, emu.Calls(larkemu.EndpointMessages)-before, "a refused card is not retried")
	// The same code on a text message is not a card refusal.
	require.NoError(t, emu.InjectFailure(larkemu.Failure{Endpoint: larkemu.EndpointMessages, Mode: larkemu.FailError, Code: 230099}))
	_, err = c.SendText(t.Context(), tenant.TenantAccessToken, openID, "hi", "text-1")
	assert.False(t, IsKind(err, KindCardRefused), "%v", err)

	// Checked before sending: not JSON, or over Lark's 30 KB.
	_, err = c.SendCard(t.Context(), tenant.TenantAccessToken, openID, []byte("{"), "card-3")
	assert.Equal(t, KindInvalidRequest, asError(t, err).Kind)
	big := []byte(`{"elements":[{"tag":"markdown","content":"` + strings.Repeat("x", 31<<10) + `"}]}`)
	_, err = c.SendCard(t.Context(), tenant.TenantAccessToken, openID, big, "card-4")
	assert.Equal(t, KindCardRefused, asError(t, err).Kind)
}
