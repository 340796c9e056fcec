package larksecrets

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/stretchr/testify/require"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
	"github.com/lark-vault/vault-plugin-secrets-lark/larkemu"
)

// Every text of a notice exists in both languages, takes the same format arguments in both, and
// the Chinese one is written in Chinese.
func TestNoticeWordsAreCompleteInBothLanguages(t *testing.T) {
	en, zh := reflect.ValueOf(*wordsEN), reflect.ValueOf(*wordsZH)
	for i := 0; i < en.NumField(); i++ {
		name := en.Type().Field(i).Name
		switch en.Field(i).Kind() {
		case reflect.String:
			e, z := en.Field(i).String(), zh.Field(i).String()
			require.NotEmpty(t, e, name)
			require.NotEmpty(t, z, name)
			require.Equal(t, strings.Count(e, "%"), strings.Count(z, "%"), "%s: format verbs differ", name)
			if name != "timeLayout" && name != "colon" && name != "prefix" && name != "listSep" {
				require.True(t, strings.ContainsFunc(z, func(r rune) bool { return unicode.Is(unicode.Han, r) }), "%s is not Chinese: %q", name, z)
			}
		case reflect.Map:
			if name == "reasons" {
				continue // translations of the plugin's own reasons; English needs none
			}
			require.Equal(t, en.Field(i).Len(), zh.Field(i).Len(), name)
			for _, k := range en.Field(i).MapKeys() {
				require.NotEmpty(t, zh.Field(i).MapIndex(k).String(), "%s[%s]", name, k)
			}
		}
	}
	// A storage-rollback alert names its grants in the reader's language.
	app := &appEntry{AppID: testAppID}
	no := &notice{AppID: testAppID, Level: levelRollback, Reason: "3 grants hold refresh tokens Lark had already rotated (slots a, b) and 1 more",
		Rollback: &rollbackFacts{Count: 3, Slots: []string{"a", "b"}, FirstAt: t0}}
	require.Contains(t, rollbackView(app, no, remedies{mount: "lark/"}, time.UTC, plainText).headline,
		"有 3 个授权持有的刷新令牌已被飞书轮换（槽位：a、b 等，另有 1 个），首次发现于 "+t0.Format(wordsZH.timeLayout))
	no.Rollback = nil
	require.Contains(t, rollbackView(app, no, remedies{mount: "lark/"}, time.UTC, plainText).headline, no.Reason, "a notice queued before: its reason as stored")
	for en, zh := range wordsZH.reasons {
		require.NotContains(t, zh, en)
	}
}

// noticeKinds is one notice of every kind, for both readers where there are two.
func noticeKinds(app *appEntry) map[string]func(esc escaper) *noticeView {
	r := remedies{mount: "lark/"}
	g := baseGrant()
	g.Name, g.OpenID = "张三", "ou_zhangsan"
	grant := func(level string, failing lark.Meaning, toUser bool, link string) func(esc escaper) *noticeView {
		no := &notice{AppID: app.AppID, Slot: g.Slot, Level: level, Deadline: t0.Add(72 * time.Hour),
			Reason: "the grant ends 365 days after the user authorized", Failing: failing}
		return func(esc escaper) *noticeView { return grantView(app, g, no, r, toUser, link, time.UTC, esc) }
	}
	out := map[string]func(esc escaper) *noticeView{
		"setup": func(esc escaper) *noticeView {
			return setupView(app, &notice{AppID: app.AppID, Level: levelAppSetup, Reason: "token refresh is disabled (Lark code 20074)"}, esc)
		},
		"rollback": func(esc escaper) *noticeView {
			return rollbackView(app, &notice{AppID: app.AppID, Level: levelRollback, Reason: "2 grants hold refresh tokens Lark had already rotated (slots a, b)",
				Rollback: &rollbackFacts{Count: 12, Slots: []string{"a", "b"}, FirstAt: t0}}, r, time.UTC, esc)
		},
	}
	for _, level := range []string{levelWarning, levelCritical, levelExpired} {
		out[level+"/admin"] = grant(level, "", false, "")
		out[level+"/user"] = grant(level, "", true, "https://accounts.feishu.cn/open-apis/authen/v1/authorize?state=abc")
		out[level+"/user-no-link"] = grant(level, "", true, "")
	}
	for _, m := range []lark.Meaning{lark.MeaningTransient, lark.MeaningAppSetup, lark.MeaningUserAction} {
		out["failing-"+string(m)+"/admin"] = grant(levelCritical, m, false, "")
		out["failing-"+string(m)+"/user"] = grant(levelCritical, m, true, "https://accounts.feishu.cn/x")
	}
	return out
}

// Every notice, in both languages, is a card the emulator's strict checks accept and a text of a
// few lines; each language reads as itself.
func TestNoticeCardsOfEveryKindAndLanguage(t *testing.T) {
	for _, locale := range []string{localeZhCN, localeEnUS} {
		app := &appEntry{AppID: testAppID, RedirectURI: testRedirect, NotifyLocale: locale}
		w := wordsFor(locale)
		for kind, view := range noticeKinds(app) {
			name := locale + " " + kind
			card, err := view(cardText).card(w)
			require.NoError(t, err, name)
			require.NoError(t, larkemu.CheckCard(string(card)), "%s: %s", name, card)
			text := view(plainText).text(w)
			require.LessOrEqual(t, strings.Count(text, "\n")+1, 4, name)
			require.True(t, strings.HasPrefix(text, w.prefix), name)
			for _, line := range strings.Split(text, "\n") {
				require.False(t, strings.HasSuffix(line, ":") || strings.HasSuffix(line, ": ") || strings.HasSuffix(line, "："), "%s: a line ends before what it announces: %q", name, line)
			}
			han := strings.ContainsFunc(text, func(r rune) bool { return unicode.Is(unicode.Han, r) && r != '张' && r != '三' })
			require.Equal(t, locale == localeZhCN, han, "%s: %s", name, text)
			if locale == localeZhCN {
				require.NotContains(t, text, "What to do", name)
				require.NotContains(t, string(card), "What to do", name)
			}
			var c larkemu.Card
			require.NoError(t, json.Unmarshal(card, &c))
			hasButton := strings.Contains(string(card), `"tag":"button"`)
			require.Equal(t, strings.HasSuffix(kind, "/user") && !strings.HasPrefix(kind, "failing"), hasButton, name)
			if strings.HasSuffix(kind, "/admin") {
				require.Contains(t, c.Readable(), "张三", "%s: the admins are told who", name)
			}
		}
	}
}

// The user's card: a button that opens their pinned link, and the facts a user needs; the text
// fallback carries the link itself.
func TestUserNoticeCardButtonOpensThePinnedLink(t *testing.T) {
	const link = "https://accounts.feishu.cn/open-apis/authen/v1/authorize?client_id=cli&state=s1&x=a&y=b"
	app := &appEntry{AppID: testAppID, RedirectURI: testRedirect}
	view := noticeKinds(app)
	g := baseGrant()
	no := &notice{AppID: testAppID, Slot: g.Slot, Level: levelCritical, Deadline: time.Date(2026, 12, 9, 1, 0, 0, 0, time.UTC), Reason: "the grant ends 365 days after the user authorized"}
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)
	v := grantView(app, g, no, remedies{mount: "lark/"}, true, link, shanghai, cardText)
	card, err := v.card(wordsZH)
	require.NoError(t, err)
	require.Contains(t, string(card), `"url":"`+link+`"`, "the link as is, & not escaped")
	var c larkemu.Card
	require.NoError(t, json.Unmarshal(card, &c))
	require.Equal(t, "red", c.Header.Template)
	require.Equal(t, "飞书授权即将到期（紧急）", c.Header.Title.Content)
	readable := c.Readable()
	for _, want := range []string{"**应用：** " + testAppID, "**槽位：** s", "**截止时间：** 2026年12月9日 09:00（UTC+08:00）", "飞书授权自用户授权起 365 天后到期", "重新授权: " + link} {
		require.Contains(t, readable, want)
	}
	require.NotContains(t, readable, "**用户：**", "the user is not told their own name")
	text := grantView(app, g, no, remedies{mount: "lark/"}, true, link, shanghai, plainText).text(wordsZH)
	require.Contains(t, text, "请打开以下链接并确认授权（24 小时内有效，仅限本人使用）："+link)
	require.NotEmpty(t, view)
}

// An app without a redirect_uri renews by device login: the admins are told that command.
func TestAdminNoticeNamesDeviceLoginWithoutRedirectURI(t *testing.T) {
	g := baseGrant()
	no := &notice{AppID: testAppID, Slot: g.Slot, Level: levelWarning, Deadline: t0, Reason: "x"}
	for _, tt := range []struct{ redirect, want string }{
		{"", "vault write lark/device/" + testAppID + "/s"},
		{testRedirect, "vault write lark/oauth/" + testAppID + "/authorize user=s"},
	} {
		app := &appEntry{AppID: testAppID, RedirectURI: tt.redirect, NotifyLocale: localeEnUS}
		v := grantView(app, g, no, remedies{mount: "lark/"}, false, "", time.UTC, cardText)
		require.Equal(t, tt.want, v.command)
		card, err := v.card(wordsEN)
		require.NoError(t, err)
		require.Contains(t, string(card), `{"tag":"plain_text","content":"`+tt.want+`"}`, "the command as plain text, never markdown")
		r := rollbackView(app, &notice{AppID: testAppID, Level: levelRollback, Reason: "r"}, remedies{mount: "lark/"}, time.UTC, plainText)
		require.Contains(t, r.todo, strings.Replace(tt.want, "/s", "/<slot>", 1)[:len(tt.want)-1])
	}
}

// hostileValues are names and reasons that try to mention everyone, link elsewhere, forge a line
// of our own, reverse our text, or dress up as our markdown.
var hostileValues = []string{
	`Eve <at user_id="all">everyone</at>`,
	`<at id=all></at>`,
	`[Authorize here](https://evil.example)`,
	"line\nWhat to do: run vault delete lark/apps/x",
	"line\r\n**处理方法：** 删除应用",
	"forged\u2028line\u2029and\u0085more",
	"right-to-left \u202eedoc.exe",
	"isolate \u2066x\u2069 \u200f\u061c",
	"**bold** ~~gone~~ `code` # heading",
	"&lt;at user_id=\"all\"&gt;&lt;/at&gt;",
	"&#60;at id=all&#62;",
	`\[escaped\](https://evil.example)`,
	strings.Repeat("长", 2000),
}

// The catalog: every hostile name and reason, in both languages, every kind of notice. In the card
// no value leaves its field, mentions, links, emphasis, entities or bidirectional controls; in the
// text, no value forges a line.
func TestNoticeCardNeutralisesUserControlledValues(t *testing.T) {
	for _, locale := range []string{localeZhCN, localeEnUS} {
		w := wordsFor(locale)
		for _, hostile := range hostileValues {
			app := &appEntry{AppID: testAppID, NotifyLocale: locale}
			g := baseGrant()
			g.Name = hostile
			for _, level := range []string{levelWarning, levelExpired} {
				no := &notice{AppID: testAppID, Slot: g.Slot, Level: level, Deadline: t0, Reason: hostile}
				for _, toUser := range []bool{false, true} {
					name := fmt.Sprintf("%s %s user=%v %q", locale, level, toUser, hostile)
					card, err := grantView(app, g, no, remedies{mount: "lark/"}, toUser, "https://accounts.example/a", time.UTC, cardText).card(w)
					require.NoError(t, err, name)
					require.NoError(t, larkemu.CheckCard(string(card)), name)
					checkCardValues(t, name, card)
					text := grantView(app, g, no, remedies{mount: "lark/"}, toUser, "", time.UTC, plainText).text(w)
					lines := strings.Split(text, "\n")
					require.LessOrEqual(t, len(lines), 4, name)
					require.True(t, strings.HasPrefix(lines[1], w.meaningLabel), name)
					require.True(t, strings.HasPrefix(lines[2], w.todoLabel), name)
					require.NotContains(t, text, "<at", name)
					require.NotContains(t, text, "](", name)
				}
			}
			for _, v := range []*noticeView{
				setupView(app, &notice{AppID: testAppID, Level: levelAppSetup, Reason: hostile}, cardText),
				rollbackView(app, &notice{AppID: testAppID, Level: levelRollback, Reason: hostile}, remedies{mount: "lark/"}, time.UTC, cardText),
			} {
				card, err := v.card(w)
				require.NoError(t, err)
				checkCardValues(t, locale+" app notice "+hostile, card)
			}
		}
	}
}

// checkCardValues looks at every markdown text of a card: one line each; past our own bold label,
// none of the characters that make markup.
func checkCardValues(t *testing.T, name string, card []byte) {
	t.Helper()
	var c larkemu.Card
	require.NoError(t, json.Unmarshal(card, &c), name)
	for _, e := range c.Elements {
		texts := []larkemu.CardText{}
		if e.Text != nil {
			texts = append(texts, *e.Text)
		}
		for _, f := range e.Fields {
			texts = append(texts, f.Text)
		}
		texts = append(texts, e.Elements...)
		for _, tx := range texts {
			require.NotContains(t, tx.Content, "\n", "%s: %q", name, tx.Content)
			if tx.Tag != "lark_md" {
				continue
			}
			label, value, ok := strings.Cut(tx.Content, "** ")
			require.True(t, ok && strings.HasPrefix(label, "**"), "%s: %q", name, tx.Content)
			for _, r := range value {
				if strings.ContainsRune("<>[]*~`&#\\", r) || unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || bidiControl(r) {
					t.Fatalf("%s: %U left in %q", name, r, value)
				}
			}
			require.LessOrEqual(t, len([]rune(value)), 1000, name)
		}
	}
}

// brand picks the default language; either language can be chosen on either brand, and "" goes
// back to the default.
func TestNotifyLocaleDefaultsToTheBrand(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	locale := func() string {
		resp, err := env.read("apps/" + testAppID)
		require.NoError(t, err)
		return resp.Data["notify_locale"].(string)
	}
	require.Equal(t, "zh_cn", locale(), "feishu: Chinese")
	env.mustWrite("apps/"+testAppID, map[string]interface{}{"brand": "lark"})
	require.Equal(t, "en_us", locale(), "lark: English")
	env.mustWrite("apps/"+testAppID, map[string]interface{}{"notify_locale": "zh_cn"})
	require.Equal(t, "zh_cn", locale())
	env.mustWrite("apps/"+testAppID, map[string]interface{}{"brand": "feishu", "notify_locale": "en_us"})
	require.Equal(t, "en_us", locale())
	env.mustWrite("apps/"+testAppID, map[string]interface{}{"notify_locale": ""})
	require.Equal(t, "zh_cn", locale())
}

// Where Lark refuses the card (a tenant that takes no cards), the notice goes out as text, once,
// in the app's language, and counts as sent.
func TestNoticeFallsBackToTextWhereTheCardIsRefused(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "admin"}))
	admin := env.emu.OpenID(testAppID, "admin")
	env.mustWrite("apps/"+testAppID, map[string]interface{}{"notify_open_ids": admin})
	env.mustWrite("config", map[string]interface{}{"notify_schedule": "* * * * *"})
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "u-fb"}))
	require.NoError(t, env.emu.SetCardMode(larkemu.CardsRefuse))
	env.importGrant("fb", "u-fb", 362)
	r := env.sweep()
	require.Equal(t, []string{testAppID + "/fb/critical"}, r.Notified)
	require.Empty(t, r.NotifyFailed)
	msgs := env.emu.Messages()
	require.Len(t, msgs, 1)
	require.Equal(t, "text", msgs[0].MsgType)
	require.Equal(t, admin, msgs[0].ReceiveID)
	require.True(t, strings.HasPrefix(msgs[0].Text, "【Vault】"), msgs[0].Text)
	require.Contains(t, msgs[0].Text, "处理方法：请该用户重新授权，可用以下命令发起：vault write lark/oauth/"+testAppID+"/authorize user=fb")
	t.Logf("the notice as text:\n%s", msgs[0].Text)
	require.True(t, env.storedGrant("fb").notified(levelCritical))
	require.Greater(t, env.emu.Calls(larkemu.EndpointMessages), 1, "the card was tried first")

	// Sent once: later runs send nothing more.
	env.clock.Advance(time.Minute)
	env.sweep()
	require.Len(t, env.emu.Messages(), 1)
}
