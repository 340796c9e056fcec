package larksecrets

// The bad-input catalog (issue 12, item 4): every path and field fed what an attacker or an
// unlucky operator sends. Each case asserts the HTTP status Vault would answer with, that the
// message names the field or parameter at fault, that no secret in the input is echoed, that
// storage is exactly as before (every key and value), and that nothing was sent to Lark.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/errutil"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/lark-vault/vault-plugin-secrets-lark/larkemu"
)

// writeOp marks a case sent as a write: create or update, chosen by the existence check the way
// Vault core chooses it.
const writeOp logical.Operation = "write"

type badInput struct {
	name string
	op   logical.Operation
	path string
	data map[string]interface{}
	// prepare makes data that only exists at run time (a fresh state, a minted token); it runs
	// before the storage snapshot.
	prepare func(t *testing.T, env *catalogEnv) map[string]interface{}
	// entity and accessor identify the requester; by default the catalog's own token. anonymous
	// sends neither.
	entity, accessor string
	anonymous        bool

	status int
	// names must all appear in the message: the field or parameter at fault.
	names []string
	// secret must not appear in the message.
	secret string
	// usesUp is a storage prefix under which this case may delete entries: an authorization state
	// that a refused exchange or callback uses up by design. Nothing may be added or changed.
	usesUp string
}

// catalogEnv is a mount in use: an app with a user grant (slot "alice"), a slot bound to another
// Lark user ("bob"), a bound slot without a grant ("carol") and a cached app token.
type catalogEnv struct {
	*testEnv
	bobOpenID string
}

const catalogAccessor = "accessor-of-the-test-token"

func newCatalogEnv(t *testing.T) *catalogEnv {
	env := &catalogEnv{testEnv: newTestEnv(t)}
	env.addOAuthApp()
	env.grantUser("alice")
	require.NoError(t, env.emu.RegisterUser(larkemu.User{UserID: "bob", Name: "Bob"}, false))
	env.bobOpenID = env.emu.OpenID(testAppID, "bob")
	env.mustWrite("slots/"+testAppID+"/bob", map[string]interface{}{"open_id": env.bobOpenID})
	env.bindSlot("carol", env.emu.CurrentUser().UserID)
	_, err := env.read("app-token/" + testAppID)
	require.NoError(t, err)
	return env
}

// snapshot is every key in storage with its value.
func (e *catalogEnv) snapshot() map[string]string {
	e.t.Helper()
	keys, err := logical.CollectKeys(context.Background(), e.storage)
	require.NoError(e.t, err)
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		entry, err := e.storage.Get(context.Background(), k)
		require.NoError(e.t, err)
		if entry != nil {
			out[k] = string(entry.Value)
		}
	}
	return out
}

// attempt sends one request the way Vault's HTTP layer would and returns the status Vault would
// answer with and the message (for the OAuth callback, the page).
func (e *catalogEnv) attempt(c badInput, data map[string]interface{}) (int, string) {
	e.t.Helper()
	accessor := c.accessor
	if accessor == "" && c.entity == "" && !c.anonymous {
		accessor = catalogAccessor
	}
	req := &logical.Request{Operation: c.op, Path: c.path, Data: data, Storage: e.storage,
		MountPoint: "lark/", EntityID: c.entity, ClientTokenAccessor: accessor}
	ctx := context.Background()
	if c.op == writeOp {
		req.Operation = logical.CreateOperation
		checkFound, exists, err := e.b.HandleExistenceCheck(ctx, req)
		if errors.Is(err, logical.ErrUnsupportedPath) {
			// Vault core skips the check and lets the request fail on the path.
			checkFound, err = false, nil
		}
		if err != nil {
			// Vault core answers an existence check's user error with 400 and anything else with 500.
			var ue errutil.UserError
			if errors.As(err, &ue) {
				return http.StatusBadRequest, err.Error()
			}
			return http.StatusInternalServerError, err.Error()
		}
		if !checkFound || exists {
			req.Operation = logical.UpdateOperation
		}
	}
	resp, err := e.b.HandleRequest(ctx, req)
	if resp != nil && resp.Data != nil {
		if code, ok := resp.Data[logical.HTTPStatusCode].(int); ok && err == nil {
			body, _ := resp.Data[logical.HTTPRawBody].([]byte)
			return code, string(body)
		}
	}
	status, rerr := logical.RespondErrorCommon(req, resp, err)
	if err != nil {
		logical.AdjustErrorStatusCode(&status, err) // a coded error's own status
	}
	if status == 0 {
		status = http.StatusOK
		if resp == nil {
			status = http.StatusNoContent
		}
	}
	msg := ""
	switch {
	case rerr != nil:
		msg = rerr.Error()
	case err != nil:
		msg = err.Error()
	case resp != nil && resp.IsError():
		msg = resp.Error().Error()
	}
	return status, msg
}

func runCatalog(t *testing.T, env *catalogEnv, cases []badInput) {
	t.Helper()
	seen := map[string]bool{}
	for _, c := range cases {
		require.False(t, seen[c.name], "two cases named %q", c.name)
		seen[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			data := c.data
			if c.prepare != nil {
				data = c.prepare(t, env)
			}
			before := env.snapshot()
			calls := env.emu.Counters()

			status, msg := env.attempt(c, data)

			require.Equal(t, c.status, status, "message: %s", msg)
			require.NotEmpty(t, c.names, "a case must say which field its message names")
			for _, name := range c.names {
				require.Contains(t, msg, name, "the message must name %q", name)
			}
			if c.secret != "" {
				require.NotContains(t, msg, c.secret, "the message echoes a secret")
			}
			require.Less(t, len(msg), 8192, "the message must stay short whatever the input")
			after := env.snapshot()
			if c.usesUp != "" {
				for k, v := range before {
					if _, ok := after[k]; !ok && strings.HasPrefix(k, c.usesUp) {
						after[k] = v
					}
				}
			}
			require.Equal(t, keysOf(before), keysOf(after), "storage keys changed")
			require.Equal(t, before, after, "stored values changed")
			require.Equal(t, calls, env.emu.Counters(), "a refused request must not reach Lark")
		})
	}
}

func keysOf(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// num is a number the way Vault's HTTP layer hands it over (JSON decoded with UseNumber).
func num(s string) json.Number { return json.Number(s) }

const (
	topSecret     = "TopSecretValue0123456789abcdef"
	someRefresh   = "ur-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	catalogNewApp = "cli_catalognew1"
)

var (
	appPath   = "apps/" + testAppID
	userPath  = "user-token/" + testAppID + "/alice"
	slotPath  = "slots/" + testAppID + "/carol"
	startPath = "oauth/" + testAppID + "/authorize"
	exchPath  = "oauth/" + testAppID + "/exchange"
)

// Names: app ids and slots in every path that takes them.
func TestBadInputNames(t *testing.T) {
	env := newCatalogEnv(t)
	var cases []badInput

	// Every malformed app id, on the path that would store it.
	badAppIDs := map[string]string{
		"upper-case prefix": "CLI_a1b2",
		"no suffix":         "cli_",
		"no prefix":         "a1b2c3d4",
		"dash":              "cli_a-b",
		"dot":               "cli_a.b",
		"unicode":           "cli_äbc",
		"fullwidth":         "cli_ａｂｃ",
		"percent-encoded":   "cli_a%2Fb",
		"NUL":               "cli_a\x00b",
		"space":             "cli_a b",
		"65 characters":     "cli_" + strings.Repeat("a", 65),
		"10 KiB":            "cli_" + strings.Repeat("a", 10240),
		"dot-dot":           "..",
		"path up":           "../config",
		"path trailing up":  "cli_a/..",
		"slash inside":      "cli_a/b",
	}
	// The router refuses what its patterns cannot match, before any handler runs.
	cases = append(cases, badInput{name: "apps write: app id with a newline", op: writeOp, path: "apps/cli_a\nb",
		data: map[string]interface{}{"app_secret": testSecret}, status: 404, names: []string{"unsupported path"}})
	for what, id := range badAppIDs {
		cases = append(cases, badInput{name: "apps write: app id " + what, op: writeOp, path: "apps/" + id,
			data: map[string]interface{}{"app_secret": testSecret}, status: 400, names: []string{"app_id"}})
	}
	// A few of them on every other path that takes an app id.
	someBad := []string{"CLI_a1b2", "cli_äbc", "cli_a%2Fb", "cli_a\x00b", "cli_" + strings.Repeat("a", 65)}
	for i, p := range []struct {
		label string
		op    logical.Operation
		path  string // %s is the app id
		data  map[string]interface{}
	}{
		{"apps read", logical.ReadOperation, "apps/%s", nil},
		{"apps delete", logical.DeleteOperation, "apps/%s", nil},
		{"app-token", logical.ReadOperation, "app-token/%s", nil},
		{"tenant-token", logical.ReadOperation, "tenant-token/%s", nil},
		{"user-token list", logical.ListOperation, "user-token/%s/", nil},
		{"user-token read", logical.ReadOperation, "user-token/%s/alice", nil},
		{"user-token import", writeOp, "user-token/%s/alice", map[string]interface{}{"refresh_token": someRefresh}},
		{"user-token delete", logical.DeleteOperation, "user-token/%s/alice", nil},
		{"slots list", logical.ListOperation, "slots/%s/", nil},
		{"slots write", writeOp, "slots/%s/carol", map[string]interface{}{"open_id": "ou_abc"}},
		{"slots read", logical.ReadOperation, "slots/%s/carol", nil},
		{"authorize", logical.UpdateOperation, "oauth/%s/authorize", map[string]interface{}{"user": "carol"}},
		{"replace", logical.UpdateOperation, "oauth/%s/replace/carol", nil},
		{"exchange", logical.UpdateOperation, "oauth/%s/exchange", map[string]interface{}{"code": "abc", "state": "def"}},
	} {
		// Every path with two of the ids, so that each id is tried on several paths.
		for _, j := range []int{i % len(someBad), (i + 2) % len(someBad)} {
			cases = append(cases, badInput{name: fmt.Sprintf("%s: app id #%d", p.label, j), op: p.op,
				path: fmt.Sprintf(p.path, someBad[j]), data: p.data, status: 400, names: []string{"app_id"}})
		}
	}

	// Slots.
	badSlots := map[string]string{
		"empty in body":      "",
		"leading dot":        ".hidden",
		"leading dash":       "-x",
		"leading at":         "@x",
		"dot-dot":            "a..b",
		"percent-encoded":    "a%2Fb",
		"NUL":                "a\x00b",
		"newline":            "a\nb",
		"unicode":            "ålice",
		"space":              "a b",
		"colon":              "a:b",
		"65 characters":      strings.Repeat("a", 65),
		"1 MiB":              strings.Repeat("a", 1<<20),
		"right-to-left mark": "a\u202eb",
	}
	for what, slot := range badSlots {
		cases = append(cases, badInput{name: "authorize: slot " + what, op: logical.UpdateOperation, path: startPath,
			data: map[string]interface{}{"user": slot}, status: 400, names: []string{"user"}})
	}
	for _, p := range []struct {
		op   logical.Operation
		path string
		data map[string]interface{}
	}{
		{writeOp, "user-token/" + testAppID + "/a..b", map[string]interface{}{"refresh_token": someRefresh}},
		{writeOp, "user-token/" + testAppID + "/a/b", map[string]interface{}{"refresh_token": someRefresh}},
		{writeOp, "user-token/" + testAppID + "/../alice", map[string]interface{}{"refresh_token": someRefresh}},
		{logical.ReadOperation, "user-token/" + testAppID + "/a%2Fb", nil},
		{logical.DeleteOperation, "user-token/" + testAppID + "/alice/..", nil},
		{logical.DeleteOperation, "user-token/" + testAppID + "/" + strings.Repeat("b", 65), nil},
		{writeOp, "slots/" + testAppID + "/..", map[string]interface{}{"open_id": "ou_abc"}},
		{writeOp, "slots/" + testAppID + "/é", map[string]interface{}{"open_id": "ou_abc"}},
		{logical.ReadOperation, "slots/" + testAppID + "/a\x00b", nil},
		{logical.DeleteOperation, "slots/" + testAppID + "/-x", nil},
		{logical.UpdateOperation, "oauth/" + testAppID + "/authorize/a..b", nil},
		{logical.UpdateOperation, "oauth/" + testAppID + "/replace/%2E%2E", nil},
		{logical.UpdateOperation, "oauth/" + testAppID + "/replace", map[string]interface{}{"user": "a/b"}},
	} {
		cases = append(cases, badInput{name: fmt.Sprintf("%s %s: slot", p.op, p.path),
			op: p.op, path: p.path, data: p.data, status: 400, names: []string{"user"}})
	}
	// The slot in the path and in the body must agree, or a policy on the path could be bypassed.
	cases = append(cases, badInput{name: "authorize: path and body slots differ", op: logical.UpdateOperation,
		path: startPath + "/carol", data: map[string]interface{}{"user": "bob"}, status: 400, names: []string{"user"}})
	runCatalog(t, env, cases)
}

// Mount settings: durations, bounds, cron expressions and time zones.
func TestBadInputConfig(t *testing.T) {
	env := newCatalogEnv(t)
	w := func(name string, data map[string]interface{}, names ...string) badInput {
		return badInput{name: name, op: logical.UpdateOperation, path: "config", data: data, status: 400, names: names}
	}
	cases := []badInput{
		w("lease_safety_margin below 10s", map[string]interface{}{"lease_safety_margin": num("5")}, "lease_safety_margin"),
		w("lease_safety_margin above 20m", map[string]interface{}{"lease_safety_margin": "21m"}, "lease_safety_margin"),
		w("lease_safety_margin negative", map[string]interface{}{"lease_safety_margin": num("-30")}, "lease_safety_margin"),
		w("lease_safety_margin words", map[string]interface{}{"lease_safety_margin": "five minutes"}, "lease_safety_margin"),
		w("lease_safety_margin ISO 8601", map[string]interface{}{"lease_safety_margin": "PT5M"}, "lease_safety_margin"),
		w("lease_safety_margin list", map[string]interface{}{"lease_safety_margin": []interface{}{"1m", "2m"}}, "lease_safety_margin"),
		w("lease_safety_margin map", map[string]interface{}{"lease_safety_margin": map[string]interface{}{"s": 60}}, "lease_safety_margin"),
		w("lease_safety_margin boolean", map[string]interface{}{"lease_safety_margin": true}, "lease_safety_margin"),
		w("token_refresh_window above 30m", map[string]interface{}{"token_refresh_window": "31m"}, "token_refresh_window"),
		w("token_refresh_window not above the margin", map[string]interface{}{"token_refresh_window": "5m"}, "token_refresh_window", "lease_safety_margin"),
		w("token_refresh_window fraction", map[string]interface{}{"token_refresh_window": num("1.5e3")}, "token_refresh_window"),
		w("lark_request_timeout zero", map[string]interface{}{"lark_request_timeout": num("0")}, "lark_request_timeout"),
		w("lark_request_timeout an hour", map[string]interface{}{"lark_request_timeout": "1h"}, "lark_request_timeout"),
		w("lark_max_attempts zero", map[string]interface{}{"lark_max_attempts": num("0")}, "lark_max_attempts"),
		w("lark_max_attempts eleven", map[string]interface{}{"lark_max_attempts": "11"}, "lark_max_attempts"),
		w("lark_max_attempts text", map[string]interface{}{"lark_max_attempts": "three"}, "lark_max_attempts"),
		w("lease_mode unknown", map[string]interface{}{"lease_mode": "always"}, "lease_mode"),
		w("lease_mode upper case", map[string]interface{}{"lease_mode": "LEASE"}, "lease_mode"),
		w("lease_mode empty", map[string]interface{}{"lease_mode": ""}, "lease_mode"),
		w("lease_mode list", map[string]interface{}{"lease_mode": []interface{}{"lease"}}, "lease_mode"),
		w("warning_days above 60", map[string]interface{}{"warning_days": num("61")}, "warning_days"),
		w("critical_days zero", map[string]interface{}{"critical_days": num("0")}, "critical_days"),
		w("critical_days equal to warning_days", map[string]interface{}{"critical_days": num("7")}, "critical_days", "warning_days"),
		w("warning_days below critical_days", map[string]interface{}{"warning_days": num("2")}, "critical_days", "warning_days"),
		w("warning_days text", map[string]interface{}{"warning_days": "a week"}, "warning_days"),
		w("keepalive_rate zero", map[string]interface{}{"keepalive_rate": num("0")}, "keepalive_rate"),
		w("keepalive_rate above Lark's limit", map[string]interface{}{"keepalive_rate": num("50")}, "keepalive_rate"),
		w("sweep_budget above a minute", map[string]interface{}{"sweep_budget": "61s"}, "sweep_budget"),
		w("sweep_budget negative", map[string]interface{}{"sweep_budget": "-5s"}, "sweep_budget"),
		w("failure_grace above a week", map[string]interface{}{"failure_grace": "169h"}, "failure_grace"),
		w("failure_grace negative", map[string]interface{}{"failure_grace": num("-1")}, "failure_grace"),
		w("notify_schedule empty", map[string]interface{}{"notify_schedule": ""}, "notify_schedule"),
		w("notify_schedule four fields", map[string]interface{}{"notify_schedule": "0 9 * *"}, "notify_schedule"),
		w("notify_schedule six fields", map[string]interface{}{"notify_schedule": "0 0 9 * * *"}, "notify_schedule"),
		w("notify_schedule descriptor", map[string]interface{}{"notify_schedule": "@daily"}, "notify_schedule"),
		w("notify_schedule every", map[string]interface{}{"notify_schedule": "@every 1h"}, "notify_schedule"),
		w("notify_schedule minute 60", map[string]interface{}{"notify_schedule": "60 9 * * *"}, "notify_schedule"),
		w("notify_schedule hour 24", map[string]interface{}{"notify_schedule": "0 24 * * *"}, "notify_schedule"),
		w("notify_schedule weekday 8", map[string]interface{}{"notify_schedule": "0 9 * * 8"}, "notify_schedule"),
		w("notify_schedule reversed range", map[string]interface{}{"notify_schedule": "0 21-9 * * *"}, "notify_schedule"),
		w("notify_schedule step zero", map[string]interface{}{"notify_schedule": "*/0 9 * * *"}, "notify_schedule"),
		w("notify_schedule text", map[string]interface{}{"notify_schedule": "every morning"}, "notify_schedule"),
		w("notify_schedule number", map[string]interface{}{"notify_schedule": num("9")}, "notify_schedule"),
		w("notify_schedule list", map[string]interface{}{"notify_schedule": []interface{}{"0 9 * * *"}}, "notify_schedule"),
		w("notify_schedule with its own zone", map[string]interface{}{"notify_schedule": "CRON_TZ=Local 0 9 * * *"}, "notify_schedule"),
		w("notify_schedule with TZ", map[string]interface{}{"notify_schedule": "TZ=Asia/Tokyo 0 9 * * *"}, "notify_schedule"),
		w("notify_schedule TZ alone", map[string]interface{}{"notify_schedule": "TZ=UTC"}, "notify_schedule"),
		w("notify_schedule never fires", map[string]interface{}{"notify_schedule": "0 9 30 2 *"}, "notify_schedule"),
		w("notify_schedule 5 KiB", map[string]interface{}{"notify_schedule": "0 9 * * *" + strings.Repeat(" ", 5120)}, "notify_schedule"),
		w("notify_timezone Local", map[string]interface{}{"notify_timezone": "Local"}, "notify_timezone"),
		w("notify_timezone empty", map[string]interface{}{"notify_timezone": ""}, "notify_timezone"),
		w("notify_timezone unknown", map[string]interface{}{"notify_timezone": "Mars/Olympus_Mons"}, "notify_timezone"),
		w("notify_timezone offset", map[string]interface{}{"notify_timezone": "+08:00"}, "notify_timezone"),
		w("notify_timezone lower case", map[string]interface{}{"notify_timezone": "asia/shanghai"}, "notify_timezone"),
		w("notify_timezone trailing space", map[string]interface{}{"notify_timezone": "Asia/Shanghai "}, "notify_timezone"),
		w("notify_timezone absolute file", map[string]interface{}{"notify_timezone": "/etc/localtime"}, "notify_timezone"),
		w("notify_timezone path up", map[string]interface{}{"notify_timezone": "../../../etc/passwd"}, "notify_timezone"),
		w("notify_timezone NUL", map[string]interface{}{"notify_timezone": "UTC\x00"}, "notify_timezone"),
		w("notify_timezone backslash", map[string]interface{}{"notify_timezone": `Asia\Shanghai`}, "notify_timezone"),
		w("notify_timezone directory", map[string]interface{}{"notify_timezone": "Asia"}, "notify_timezone"),
		w("notify_timezone 1 KiB", map[string]interface{}{"notify_timezone": strings.Repeat("A", 1024)}, "notify_timezone"),
		w("unknown field", map[string]interface{}{"warnings_days": num("10")}, "warnings_days"),
		{name: "read with an unknown field", op: logical.ReadOperation, path: "config",
			data: map[string]interface{}{"verbose": "1"}, status: 400, names: []string{"verbose"}},
	}
	runCatalog(t, env, cases)
}

// App settings: secret, brand, endpoints, redirect, scopes, recipients, identity settings.
func TestBadInputApps(t *testing.T) {
	env := newCatalogEnv(t)
	u := func(name string, data map[string]interface{}, names ...string) badInput {
		return badInput{name: name, op: writeOp, path: appPath, data: data, status: 400, names: names}
	}
	create := func(name string, data map[string]interface{}, names ...string) badInput {
		return badInput{name: "create: " + name, op: writeOp, path: "apps/" + catalogNewApp, data: data, status: 400, names: names}
	}
	cases := []badInput{
		create("no secret", map[string]interface{}{"brand": "lark"}, "app_secret"),
		create("empty secret", map[string]interface{}{"app_secret": ""}, "app_secret"),
		create("secret with a trailing newline", map[string]interface{}{"app_secret": topSecret + "\n"}, "app_secret"),
		create("secret with a space", map[string]interface{}{"app_secret": "abc def"}, "app_secret"),
		create("secret with unicode", map[string]interface{}{"app_secret": "sëcret"}, "app_secret"),
		create("secret with NUL", map[string]interface{}{"app_secret": "abc\x00def"}, "app_secret"),
		create("secret of 257 bytes", map[string]interface{}{"app_secret": strings.Repeat("s", 257)}, "app_secret"),
		create("bad brand with a good secret", map[string]interface{}{"app_secret": testSecret, "brand": "larksuite"}, "brand"),
		create("unknown field with a good secret", map[string]interface{}{"app_secret": testSecret, "app_scret": "x"}, "app_scret"),
		{name: "create: secret as a map", op: writeOp, path: "apps/" + catalogNewApp,
			data: map[string]interface{}{"app_secret": map[string]interface{}{"value": topSecret}}, status: 400, names: []string{"app_secret"}, secret: topSecret},
		{name: "create: secret as a list", op: writeOp, path: "apps/" + catalogNewApp,
			data: map[string]interface{}{"app_secret": []interface{}{topSecret}}, status: 400, names: []string{"app_secret"}, secret: topSecret},
		u("secret emptied", map[string]interface{}{"app_secret": ""}, "app_secret"),
		{name: "rotate: secret as a map", op: writeOp, path: appPath,
			data: map[string]interface{}{"app_secret": map[string]interface{}{"k": topSecret}}, status: 400, names: []string{"app_secret"}, secret: topSecret},
		u("brand capitalised", map[string]interface{}{"brand": "Feishu"}, "brand"),
		u("brand empty", map[string]interface{}{"brand": ""}, "brand"),
		u("brand number", map[string]interface{}{"brand": num("1")}, "brand"),
		u("base_url ftp", map[string]interface{}{"base_url": "ftp://open.feishu.cn"}, "base_url"),
		u("base_url javascript", map[string]interface{}{"base_url": "javascript:alert(1)"}, "base_url"),
		u("base_url relative", map[string]interface{}{"base_url": "open.feishu.cn"}, "base_url"),
		u("base_url user info", map[string]interface{}{"base_url": "https://user:pass@open.feishu.cn"}, "base_url"),
		u("base_url query", map[string]interface{}{"base_url": "https://open.feishu.cn?x=1"}, "base_url"),
		u("base_url empty query", map[string]interface{}{"base_url": "https://open.feishu.cn/?"}, "base_url"),
		u("base_url fragment", map[string]interface{}{"base_url": "https://open.feishu.cn#top"}, "base_url"),
		u("base_url path", map[string]interface{}{"base_url": "https://open.feishu.cn/open-apis"}, "base_url"),
		u("base_url port zero", map[string]interface{}{"base_url": "http://127.0.0.1:0"}, "base_url"),
		u("base_url port too big", map[string]interface{}{"base_url": "http://127.0.0.1:65536"}, "base_url"),
		u("base_url broken IPv6", map[string]interface{}{"base_url": "http://[::1"}, "base_url"),
		u("base_url IPv6 bad port", map[string]interface{}{"base_url": "http://[::1]:99999"}, "base_url"),
		u("base_url no host", map[string]interface{}{"base_url": "https://"}, "base_url"),
		u("base_url control character", map[string]interface{}{"base_url": "https://open.feishu.cn\r\nX: y"}, "base_url"),
		u("base_url 5 KiB", map[string]interface{}{"base_url": "https://" + strings.Repeat("a", 5120) + ".cn"}, "base_url"),
		u("base_url list", map[string]interface{}{"base_url": []interface{}{"https://a", "https://b"}}, "base_url"),
		u("accounts_base_url ftp", map[string]interface{}{"accounts_base_url": "ftp://accounts.feishu.cn"}, "accounts_base_url"),
		u("accounts_base_url user info", map[string]interface{}{"accounts_base_url": "https://u@accounts.feishu.cn"}, "accounts_base_url"),
		u("accounts_base_url path", map[string]interface{}{"accounts_base_url": "https://accounts.feishu.cn/open-apis/authen"}, "accounts_base_url"),
		u("accounts_base_url IPv6 zone", map[string]interface{}{"accounts_base_url": "http://[fe80::1%25eth0]:99999"}, "accounts_base_url"),
		u("redirect_uri ftp", map[string]interface{}{"redirect_uri": "ftp://vault.example/cb"}, "redirect_uri"),
		u("redirect_uri javascript", map[string]interface{}{"redirect_uri": "javascript:alert(1)"}, "redirect_uri"),
		u("redirect_uri relative", map[string]interface{}{"redirect_uri": "/v1/lark/oauth/callback"}, "redirect_uri"),
		u("redirect_uri scheme-relative", map[string]interface{}{"redirect_uri": "//vault.example/v1/lark/oauth/callback"}, "redirect_uri"),
		u("redirect_uri no host", map[string]interface{}{"redirect_uri": "https:///v1/lark/oauth/callback"}, "redirect_uri"),
		u("redirect_uri user info", map[string]interface{}{"redirect_uri": "https://user:pw@vault.example/cb"}, "redirect_uri"),
		u("redirect_uri query", map[string]interface{}{"redirect_uri": "https://vault.example/cb?next=/"}, "redirect_uri"),
		u("redirect_uri fragment", map[string]interface{}{"redirect_uri": "https://vault.example/cb#frag"}, "redirect_uri"),
		u("redirect_uri empty query", map[string]interface{}{"redirect_uri": "https://vault.example/cb?"}, "redirect_uri"),
		u("redirect_uri empty fragment", map[string]interface{}{"redirect_uri": "https://vault.example/cb#"}, "redirect_uri"),
		u("redirect_uri port too big", map[string]interface{}{"redirect_uri": "https://vault.example:99999/cb"}, "redirect_uri"),
		u("redirect_uri port zero", map[string]interface{}{"redirect_uri": "https://vault.example:0/cb"}, "redirect_uri"),
		u("redirect_uri IPv6 port too big", map[string]interface{}{"redirect_uri": "https://[::1]:70000/cb"}, "redirect_uri"),
		u("redirect_uri port without host", map[string]interface{}{"redirect_uri": "https://:8200/cb"}, "redirect_uri"),
		u("redirect_uri colon alone", map[string]interface{}{"redirect_uri": "http://:"}, "redirect_uri"),
		u("redirect_uri broken IPv6", map[string]interface{}{"redirect_uri": "https://[::1/cb"}, "redirect_uri"),
		u("redirect_uri newline", map[string]interface{}{"redirect_uri": "https://vault.example/cb\n"}, "redirect_uri"),
		u("redirect_uri 3 KiB", map[string]interface{}{"redirect_uri": "https://vault.example/" + strings.Repeat("p", 3072)}, "redirect_uri"),
		u("redirect_uri map", map[string]interface{}{"redirect_uri": map[string]interface{}{"u": "https://vault.example/cb"}}, "redirect_uri"),
		u("scopes with a space", map[string]interface{}{"scopes": "im:message offline_access"}, "scopes"),
		u("scopes with markup", map[string]interface{}{"scopes": "<script>"}, "scopes"),
		u("scopes with unicode", map[string]interface{}{"scopes": "contact:ユーザー"}, "scopes"),
		u("scope of 129 characters", map[string]interface{}{"scopes": strings.Repeat("s", 129)}, "scopes"),
		u("51 scopes", map[string]interface{}{"scopes": manyScopes(51)}, "scopes"),
		u("scopes as a map", map[string]interface{}{"scopes": map[string]interface{}{"a": "b"}}, "scopes"),
		u("lease_mode unknown", map[string]interface{}{"lease_mode": "never"}, "lease_mode"),
		u("notify_open_ids union id", map[string]interface{}{"notify_open_ids": "on_abc"}, "notify_open_ids"),
		u("notify_open_ids empty suffix", map[string]interface{}{"notify_open_ids": "ou_"}, "notify_open_ids"),
		u("notify_open_ids with markup", map[string]interface{}{"notify_open_ids": `ou_abc,<at user_id="all">`}, "notify_open_ids"),
		u("notify_open_ids 51 recipients", map[string]interface{}{"notify_open_ids": manyOpenIDs(51)}, "notify_open_ids"),
		u("notify_tenant_key on a self-built app", map[string]interface{}{"notify_tenant_key": "2ed263bf32cf1651"}, "notify_tenant_key"),
		u("notify_tenant_key with a slash", map[string]interface{}{"notify_tenant_key": "2ed263bf/32cf1651"}, "notify_tenant_key"),
		u("notify_locale unknown", map[string]interface{}{"notify_locale": "fr_fr"}, "notify_locale"),
		u("notify_locale upper case", map[string]interface{}{"notify_locale": "ZH_CN"}, "notify_locale"),
		u("notify_locale with a hyphen", map[string]interface{}{"notify_locale": "en-US"}, "notify_locale"),
		u("notify_locale traditional Chinese", map[string]interface{}{"notify_locale": "zh_tw"}, "notify_locale"),
		u("notify_locale markup", map[string]interface{}{"notify_locale": `<at user_id="all">`}, "notify_locale"),
		u("notify_locale list", map[string]interface{}{"notify_locale": []interface{}{"en_us"}}, "notify_locale"),
		u("notify_users word", map[string]interface{}{"notify_users": "maybe"}, "notify_users"),
		u("notify_users list", map[string]interface{}{"notify_users": []interface{}{true}}, "notify_users"),
		u("identity_metadata_key space", map[string]interface{}{"identity_metadata_key": "lark id"}, "identity_metadata_key"),
		u("identity_metadata_key unicode", map[string]interface{}{"identity_metadata_key": "ключ"}, "identity_metadata_key"),
		u("identity_metadata_key 129 characters", map[string]interface{}{"identity_metadata_key": strings.Repeat("k", 129)}, "identity_metadata_key"),
		u("identity_alias_mount a path", map[string]interface{}{"identity_alias_mount": "auth/oidc/"}, "identity_alias_mount"),
		u("identity_alias_mount short accessor", map[string]interface{}{"identity_alias_mount": "auth_oidc_1a2b3c4"}, "identity_alias_mount"),
		u("identity_alias_mount upper-case hex", map[string]interface{}{"identity_alias_mount": "auth_oidc_1A2B3C4D"}, "identity_alias_mount"),
		u("token_endpoint v4", map[string]interface{}{"token_endpoint": "v4"}, "token_endpoint"),
		u("token_endpoint upper case", map[string]interface{}{"token_endpoint": "V3"}, "token_endpoint"),
		u("token_endpoint empty", map[string]interface{}{"token_endpoint": ""}, "token_endpoint"),
		{name: "create: encrypt_key without verification_token", op: writeOp, path: "apps/" + catalogNewApp,
			data:   map[string]interface{}{"app_secret": testSecret, "encrypt_key": topSecret},
			status: 400, names: []string{"encrypt_key needs verification_token", "every event", "vault write lark/apps/" + catalogNewApp + " verification_token="}, secret: topSecret},
		{name: "create: store app with encrypt_key without verification_token", op: writeOp, path: "apps/" + catalogNewApp,
			data:   map[string]interface{}{"app_secret": testSecret, "app_type": "store", "encrypt_key": topSecret},
			status: 400, names: []string{"encrypt_key needs verification_token"}, secret: topSecret},
		{name: "encrypt_key added without verification_token", op: writeOp, path: appPath,
			data:   map[string]interface{}{"encrypt_key": topSecret},
			status: 400, names: []string{"encrypt_key needs verification_token", "verification_token=<token>"}, secret: topSecret},
		{name: "encrypt_key with an empty verification_token", op: writeOp, path: appPath,
			data:   map[string]interface{}{"encrypt_key": topSecret, "verification_token": ""},
			status: 400, names: []string{"encrypt_key needs verification_token"}, secret: topSecret},
		u("app_id in the body differs from the path", map[string]interface{}{"app_id": catalogNewApp, "app_secret": testSecret}, "app_id"),
		u("unknown field", map[string]interface{}{"redirect_url": "https://vault.example/cb"}, "redirect_url"),
		u("unknown field with a control character", map[string]interface{}{"x\ny": "1"}, "unknown field"),
		{name: "read with an unknown field", op: logical.ReadOperation, path: appPath,
			data: map[string]interface{}{"show_secret": "true"}, status: 400, names: []string{"show_secret"}},
		{name: "list with an unknown field", op: logical.ListOperation, path: "apps/",
			data: map[string]interface{}{"filter": "cli_"}, status: 400, names: []string{"filter"}},
		{name: "delete of an app with an unknown field", op: logical.DeleteOperation, path: appPath,
			data: map[string]interface{}{"force": "true"}, status: 400, names: []string{"force"}},
		{name: "delete while it holds grants", op: logical.DeleteOperation, path: appPath,
			status: 400, names: []string{testAppID, "user grant"}},
		{name: "app-token read with an unknown field", op: logical.ReadOperation, path: "app-token/" + testAppID,
			data: map[string]interface{}{"ttl": "1h"}, status: 400, names: []string{"ttl"}},
		{name: "tenant-token read with an unknown field", op: logical.ReadOperation, path: "tenant-token/" + testAppID,
			data: map[string]interface{}{"tenant_key": "x"}, status: 400, names: []string{"tenant_key"}},
		{name: "app-token of an app not configured", op: logical.ReadOperation, path: "app-token/" + catalogNewApp,
			status: 400, names: []string{catalogNewApp, "not configured"}},
		{name: "app-token min_ttl not a duration", op: logical.ReadOperation, path: "app-token/" + testAppID,
			data: map[string]interface{}{"min_ttl": "half an hour"}, status: 400, names: []string{"min_ttl"}},
		{name: "tenant-token min_ttl negative", op: logical.ReadOperation, path: "tenant-token/" + testAppID,
			data: map[string]interface{}{"min_ttl": "-30m"}, status: 400, names: []string{"min_ttl"}},
		{name: "app-token min_ttl longer than any token lives", op: logical.ReadOperation, path: "app-token/" + testAppID,
			data: map[string]interface{}{"min_ttl": "3h"}, status: 400, names: []string{"min_ttl", "at most 1h54m0s"}},
		{name: "tenant-token min_ttl just over the limit", op: logical.ReadOperation, path: "tenant-token/" + testAppID,
			data: map[string]interface{}{"min_ttl": 114*60 + 1}, status: 400, names: []string{"min_ttl", "2h"}},
		{name: "tenant-token min_ttl as a list", op: logical.ReadOperation, path: "tenant-token/" + testAppID,
			data: map[string]interface{}{"min_ttl": []interface{}{"30m", "1h"}}, status: 400, names: []string{"min_ttl"}},
		{name: "store tenant-token min_ttl not a duration", op: logical.ReadOperation, path: "tenant-token/" + testAppID + "/736588c92lxf175d",
			data: map[string]interface{}{"min_ttl": "soon"}, status: 400, names: []string{"min_ttl"}},
		{name: "min_ttl on an app not configured", op: logical.ReadOperation, path: "tenant-token/" + catalogNewApp,
			data: map[string]interface{}{"min_ttl": "30m"}, status: 400, names: []string{catalogNewApp, "not configured"}},
	}
	runCatalog(t, env, cases)
}

// An app that receives events keeps its Verification Token as long as it has an Encrypt Key: with
// the key alone, events/<app_id> would refuse every event.
func TestBadInputEventSecrets(t *testing.T) {
	env := newCatalogEnv(t)
	env.mustWrite(appPath, map[string]interface{}{"verification_token": storeVerify, "encrypt_key": storeEncrypt})
	env.mustWrite("apps/"+storeAppID, map[string]interface{}{"app_secret": storeSecret, "app_type": "store",
		"verification_token": storeVerify, "encrypt_key": storeEncrypt})
	cases := []badInput{
		{name: "verification_token cleared while encrypt_key stays", op: writeOp, path: appPath,
			data:   map[string]interface{}{"verification_token": ""},
			status: 400, names: []string{"verification_token cannot be removed", "encrypt_key", "verification_token= encrypt_key="}},
		{name: "verification_token cleared with a new encrypt_key", op: writeOp, path: appPath,
			data:   map[string]interface{}{"verification_token": "", "encrypt_key": topSecret},
			status: 400, names: []string{"encrypt_key needs verification_token"}, secret: topSecret},
		{name: "store app: verification_token cleared while encrypt_key stays", op: writeOp, path: "apps/" + storeAppID,
			data:   map[string]interface{}{"verification_token": ""},
			status: 400, names: []string{"verification_token cannot be removed", storeAppID}},
	}
	runCatalog(t, env, cases)

	// What the messages offer instead works: both removed, or the token replaced.
	env.mustWrite(appPath, map[string]interface{}{"verification_token": "aNewVerificationToken0123"})
	env.mustWrite(appPath, map[string]interface{}{"verification_token": "", "encrypt_key": ""})
	resp, err := env.read(appPath)
	require.NoError(t, err)
	require.Equal(t, false, resp.Data["verification_token_set"])
	require.Equal(t, false, resp.Data["encrypt_key_set"])

	// An app an older version stored with the key alone still takes unrelated writes, with a warning.
	ctx := context.Background()
	app, err := env.b.apps.load(ctx, env.storage, storeAppID)
	require.NoError(t, err)
	app.AppType, app.VerificationToken = "", ""
	require.NoError(t, env.b.apps.put(ctx, env.storage, app))
	resp, err = env.write("apps/"+storeAppID, map[string]interface{}{"scopes": "im:message"})
	require.NoError(t, err)
	require.False(t, resp.IsError(), "%v", resp.Error())
	require.Len(t, resp.Warnings, 1)
	require.Contains(t, resp.Warnings[0], "encrypt_key is set without verification_token")
}

func manyScopes(n int) string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("scope:%d", i)
	}
	return strings.Join(s, ",")
}

func manyOpenIDs(n int) string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("ou_%d", i)
	}
	return strings.Join(s, ",")
}

// Imports: token shapes and dates, all refused before the single-use token is spent.
func TestBadInputImport(t *testing.T) {
	env := newCatalogEnv(t)
	// A real, unspent refresh token: any case that sent it to Lark would change the refresh counter.
	minted, err := env.emu.MintGrant(larkemu.MintRequest{AppID: testAppID})
	require.NoError(t, err)
	live := minted.RefreshToken
	now := env.clock.Now()
	imp := func(name string, data map[string]interface{}, names ...string) badInput {
		return badInput{name: name, op: writeOp, path: "user-token/" + testAppID + "/dave", data: data, status: 400, names: names}
	}
	with := func(at interface{}) map[string]interface{} {
		return map[string]interface{}{"refresh_token": live, "authorized_at": at}
	}
	cases := []badInput{
		imp("no refresh token", map[string]interface{}{"authorized_at": now.Format(time.RFC3339)}, "refresh_token"),
		imp("empty refresh token", map[string]interface{}{"refresh_token": ""}, "refresh_token"),
		imp("refresh token of 15 characters", map[string]interface{}{"refresh_token": "ur-123456789012"}, "refresh_token"),
		imp("refresh token with a space", map[string]interface{}{"refresh_token": "ur-aaaaaaaa aaaaaaaaaaaa"}, "refresh_token"),
		imp("refresh token with a newline", map[string]interface{}{"refresh_token": live + "\n"}, "refresh_token"),
		imp("refresh token with unicode", map[string]interface{}{"refresh_token": "ur-ääääääääääääääääääää"}, "refresh_token"),
		imp("refresh token of 9 KiB", map[string]interface{}{"refresh_token": strings.Repeat("r", 9216)}, "refresh_token"),
		imp("refresh token with a quote", map[string]interface{}{"refresh_token": `ur-aaaaaaaaaaaaaaaa"`}, "refresh_token"),
		{name: "refresh token as a map", op: writeOp, path: "user-token/" + testAppID + "/dave",
			data: map[string]interface{}{"refresh_token": map[string]interface{}{"t": live}}, status: 400, names: []string{"refresh_token"}, secret: live},
		{name: "refresh token as a list", op: writeOp, path: "user-token/" + testAppID + "/dave",
			data: map[string]interface{}{"refresh_token": []interface{}{live, live}}, status: 400, names: []string{"refresh_token"}, secret: live},
		imp("authorized_at 400 days ago", with(now.Add(-400*24*time.Hour).Format(time.RFC3339)), "authorized_at"),
		imp("authorized_at exactly 365 days ago", with(now.Add(-365*24*time.Hour).Format(time.RFC3339)), "authorized_at"),
		imp("authorized_at tomorrow", with(now.Add(24*time.Hour).Format(time.RFC3339)), "authorized_at"),
		imp("authorized_at year 9999", with("9999-12-31T23:59:59Z"), "authorized_at"),
		imp("authorized_at year 0", with("0000-01-01T00:00:00Z"), "authorized_at"),
		imp("authorized_at date only", with("2026-11-01"), "authorized_at"),
		imp("authorized_at with a space", with("2026-11-01 09:00:00"), "authorized_at"),
		imp("authorized_at without zone", with("2026-11-01T09:00:00"), "authorized_at"),
		imp("authorized_at unix seconds", with(num("1793000000")), "authorized_at"),
		imp("authorized_at words", with("last tuesday"), "authorized_at"),
		imp("authorized_at month 13", with("2026-13-01T09:00:00Z"), "authorized_at"),
		imp("authorized_at 1 KiB", with(strings.Repeat("9", 1024)), "authorized_at"),
		imp("user in the body differs from the path", map[string]interface{}{"refresh_token": live, "user": "alice"}, "user"),
		imp("replace word", map[string]interface{}{"refresh_token": live, "replace": "perhaps"}, "replace"),
		imp("unknown field", map[string]interface{}{"refresh_token": live, "access_token": "x"}, "access_token"),
		{name: "read with refresh_token", op: logical.ReadOperation, path: userPath,
			data: map[string]interface{}{"refresh_token": live}, status: 400, names: []string{"refresh_token"}, secret: live},
		{name: "read with authorized_at", op: logical.ReadOperation, path: userPath,
			data: map[string]interface{}{"authorized_at": "2026-01-01T00:00:00Z"}, status: 400, names: []string{"authorized_at"}},
		{name: "read with an unknown field", op: logical.ReadOperation, path: userPath,
			data: map[string]interface{}{"force_refresh": "true"}, status: 400, names: []string{"force_refresh"}},
		{name: "list with an unknown field", op: logical.ListOperation, path: "user-token/" + testAppID + "/",
			data: map[string]interface{}{"state": "ok"}, status: 400, names: []string{"state"}},
		{name: "delete with an unknown field", op: logical.DeleteOperation, path: userPath,
			data: map[string]interface{}{"revoke": "false"}, status: 400, names: []string{"revoke"}},
		{name: "read of a slot without a grant", op: logical.ReadOperation, path: "user-token/" + testAppID + "/nobody",
			status: 404, names: []string{`no Lark grant for user "nobody"`, "vault write lark/oauth/" + testAppID + "/authorize user=nobody", "refresh_token="}},
		{name: "read of a bound slot without a grant", op: logical.ReadOperation, path: "user-token/" + testAppID + "/carol",
			status: 404, names: []string{`no Lark grant for user "carol"`, "authorize user=carol"}},
		{name: "read of a grant of an app not configured", op: logical.ReadOperation, path: "user-token/" + catalogNewApp + "/nobody",
			status: 404, names: []string{"no Lark grant", "not configured", "vault write lark/apps/" + catalogNewApp + " app_secret="}},
		{name: "delete of a slot without a grant", op: logical.DeleteOperation, path: "user-token/" + testAppID + "/nobody",
			status: 404, names: []string{`no Lark grant for user "nobody"`, "nothing was deleted", "vault list lark/user-token/" + testAppID + "/"}},
		{name: "delete of a bound slot without a grant", op: logical.DeleteOperation, path: "user-token/" + testAppID + "/carol",
			status: 404, names: []string{`no Lark grant for user "carol"`}},
	}
	runCatalog(t, env, cases)
	require.Zero(t, env.emu.Calls(larkemu.EndpointRefresh), "the minted token was never spent")
}

// Slot bindings: open_id and union_id shapes.
func TestBadInputSlots(t *testing.T) {
	env := newCatalogEnv(t)
	b := func(name string, data map[string]interface{}, names ...string) badInput {
		return badInput{name: name, op: writeOp, path: slotPath, data: data, status: 400, names: names}
	}
	cases := []badInput{
		b("neither id", map[string]interface{}{}, "open_id", "union_id"),
		b("both empty", map[string]interface{}{"open_id": "", "union_id": ""}, "open_id", "union_id"),
		b("open_id without suffix", map[string]interface{}{"open_id": "ou_"}, "open_id"),
		b("open_id upper-case prefix", map[string]interface{}{"open_id": "OU_abc"}, "open_id"),
		b("open_id given a union_id", map[string]interface{}{"open_id": "on_abc"}, "open_id"),
		b("open_id with a dash", map[string]interface{}{"open_id": "ou_abc-def"}, "open_id"),
		b("open_id with a leading space", map[string]interface{}{"open_id": " ou_abc"}, "open_id"),
		b("open_id with unicode digits", map[string]interface{}{"open_id": "ou_١٢٣"}, "open_id"),
		b("open_id of 68 characters", map[string]interface{}{"open_id": "ou_" + strings.Repeat("a", 65)}, "open_id"),
		b("open_id as a list", map[string]interface{}{"open_id": []interface{}{"ou_a", "ou_b"}}, "open_id"),
		b("open_id as a number", map[string]interface{}{"open_id": num("123")}, "open_id"),
		b("union_id given an open_id", map[string]interface{}{"union_id": "ou_abc"}, "union_id"),
		b("union_id with markup", map[string]interface{}{"union_id": "on_<b>"}, "union_id"),
		b("union_id with NUL", map[string]interface{}{"union_id": "on_a\x00"}, "union_id"),
		b("good open_id, bad union_id", map[string]interface{}{"open_id": "ou_abc", "union_id": "x"}, "union_id"),
		b("unknown field", map[string]interface{}{"open_id": "ou_abc", "user_id": "u1"}, "user_id"),
		b("user in the body differs from the path", map[string]interface{}{"open_id": "ou_abc", "user": "bob"}, "user"),
		b("app_id in the body differs from the path", map[string]interface{}{"open_id": "ou_abc", "app_id": catalogNewApp}, "app_id"),
		{name: "bind a slot holding another user's grant", op: writeOp, path: "slots/" + testAppID + "/alice",
			data: map[string]interface{}{"open_id": "ou_someoneelse"}, status: 400, names: []string{"alice", "grant"}},
		{name: "read with an unknown field", op: logical.ReadOperation, path: slotPath,
			data: map[string]interface{}{"open_id": "ou_abc", "x": "1"}, status: 400, names: []string{"x"}},
		{name: "list with an unknown field", op: logical.ListOperation, path: "slots/" + testAppID + "/",
			data: map[string]interface{}{"prefix": "a"}, status: 400, names: []string{"prefix"}},
		{name: "delete with an unknown field", op: logical.DeleteOperation, path: slotPath,
			data: map[string]interface{}{"cascade": "true"}, status: 400, names: []string{"cascade"}},
		{name: "read of an unbound slot", op: logical.ReadOperation, path: "slots/" + testAppID + "/nobody",
			status: 404, names: []string{`slot "nobody"`, "no binding", "vault write lark/slots/" + testAppID + "/nobody open_id="}},
		{name: "delete of an unbound slot", op: logical.DeleteOperation, path: "slots/" + testAppID + "/nobody",
			status: 404, names: []string{`slot "nobody"`, "no binding"}},
	}
	runCatalog(t, env, cases)
}

// Starting authorizations: scopes, expected users, identities.
func TestBadInputAuthorize(t *testing.T) {
	env := newCatalogEnv(t)
	s := func(name, path string, data map[string]interface{}, status int, names ...string) badInput {
		return badInput{name: name, op: logical.UpdateOperation, path: path, data: data, status: status, names: names}
	}
	replace := "oauth/" + testAppID + "/replace"
	cases := []badInput{
		s("no slot", startPath, map[string]interface{}{}, 400, "user"),
		s("slot as a list", startPath, map[string]interface{}{"user": []interface{}{"carol", "bob"}}, 400, "user"),
		s("slot as a map", startPath, map[string]interface{}{"user": map[string]interface{}{"n": "carol"}}, 400, "user"),
		s("extra scope with a space", startPath, map[string]interface{}{"user": "carol", "scopes": "a b"}, 400, "scopes"),
		s("extra scope with markup", startPath, map[string]interface{}{"user": "carol", "scopes": "x\"><script>"}, 400, "scopes"),
		s("51 extra scopes", startPath, map[string]interface{}{"user": "carol", "scopes": manyScopes(51)}, 400, "scopes"),
		s("expected_open_id malformed", startPath, map[string]interface{}{"user": "carol", "expected_open_id": "alice"}, 400, "expected_open_id"),
		s("expected_open_id a union_id", startPath, map[string]interface{}{"user": "carol", "expected_open_id": "on_abc"}, 400, "expected_open_id"),
		s("expected_open_id someone else", startPath, map[string]interface{}{"user": "carol", "expected_open_id": "ou_someoneelse"}, 403, "expected_open_id"),
		s("expected_open_id on replace malformed", replace, map[string]interface{}{"user": "carol", "expected_open_id": "ou_a b"}, 400, "expected_open_id"),
		s("unbound slot without identity", startPath, map[string]interface{}{"user": "erin"}, 403, "erin", "not bound"),
		s("unknown field", startPath, map[string]interface{}{"user": "carol", "redirect_uri": "https://evil.example/cb"}, 400, "redirect_uri"),
		s("unknown field on replace", replace+"/carol", map[string]interface{}{"state": "x"}, 400, "state"),
		s("app not configured", "oauth/"+catalogNewApp+"/authorize/carol", nil, 400, catalogNewApp),
		s("replace path and body slots differ", replace+"/carol", map[string]interface{}{"user": "alice"}, 400, "user"),
	}
	runCatalog(t, env, cases)
}

// Completing authorizations: exchange and the browser's callback.
func TestBadInputExchangeAndCallback(t *testing.T) {
	env := newCatalogEnv(t)
	fresh := func(entity, accessor string) func(*testing.T, *catalogEnv) (string, string) {
		return func(t *testing.T, env *catalogEnv) (string, string) {
			return env.startAs("carol", entity, accessor)
		}
	}
	exchangeWith := func(start func(*testing.T, *catalogEnv) (string, string), change func(code, state string) map[string]interface{}) func(*testing.T, *catalogEnv) map[string]interface{} {
		return func(t *testing.T, env *catalogEnv) map[string]interface{} {
			code, state := start(t, env)
			return change(code, state)
		}
	}
	asIs := func(code, state string) map[string]interface{} {
		return map[string]interface{}{"code": code, "state": state}
	}
	x := func(name string, data map[string]interface{}, names ...string) badInput {
		return badInput{name: name, op: logical.UpdateOperation, path: exchPath, data: data, status: 400, names: names}
	}
	cb := func(name string, data map[string]interface{}, names ...string) badInput {
		return badInput{name: "callback: " + name, op: logical.ReadOperation, path: "oauth/callback", data: data, status: 400, names: names}
	}
	cases := []badInput{
		x("no code", map[string]interface{}{"state": "abc"}, "code"),
		x("no state", map[string]interface{}{"code": "abc"}, "state"),
		x("code with markup", map[string]interface{}{"code": "<script>", "state": "abc"}, "code"),
		x("code with a space", map[string]interface{}{"code": "a b", "state": "abc"}, "code"),
		x("code of 513 characters", map[string]interface{}{"code": strings.Repeat("c", 513), "state": "abc"}, "code"),
		{name: "code as a list", op: logical.UpdateOperation, path: exchPath, data: map[string]interface{}{"code": []interface{}{topSecret, "b"}, "state": "abc"},
			status: 400, names: []string{"code"}, secret: topSecret},
		{name: "state as a list", op: logical.UpdateOperation, path: exchPath, data: map[string]interface{}{"code": "abc", "state": []interface{}{topSecret}},
			status: 400, names: []string{"state"}, secret: topSecret},
		x("app_id in the body differs from the path", map[string]interface{}{"code": "abc", "state": "def", "app_id": catalogNewApp}, "app_id"),
		x("state of 513 characters", map[string]interface{}{"code": "abc", "state": strings.Repeat("s", 513)}, "state"),
		x("state as a map", map[string]interface{}{"code": "abc", "state": map[string]interface{}{"s": "x"}}, "state"),
		x("state unknown", map[string]interface{}{"code": "abc", "state": "bm90LWEtc3RhdGU"}, "state"),
		x("unknown field", map[string]interface{}{"code": "abc", "state": "def", "redirect_uri": "https://x"}, "redirect_uri"),
		{name: "state of another app", op: logical.UpdateOperation, path: "oauth/" + catalogNewApp + "/exchange",
			prepare: exchangeWith(fresh("", catalogAccessor), asIs), status: 400, names: []string{"state", testAppID}, usesUp: oauthStatePrefix},
		// Issue 12, defect 1: a token without an entity started it; another token may not finish it.
		{name: "another token without entity", op: logical.UpdateOperation, path: exchPath,
			prepare: exchangeWith(fresh("", "accessor-root"), asIs), accessor: "accessor-other",
			status: 403, names: []string{"state", "another Vault identity"}, usesUp: oauthStatePrefix},
		{name: "another entity", op: logical.UpdateOperation, path: exchPath,
			prepare: exchangeWith(fresh("entity-carol", "accessor-carol"), asIs), entity: "entity-mallory", accessor: "accessor-mallory",
			status: 403, names: []string{"state", "another Vault identity"}, usesUp: oauthStatePrefix},
		{name: "starter's entity, but the request has none", op: logical.UpdateOperation, path: exchPath,
			prepare: exchangeWith(fresh("entity-carol", "accessor-carol"), asIs), accessor: "accessor-carol",
			status: 403, names: []string{"state"}, usesUp: oauthStatePrefix},
		{name: "request with neither entity nor token accessor", op: logical.UpdateOperation, path: exchPath,
			prepare: exchangeWith(fresh("", "accessor-root"), asIs), anonymous: true,
			status: 403, names: []string{"state"}, usesUp: oauthStatePrefix},
		{name: "expired state", op: logical.UpdateOperation, path: exchPath,
			prepare: exchangeWith(func(t *testing.T, env *catalogEnv) (string, string) {
				code, state := env.startAs("carol", "", catalogAccessor)
				env.clock.Advance(oauthStateTTL + time.Second)
				return code, state
			}, asIs), status: 400, names: []string{"state", "expired"}, usesUp: oauthStatePrefix},
		{name: "good state, malformed code", op: logical.UpdateOperation, path: exchPath,
			prepare: exchangeWith(fresh("", catalogAccessor), func(_, state string) map[string]interface{} {
				return map[string]interface{}{"code": "bad code!", "state": state}
			}), status: 400, names: []string{"code"}},

		cb("no parameters", map[string]interface{}{}, "state"),
		cb("code without state", map[string]interface{}{"code": "abc"}, "state"),
		cb("unknown state", map[string]interface{}{"code": "abc", "state": "bm90LWEtc3RhdGU"}, "unknown"),
		cb("state of 3000 characters", map[string]interface{}{"code": "abc", "state": strings.Repeat("s", 3000)}, "state parameter is far too long"),
		cb("parameter name of 100 characters", map[string]interface{}{"code": "abc", "state": "x", strings.Repeat("p", 100): "1"}, "too long", strings.Repeat("p", 64)+"…"),
		cb("state repeated", map[string]interface{}{"code": "abc", "state": []interface{}{"a", "b"}}, "state parameter appears more than once"),
		cb("error repeated", map[string]interface{}{"error": []interface{}{"access_denied", "x"}, "state": "abc"}, "error parameter appears more than once"),
		{name: "callback: code repeated with a good state", op: logical.ReadOperation, path: "oauth/callback",
			prepare: exchangeWith(fresh("", catalogAccessor), func(code, state string) map[string]interface{} {
				return map[string]interface{}{"code": []interface{}{code, code}, "state": state}
			}), status: 400, names: []string{"code"}},
		{name: "callback: malformed code with a good state", op: logical.ReadOperation, path: "oauth/callback",
			prepare: exchangeWith(fresh("", catalogAccessor), func(_, state string) map[string]interface{} {
				return map[string]interface{}{"code": "<script>alert(1)</script>", "state": state}
			}), status: 400, names: []string{"code"}},
		{name: "callback: no code with a good state", op: logical.ReadOperation, path: "oauth/callback",
			prepare: exchangeWith(fresh("", catalogAccessor), func(_, state string) map[string]interface{} {
				return map[string]interface{}{"state": state}
			}), status: 400, names: []string{"code"}},
		{name: "callback: declined", op: logical.ReadOperation, path: "oauth/callback",
			prepare: exchangeWith(fresh("", catalogAccessor), func(_, state string) map[string]interface{} {
				return map[string]interface{}{"state": state, "error": "access_denied"}
			}), status: 400, names: []string{"declined"}, usesUp: oauthStatePrefix},
		{name: "callback: Lark error with markup", op: logical.ReadOperation, path: "oauth/callback",
			prepare: exchangeWith(fresh("", catalogAccessor), func(_, state string) map[string]interface{} {
				return map[string]interface{}{"state": state, "error": "<b>server_error</b>"}
			}), status: 400, names: []string{"&lt;b&gt;server_error"}, usesUp: oauthStatePrefix},
	}
	runCatalog(t, env, cases)
}

// Paths that take no parameters, and the list paths, refuse unknown ones (issue 12, defect 4).
func TestBadInputUnknownFieldsOnParameterlessPaths(t *testing.T) {
	env := newCatalogEnv(t)
	var cases []badInput
	for _, p := range []struct {
		op   logical.Operation
		path string
	}{
		{logical.UpdateOperation, "sweep"},
		{logical.ReadOperation, "reauth"},
		{logical.ListOperation, "reauth/"},
		{logical.ReadOperation, "metrics"},
	} {
		cases = append(cases,
			badInput{name: string(p.op) + " " + p.path, op: p.op, path: p.path,
				data: map[string]interface{}{"format": "json"}, status: 400, names: []string{"format", "no parameters"}},
			badInput{name: string(p.op) + " " + p.path + " with a huge field name", op: p.op, path: p.path,
				data: map[string]interface{}{strings.Repeat("f", 10000): "1"}, status: 400, names: []string{"unknown field", "…"}})
	}
	many := map[string]interface{}{}
	for i := 0; i < 2000; i++ {
		many[fmt.Sprintf("field%04d", i)] = "1"
	}
	cases = append(cases, badInput{name: "2000 unknown fields", op: logical.UpdateOperation, path: "sweep",
		data: many, status: 400, names: []string{"unknown field", "field0000", "and 1990 more"}})
	runCatalog(t, env, cases)
}

// The requester's Lark identity as their Vault entity states it: odd metadata and aliases.
func TestBadInputRequesterIdentity(t *testing.T) {
	env := newCatalogEnv(t)
	const mount = "auth_oidc_1a2b3c4d"
	env.mustWrite(appPath, map[string]interface{}{"identity_metadata_key": "lark_id", "identity_alias_mount": mount})
	carol := env.emu.OpenID(testAppID, env.emu.CurrentUser().UserID)
	as := func(metadata map[string]string, aliases ...string) func(*testing.T, *catalogEnv) map[string]interface{} {
		return func(t *testing.T, env *catalogEnv) map[string]interface{} {
			entity := &logical.Entity{ID: "entity-odd", Name: "odd", Metadata: metadata}
			for _, a := range aliases {
				entity.Aliases = append(entity.Aliases, &logical.Alias{MountAccessor: mount, Name: a})
			}
			env.system.EntityVal = entity
			return map[string]interface{}{"user": "carol"}
		}
	}
	id := func(name string, prepare func(*testing.T, *catalogEnv) map[string]interface{}, status int, names ...string) badInput {
		return badInput{name: name, op: logical.UpdateOperation, path: startPath, prepare: prepare,
			entity: "entity-odd", accessor: "accessor-odd", status: status, names: names}
	}
	cases := []badInput{
		id("metadata an e-mail address", as(map[string]string{"lark_id": "carol@example.com"}), 400, "entity metadata lark_id", "open_id"),
		id("metadata with mention markup", as(map[string]string{"lark_id": `<at user_id="all">`}), 400, "entity metadata lark_id"),
		id("metadata with NUL", as(map[string]string{"lark_id": "ou_abc\x00"}), 400, "entity metadata lark_id"),
		id("metadata of 1 MiB", as(map[string]string{"lark_id": "ou_" + strings.Repeat("a", 1<<20)}), 400, "entity metadata lark_id"),
		id("metadata an empty suffix", as(map[string]string{"lark_id": "ou_"}), 400, "entity metadata lark_id"),
		id("metadata names another user", as(map[string]string{"lark_id": "ou_someoneelse"}), 403, "carol", "only the slot's user"),
		id("alias malformed", as(nil, "carol"), 400, "alias on "+mount),
		id("alias names another user", as(nil, "ou_someoneelse"), 403, "carol", "only the slot's user"),
		id("alias with a path", as(nil, "../ou_abc"), 400, "alias on "+mount),
		id("metadata and alias disagree", as(map[string]string{"lark_id": carol}, "ou_someoneelse"), 400, "different Lark users"),
		id("expected_open_id beyond the entity's", func(t *testing.T, env *catalogEnv) map[string]interface{} {
			data := as(map[string]string{"lark_id": carol})(t, env)
			data["expected_open_id"] = "ou_someoneelse"
			return data
		}, 403, "expected_open_id"),
	}
	runCatalog(t, env, cases)
}

// What is valid, next to what the catalog refuses: the refusals must not catch these.
func TestValidInputNearTheEdges(t *testing.T) {
	env := newCatalogEnv(t)
	for _, data := range []map[string]interface{}{
		{"notify_schedule": "0 9 29 2 *"}, // fires only in leap years, but fires
		{"notify_schedule": "*/15 * * * 1-5", "notify_timezone": "Asia/Shanghai"},
		{"notify_schedule": "0\t9 * * *", "notify_timezone": "Etc/GMT+12"},
		{"lease_safety_margin": "1.5m", "token_refresh_window": num("1500")},
	} {
		env.mustWrite("config", data)
	}
	for _, uri := range []string{"https://[::1]:8200/v1/lark/oauth/callback", "http://127.0.0.1:8200/cb",
		"https://vault.example:443/v1/lark/oauth/callback", "https://vault.example:/cb", "HTTPS://Vault.Example/cb"} {
		env.mustWrite(appPath, map[string]interface{}{"redirect_uri": uri})
	}
	// The path's own value repeated in the body is no disagreement.
	env.mustWrite(appPath, map[string]interface{}{"app_id": testAppID, "notify_users": true})
	env.mustWrite(slotPath, map[string]interface{}{"user": "carol", "open_id": env.emu.OpenID(testAppID, env.emu.CurrentUser().UserID)})
	resp, err := env.do(logical.UpdateOperation, startPath+"/carol", map[string]interface{}{"user": "carol"})
	require.NoError(t, err)
	require.False(t, resp.IsError(), "%v", resp.Error())
}
