//go:build e2e

package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

const (
	ncMount   = "notice-cards/lark"
	ncCardApp = "cli_e2enoticecards"    // English cards to the admin and the user
	ncTextApp = "cli_e2enoticetextonly" // Chinese (the default); Lark refuses its cards
	ncAdmin   = "ou_e2enoticeadmin001"
)

// TestNoticeCardsLanguagesAndTextFallback: through the real Vault, a critical grant's notices go out
// as Lark message cards in the app's notify_locale (English here), the user's with a button that
// opens their pinned link; for an app whose cards Lark refuses, the same notice goes out as Chinese
// plain text; each exactly once.
func TestNoticeCardsLanguagesAndTextFallback(t *testing.T) {
	t.Parallel()
	swMount(t, ncMount, pluginName, "notify_schedule=* * * * *")
	swApp(t, ncMount, ncCardApp, nil, "notify_open_ids="+ncAdmin, "notify_users=true", "notify_locale=en_us",
		"redirect_uri=https://vault.example.com/v1/"+ncMount+"/oauth/callback")
	swApp(t, ncMount, ncTextApp, nil, "notify_open_ids="+ncAdmin)
	emulator(t, http.MethodPost, "/_emulator/card-mode", map[string]any{"mode": "refuse", "app_id": ncTextApp})
	swUser(t, "nc_admin", "Notice Admin", ncAdmin)
	swUser(t, "nc_user", "Card <at user_id=\"all\">User</at>", "")

	out := vaultJSON(t, rootToken, "read", ncMount+"/apps/"+ncTextApp)
	if got := out["data"].(map[string]any)["notify_locale"]; got != "zh_cn" {
		t.Fatalf("notify_locale of a feishu app: %v, want zh_cn", got)
	}
	authorized := time.Now().Add(-362 * 24 * time.Hour).Truncate(time.Second)
	swImport(t, ncMount, ncCardApp, "u", swMint(t, ncCardApp, "nc_user", 362), authorized)
	swImport(t, ncMount, ncTextApp, "u", swMint(t, ncTextApp, "nc_user", 362), authorized)

	// The next scheduled minute sends them, whichever sweep (the test's or Vault's periodic one)
	// takes it.
	var cards, texts []map[string]any
	for try := 0; try < 3; try++ {
		swSleepPastNextMinute(t)
		swSweep(t, ncMount)
		cards, texts = swMessages(t, ncCardApp), swMessages(t, ncTextApp)
		if len(cards) >= 2 && len(texts) >= 1 {
			break
		}
	}
	if len(cards) != 2 || len(texts) != 1 {
		t.Fatalf("messages: %d from %s (want 2 cards), %d from %s (want 1 text)", len(cards), ncCardApp, len(texts), ncTextApp)
	}

	var admin, user map[string]any
	for _, m := range cards {
		if m["msg_type"] != "interactive" || m["card"] == nil {
			t.Fatalf("not a card: %v", m)
		}
		if m["receive_id"] == ncAdmin {
			admin = m
		} else {
			user = m
		}
	}
	if admin == nil || user == nil {
		t.Fatalf("cards did not go to the admin and the user: %v", cards)
	}
	adminText, _ := admin["text"].(string)
	for _, want := range []string{"Lark authorization ends soon (critical)", "**App:** " + ncCardApp, "**Slot:** u\n",
		"**Level:** critical", "vault write " + ncMount + "/oauth/" + ncCardApp + "/authorize user=u", "not an app_secret problem"} {
		if !strings.Contains(adminText, want) {
			t.Errorf("the admin's card lacks %q:\n%s", want, adminText)
		}
	}
	if strings.Contains(adminText, "<at") || !strings.Contains(adminText, `**User:** Card ‹at user_id="all"›User‹/at›`) {
		t.Errorf("the user's name is not neutralised in the card:\n%s", adminText)
	}
	t.Logf("the admin's card (%s) as Lark received it:\n%s", ncCardApp, admin["content"])

	userText, _ := user["text"].(string)
	if strings.Contains(userText, "**User:**") || !strings.Contains(userText, "Authorize again: "+env.emuURL+"/open-apis/authen/v1/authorize?") {
		t.Errorf("the user's card: want no name and a button that opens the authorize page:\n%s", userText)
	}
	elements, _ := user["card"].(map[string]any)["elements"].([]any)
	last, _ := elements[len(elements)-1].(map[string]any)
	buttons, _ := last["actions"].([]any)
	if len(buttons) != 1 || buttons[0].(map[string]any)["type"] != "primary" {
		t.Errorf("the user's card does not end with one primary button: %v", last)
	}

	text := texts[0]
	body, _ := text["text"].(string)
	if text["msg_type"] != "text" || text["receive_id"] != ncAdmin || !strings.HasPrefix(body, "【Vault】") ||
		!strings.Contains(body, "（紧急）") || !strings.Contains(body, "\n处理方法：请该用户重新授权") || strings.Contains(body, "<at") {
		t.Errorf("the fallback: %v\n%s", text["msg_type"], body)
	}
	t.Logf("the plain-text fallback (%s):\n%s", ncTextApp, body)
	// The card was tried first, then the text: two requests for one notice.
	if c := swAppCounters(t, ncTextApp); c["messages"] != 2 {
		t.Errorf("%s made %d message requests, want 2 (the refused card, then the text)", ncTextApp, c["messages"])
	}

	// Sent once: the next scheduled minute sends nothing more.
	swSleepPastNextMinute(t)
	swSweep(t, ncMount)
	if a, b := len(swMessages(t, ncCardApp)), len(swMessages(t, ncTextApp)); a != 2 || b != 1 {
		t.Errorf("after another scheduled minute: %d and %d messages, want 2 and 1", a, b)
	}
}
