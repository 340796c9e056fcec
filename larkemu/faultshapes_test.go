package larkemu

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestShapesThatAreNotLarkJSON(t *testing.T) {
	cases := []struct {
		mode        FailureMode
		status      int // injected; 0 = the shape's default
		wantStatus  int
		contentType string
		wantBody    string
	}{
		{FailText, 0, 200, "text/plain; charset=utf-8", textReply},
		{FailText, 503, 503, "text/plain; charset=utf-8", textReply},
		{FailEmpty, 0, 200, "application/json; charset=utf-8", ""},
		{FailEmpty, 502, 502, "application/json; charset=utf-8", ""},
	}
	for _, tc := range cases {
		t.Run(string(tc.mode), func(t *testing.T) {
			s, ts, _ := newFakeEmu(t, Options{})
			inject(t, s, Failure{Endpoint: EndpointTenantAccessToken, Mode: tc.mode, Status: tc.status})
			r := postJSON(t, ts.URL+PathTenantAccessToken, credentials(testApp, testSecret))
			expectEqual(t, "status", r.status, tc.wantStatus)
			expectEqual(t, "content type", r.header.Get("Content-Type"), tc.contentType)
			expectEqual(t, "body", r.body, tc.wantBody)
			if json.Valid([]byte(r.body)) {
				t.Fatalf("body %q is valid JSON", r.body)
			}
			s.mu.Lock()
			minted := len(s.tenantTokens)
			s.mu.Unlock()
			expectEqual(t, "tokens minted behind the shape", minted, 0)
			fetchToken(t, ts, PathTenantAccessToken)
		})
	}
}

func TestShapesWithCodeZeroAndNoUsableToken(t *testing.T) {
	for _, mode := range []FailureMode{FailWrongShape, FailWrongTypes} {
		t.Run(string(mode), func(t *testing.T) {
			s, ts, _ := newFakeEmu(t, Options{})
			inject(t, s, Failure{Endpoint: EndpointAll, Mode: mode, Count: 2})
			for _, path := range []string{PathAppAccessToken, PathOAuthTokenV2} {
				body := credentials(testApp, testSecret)
				if path == PathOAuthTokenV2 {
					body = mustJSON(t, refreshParams("whatever"))
				}
				r := postJSON(t, ts.URL+path, body)
				expectEqual(t, "status", r.status, http.StatusOK)
				m := decode(t, r.body)
				expectEqual(t, "code", m["code"], any(jsonNumber("0")))
				// Whatever a client decodes into string token fields, it must not find a token.
				var tok struct {
					AppAccessToken string `json:"app_access_token"`
					AccessToken    string `json:"access_token"`
				}
				err := json.Unmarshal([]byte(r.body), &tok)
				if err == nil && (tok.AppAccessToken != "" || tok.AccessToken != "") {
					t.Fatalf("%s on %s decodes into a token: %s", mode, path, r.body)
				}
				if mode == FailWrongTypes && err == nil {
					t.Fatalf("wrong_types on %s decodes cleanly into string fields: %s", path, r.body)
				}
			}
			s.mu.Lock()
			minted := len(s.currentToken)
			s.mu.Unlock()
			expectEqual(t, "tokens minted behind the shape", minted, 0)
		})
	}
}

func TestShapeGatewayTimeoutSpendsNothing(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	g := mintForShapes(t, s)
	inject(t, s, Failure{Endpoint: EndpointRefresh, Mode: FailGatewayTimeout, Delay: 150 * time.Millisecond})
	inject(t, s, Failure{Endpoint: EndpointRefresh, Mode: FailGatewayTimeout, Delay: 10 * time.Millisecond, Status: 502})
	for _, want := range []int{504, 502} {
		start := time.Now()
		r := tokenV2(t, ts, refreshParams(g.RefreshToken))
		expectEqual(t, "status", r.status, want)
		expectEqual(t, "content type", r.header.Get("Content-Type"), "text/plain; charset=utf-8")
		if !strings.Contains(r.body, http.StatusText(want)) {
			t.Fatalf("body %q", r.body)
		}
		if want == 504 && time.Since(start) < 150*time.Millisecond {
			t.Fatal("the gateway answered before its delay")
		}
	}
	// The refresh token was never presented to the handler: it still works, once.
	okTokens(t, tokenV2(t, ts, refreshParams(g.RefreshToken)))
	expectEqual(t, "reuse", s.Calls(EndpointRefreshReuse), 0)
}

func TestShapeLateAnswerSpendsFirstAndAnswersLate(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	g := mintForShapes(t, s)
	inject(t, s, Failure{Endpoint: EndpointRefresh, Mode: FailLateAnswer, Delay: 200 * time.Millisecond})
	start := time.Now()
	tr := okTokens(t, tokenV2(t, ts, refreshParams(g.RefreshToken)))
	if time.Since(start) < 200*time.Millisecond {
		t.Fatal("the late answer came early")
	}
	if tr.RefreshToken == "" || tr.RefreshToken == g.RefreshToken {
		t.Fatal("the late answer is not a rotated pair")
	}
	// The patient client holds the live token: it refreshes; the old one is spent.
	okTokens(t, tokenV2(t, ts, refreshParams(tr.RefreshToken)))
	wantOAuthError(t, tokenV2(t, ts, refreshParams(g.RefreshToken)), 20073)
}

func TestShapeLateAnswerLostWhenClientLeaves(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	g := mintForShapes(t, s)
	inject(t, s, Failure{Endpoint: EndpointRefresh, Mode: FailLateAnswer, Delay: 5 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+PathOAuthTokenV2, strings.NewReader(mustJSON(t, refreshParams(g.RefreshToken))))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		_ = resp.Body.Close()
		t.Fatal("the client got an answer before giving up")
	}
	// Lark acted before the client left: the token it presented is used up.
	wantOAuthError(t, tokenV2(t, ts, refreshParams(g.RefreshToken)), 20073)
	expectEqual(t, "reuse", s.Calls(EndpointRefreshReuse), 1)
	grants := s.Grants()
	if len(grants) != 1 || grants[0].Refreshes != 1 {
		t.Fatalf("grants %+v, want the one grant refreshed once", grants)
	}
}

func TestFailureTargetsOneApp(t *testing.T) {
	const other = "cli_otherapp0000"
	s, ts, _ := newFakeEmu(t, Options{Apps: map[string]string{testApp: testSecret, other: testSecret}})
	inject(t, s, Failure{Endpoint: EndpointAll, Mode: Fail5xx, Count: -1, AppID: other})
	// The app named by the failure gets it on every endpoint; the other is untouched.
	for i := 0; i < 3; i++ {
		fetchToken(t, ts, PathTenantAccessToken)
		r := postJSON(t, ts.URL+PathTenantAccessToken, credentials(other, testSecret))
		expectEqual(t, "status of the targeted app", r.status, http.StatusServiceUnavailable)
	}
	expectEqual(t, "targeted app's calls", s.AppCounters(other)[EndpointTenantAccessToken], 3)
	expectEqual(t, "pending", len(s.PendingFailures()), 1)
	expectEqual(t, "listed target", s.PendingFailures()[0].AppID, other)

	// An OAuth refresh names its app in the body; a targeted failure on refresh finds it there.
	s.ClearFailures()
	g := mintForShapes(t, s)
	inject(t, s, Failure{Endpoint: EndpointRefresh, Mode: Fail5xx, AppID: other})
	okTokens(t, tokenV2(t, ts, refreshParams(g.RefreshToken)))
	expectEqual(t, "failure still waiting for its app", len(s.PendingFailures()), 1)
}

func TestFailureTargetsOneAppOverControlAPI(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	r := postJSON(t, ts.URL+ControlPrefix+"failures", `{"endpoint":"*","mode":"gateway_timeout","delay_ms":5,"app_id":"`+testApp+`","count":1}`)
	expectEqual(t, "inject", r.status, http.StatusOK)
	list := get(t, ts.URL+ControlPrefix+"failures")
	if !strings.Contains(list.body, `"app_id":"`+testApp+`"`) || !strings.Contains(list.body, `"mode":"gateway_timeout"`) {
		t.Fatalf("listed failures: %s", list.body)
	}
	expectEqual(t, "targeted request", postJSON(t, ts.URL+PathAppAccessToken, credentials(testApp, testSecret)).status, http.StatusGatewayTimeout)
	expectEqual(t, "pending", len(s.PendingFailures()), 0)
	for _, bad := range []string{
		`{"endpoint":"*","mode":"text","app_id":"not an app"}`,
		`{"endpoint":"*","mode":"gateway_timeout","status":404}`,
		`{"endpoint":"*","mode":"late_answr"}`,
	} {
		if r := postJSON(t, ts.URL+ControlPrefix+"failures", bad); r.status != http.StatusBadRequest {
			t.Errorf("%s: HTTP %d %s, want 400", bad, r.status, r.body)
		}
	}
	expectEqual(t, "pending after refused injections", len(s.PendingFailures()), 0)
}

// mintForShapes mints a grant for testApp and returns it.
func mintForShapes(t *testing.T, s *Server) MintedGrant {
	t.Helper()
	if err := s.RegisterUser(User{UserID: "shape_user", Name: "Shape User"}, false); err != nil {
		t.Fatal(err)
	}
	g, err := s.MintGrant(MintRequest{AppID: testApp, UserID: "shape_user"})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestClearOneAppsFailures(t *testing.T) {
	const other = "cli_otherapp0000"
	s, ts, _ := newFakeEmu(t, Options{Apps: map[string]string{testApp: testSecret, other: testSecret}})
	inject(t, s, Failure{Endpoint: EndpointAll, Mode: Fail5xx, Count: -1, AppID: other})
	inject(t, s, Failure{Endpoint: EndpointAll, Mode: Fail429, Count: -1, AppID: testApp})
	inject(t, s, Failure{Endpoint: EndpointMessages, Mode: Fail5xx, Count: -1})
	inject(t, s, Failure{Endpoint: EndpointAll, Mode: FailText, Count: 2, AppID: other})

	r := do(t, http.MethodDelete, ts.URL+ControlPrefix+"failures?app_id="+other, "", nil)
	expectEqual(t, "status", r.status, http.StatusOK)
	expectEqual(t, "body", r.body, `{"cleared":2}`)
	left := s.PendingFailures()
	if len(left) != 2 || left[0].AppID != testApp || left[1].Endpoint != EndpointMessages {
		t.Fatalf("left after clearing %s: %+v", other, left)
	}
	expectEqual(t, "other app answered again", postJSON(t, ts.URL+PathTenantAccessToken, credentials(other, testSecret)).status, http.StatusOK)
	expectEqual(t, "testApp still rate-limited", postJSON(t, ts.URL+PathTenantAccessToken, credentials(testApp, testSecret)).status, http.StatusTooManyRequests)
	if r := do(t, http.MethodDelete, ts.URL+ControlPrefix+"failures?app_id=bad%20id", "", nil); r.status != http.StatusBadRequest {
		t.Fatalf("malformed app_id: HTTP %d %s", r.status, r.body)
	}
}
