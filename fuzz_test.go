package larksecrets

// Fuzzing of the plugin's own input handling (issue 12, item 5): names and slots, the OAuth
// callback and exchange, identities, scopes, schedules, redirect URIs and the neutralisation of
// user-controlled text in Lark messages. The Lark client's decoding has its own targets in lark/
// and lark/larkevent. The seeds below (and any under testdata/fuzz/) run with every `go test`;
// `make fuzz` explores each target for FUZZTIME.

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/vault/sdk/logical"
)

// printableMessage reports whether an error message is short (a quoted value is at most 64
// characters, up to 4 bytes each), valid UTF-8 and free of control
// characters and line separators, so that whatever was sent cannot forge lines in a log or a
// terminal.
func printableMessage(t *testing.T, what, msg string, max int) {
	t.Helper()
	if len(msg) > max {
		t.Fatalf("%s: message of %d bytes (at most %d): %.200q", what, len(msg), max, msg)
	}
	if !utf8.ValidString(msg) {
		t.Fatalf("%s: message is not valid UTF-8: %q", what, msg)
	}
	for _, r := range msg {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			t.Fatalf("%s: message contains control character %U: %q", what, r, msg)
		}
	}
}

var (
	// What an accepted app id or slot may contain, stated independently of the validators.
	asciiAlnum = regexp.MustCompile(`^[A-Za-z0-9]+$`)
	slotChars  = regexp.MustCompile(`^[A-Za-z0-9._@-]+$`)
)

func FuzzNameValidation(f *testing.F) {
	for _, s := range [][2]string{
		{testAppID, "alice"}, {"cli_a", "a"}, {"cli_", ""}, {"CLI_a", "A"}, {"cli_a/..", ".."},
		{"cli_a%2Fb", "a%2Fb"}, {"cli_a\x00", "a\x00b"}, {"cli_äb", "ålice"}, {"cli_ａ", "ａ"},
		{"cli_" + strings.Repeat("a", 64), strings.Repeat("s", 64)}, {"cli_" + strings.Repeat("a", 65), strings.Repeat("s", 65)},
		{"../config", "a/b"}, {"cli_a b", "a b"}, {"cli_a\n", "a\n"}, {"cli_1", "a..b"}, {"cli_1", "a.b"},
		{"cli_1", "@x"}, {"cli_1", "x@example.com"}, {"cli_1", "-x"}, {"cli_1", "a\u202eb"},
	} {
		f.Add(s[0], s[1])
	}
	env := newTestEnv(f)
	routes := []string{"apps/%a", "app-token/%a", "user-token/%a/%s", "slots/%a/%s", "oauth/%a/authorize/%s", "oauth/%a/replace/%s"}
	f.Fuzz(func(t *testing.T, appID, slot string) {
		appErr, slotErr := validateAppID(appID), validateSlot(slot)
		if appErr != nil {
			printableMessage(t, "app id", appErr.Error(), 512)
		} else {
			rest, ok := strings.CutPrefix(appID, "cli_")
			if !ok || len(appID) > 68 || !asciiAlnum.MatchString(rest) {
				t.Fatalf("accepted app id %q", appID)
			}
		}
		if slotErr != nil {
			printableMessage(t, "slot", slotErr.Error(), 512)
		} else if len(slot) > 64 || !slotChars.MatchString(slot) || strings.Contains(slot, "..") ||
			!asciiAlnum.MatchString(slot[:1]) {
			t.Fatalf("accepted slot %q", slot)
		}
		if appErr != nil || slotErr != nil {
			return
		}
		// Accepted names name one storage key and one route, each reading back as what was given.
		id := grantID{appID, slot}
		back, ok := parseGrantID(strings.TrimPrefix(id.storageKey(), grantStoragePrefix))
		if !ok || back != id {
			t.Fatalf("storage key %q reads back as %+v", id.storageKey(), back)
		}
		for _, r := range routes {
			path := strings.NewReplacer("%a", appID, "%s", slot).Replace(r)
			p := env.b.Route(path)
			if p == nil {
				t.Fatalf("%s routes nowhere", path)
			}
			re := regexp.MustCompile("^" + p.Pattern)
			m := re.FindStringSubmatch(path)
			if got := m[re.SubexpIndex("app_id")]; got != appID {
				t.Fatalf("%s: app_id captured as %q", path, got)
			}
			if i := re.SubexpIndex("user"); i > 0 && m[i] != slot {
				t.Fatalf("%s: user captured as %q", path, m[i])
			}
		}
	})
}

// Whatever a request names, an error message quotes it short and printable: unknown field names
// go into the message of every path.
func FuzzUnknownFieldNames(f *testing.F) {
	for _, s := range []string{"app_scret", "x\ny", "\x1b[2J", "a\u0085b\u2028c", "cli_x" + strings.Repeat("名", 30),
		strings.Repeat("f", 10000), "\xff\xfe", ""} {
		f.Add(s)
	}
	env := newTestEnv(f)
	f.Fuzz(func(t *testing.T, name string) {
		if _, known := configFields[name]; known {
			return
		}
		resp, err := env.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.UpdateOperation,
			Path: "config", Data: map[string]interface{}{name: "1"}, Storage: env.storage, MountPoint: "lark/"})
		if err != nil || !resp.IsError() {
			t.Fatalf("unknown field %q: %v %v", name, resp, err)
		}
		printableMessage(t, "unknown field", resp.Error().Error(), 1024)
		if v := truncateForMessage(name); utf8.RuneCountInString(v) > 65 {
			t.Fatalf("%d runes quoted", utf8.RuneCountInString(v))
		}
		if keys := storedOutside(t, env, oauthStatePrefix); len(keys) != 0 {
			t.Fatalf("stored %v", keys)
		}
	})
}

// fuzzKnownState is a pending authorization the fuzzer can name: each run stores it afresh, so the
// callback and the exchange get past the state lookup when an input carries it.
const fuzzKnownState = "ZnV6ei1rbm93bi1zdGF0ZS0wMTIzNDU2Nzg5YWJjZGVm"

func putKnownState(t *testing.T, env *testEnv) {
	t.Helper()
	now := env.clock.Now()
	st := &oauthState{Version: oauthStateEntryVersion, AppID: testAppID, Slot: "fuzz", Verifier: strings.Repeat("v", 43),
		RedirectURI: testRedirect, Scopes: []string{offlineAccessScope}, TokenAccessor: "accessor-of-the-test-token",
		Expected: larkIdentity{OpenID: "ou_fuzzexpected"}, CreatedAt: now, ExpiresAt: now.Add(oauthStateTTL)}
	entry, err := logical.StorageEntryJSON(oauthStateKey(fuzzKnownState), st)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.storage.Put(context.Background(), entry); err != nil {
		t.Fatal(err)
	}
}

// storedOutside lists every key outside the pending authorizations.
func storedOutside(t *testing.T, env *testEnv, prefix string) []string {
	t.Helper()
	keys, err := logical.CollectKeys(context.Background(), env.storage)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range keys {
		if !strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	return out
}

func knownStatePending(t *testing.T, env *testEnv) bool {
	t.Helper()
	e, err := env.storage.Get(context.Background(), oauthStateKey(fuzzKnownState))
	if err != nil {
		t.Fatal(err)
	}
	return e != nil
}

func FuzzCallback(f *testing.F) {
	for _, q := range []string{
		"", "code=abc&state=" + fuzzKnownState, "state=" + fuzzKnownState, "code=%3Cscript%3E&state=" + fuzzKnownState,
		"error=access_denied&state=" + fuzzKnownState, "error=%3Cb%3Ex%3C%2Fb%3E&state=" + fuzzKnownState,
		"code=a&code=b&state=" + fuzzKnownState, "state=a&state=b", "code=abc&state=" + strings.Repeat("s", 3000),
		strings.Repeat("k", 100) + "=v&state=x", "code=abc", "state=%00&code=%0A", "state=" + fuzzKnownState + "&code=abc&extra=%E2%80%AE",
		"code=" + strings.Repeat("c", 512) + "&state=" + fuzzKnownState, "code=" + strings.Repeat("c", 513) + "&state=" + fuzzKnownState,
		"state=" + fuzzKnownState + "&code=ok&error=", "%zz=1&state=" + fuzzKnownState,
	} {
		f.Add(q)
	}
	env := newTestEnv(f)
	env.addOAuthApp()
	f.Fuzz(func(t *testing.T, query string) {
		putKnownState(t, env)
		values, _ := url.ParseQuery(query) // Vault's HTTP layer drops what does not parse, too
		delete(values, "help")             // these two select other operations in Vault
		delete(values, "list")
		data := map[string]interface{}{}
		for k, vs := range values {
			switch len(vs) {
			case 0:
			case 1:
				data[k] = vs[0]
			default: // a repeated parameter arrives as a list
				list := make([]interface{}, len(vs))
				for i, v := range vs {
					list[i] = v
				}
				data[k] = list
			}
		}
		resp, err := env.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.ReadOperation,
			Path: callbackPath, Data: data, Storage: env.storage, MountPoint: "lark/"})
		if err != nil {
			t.Fatalf("the callback answered with an error instead of a page: %v", err)
		}
		status, _ := resp.Data[logical.HTTPStatusCode].(int)
		body, _ := resp.Data[logical.HTTPRawBody].([]byte)
		if status == http.StatusOK || status == http.StatusInternalServerError || status < 400 {
			t.Fatalf("HTTP %d for %q: %s", status, query, body)
		}
		if ct, _ := resp.Data[logical.HTTPContentType].(string); !strings.HasPrefix(ct, "text/html") {
			t.Fatalf("content type %q", ct)
		}
		page := string(body)
		start, end := strings.Index(page, "<p>"), strings.LastIndex(page, "</p>")
		if len(page) > 4096 || start < 0 || end < start {
			t.Fatalf("page of %d bytes: %.300q", len(page), page)
		}
		if msg := page[start+3 : end]; strings.ContainsAny(msg, "<>") {
			t.Fatalf("markup from the link reached the page: %q", msg)
		}
		if keys := storedOutside(t, env, oauthStatePrefix); len(keys) != 1 || keys[0] != "apps/"+testAppID {
			t.Fatalf("the callback stored %v", keys)
		}
		// A link that cannot succeed leaves the state for the genuine one.
		code, isString := data["code"].(string)
		if e, _ := data["error"].(string); e == "" && (!isString || !codePattern.MatchString(code)) && !knownStatePending(t, env) {
			t.Fatalf("a link without a valid code used up the state: %q", query)
		}
	})
}

func FuzzExchange(f *testing.F) {
	for _, s := range [][2]string{
		{"abc", fuzzKnownState}, {"", fuzzKnownState}, {"abc", ""}, {"<script>", fuzzKnownState}, {"a b", "x"},
		{strings.Repeat("c", 513), fuzzKnownState}, {"abc", strings.Repeat("s", 513)}, {"abc", "bm90LWEtc3RhdGU"},
		{"code-with_dash", fuzzKnownState + "\x00"}, {"\u202e", "\u202e"},
	} {
		f.Add(s[0], s[1])
	}
	env := newTestEnv(f)
	env.addOAuthApp()
	f.Fuzz(func(t *testing.T, code, state string) {
		putKnownState(t, env)
		resp, err := env.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.UpdateOperation,
			Path: "oauth/" + testAppID + "/exchange", Data: map[string]interface{}{"code": code, "state": state},
			Storage: env.storage, MountPoint: "lark/", ClientTokenAccessor: "accessor-of-the-test-token"})
		status, rerr := logical.RespondErrorCommon(&logical.Request{Operation: logical.UpdateOperation}, resp, err)
		if err != nil {
			logical.AdjustErrorStatusCode(&status, err)
		}
		if rerr == nil || status < 400 || status == http.StatusInternalServerError {
			t.Fatalf("code %q state %q: HTTP %d %v", code, state, status, rerr)
		}
		msg := rerr.Error()
		printableMessage(t, "exchange", msg, 1024)
		for _, v := range []string{code, state} {
			if len(v) >= 8 && strings.Contains(msg, v) {
				t.Fatalf("the message echoes %q: %s", v, msg)
			}
		}
		if keys := storedOutside(t, env, oauthStatePrefix); len(keys) != 1 {
			t.Fatalf("the exchange stored %v", keys)
		}
		if !codePattern.MatchString(code) && !knownStatePending(t, env) {
			t.Fatalf("an invalid code used up the state: %q", code)
		}
	})
}

func FuzzParseIdentity(f *testing.F) {
	for _, s := range []string{"ou_abc", "on_abc", " ou_abc\n", "ou_", "OU_abc", "ou_a-b", "carol@example.com",
		`<at user_id="all">`, "ou_" + strings.Repeat("a", 64), "ou_" + strings.Repeat("a", 65), "ou_١٢٣", "\u00a0ou_abc\u2028", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		id, err := parseIdentity(v)
		if err != nil {
			printableMessage(t, "identity", err.Error(), 512)
			if id.known() {
				t.Fatalf("an error with an identity: %+v", id)
			}
			return
		}
		trimmed := strings.TrimSpace(v)
		switch {
		case id.OpenID != "" && id.UnionID != "":
			t.Fatalf("one value gave two ids: %+v", id)
		case id.OpenID != "" && (id.OpenID != trimmed || !openIDPattern.MatchString(id.OpenID)):
			t.Fatalf("open_id %q from %q", id.OpenID, v)
		case id.UnionID != "" && (id.UnionID != trimmed || !unionIDPattern.MatchString(id.UnionID)):
			t.Fatalf("union_id %q from %q", id.UnionID, v)
		case !id.known():
			t.Fatalf("no error and no identity for %q", v)
		}
	})
}

func FuzzRequesterIdentity(f *testing.F) {
	const mount = "auth_oidc_1a2b3c4d"
	for _, s := range []struct {
		metadata, alias, aliasMount string
		hasEntity                   bool
	}{
		{"ou_abc", "", "", true}, {"", "ou_abc", mount, true}, {"ou_abc", "on_def", mount, true}, {"ou_abc", "ou_xyz", mount, true},
		{"carol@example.com", "", "", true}, {"", "carol", mount, true}, {"", "ou_abc", "auth_userpass_00000000", true},
		{"ou_abc", "", "", false}, {`<at user_id="all">`, "\x00", mount, true}, {strings.Repeat("a", 1<<12), "", "", true},
	} {
		f.Add(s.metadata, s.alias, s.aliasMount, s.hasEntity)
	}
	app := &appEntry{AppID: testAppID, IdentityMetadataKey: "lark_id", IdentityAliasMount: mount}
	f.Fuzz(func(t *testing.T, metadata, alias, aliasMount string, hasEntity bool) {
		sys := &logical.StaticSystemView{}
		req := &logical.Request{}
		if hasEntity {
			req.EntityID = "entity-fuzz"
			sys.EntityVal = &logical.Entity{ID: "entity-fuzz", Metadata: map[string]string{"lark_id": metadata},
				Aliases: []*logical.Alias{{MountAccessor: aliasMount, Name: alias}, nil}}
		}
		id, source, err := requesterIdentity(sys, req, app)
		if err != nil {
			printableMessage(t, "requester identity", err.Error(), 512)
			if id.known() {
				t.Fatalf("an error with an identity: %+v", id)
			}
			return
		}
		if id.OpenID != "" && !openIDPattern.MatchString(id.OpenID) || id.UnionID != "" && !unionIDPattern.MatchString(id.UnionID) {
			t.Fatalf("identity %+v from metadata %q alias %q", id, metadata, alias)
		}
		if id.known() != (source != "") {
			t.Fatalf("identity %+v with source %q", id, source)
		}
		if metadata != "" && hasEntity && !strings.Contains(source, "metadata") {
			t.Fatalf("metadata %q was not used (source %q)", metadata, source)
		}
	})
}

func FuzzNormalizeScopes(f *testing.F) {
	for _, s := range [][2]string{
		{"auth:user.id:read", "im:message,offline_access"}, {"a,a, a ,", ""}, {"a b", ""}, {"<script>", ""},
		{manyScopes(50), "offline_access"}, {manyScopes(51), ""}, {strings.Repeat("s", 128), strings.Repeat("s", 129)},
		{"contact:ユーザー", ""}, {"x\ny", ""}, {",,,", ",,"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		out, err := normalizeScopes(strings.Split(a, ","), strings.Split(b, ","), []string{offlineAccessScope})
		if err != nil {
			printableMessage(t, "scopes", err.Error(), 512)
			return
		}
		if len(out) > 50 || len(out) == 0 || !contains(out, offlineAccessScope) {
			t.Fatalf("%d scopes: %v", len(out), out)
		}
		seen := map[string]bool{}
		for _, s := range out {
			if seen[s] || !scopePattern.MatchString(s) || strings.ContainsAny(s, " \t\n,") {
				t.Fatalf("scope %q in %v", s, out)
			}
			seen[s] = true
		}
		again, err := normalizeScopes(out)
		if err != nil || strings.Join(again, " ") != strings.Join(out, " ") {
			t.Fatalf("normalising %v again gives %v, %v", out, again, err)
		}
	})
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func FuzzParseSchedule(f *testing.F) {
	for _, s := range [][2]string{
		{defaultNotifySchedule, defaultNotifyTimezone}, {"0 9 * * 1-5", "Asia/Shanghai"}, {"*/15 * * * *", "America/New_York"},
		{"0 9 29 2 *", "UTC"}, {"0 9 30 2 *", "UTC"}, {"@daily", "UTC"}, {"0 9 * * *", "Local"}, {"0 9 * * *", ""},
		{"0 9 * * *", "../../etc/passwd"}, {"0 9 * * *", "/etc/localtime"}, {"60 9 * * *", "UTC"}, {"0 0 9 * * *", "UTC"},
		// Regressions: the cron library panicked on a zone prefix without fields, and took the
		// zone from the expression instead of notify_timezone.
		{"TZ=UTC", "UTC"}, {"CRON_TZ=Local 0 9 * * *", "UTC"}, {"TZ=", "UTC"},
		// Regression: the library's reason quoted control characters of the expression.
		{"\x02", "UTC"}, {"0 9 * * \x1b[2J", "UTC"},
	} {
		f.Add(s[0], s[1])
	}
	from := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, expr, tz string) {
		s, err := parseSchedule(expr, tz)
		if err != nil {
			msg := err.Error()
			printableMessage(t, "schedule", msg, 1024)
			if !strings.Contains(msg, "notify_schedule") && !strings.Contains(msg, "notify_timezone") {
				t.Fatalf("the message names neither field: %s", msg)
			}
			return
		}
		if tz == "" || tz == "Local" || strings.HasPrefix(tz, "/") || strings.Contains(tz, "..") {
			t.Fatalf("time zone %q accepted", tz)
		}
		if len(expr) > maxScheduleBytes {
			t.Fatalf("a schedule of %d bytes accepted", len(expr))
		}
		// An accepted schedule fires, in its own zone, within the window the sweep looks at.
		next := s.sched.Next(from.In(s.loc))
		if next.IsZero() || next.Location().String() != s.loc.String() {
			t.Fatalf("%q in %q: next run %v", expr, tz, next)
		}
		if at, ok := s.firedBetween(next.Add(-time.Second), next); !ok || !at.Equal(next) {
			t.Fatalf("%q in %q: fired %v %v, want %v", expr, tz, at, ok, next)
		}
		if _, ok := s.firedBetween(next, next); ok {
			t.Fatalf("%q: fired in an empty window", expr)
		}
	})
}

func FuzzRedirectURI(f *testing.F) {
	for _, s := range []string{testRedirect, "http://127.0.0.1:8200/v1/lark/oauth/callback", "https://[::1]:8200/cb",
		"https://vault.example/cb?", "https://vault.example/cb#", "https://vault.example:99999/cb", "https://vault.example:0/cb",
		"https://u:p@vault.example/cb", "javascript:alert(1)", "//vault.example/cb", "https:///cb", "https://[::1/cb",
		"https://vault.example/cb\n", "HTTPS://VAULT.EXAMPLE/cb", "https://vault.example:/cb", "https://例え.jp/cb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if err := validateRedirectURI(raw); err != nil {
			printableMessage(t, "redirect_uri", err.Error(), 512)
			return
		}
		// Lark appends code and state; they must come back as exactly those two parameters, to the
		// same host, with nothing else riding along.
		u, err := url.Parse(raw + "?code=c0de&state=st4te")
		if err != nil {
			t.Fatalf("%q accepted, but %v once Lark appends its query", raw, err)
		}
		q := u.Query()
		if len(q) != 2 || q.Get("code") != "c0de" || q.Get("state") != "st4te" || u.Fragment != "" || u.User != nil {
			t.Fatalf("%q accepted, but Lark's redirect reads as %+v (query %v)", raw, u, q)
		}
		scheme := strings.ToLower(u.Scheme)
		if (scheme != "https" && scheme != "http") || u.Hostname() == "" {
			t.Fatalf("%q accepted: scheme %q host %q", raw, u.Scheme, u.Host)
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				t.Fatalf("%q accepted with port %q", raw, p)
			}
		}
	})
}

// bidiControls reorder the text around them when shown: a display name holding one could make the
// rest of a notice line read backwards.
func bidiControl(r rune) bool {
	return r >= '\u202a' && r <= '\u202e' || r >= '\u2066' && r <= '\u2069' || r == '\u200e' || r == '\u200f' || r == '\u061c'
}

func FuzzPlainText(f *testing.F) {
	for _, s := range []string{
		"Alice", "Eve <at user_id=\"all\">everyone</at>", "line\nWhat to do: run vault delete", "[click](https://evil.example)",
		"a\u2028b\u2029c\u0085d", "tab\there", "\x00\x1f\x7f", "  spaced   out  ", "名前", "\xff\xfe invalid utf-8",
		// Regression: bidirectional controls passed through and could reverse the rest of a line.
		"right-to-left \u202eedoc", "isolate \u2066x\u2069", "mark\u200f\u061c", strings.Repeat("x", 1000), "",
	} {
		f.Add(s, 64)
	}
	f.Add("abc", 2)
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 1 || max > 1000 {
			return // callers bound names to 64 runes and reasons to 300
		}
		out := plainText(s, max)
		if !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8: %q", out)
		}
		if n := utf8.RuneCountInString(out); n > max+1 {
			t.Fatalf("%d runes, at most %d+1: %q", n, max, out)
		}
		for _, r := range out {
			if strings.ContainsRune("<>[]", r) || unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || bidiControl(r) {
				t.Fatalf("%U left in %q (from %q)", r, out, s)
			}
		}
		if out != strings.TrimSpace(out) || strings.Contains(out, "  ") {
			t.Fatalf("whitespace not collapsed: %q", out)
		}
		if again := plainText(out, max+1); again != out {
			t.Fatalf("not stable: %q then %q", out, again)
		}
	})
}

// FuzzCardText: what goes into card markdown holds no markup at all, not only what plainText
// removes: no emphasis or code marks, no "&" that could spell an entity, no backslash escape.
func FuzzCardText(f *testing.F) {
	for _, s := range hostileValues {
		f.Add(s, 64)
	}
	f.Add("a*b~c`d&e#f\\g", 300)
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 1 || max > 1000 {
			return
		}
		out := cardText(s, max)
		if !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8: %q", out)
		}
		if n := utf8.RuneCountInString(out); n > max+1 {
			t.Fatalf("%d runes, at most %d+1: %q", n, max, out)
		}
		for _, r := range out {
			if strings.ContainsRune("<>[]*~`&#\\", r) || unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || bidiControl(r) {
				t.Fatalf("%U left in %q (from %q)", r, out, s)
			}
		}
		if again := cardText(out, max+1); again != out {
			t.Fatalf("not stable: %q then %q", out, again)
		}
	})
}
