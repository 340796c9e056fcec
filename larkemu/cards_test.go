package larkemu

import (
	"net/http"
	"strings"
	"testing"
)

// goodCard is the shape the plugin's notices take: header, fields, markdown, a command, a link
// button and a note.
const goodCard = `{"config":{"wide_screen_mode":true,"enable_forward":false},
"header":{"template":"orange","title":{"tag":"plain_text","content":"Lark authorization ends soon"}},
"elements":[
 {"tag":"div","fields":[{"is_short":true,"text":{"tag":"lark_md","content":"**App:** cli_x"}},{"is_short":false,"text":{"tag":"lark_md","content":"**Details:** why"}}]},
 {"tag":"div","text":{"tag":"lark_md","content":"**What to do:** press the button"}},
 {"tag":"div","text":{"tag":"plain_text","content":"vault write lark/oauth/cli_x/authorize user=a"}},
 {"tag":"action","actions":[{"tag":"button","text":{"tag":"plain_text","content":"Authorize again"},"url":"https://accounts.example/authorize?x=1","type":"primary"}]},
 {"tag":"hr"},
 {"tag":"note","elements":[{"tag":"plain_text","content":"footer"}]}]}`

func TestCardShapeIsCheckedStrictly(t *testing.T) {
	if err := CheckCard(goodCard); err != nil {
		t.Fatalf("the notice shape is refused: %v", err)
	}
	bad := map[string]string{
		"not an object":         `[]`,
		"no elements":           `{"elements":[]}`,
		"unknown top-level key": `{"elements":[{"tag":"hr"}],"card_link":{"url":"https://x"}}`,
		"unknown config key":    `{"config":{"wide":true},"elements":[{"tag":"hr"}]}`,
		"bad template":          `{"header":{"template":"pink","title":{"tag":"plain_text","content":"t"}},"elements":[{"tag":"hr"}]}`,
		"markdown title":        `{"header":{"title":{"tag":"lark_md","content":"**t**"}},"elements":[{"tag":"hr"}]}`,
		"empty title":           `{"header":{"title":{"tag":"plain_text","content":" "}},"elements":[{"tag":"hr"}]}`,
		"unknown element":       `{"elements":[{"tag":"img","img_key":"k"}]}`,
		"empty div":             `{"elements":[{"tag":"div"}]}`,
		"div with actions":      `{"elements":[{"tag":"div","text":{"tag":"plain_text","content":"x"},"actions":[{"tag":"button","text":{"tag":"plain_text","content":"b"},"url":"https://x"}]}]}`,
		"unknown text tag":      `{"elements":[{"tag":"div","text":{"tag":"html","content":"x"}}]}`,
		"empty text":            `{"elements":[{"tag":"div","text":{"tag":"lark_md","content":""}}]}`,
		"text over 4 KiB":       `{"elements":[{"tag":"div","text":{"tag":"lark_md","content":"` + strings.Repeat("x", 4<<10+1) + `"}}]}`,
		"11 fields":             `{"elements":[{"tag":"div","fields":[` + strings.TrimSuffix(strings.Repeat(`{"text":{"tag":"plain_text","content":"f"}},`, 11), ",") + `]}]}`,
		"field key unknown":     `{"elements":[{"tag":"div","fields":[{"short":true,"text":{"tag":"plain_text","content":"f"}}]}]}`,
		"button without url":    `{"elements":[{"tag":"action","actions":[{"tag":"button","text":{"tag":"plain_text","content":"b"}}]}]}`,
		"button javascript url": `{"elements":[{"tag":"action","actions":[{"tag":"button","text":{"tag":"plain_text","content":"b"},"url":"javascript:alert(1)"}]}]}`,
		"button bad type":       `{"elements":[{"tag":"action","actions":[{"tag":"button","text":{"tag":"plain_text","content":"b"},"url":"https://x","type":"huge"}]}]}`,
		"callback button":       `{"elements":[{"tag":"action","actions":[{"tag":"button","text":{"tag":"plain_text","content":"b"},"url":"https://x","value":{"k":"v"}}]}]}`,
		"action of a select":    `{"elements":[{"tag":"action","actions":[{"tag":"select_static","text":{"tag":"plain_text","content":"b"},"url":"https://x"}]}]}`,
		"empty action":          `{"elements":[{"tag":"action","actions":[]}]}`,
		"hr with text":          `{"elements":[{"tag":"hr","text":{"tag":"plain_text","content":"x"}}]}`,
		"empty note":            `{"elements":[{"tag":"note","elements":[]}]}`,
		"51 elements":           `{"elements":[` + strings.TrimSuffix(strings.Repeat(`{"tag":"hr"},`, 51), ",") + `]}`,
		"over 30 KB":            `{"elements":[{"tag":"markdown","content":"` + strings.Repeat("x", 31<<10) + `"}]}`,
	}
	for name, card := range bad {
		if err := CheckCard(card); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestCardsAreRecordedAndCanBeRefused(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	tok := fetchToken(t, ts, PathTenantAccessToken).TenantAccessToken
	openID := s.OpenID(testApp, DefaultUserID)
	send := func(msgType, content, uuid string) response {
		return postJSON(t, sendURL(ts.URL, "open_id"), mustJSON(t, map[string]string{"receive_id": openID, "msg_type": msgType, "content": content, "uuid": uuid}), bearer(tok)...)
	}

	r := send("interactive", goodCard, "c1")
	expectEqual(t, "card status", r.status, 200)
	msgs := s.Messages()
	expectEqual(t, "recorded", len(msgs), 1)
	m := msgs[0]
	if m.Card == nil || m.Card.Header.Template != "orange" || len(m.Card.Elements) != 6 {
		t.Fatalf("card not recorded: %+v", m.Card)
	}
	if b := m.Card.Elements[3].Actions[0]; b.URL != "https://accounts.example/authorize?x=1" || b.Type != "primary" {
		t.Fatalf("button %+v", b)
	}
	for _, want := range []string{"Lark authorization ends soon", "**App:** cli_x", "user=a", "Authorize again: https://accounts.example/authorize?x=1", "footer"} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("readable text lacks %q: %q", want, m.Text)
		}
	}

	// A card of an unknown shape is refused like one Lark cannot build, and nothing is recorded.
	r = send("interactive", `{"elements":[{"tag":"marquee"}]}`, "c2")
	expectEqual(t, "bad card status", r.status, 400)
	expectEqual(t, "bad card code", gatewayCode(t, r), msgCodeCardFailed)

	// Refusing cards through the control API: cards get 230099, text still goes through.
	ctl := ts.URL + ControlPrefix + "card-mode"
	expectEqual(t, "bad mode", postJSON(t, ctl, `{"mode":"sometimes"}`).status, http.StatusBadRequest)
	expectEqual(t, "refuse", postJSON(t, ctl, `{"mode":"refuse"}`).status, http.StatusOK)
	r = send("interactive", goodCard, "c3")
	expectEqual(t, "refused card", gatewayCode(t, r), msgCodeCardFailed)
	r = send("text", `{"text":"fallback"}`, "t3")
	expectEqual(t, "text while cards are refused", r.status, 200)
	s.ClearMessages()
	r = send("interactive", goodCard, "c4")
	expectEqual(t, "still refused after clearing messages", gatewayCode(t, r), msgCodeCardFailed)
	expectEqual(t, "accept", postJSON(t, ctl, `{"mode":"accept"}`).status, http.StatusOK)
	// One app's cards only: the others' still go through.
	expectEqual(t, "refuse for one app", postJSON(t, ctl, `{"mode":"refuse","app_id":"`+testApp+`"}`).status, http.StatusOK)
	expectEqual(t, "that app's card", gatewayCode(t, send("interactive", goodCard, "c4b")), msgCodeCardFailed)
	if err := s.SetAppCardMode("cli_other", CardsRefuse); err != nil {
		t.Fatal(err)
	}
	expectEqual(t, "accept for the app again", postJSON(t, ctl, `{"mode":"accept","app_id":"`+testApp+`"}`).status, http.StatusOK)
	expectEqual(t, "accepted again", send("interactive", goodCard, "c5").status, 200)
	got := s.Messages()
	expectEqual(t, "recorded after clearing", len(got), 1)
	expectEqual(t, "text of a text message", (func() string { s.ClearMessages(); send("text", `{"text":"plain"}`, "t6"); return s.Messages()[0].Text })(), "plain")
}
