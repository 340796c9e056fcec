package larksecrets

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/lark-vault/vault-plugin-secrets-lark/lark/larkevent"
	"github.com/lark-vault/vault-plugin-secrets-lark/larkemu"
)

func (e *testEnv) sweep() *sweepReport {
	e.t.Helper()
	r, err := e.b.sweeper.run(context.Background(), e.storage)
	require.NoError(e.t, err)
	return r
}

// importGrant mints a grant at the emulator authorized daysAgo and imports it into slot.
func (e *testEnv) importGrant(slot, userID string, daysAgo int) {
	e.t.Helper()
	minted, err := e.emu.MintGrant(larkemu.MintRequest{AppID: testAppID, UserID: userID, AuthorizedAgo: time.Duration(daysAgo) * 24 * time.Hour})
	require.NoError(e.t, err)
	resp, err := e.write("user-token/"+testAppID+"/"+slot, map[string]interface{}{
		"refresh_token": minted.RefreshToken,
		"authorized_at": e.clock.Now().Add(-time.Duration(daysAgo) * 24 * time.Hour).Format(time.RFC3339),
	})
	require.NoError(e.t, err)
	require.False(e.t, resp.IsError(), "%v", resp.Error())
}

func TestSweepKeepsAnUnreadGrantAliveFor60Days(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	env.grantUser("idle")
	rotations := 0
	var lastRefresh time.Time
	for hour := 0; hour < 60*24; hour++ {
		env.clock.Advance(time.Hour)
		r := env.sweep()
		require.Empty(t, r.RefreshFailed, "hour %d", hour)
		if len(r.Refreshed) > 0 {
			g := env.storedGrant("idle")
			// Rotated before the refresh token's own expiry, never after.
			require.True(t, lastRefresh.IsZero() || env.clock.Now().Before(lastRefresh.Add(7*24*time.Hour)))
			lastRefresh = g.LastRefreshAt
			rotations++
		}
	}
	// A 7-day refresh token is renewed at about half its life: 60 days need about 17 rotations.
	require.GreaterOrEqual(t, rotations, 15)
	require.LessOrEqual(t, rotations, 20)
	require.Zero(t, env.emu.Calls(larkemu.EndpointRefreshReuse))
	resp, err := env.read("user-token/" + testAppID + "/idle")
	require.NoError(t, err)
	require.NotEmpty(t, resp.Data["access_token"])
	require.Greater(t, resp.Data["days_left"].(float64), 300.0)
}

func TestLevelsWarningsAndReauth(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "u358"}))
	env.importGrant("w", "u358", 358)
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "u362"}))
	env.importGrant("c", "u362", 362)
	env.grantUser("fine")

	resp, err := env.read("user-token/" + testAppID + "/w")
	require.NoError(t, err)
	require.Len(t, resp.Warnings, 1)
	require.Contains(t, resp.Warnings[0], "level warning")
	require.Equal(t, 7.0, resp.Data["days_left"])

	resp, err = env.read("reauth")
	require.NoError(t, err)
	require.Equal(t, 2, resp.Data["count"])
	require.Equal(t, 1, resp.Data["count_warning"])
	require.Equal(t, 1, resp.Data["count_critical"])
	require.Len(t, resp.Warnings, 2)
	require.Contains(t, resp.Warnings[0], "cli_a1b2c3d4e5f6a7b8/c is at level critical", "worst first")
	c := resp.Data["grants"].(map[string]interface{})[testAppID+"/c"].(map[string]interface{})
	require.Equal(t, 3.0, c["days_left"])
	require.Equal(t, false, c["reauth_required"])

	// Past the cap: the next keep-alive or read ends it, and reauth says so.
	for day := 0; day < 8; day++ {
		env.clock.Advance(24 * time.Hour)
		env.sweep()
	}
	list, err := env.do(logical.ListOperation, "reauth", nil)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{testAppID + "/w", testAppID + "/c"}, list.Data["keys"])
	for _, k := range []string{testAppID + "/w", testAppID + "/c"} {
		info := list.Data["key_info"].(map[string]interface{})[k].(map[string]interface{})
		require.Equal(t, true, info["reauth_required"], k)
	}
}

func TestNoticesFollowTheScheduleToTheMinuteAndAreSentOnce(t *testing.T) {
	env := newTestEnv(t)
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "admin"}))
	admin := env.emu.OpenID(testAppID, "admin")
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "u358"}))
	env.addOAuthApp()
	env.mustWrite("apps/"+testAppID, map[string]interface{}{"notify_locale": "en_us", "notify_open_ids": admin})
	env.mustWrite("config", map[string]interface{}{"notify_timezone": "Asia/Shanghai"})
	env.importGrant("w", "u358", 358) // 7 days left: warning now; critical 4 days later

	shanghai, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)
	var sentAt []time.Time
	seen := 0
	// Minute by minute for 5 days (the test clock starts at 17:00 Shanghai time).
	for minute := 0; minute < 5*24*60; minute++ {
		env.clock.Advance(time.Minute)
		if minute == 3*24*60 {
			env.b = env.newBackend(nil) // a restart in the middle changes nothing
		}
		env.sweep()
		if msgs := env.emu.Messages(); len(msgs) > seen {
			for _, m := range msgs[seen:] {
				require.Equal(t, admin, m.ReceiveID)
				sentAt = append(sentAt, env.clock.Now())
				require.NotContains(t, m.Content, "eyJ", "a notice must not carry a token")
			}
			seen = len(msgs)
		}
	}
	msgs := env.emu.Messages()
	require.Len(t, msgs, 2, "one warning and one critical notice, each once")
	require.Equal(t, "interactive", msgs[0].MsgType)
	require.Contains(t, msgs[0].Text, "(warning)")
	require.Contains(t, msgs[0].Text, "not an app_secret problem")
	require.Contains(t, msgs[0].Text, "vault write lark/oauth/"+testAppID+"/authorize user=w")
	require.Contains(t, msgs[0].Text, "(UTC+08:00)", "times in notify_timezone")
	require.Contains(t, msgs[1].Text, "(critical)")
	for _, at := range sentAt {
		local := at.In(shanghai)
		require.Contains(t, []int{9, 21}, local.Hour(), "sent at %s", local)
		require.Zero(t, local.Minute(), "sent at %s", local)
	}
	require.Equal(t, 21, sentAt[0].In(shanghai).Hour(), "the first scheduled time after the grant reached warning")
}

func TestFailedNoticeStaysQueuedAndWrongSecretSendsNothing(t *testing.T) {
	env := newTestEnv(t)
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "admin"}))
	admin := env.emu.OpenID(testAppID, "admin")
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "u362"}))
	env.addOAuthApp()
	env.mustWrite("apps/"+testAppID, map[string]interface{}{"notify_open_ids": admin})
	env.mustWrite("config", map[string]interface{}{"notify_schedule": "* * * * *"})
	env.importGrant("c", "u362", 362)

	// The app's secret goes wrong: no tenant token, so no message, and the notice waits.
	require.NoError(t, env.emu.AddApp(testAppID, "rotatedInConsole"))
	env.sweep()
	env.clock.Advance(time.Minute)
	r := env.sweep()
	require.Equal(t, []string{testAppID + "/c/critical"}, r.NotifyFailed)
	require.Empty(t, env.emu.Messages())
	queued, err := listRecursive(context.Background(), env.storage, noticePrefix)
	require.NoError(t, err)
	require.Equal(t, []string{testAppID + "/c/critical"}, queued)

	// Fixed: the next scheduled run sends it, once.
	require.NoError(t, env.emu.AddApp(testAppID, testSecret))
	env.clock.Advance(time.Minute)
	r = env.sweep()
	require.Equal(t, []string{testAppID + "/c/critical"}, r.Notified)
	for i := 0; i < 3; i++ {
		env.clock.Advance(time.Minute)
		env.sweep()
	}
	require.Len(t, env.emu.Messages(), 1)
}

func TestNoticeToTheUserCarriesAPinnedLink(t *testing.T) {
	env := newTestEnv(t)
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "u362"}))
	env.addOAuthApp()
	env.mustWrite("apps/"+testAppID, map[string]interface{}{"notify_users": true})
	env.mustWrite("config", map[string]interface{}{"notify_schedule": "* * * * *"})
	env.importGrant("c", "u362", 362)
	env.sweep()
	env.clock.Advance(time.Minute)
	env.sweep()
	msgs := env.emu.Messages()
	require.Len(t, msgs, 1)
	require.Equal(t, env.emu.OpenID(testAppID, "u362"), msgs[0].ReceiveID)
	require.Contains(t, msgs[0].Content, "/open-apis/authen/v1/authorize?")
	require.NotNil(t, msgs[0].Card, "a card")

	// Someone else cannot use the link: it is pinned to the user's open_id.
	start := strings.Index(msgs[0].Content, "http")
	link := msgs[0].Content[start:]
	link = link[:strings.IndexAny(link, "\\\n \"")]
	buttons := msgs[0].Card.Elements[len(msgs[0].Card.Elements)-1].Actions
	require.Len(t, buttons, 1, "the user's card ends with one button")
	require.Equal(t, link, buttons[0].URL, "the button opens the pinned link")
	require.Equal(t, "primary", buttons[0].Type)
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "other"}))
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := client.Get(link)
	require.NoError(t, err)
	r.Body.Close()
	loc, err := r.Location()
	require.NoError(t, err)
	status, page := env.callback(map[string]interface{}{"code": loc.Query().Get("code"), "state": loc.Query().Get("state")})
	require.Equal(t, http.StatusForbidden, status, page)
}

// rateRecorder wraps the emulator to record when refresh requests arrive.
type rateRecorder struct {
	next http.Handler
	mu   sync.Mutex
	at   []time.Time
}

func (rr *rateRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/oauth/v3/token") {
		rr.mu.Lock()
		rr.at = append(rr.at, time.Now())
		rr.mu.Unlock()
	}
	rr.next.ServeHTTP(w, r)
}

func TestSweepOfTenThousandGrantsStaysInBudgetAndRespectsTheRateLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("seconds of real time")
	}
	env := newTestEnv(t)
	rec := &rateRecorder{next: env.emu}
	ts := httptestServer(t, rec)
	env.emuURL = ts
	env.addOAuthApp()
	env.mustWrite("config", map[string]interface{}{"sweep_budget": 1, "keepalive_rate": 20})

	// 10,000 grants: 60 due for keep-alive (real ones at the emulator), the rest fresh.
	now := env.clock.Now()
	for i := 0; i < 10000; i++ {
		slot := "s" + strings.Repeat("0", 5-len(itoa(i))) + itoa(i)
		g := &grantEntry{AppID: testAppID, Slot: slot, State: grantStateOK, AccessToken: "x", AccessExpiresAt: now.Add(2 * time.Hour),
			RefreshToken: "unused", LastRefreshAt: now, RefreshExpiresAt: now.Add(7 * 24 * time.Hour),
			AuthorizedAt: now, GrantExpiresAt: now.Add(grantMaxAge)}
		if i%166 == 0 {
			minted, err := env.emu.MintGrant(larkemu.MintRequest{AppID: testAppID})
			require.NoError(t, err)
			g.RefreshToken = minted.RefreshToken
			g.LastRefreshAt = now.Add(-6 * 24 * time.Hour)
			g.RefreshExpiresAt = now.Add(24 * time.Hour)
		}
		env.writeGrant(g)
	}
	due, refreshed := 0, 0
	// Grant visiting gets 60 % of each budget, and a loaded machine (the race detector, other test
	// packages) visits fewer grants per run: go on until every due grant is refreshed or a minute of
	// runs has passed; the assertions are about each run's budget and the rate, not the run count.
	deadline := time.Now().Add(time.Minute)
	for run := 0; refreshed < 61 && time.Now().Before(deadline); run++ {
		r := env.sweep()
		require.Less(t, r.Took, 1500*time.Millisecond, "run %d took %s with a 1s budget", run, r.Took)
		require.Empty(t, r.RefreshFailed)
		due += r.GrantsDue
		refreshed += len(r.Refreshed)
	}
	require.Equal(t, 61, refreshed, "every due grant was refreshed, over several runs")
	require.GreaterOrEqual(t, due, 61, "the due index named every grant due for keep-alive")

	// Never more than keepalive_rate refreshes in any one-second window.
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for i := range rec.at {
		n := 0
		for j := i; j < len(rec.at) && rec.at[j].Sub(rec.at[i]) < time.Second; j++ {
			n++
		}
		require.LessOrEqual(t, n, 21, "refreshes in one second")
	}
}

func httptestServer(t *testing.T, h http.Handler) string {
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts.URL
}

func itoa(i int) string { return strconv.Itoa(i) }

// An import whose authorized_at says the grant has already ended is refused before the single-use
// token is spent (issue 12, defect 3).
func TestImportOfAnEndedGrantSpendsNothing(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	minted, err := env.emu.MintGrant(larkemu.MintRequest{AppID: testAppID, AuthorizedAgo: 364 * 24 * time.Hour})
	require.NoError(t, err)
	resp, err := env.write("user-token/"+testAppID+"/ended", map[string]interface{}{
		"refresh_token": minted.RefreshToken,
		"authorized_at": env.clock.Now().Add(-366 * 24 * time.Hour).Format(time.RFC3339),
	})
	require.NoError(t, err)
	require.True(t, resp.IsError())
	require.Contains(t, resp.Error().Error(), "more than 365 days ago")
	require.Contains(t, resp.Error().Error(), "authorized_at")
	require.Equal(t, 0, env.emu.Calls(larkemu.EndpointRefresh), "the token was not spent")
	require.Empty(t, env.storedKeys(grantStoragePrefix))

	// A grant with a day left is stored with its true level at once.
	resp, err = env.write("user-token/"+testAppID+"/last-day", map[string]interface{}{
		"refresh_token": minted.RefreshToken,
		"authorized_at": env.clock.Now().Add(-364 * 24 * time.Hour).Format(time.RFC3339),
	})
	require.NoError(t, err)
	require.False(t, resp.IsError(), "%v", resp.Error())
	require.Equal(t, levelCritical, resp.Data["level"])
	require.Contains(t, resp.Warnings[0], "is at level critical")
}

// A grant that moves past a level before the scheduled time gets only the newer notice.
func TestNoticeOfALevelAlreadyPassedIsNotSent(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "admin"}))
	env.mustWrite("apps/"+testAppID, map[string]interface{}{"notify_open_ids": env.emu.OpenID(testAppID, "admin")})
	require.NoError(t, env.emu.AddUser(larkemu.User{UserID: "u-late"}))
	env.clock.Advance(time.Hour) // 10:00 UTC, between scheduled times
	env.importGrant("late", "u-late", 364)
	env.sweep() // queues the critical notice
	env.clock.Advance(24 * time.Hour)
	r := env.sweep() // the grant has ended; the 21:00 and 09:00 times have passed
	require.Equal(t, []string{testAppID + "/late/expired"}, r.Notified)
	msgs := env.emu.Messages()
	require.Len(t, msgs, 1)
	require.Contains(t, msgs[0].Text, "飞书授权已失效", "brand feishu: Chinese by default")
	require.True(t, env.storedGrant("late").notified(levelCritical), "the skipped notice counts as sent")
}

// readKeys records which grants a backend reads from storage.
type readKeys struct {
	logical.Storage
	mu   sync.Mutex
	read map[string]int
}

func (s *readKeys) Get(ctx context.Context, k string) (*logical.StorageEntry, error) {
	if strings.HasPrefix(k, grantStoragePrefix) {
		s.mu.Lock()
		s.read[strings.TrimPrefix(k, grantStoragePrefix+testAppID+"/")]++
		s.mu.Unlock()
	}
	return s.Storage.Get(ctx, k)
}

func (s *readKeys) take() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.read
	s.read = map[string]int{}
	return r
}

// A sweep reads from storage only the grants whose time has come by the due index, including the
// first after a restart (or on a new active node): with 10,000 grants, the 50 that just reached
// their warning point and nothing else. New level thresholds make one walk read every grant; an
// index entry lost (here deleted by hand) hides its grant for at most one step of the walk.
func TestSweepReadsOnlyDueGrants(t *testing.T) {
	env := newTestEnv(t)
	reads := &readKeys{Storage: env.storage, read: map[string]int{}}
	env.storage = reads
	env.addOAuthApp()
	env.sweep() // the indexes of an empty mount are built at once
	now := env.clock.Now()
	const n, soon, later = 10000, 50, 30
	var dueSoon, dueLater []string
	for i := 0; i < n; i++ {
		g := env.okGrant(testAppID, fmt.Sprintf("g%05d", i))
		switch {
		case i%200 == 7 && len(dueSoon) < soon:
			// Its warning point (7 days before its end) comes a day and i/200 minutes from now.
			g.GrantExpiresAt = now.Add(8*24*time.Hour + time.Duration(len(dueSoon))*time.Minute)
			dueSoon = append(dueSoon, g.Slot)
		case i%200 == 11 && len(dueLater) < later:
			g.GrantExpiresAt = now.Add(8*24*time.Hour + 12*time.Hour) // within 9 days only after a day
			dueLater = append(dueLater, g.Slot)
		}
		env.writeGrant(g)
	}
	require.Len(t, dueSoon, soon)
	require.Len(t, dueLater, later)
	env.b = env.newBackend(nil)
	reads.take()
	r := env.sweep()
	require.Zero(t, r.GrantsDue)
	require.Empty(t, reads.take(), "nothing is due: no grant is read")
	require.Equal(t, n, r.GrantsTotal, "the level counts know every grant without reading one")

	// A day and an hour later the first group is past its warning point; keep-alive is 3 days off.
	env.clock.Advance(25 * time.Hour)
	env.b = env.newBackend(nil) // the first pass after a restart, with nothing in memory
	reads.take()
	r = env.sweep()
	require.Equal(t, soon, r.GrantsDue)
	require.Len(t, r.Flagged, soon)
	// Besides them, the walk's step (due every 15 minutes, wherever it runs) reads its share: on
	// this small mount its minimum, the first 200 grants.
	read := reads.take()
	require.Equal(t, repairMinStep, r.RepairVisited)
	for i := 0; i < repairMinStep; i++ {
		slot := fmt.Sprintf("g%05d", i)
		require.Contains(t, read, slot)
		if !slices.Contains(dueSoon, slot) {
			delete(read, slot)
		}
	}
	require.ElementsMatch(t, dueSoon, mapKeys(read), "only the due grants are read")
	r = env.sweep()
	require.Zero(t, r.GrantsDue, "their notices are queued: nothing is due until the critical point")
	require.Empty(t, reads.take())

	// warning_days 9: every due time and level was computed with 7, so the next run walks every
	// grant; the second group is within 9 days of its end and is flagged by the run after.
	env.mustWrite("config", map[string]interface{}{"warning_days": 9})
	r = env.sweep()
	require.True(t, r.Walk.Rebuild || r.RepairVisited == n)
	for r.Walk.Rebuild {
		r = env.sweep()
	}
	require.Len(t, reads.take(), n, "new thresholds: every grant is read once")
	r = env.sweep()
	require.Len(t, r.Flagged, later)
	require.Equal(t, later, r.GrantsDue)
	reads.take()

	// An index entry is lost: its grant's warning point passes unseen until the walk's next step
	// finds the grant, then the run after flags it.
	lost := grantID{testAppID, "g00003"}
	require.NoError(t, env.b.grants.withGrant(context.Background(), env.storage, lost, func(tx *grantTx) error {
		tx.grant().GrantExpiresAt = env.clock.Now().Add(9*24*time.Hour + 5*time.Minute)
		return tx.save()
	}))
	stored := env.storedGrant("g00003")
	require.NoError(t, env.storage.Delete(context.Background(), dueKey(stored.DueAt, lost)))
	env.clock.Advance(6 * time.Minute)
	r = env.sweep()
	require.Empty(t, r.Flagged, "the grant is hidden while its entry is missing")
	env.clock.Advance(repairStepEvery)
	r = env.sweep()
	require.Equal(t, 1, r.IndexRepaired, "the walk finds the grant without its entry")
	require.Equal(t, repairMinStep, r.RepairVisited, "a step of the walk: the first 200 grants of its new cycle")
	r = env.sweep()
	require.Len(t, r.Flagged, 1)
	require.Equal(t, lost, r.Flagged[0].ID)
}

func mapKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// A revocation event reads only the grants of the user it names, found through the who index in
// storage, also right after a restart; before the indexes are built it reads every grant of the app.
func TestRevocationEventFindsTheUserThroughTheWhoIndex(t *testing.T) {
	env := newTestEnv(t)
	reads := &readKeys{Storage: env.storage, read: map[string]int{}}
	env.storage = reads
	env.addOAuthApp()
	now := env.clock.Now()
	const n = 1000
	for i := 0; i < n; i++ {
		g := env.okGrant(testAppID, fmt.Sprintf("s%04d", i))
		g.OpenID, g.UnionID = fmt.Sprintf("ou_%032d", i), fmt.Sprintf("on_%032d", i)
		g.AuthorizedAt = now.Add(-time.Hour)
		env.writeGrant(g)
	}
	ctx := context.Background()
	revoke := func(openID, unionID string) eventOutcome {
		sess, err := env.b.sessions.open(ctx, env.storage, testAppID)
		require.NoError(t, err)
		out, err := env.b.receiveRevocation(ctx, env.storage, sess, &larkevent.Event{Type: larkevent.TypeUserTokenRevoked, CreatedAt: now,
			TokenRevoked: &larkevent.UserTokenRevoked{OpenID: openID, UnionID: unionID, RefreshTokenRevoked: true}})
		require.NoError(t, err)
		return out
	}
	env.b = env.newBackend(nil) // nothing in memory
	reads.take()
	require.Equal(t, eventIgnored, revoke("ou_nobody", "").result)
	require.Len(t, reads.take(), n, "indexes not built yet: every grant of the app is read")

	env.sweep() // builds the indexes
	env.b = env.newBackend(nil)
	reads.take()
	require.Equal(t, eventIgnored, revoke("ou_nobody", "").result)
	require.Empty(t, reads.take(), "nobody's grant: none is read")
	require.Equal(t, eventAccepted, revoke("", fmt.Sprintf("on_%032d", 500)).result)
	require.Equal(t, []string{"s0500"}, mapKeys(reads.take()), "only the user's grant is read (found by union_id)")
	require.True(t, env.storedGrant("s0500").needsReauth())
	require.False(t, env.storedGrant("s0501").needsReauth())
}

// A version before the indexes that swept the mount after this one (a downgrade, then this upgrade
// again) leaves its cursor: the next run builds the indexes anew, reading every grant.
func TestAnOlderVersionsSweepRebuildsTheIndexes(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	env.sweep()
	for i := 0; i < 5; i++ {
		env.writeGrant(env.okGrant(testAppID, fmt.Sprintf("s%d", i)))
	}
	require.Zero(t, env.sweep().RepairVisited)
	// The old version stored a grant without its index entries, and its cursor.
	env.writeGrantRaw(env.okGrant(testAppID, "old"))
	require.NoError(t, env.storage.Put(context.Background(), &logical.StorageEntry{Key: sweepCursorKey, Value: []byte(testAppID + "/s3")}))
	r := env.sweep()
	require.Equal(t, 6, r.RepairVisited)
	require.Equal(t, 6, r.GrantsTotal)
	require.Equal(t, 1, r.IndexRepaired, "only the grant the old version wrote lacked its entries")
	require.Empty(t, env.storedKeys(sweepCursorKey))
}

// Grants written at once by many requests (imports, say) each move the level counts; the counts
// in storage end equal to the grants, however the count writes interleave (one at a time per app,
// always of the newest counts).
func TestLevelCountsStayExactUnderConcurrentGrantWrites(t *testing.T) {
	env := newTestEnv(t)
	env.addOAuthApp()
	const n = 200
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			g := env.okGrant(testAppID, fmt.Sprintf("c%03d", i))
			if i%4 == 0 {
				g.GrantExpiresAt = env.clock.Now().Add(5 * 24 * time.Hour)
			}
			env.writeGrant(g)
		}(i)
	}
	wg.Wait()
	want := map[string]int{levelOK: n * 3 / 4, levelWarning: n / 4}
	e, err := env.storage.Get(context.Background(), levelCountsPrefix+testAppID)
	require.NoError(t, err)
	var stored map[string]int
	require.NoError(t, e.DecodeJSON(&stored))
	require.Equal(t, want, stored)
	env.b = env.newBackend(nil)
	require.Equal(t, n, env.status().Data["grants_total"])
	require.Equal(t, n/4, env.status().Data["grants_warning"])
}

// slowListStorage takes a millisecond over every List, as a storage round trip does.
type slowListStorage struct{ logical.Storage }

func (s slowListStorage) List(ctx context.Context, p string) ([]string, error) {
	time.Sleep(time.Millisecond)
	return s.Storage.List(ctx, p)
}

// After a long stop the sweep has many minutes of the due index to list, one storage call each: a
// run stops at its budget and the next goes on from where it stopped, so a grant due in the last
// of those minutes is reached in a few runs, none over budget.
func TestSweepAfterALongStopListsTheIndexWithinItsBudget(t *testing.T) {
	env := newTestEnv(t)
	env.storage = slowListStorage{env.storage}
	env.addOAuthApp()
	env.mustWrite("config", map[string]interface{}{"sweep_budget": 1})
	env.sweep()
	g := env.okGrant(testAppID, "late")
	g.GrantExpiresAt = env.clock.Now().Add(7*24*time.Hour + 3*time.Hour) // warning in 3 hours
	env.writeGrant(g)
	env.clock.Advance(3*time.Hour + time.Minute) // 181 minutes to list, about 0.2 s
	runs, flagged := 0, 0
	for ; runs < 20 && flagged == 0; runs++ {
		start := time.Now()
		r := env.sweep()
		require.Less(t, time.Since(start), 1500*time.Millisecond, "run %d", runs)
		flagged += len(r.Flagged)
	}
	require.Equal(t, 1, flagged)

	// Two days stopped: 2,880 minutes, about 3 s of listing against a 1 s budget.
	env.clock.Advance(48 * time.Hour)
	r := env.sweep()
	require.True(t, r.BudgetExhausted, "the listing alone outlasts the budget")
	require.False(t, r.FullPass)
	for runs = 0; runs < 10 && !r.FullPass; runs++ {
		start := time.Now()
		r = env.sweep()
		require.Less(t, time.Since(start), 1500*time.Millisecond)
	}
	require.True(t, r.FullPass, "the sweep catches up run by run")
}

// refusePrefix refuses every Put under prefix while refusing is set.
type refusePrefix struct {
	logical.Storage
	prefix   string
	refusing atomic.Bool
}

func (s *refusePrefix) Put(ctx context.Context, e *logical.StorageEntry) error {
	if s.refusing.Load() && strings.HasPrefix(e.Key, s.prefix) {
		return errors.New("storage refused the write")
	}
	return s.Storage.Put(ctx, e)
}

// Level counts storage refused stay in memory and are stored at Cleanup (a reload, a shutdown), so
// the next process starts with them right instead of waiting a day for the walk's recount.
func TestCleanupStoresLevelCountsStorageRefused(t *testing.T) {
	env := newTestEnv(t)
	refuse := &refusePrefix{Storage: env.storage, prefix: levelCountsPrefix}
	env.storage = refuse
	env.b = env.newBackend(nil)
	env.addOAuthApp()
	refuse.refusing.Store(true)
	for i := 0; i < 3; i++ {
		env.writeGrant(env.okGrant(testAppID, fmt.Sprintf("s%d", i)))
	}
	require.Empty(t, env.storedKeys(levelCountsPrefix), "storage refused every count write")
	refuse.refusing.Store(false)
	env.b.Cleanup(context.Background())
	env.b = env.newBackend(nil)
	require.Equal(t, 3, env.status().Data["grants_ok"])
	require.Equal(t, 0, env.status().Data["grants_unclassified"])
}
