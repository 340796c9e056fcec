package larkemu

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func sendURL(ts string, idType string) string {
	u := ts + PathMessages
	if idType != "" {
		u += "?receive_id_type=" + idType
	}
	return u
}

func textBody(t *testing.T, receiver, text, uuid string) string {
	t.Helper()
	content := mustJSON(t, map[string]string{"text": text})
	m := map[string]string{"receive_id": receiver, "msg_type": "text", "content": content}
	if uuid != "" {
		m["uuid"] = uuid
	}
	return mustJSON(t, m)
}

func TestSendMessage(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	tok := fetchToken(t, ts, PathTenantAccessToken).TenantAccessToken
	openID := s.OpenID(testApp, DefaultUserID)

	r := postJSON(t, sendURL(ts.URL, "open_id"), textBody(t, openID, "Lease renewed", ""), bearer(tok)...)
	expectEqual(t, "status", r.status, 200)
	var reply struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
		Data struct {
			MessageID  string `json:"message_id"`
			MsgType    string `json:"msg_type"`
			CreateTime string `json:"create_time"`
			ChatID     string `json:"chat_id"`
			Deleted    *bool  `json:"deleted"`
			Sender     struct {
				ID, IDType, SenderType, TenantKey string
			} `json:"sender"`
			Body struct {
				Content string `json:"content"`
			} `json:"body"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(r.body), &reply); err != nil {
		t.Fatal(err)
	}
	expectEqual(t, "code", reply.Code, 0)
	expectEqual(t, "msg", reply.Msg, "success")
	if !strings.HasPrefix(reply.Data.MessageID, "om_") || !strings.HasPrefix(reply.Data.ChatID, "oc_") {
		t.Errorf("ids %q %q", reply.Data.MessageID, reply.Data.ChatID)
	}
	expectEqual(t, "create_time", reply.Data.CreateTime, "1772366400000")
	expectEqual(t, "sender", reply.Data.Sender.ID, testApp)
	expectEqual(t, "content echoed", reply.Data.Body.Content, `{"text":"Lease renewed"}`)
	if reply.Data.Deleted == nil || *reply.Data.Deleted {
		t.Error("deleted must be present and false")
	}

	msgs := s.Messages()
	if len(msgs) != 1 {
		t.Fatalf("recorded %d messages", len(msgs))
	}
	m := msgs[0]
	expectEqual(t, "recorded id", m.MessageID, reply.Data.MessageID)
	expectEqual(t, "recorded user", m.UserID, DefaultUserID)
	expectEqual(t, "recorded content", m.Content, `{"text":"Lease renewed"}`)
	expectEqual(t, "recorded sender type", m.SenderType, "app")
	expectEqual(t, "recorded time", m.CreateTime, epoch)

	// Other receiver id types reach the same user.
	for idType, id := range map[string]string{"union_id": s.UnionID(DefaultUserID), "user_id": DefaultUserID, "email": "emulator_user@example.com", "chat_id": "oc_anything"} {
		r := postJSON(t, sendURL(ts.URL, idType), textBody(t, id, "hi", ""), bearer(tok)...)
		expectEqual(t, idType, r.status, 200)
	}
	expectEqual(t, "recorded", len(s.Messages()), 5)

	ctl := get(t, ts.URL+ControlPrefix+"messages")
	var listed struct {
		Messages []Message `json:"messages"`
	}
	if err := json.Unmarshal([]byte(ctl.body), &listed); err != nil || len(listed.Messages) != 5 || listed.Messages[0].ReceiveID != openID {
		t.Fatalf("control list: %s (%v)", ctl.body, err)
	}
	expectEqual(t, "clear", del(t, ts.URL+ControlPrefix+"messages").body, `{"ok":true}`)
	expectEqual(t, "after clear", get(t, ts.URL+ControlPrefix+"messages").body, `{"messages":[]}`)
}

func TestSendMessageDedup(t *testing.T) {
	s, ts, fc := newFakeEmu(t, Options{})
	tok := fetchToken(t, ts, PathTenantAccessToken).TenantAccessToken
	openID := s.OpenID(testApp, DefaultUserID)
	send := func(text, uuid string) string {
		r := postJSON(t, sendURL(ts.URL, "open_id"), textBody(t, openID, text, uuid), bearer(tok)...)
		if r.status != 200 {
			t.Fatalf("send: %d %s", r.status, r.body)
		}
		return decode(t, r.body)["data"].(map[string]any)["message_id"].(string)
	}
	first := send("one", "u-1")
	fc.Advance(time.Hour - time.Second)
	expectEqual(t, "same uuid within the hour", send("two", "u-1"), first)
	expectEqual(t, "recorded once", len(s.Messages()), 1)
	if send("three", "u-2") == first {
		t.Fatal("another uuid was deduplicated")
	}
	fc.Advance(time.Second)
	if send("four", "u-1") == first {
		t.Fatal("uuid still deduplicated after an hour")
	}
	if a, b := send("five", ""), send("five", ""); a == b {
		t.Fatal("messages without uuid were deduplicated")
	}
	expectEqual(t, "recorded", len(s.Messages()), 5)
	expectEqual(t, "calls", s.Calls(EndpointMessages), 6)
}

func TestSendMessageErrors(t *testing.T) {
	s, ts, fc := newFakeEmu(t, Options{})
	tok := fetchToken(t, ts, PathTenantAccessToken).TenantAccessToken
	openID := s.OpenID(testApp, DefaultUserID)
	otherApp := "ou_" + digest("open", "cli_someone_else", DefaultUserID)
	body := func(msgType, content string) string {
		return mustJSON(t, map[string]string{"receive_id": openID, "msg_type": msgType, "content": content})
	}
	cases := []struct {
		name, idType, body string
		code               int
	}{
		{"no receive_id_type", "", textBody(t, openID, "x", ""), 230001},
		{"bad receive_id_type", "phone", textBody(t, openID, "x", ""), 230001},
		{"not JSON", "open_id", "{", 230001},
		{"no receive_id", "open_id", `{"msg_type":"text","content":"{\"text\":\"x\"}"}`, 230001},
		{"no content", "open_id", `{"receive_id":"` + openID + `","msg_type":"text"}`, 230001},
		{"content as object", "open_id", `{"receive_id":"` + openID + `","msg_type":"text","content":{"text":"x"}}`, 230001},
		{"bad msg_type", "open_id", body("fax", `{"text":"x"}`), 230001},
		{"content not JSON", "open_id", body("text", "hello"), 230001},
		{"text without text", "open_id", body("text", `{"title":"x"}`), 230001},
		{"bad card", "open_id", body("interactive", "{not json"), 230099},
		{"card too long", "open_id", body("interactive", `{"pad":"`+strings.Repeat("x", 31<<10)+`"}`), 230025},
		{"text too long", "open_id", body("text", `{"text":"`+strings.Repeat("x", 151<<10)+`"}`), 230025},
		{"uuid too long", "open_id", textBody(t, openID, "x", strings.Repeat("u", 51)), 230001},
		{"unknown open_id", "open_id", textBody(t, "ou_nobody", "x", ""), 230034},
		{"open_id of another app", "open_id", textBody(t, otherApp, "x", ""), 230034},
		{"bad chat_id", "chat_id", textBody(t, "chat", "x", ""), 230034},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := postJSON(t, sendURL(ts.URL, c.idType), c.body, bearer(tok)...)
			expectEqual(t, "status", r.status, 400)
			expectEqual(t, "code", gatewayCode(t, r), c.code)
		})
	}
	if len(s.Messages()) != 0 {
		t.Fatal("a rejected message was recorded")
	}
	// A long text within the cap is fine.
	r := postJSON(t, sendURL(ts.URL, "open_id"), body("text", `{"text":"`+strings.Repeat("x", 100<<10)+`"}`), bearer(tok)...)
	expectEqual(t, "100 KiB text", r.status, 200)

	auth := []struct {
		name   string
		header []string
		code   int
	}{
		{"no token", nil, 99991661},
		{"no Bearer", []string{"Authorization", tok}, 99991661},
		{"unknown tenant token", bearer("t-nope"), 99991663},
	}
	for _, c := range auth {
		r := postJSON(t, sendURL(ts.URL, "open_id"), textBody(t, openID, "x", ""), c.header...)
		expectEqual(t, c.name+" status", r.status, 400)
		expectEqual(t, c.name+" code", gatewayCode(t, r), c.code)
	}
	fc.Advance(2 * time.Hour)
	r = postJSON(t, sendURL(ts.URL, "open_id"), textBody(t, openID, "x", ""), bearer(tok)...)
	expectEqual(t, "expired tenant token", gatewayCode(t, r), 99991663)
}

func TestSendMessageWithUserToken(t *testing.T) {
	s, ts, fc := newFakeEmu(t, Options{})
	tr := exchangeNew(t, ts, fullScope)
	openID := s.OpenID(testApp, DefaultUserID)
	r := postJSON(t, sendURL(ts.URL, "open_id"), textBody(t, openID, "x", ""), bearer(tr.AccessToken)...)
	expectEqual(t, "status", r.status, 200)
	expectEqual(t, "sender type", s.Messages()[0].SenderType, "user")

	if _, err := s.RevokeGrants(GrantSelector{AppID: testApp}); err != nil {
		t.Fatal(err)
	}
	r = postJSON(t, sendURL(ts.URL, "open_id"), textBody(t, openID, "x", ""), bearer(tr.AccessToken)...)
	expectEqual(t, "revoked user token", gatewayCode(t, r), 99991668)
	fc.Advance(3 * time.Hour)
	r = postJSON(t, sendURL(ts.URL, "open_id"), textBody(t, openID, "x", ""), bearer(tr.AccessToken)...)
	expectEqual(t, "expired user token", gatewayCode(t, r), 99991677)
}

func TestSendMessageWithV3TenantToken(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	r := postForm(t, ts.URL+PathOAuthTokenV3, map[string]string{"grant_type": "client_credentials", "client_id": testApp, "client_secret": testSecret})
	tok := decode(t, r.body)["access_token"].(string)
	r = postJSON(t, sendURL(ts.URL, "open_id"), textBody(t, s.OpenID(testApp, DefaultUserID), "x", ""), bearer(tok)...)
	expectEqual(t, "status", r.status, 200)
}
