package larksecrets

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark"
)

// A notice goes out as a Lark message card (docs/lark-api.md §8a) with its facts in fields and, for a
// user with a pinned link, a button that opens it; where Lark refuses the card, the same notice goes
// out as plain text. Both are rendered from one noticeView, in the app's notify_locale.

// noticeView is one notice to one reader, ready to render. Every value in it that came from a user
// or from Lark has already been made safe by the escaper it was built with (plainText for a text
// message, cardText for card markdown).
type noticeView struct {
	color    string // the card header's template
	title    string // the card header
	headline string // the text message's first line, after "[Vault] "
	facts    []noticeFact
	meaning  string
	todo     string
	command  string // a command for whoever acts, shown verbatim
	// cardTodo replaces todo in the card where the text names what the card shows otherwise (the
	// button, or commands); commands are shown as plain text, never markdown.
	cardTodo string
	commands []string
	link     string // the button's target: the user's pinned authorization link
	button   string // the button's label
	footer   string
}

type noticeFact struct{ label, value string }

// escaper neutralises a value that came from a user or from Lark, bounded to max runes.
type escaper func(s string, max int) string

// noticeWords holds every text of a notice in one language. Format verbs are noted beside each.
type noticeWords struct {
	prefix, meaningLabel, todoLabel, detailsLabel, colon           string
	who, app, slot, level, deadline                                string
	levels                                                         map[string]string
	timeLayout                                                     string
	titleEnds, titleEnded, titleFailing, titleSetup, titleRollback string // %s level (titleEnds)

	// To the admins. adminEnded: who, slot, app, reason; adminEnds: who, slot, app, deadline, level, reason.
	adminEnded, adminEnds                              string
	adminMeansEnded, adminMeansFailing, adminMeansEnds string
	adminTodoSetup, adminTodoChallenge                 string
	adminTodoTransient, adminTodoDefault               string // followed by the command
	adminFooter                                        string

	// To the user. userEnded: app, slot, reason; userEnds: app, slot, deadline, level, reason.
	userEnded, userEnds                                 string
	userMeansEnded, userMeansFailing, userMeansEnds     string
	userTodoSetup, userTodoChallenge, userTodoTransient string
	userTodoLink, userTodoLinkCard, userTodoNoLink      string // userTodoNoLink is followed by the command
	userButton                                          string

	// App-wide notices to the admins: setup (app, reason) and storage rollback (app, reason; the
	// to-do takes mount, mount and app).
	setupHeadline, setupMeans, setupTodo          string
	rollbackHeadline, rollbackMeans, rollbackTodo string
	rollbackCardTodo                              string
	// rollbackSummary: count, slots, first seen; rollbackMore: how many more slots.
	rollbackSummary, rollbackMore, listSep string

	reasons map[string]string // the plugin's own fixed reasons, translated
}

var wordsEN = &noticeWords{
	prefix: "[Vault] ", meaningLabel: "What it means: ", todoLabel: "What to do: ", detailsLabel: "Details", colon: ": ",
	who: "User", app: "App", slot: "Slot", level: "Level", deadline: "Deadline",
	levels:     map[string]string{levelWarning: "warning", levelCritical: "critical", levelExpired: "expired", levelAppSetup: "app setup", levelRollback: "storage rollback"},
	timeLayout: "2006-01-02 15:04 (UTC-07:00)",
	titleEnds:  "Lark authorization ends soon (%s)", titleEnded: "Lark authorization has ended",
	titleFailing: "Lark authorization: refreshes are failing", titleSetup: "Lark refuses this app's setup",
	titleRollback: "Storage rollback suspected",

	adminEnded:         "The Lark authorization of %s (slot %q) for app %s has ended: %s.",
	adminEnds:          "The Lark authorization of %s (slot %q) for app %s ends on %s (%s): %s.",
	adminMeansEnded:    "services that read this user's token from Vault now get an error.",
	adminMeansFailing:  "unless a refresh succeeds before then, services that read this user's token from Vault get an error after that.",
	adminMeansEnds:     "after that, services that read this user's token from Vault get an error until the user authorizes again.",
	adminTodoSetup:     "an administrator fixes the app's setup in the Lark developer console (token refresh switched off, app disabled or not installed); refreshes resume by themselves. Authorizing again does not help until then.",
	adminTodoChallenge: "the user completes Lark's security verification (Lark shows it when they open the app); refreshes resume by themselves.",
	adminTodoTransient: "nothing yet, Vault keeps trying; if Lark stays unreachable until then, the user must authorize again: ",
	adminTodoDefault:   "the user authorizes again; start it with: ",
	adminFooter:        "This is not an app_secret problem: the app's secret works; only this user's grant needs renewing.",

	userEnded:         "Your Lark authorization for app %s (slot %q) has ended: %s.",
	userEnds:          "Your Lark authorization for app %s (slot %q) ends on %s (%s): %s.",
	userMeansEnded:    "the services that act for you with this authorization now get an error.",
	userMeansFailing:  "unless Vault manages to renew it before then, the services that act for you stop working after that.",
	userMeansEnds:     "after that, the services that act for you with this authorization stop working until you authorize again.",
	userTodoSetup:     "nothing for you to do: an administrator must fix the app's setup in the Lark developer console; renewals resume by themselves.",
	userTodoChallenge: "open the app in Lark and complete the security verification it shows; renewals resume by themselves.",
	userTodoTransient: "nothing yet, Vault keeps trying. If renewals still fail close to the deadline, you will be asked to authorize again.",
	userTodoLink:      "open this link and approve (valid for 24 hours, only for you): ",
	userTodoLinkCard:  "press the button below and approve in Lark. The link is valid for 24 hours and works only for you.",
	userTodoNoLink:    "ask your Vault administrator to start a new authorization for you.",
	userButton:        "Authorize again",

	setupHeadline:    "Lark refuses the setup of app %s: %s.",
	setupMeans:       "no user token of this app can be refreshed; the grants are kept, and tokens keep working until they expire.",
	setupTodo:        "fix the app's settings in the Lark developer console (and publish a new version if Lark asks); refreshes resume by themselves.",
	rollbackHeadline: "Storage rollback suspected for app %s: %s.",
	rollbackMeans:    "Vault's storage was most likely restored from a snapshot or backup older than these grants' last refresh; Lark has already rotated the refresh tokens it holds, so these users must authorize again. Every other grant refreshed after that snapshot was taken will end the same way at its next refresh.",
	rollbackTodo:     "list the affected grants with: vault list -detailed %sreauth ; ask each user to authorize again (%s); see \"Backup and restore\" in the operator guide.",
	rollbackCardTodo: "list the affected grants with the first command below, and ask each user to authorize again (the second command); see \"Backup and restore\" in the operator guide.",
	rollbackSummary:  "%d grants hold refresh tokens Lark had already rotated (slots %s), first seen %s",
	rollbackMore:     " and %d more",
	listSep:          ", ",
}

var wordsZH = &noticeWords{
	prefix: "【Vault】", meaningLabel: "影响：", todoLabel: "处理方法：", detailsLabel: "详情", colon: "：",
	who: "用户", app: "应用", slot: "槽位", level: "级别", deadline: "截止时间",
	levels:     map[string]string{levelWarning: "预警", levelCritical: "紧急", levelExpired: "已失效", levelAppSetup: "应用配置", levelRollback: "存储回滚"},
	timeLayout: "2006年1月2日 15:04（UTC-07:00）",
	titleEnds:  "飞书授权即将到期（%s）", titleEnded: "飞书授权已失效",
	titleFailing: "飞书授权续期失败", titleSetup: "飞书拒绝了应用配置",
	titleRollback: "疑似发生存储回滚",

	adminEnded:         "%s（槽位 %s）在应用 %s 上的飞书授权已失效。原因：%s。",
	adminEnds:          "%s（槽位 %s）在应用 %s 上的飞书授权将于 %s到期（%s）。原因：%s。",
	adminMeansEnded:    "通过 Vault 读取该用户令牌的服务现在会报错。",
	adminMeansFailing:  "如果在此之前续期仍未成功，通过 Vault 读取该用户令牌的服务届时将会报错。",
	adminMeansEnds:     "到期后，通过 Vault 读取该用户令牌的服务将会报错，直到该用户重新授权。",
	adminTodoSetup:     "请管理员在飞书开发者后台修正应用配置（令牌刷新开关被关闭、应用被停用或未安装）；修正后续期会自动恢复。在此之前重新授权也无济于事。",
	adminTodoChallenge: "请该用户完成飞书的安全验证（打开该应用时飞书会提示）；完成后续期会自动恢复。",
	adminTodoTransient: "暂时无需处理，Vault 会持续重试；如果到期前仍无法连通飞书，该用户需要重新授权：",
	adminTodoDefault:   "请该用户重新授权，可用以下命令发起：",
	adminFooter:        "这不是 app_secret 的问题：应用密钥正常，只需为该用户续期授权。",

	userEnded:         "你在应用 %s 上的飞书授权（槽位 %s）已失效。原因：%s。",
	userEnds:          "你在应用 %s 上的飞书授权（槽位 %s）将于 %s到期（%s）。原因：%s。",
	userMeansEnded:    "依赖这项授权代你操作的服务现在会报错。",
	userMeansFailing:  "如果在此之前 Vault 仍未能完成续期，代你操作的服务届时将停止工作。",
	userMeansEnds:     "到期后，依赖这项授权代你操作的服务将停止工作，直到你重新授权。",
	userTodoSetup:     "你无需操作：需由管理员在飞书开发者后台修正应用配置，修正后续期会自动恢复。",
	userTodoChallenge: "请在飞书中打开该应用，按提示完成安全验证；完成后续期会自动恢复。",
	userTodoTransient: "暂时无需操作，Vault 会持续重试。如果临近截止时间仍续期失败，会再请你重新授权。",
	userTodoLink:      "请打开以下链接并确认授权（24 小时内有效，仅限本人使用）：",
	userTodoLinkCard:  "请点击下方按钮，在飞书中确认授权。链接 24 小时内有效，仅限本人使用。",
	userTodoNoLink:    "请联系 Vault 管理员为你重新发起授权。",
	userButton:        "重新授权",

	setupHeadline:    "飞书拒绝了应用 %s 的配置。原因：%s。",
	setupMeans:       "该应用的所有用户令牌都无法续期；已有授权会保留，令牌在到期前仍可使用。",
	setupTodo:        "请在飞书开发者后台修正应用设置（如飞书要求，请发布新版本）；修正后续期会自动恢复。",
	rollbackHeadline: "应用 %s 疑似发生存储回滚：%s。",
	rollbackMeans:    "Vault 的存储很可能被恢复到了一个早于这些授权最近一次续期的快照或备份；飞书已轮换了其中保存的刷新令牌，这些用户必须重新授权。在该快照之后续期过的其他授权，也会在下一次续期时以同样的方式失效。",
	rollbackTodo:     "用以下命令列出受影响的授权：vault list -detailed %sreauth ；请每位用户重新授权（%s）；参见运维指南中的“Backup and restore”一节。",
	rollbackCardTodo: "用下方第一条命令列出受影响的授权，并请每位用户重新授权（第二条命令）；参见运维指南中的“Backup and restore”一节。",
	rollbackSummary:  "有 %d 个授权持有的刷新令牌已被飞书轮换（槽位：%s），首次发现于 %s",
	rollbackMore:     " 等，另有 %d 个",
	listSep:          "、",

	reasons: map[string]string{
		"the grant ends 365 days after the user authorized":                                               "飞书授权自用户授权起 365 天后到期",
		"Lark issued no refresh token, so the grant ends with its access token":                           "飞书未签发刷新令牌，授权随访问令牌一同到期",
		"the refresh token expired before it could be renewed":                                            "刷新令牌在续期前已过期",
		"the grant reached Lark's 365-day limit after authorization":                                      "授权已达到飞书规定的 365 天上限",
		"Lark issued no refresh token (offline_access was not granted or the app may not refresh tokens)": "飞书未签发刷新令牌（未授予 offline_access，或该应用未开启令牌刷新）",
	},
}

func wordsFor(locale string) *noticeWords {
	if locale == localeEnUS {
		return wordsEN
	}
	return wordsZH
}

// reason is a notice's reason in the reader's language where the plugin wrote it itself; a reason
// that came from Lark (or names values) stays as it is.
func (w *noticeWords) reason(s string) string {
	if t, ok := w.reasons[s]; ok {
		return t
	}
	return s
}

func (w *noticeWords) levelName(level string) string {
	if n, ok := w.levels[level]; ok {
		return n
	}
	return level
}

// renewCommand is how an administrator starts a new authorization for a slot: the authorize link,
// or a device login for an app without a redirect_uri (path_device.go).
func renewCommand(r remedies, app *appEntry, id grantID) string {
	if app.RedirectURI == "" {
		return fmt.Sprintf("vault write %sdevice/%s/%s", r.mount, id.App, id.Slot)
	}
	return r.authorizeCommand(id)
}

// noticeColor is the card header's colour for a level.
func noticeColor(level string, failing lark.Meaning) string {
	switch {
	case level == levelWarning && failing == "":
		return "orange"
	case level == levelAppSetup:
		return "yellow"
	case level == levelExpired || level == levelRollback:
		return "carmine"
	}
	return "red"
}

// grantView is a grant's notice to the admins (toUser false) or to the user (with their link).
func grantView(app *appEntry, g *grantEntry, no *notice, r remedies, toUser bool, link string, loc *time.Location, esc escaper) *noticeView {
	w := wordsFor(app.notifyLocale())
	who := esc(g.Name, 64)
	if who == "" {
		who = g.OpenID
	}
	reason := esc(w.reason(no.Reason), 300)
	deadline := no.Deadline.In(loc).Format(w.timeLayout)
	level := w.levelName(no.Level)
	cmd := renewCommand(r, app, g.id())
	v := &noticeView{color: noticeColor(no.Level, no.Failing)}
	switch {
	case no.Level == levelExpired:
		v.title = w.titleEnded
	case no.Failing != "":
		v.title = w.titleFailing
	default:
		v.title = fmt.Sprintf(w.titleEnds, level)
	}
	if !toUser {
		v.facts = append(v.facts, noticeFact{w.who, who})
	}
	v.facts = append(v.facts, noticeFact{w.app, app.AppID}, noticeFact{w.slot, g.Slot}, noticeFact{w.level, level})
	if no.Level != levelExpired {
		v.facts = append(v.facts, noticeFact{w.deadline, deadline})
	}
	v.facts = append(v.facts, noticeFact{w.detailsLabel, reason})

	// The user reads about "your authorization"; the admins read whose it is, and get the command.
	rw, subject := w.forAdmins(), []any{who, g.Slot, app.AppID}
	if toUser {
		rw, subject = w.forUser(), []any{app.AppID, g.Slot}
	}
	if no.Level == levelExpired {
		v.headline = fmt.Sprintf(rw.ended, append(subject, reason)...)
		v.meaning = rw.meansEnded
	} else {
		v.headline = fmt.Sprintf(rw.ends, append(subject, deadline, level, reason)...)
		v.meaning = rw.meansEnds
		if no.Failing != "" {
			v.meaning = rw.meansFailing
		}
	}
	switch {
	case no.Failing == lark.MeaningAppSetup:
		v.todo = rw.todoSetup
	case no.Failing == lark.MeaningUserAction:
		v.todo = rw.todoChallenge
	case no.Failing != "":
		v.todo = rw.todoTransient
		if !toUser {
			v.command = cmd
		}
	case !toUser:
		v.todo, v.command, v.footer = w.adminTodoDefault, cmd, w.adminFooter
	case link != "":
		v.todo, v.link, v.button, v.cardTodo = w.userTodoLink, link, w.userButton, w.userTodoLinkCard
	default:
		v.todo = w.userTodoNoLink
	}
	return v
}

// readerWords are the texts of a grant's notice that differ only by its reader. ended takes the
// subject and the reason; ends the subject, deadline, level and reason (the subject: who, slot and
// app for the admins; app and slot for the user).
type readerWords struct {
	ended, ends                             string
	meansEnded, meansFailing, meansEnds     string
	todoSetup, todoChallenge, todoTransient string
}

func (w *noticeWords) forAdmins() readerWords {
	return readerWords{w.adminEnded, w.adminEnds, w.adminMeansEnded, w.adminMeansFailing, w.adminMeansEnds,
		w.adminTodoSetup, w.adminTodoChallenge, w.adminTodoTransient}
}

func (w *noticeWords) forUser() readerWords {
	return readerWords{w.userEnded, w.userEnds, w.userMeansEnded, w.userMeansFailing, w.userMeansEnds,
		w.userTodoSetup, w.userTodoChallenge, w.userTodoTransient}
}

// appView is an app-wide notice to the admins, about the app rather than one grant: a setup Lark
// refuses (levelAppSetup), or a suspected storage rollback (levelRollback, rollback.go), which also
// names its grants and the commands that list and renew them. Both carry the same facts.
func appView(app *appEntry, no *notice, r remedies, loc *time.Location, esc escaper) *noticeView {
	w := wordsFor(app.notifyLocale())
	rollback := no.Level == levelRollback
	level, title, headline, meaning, maxReason := levelAppSetup, w.titleSetup, w.setupHeadline, w.setupMeans, 300
	if rollback {
		level, title, headline, meaning, maxReason = levelRollback, w.titleRollback, w.rollbackHeadline, w.rollbackMeans, 600
	}
	reason := esc(no.Reason, maxReason)
	if f := no.Rollback; f != nil && rollback {
		list := strings.Join(f.Slots, w.listSep)
		if f.Count > len(f.Slots) {
			list += fmt.Sprintf(w.rollbackMore, f.Count-len(f.Slots))
		}
		reason = esc(fmt.Sprintf(w.rollbackSummary, f.Count, list, f.FirstAt.In(loc).Format(w.timeLayout)), maxReason)
	}
	v := &noticeView{
		color: noticeColor(level, ""), title: title,
		headline: fmt.Sprintf(headline, app.AppID, reason),
		facts:    []noticeFact{{w.app, app.AppID}, {w.level, w.levelName(level)}, {w.detailsLabel, reason}},
		meaning:  meaning, todo: w.setupTodo,
	}
	if rollback {
		cmd := renewCommand(r, app, grantID{app.AppID, "<slot>"})
		if app.RedirectURI != "" {
			cmd = fmt.Sprintf("vault write %soauth/%s/authorize user=<slot>", r.mount, app.AppID)
		}
		v.todo, v.cardTodo = fmt.Sprintf(w.rollbackTodo, r.mount, cmd), w.rollbackCardTodo
		v.commands = []string{"vault list -detailed " + r.mount + "reauth", cmd}
	}
	return v
}

// text renders the view as a plain text message: the headline, what it means, what to do (with the
// link or command), and the footer, one line each.
func (v *noticeView) text(w *noticeWords) string {
	var b strings.Builder
	b.WriteString(w.prefix)
	b.WriteString(v.headline)
	b.WriteString("\n")
	b.WriteString(w.meaningLabel)
	b.WriteString(v.meaning)
	b.WriteString("\n")
	b.WriteString(w.todoLabel)
	b.WriteString(v.todo)
	switch {
	case v.link != "":
		b.WriteString(v.link)
	case v.command != "":
		b.WriteString(v.command)
	}
	if v.footer != "" {
		b.WriteString("\n")
		b.WriteString(v.footer)
	}
	return b.String()
}

// Card JSON (docs/lark-api.md §8a): JSON 1.0 cards, which every Lark client renders.
type cardJSON struct {
	Config   cardConfig    `json:"config"`
	Header   cardHeader    `json:"header"`
	Elements []interface{} `json:"elements"`
}

type cardConfig struct {
	WideScreenMode bool `json:"wide_screen_mode"`
	EnableForward  bool `json:"enable_forward"`
}

type cardHeader struct {
	Template string      `json:"template"`
	Title    cardTextObj `json:"title"`
}

type cardTextObj struct {
	Tag     string `json:"tag"`
	Content string `json:"content"`
}

type cardField struct {
	IsShort bool        `json:"is_short"`
	Text    cardTextObj `json:"text"`
}

type cardDiv struct {
	Tag    string       `json:"tag"`
	Text   *cardTextObj `json:"text,omitempty"`
	Fields []cardField  `json:"fields,omitempty"`
}

type cardButton struct {
	Tag  string      `json:"tag"`
	Text cardTextObj `json:"text"`
	URL  string      `json:"url"`
	Type string      `json:"type"`
}

type cardAction struct {
	Tag     string       `json:"tag"`
	Actions []cardButton `json:"actions"`
}

type cardNote struct {
	Tag      string        `json:"tag"`
	Elements []cardTextObj `json:"elements"`
}

// card renders the view as a message card: the title in a coloured header, the facts as fields
// (the details on a line of their own), what it means and what to do, the command as plain text, a
// button for the link, and the footer as a note. Forwarding is off: a user's link is theirs alone.
func (v *noticeView) card(w *noticeWords) ([]byte, error) {
	var fields []cardField
	for _, f := range v.facts {
		fields = append(fields, cardField{IsShort: f.label != w.detailsLabel, Text: cardTextObj{"lark_md", "**" + f.label + strings.TrimSpace(w.colon) + "** " + f.value}})
	}
	todo := v.todo
	if v.cardTodo != "" {
		todo = v.cardTodo
	}
	elements := []interface{}{
		cardDiv{Tag: "div", Fields: fields},
		cardDiv{Tag: "div", Text: &cardTextObj{"lark_md", "**" + strings.TrimSpace(w.meaningLabel) + "** " + v.meaning}},
		cardDiv{Tag: "div", Text: &cardTextObj{"lark_md", "**" + strings.TrimSpace(w.todoLabel) + "** " + strings.TrimSpace(todo)}},
	}
	for _, c := range append([]string{v.command}, v.commands...) {
		if c != "" {
			elements = append(elements, cardDiv{Tag: "div", Text: &cardTextObj{"plain_text", c}})
		}
	}
	if v.link != "" {
		elements = append(elements, cardAction{Tag: "action", Actions: []cardButton{{Tag: "button", Text: cardTextObj{"plain_text", v.button}, URL: v.link, Type: "primary"}}})
	}
	if v.footer != "" {
		elements = append(elements, map[string]string{"tag": "hr"}, cardNote{Tag: "note", Elements: []cardTextObj{{"plain_text", v.footer}}})
	}
	c := cardJSON{Config: cardConfig{WideScreenMode: true}, Header: cardHeader{Template: v.color, Title: cardTextObj{"plain_text", v.title}}, Elements: elements}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // the stored card reads as written: "&" rather than "\u0026"
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// cardText makes a value that came from a user or from Lark safe inside card markdown (lark_md):
// plainText's rules (no line breaks, no <at …> mentions, no [text](url) links, no bidirectional
// controls, bounded length), and besides no emphasis or code marks that could dress a value up as
// our own text, and no "&", so that no HTML entity can spell a "<" Lark might decode after the
// markup is read.
func cardText(s string, maxRunes int) string {
	return cardMarkdownReplacer.Replace(plainText(s, maxRunes))
}

var cardMarkdownReplacer = strings.NewReplacer("*", "∗", "~", "∼", "`", "ˋ", "&", "＆", "#", "＃", "\\", "＼")

// plainText makes a value that came from a user or from Lark (a display name, a reason) safe inside
// a Lark text message: no line breaks that could forge a line of our own, no markup (Lark renders
// <at …> mentions and [text](url) links in text messages), no bidirectional controls that would
// show our own text after it reversed, bounded length.
func plainText(s string, maxRunes int) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n >= maxRunes {
			b.WriteString("…")
			break
		}
		switch {
		case r < 0x20 || r == 0x7f || r == '\u2028' || r == '\u2029' || (r >= 0x80 && r < 0xa0):
			r = ' '
		case r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069', r == '\u200e', r == '\u200f', r == '\u061c':
			// Bidirectional controls would make the rest of the line (our own text) read reversed.
			r = ' '
		case r == '<':
			r = '‹'
		case r == '>':
			r = '›'
		case r == '[':
			r = '［'
		case r == ']':
			r = '］'
		}
		b.WriteRune(r)
		n++
	}
	return strings.Join(strings.Fields(b.String()), " ")
}
