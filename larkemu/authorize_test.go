package larkemu

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

func TestAuthorizeApproves(t *testing.T) {
	_, ts, _ := newFakeEmu(t, Options{})
	q := authorizeQuery("auth:user.id:read offline_access")
	q.Set("redirect_uri", testRedirect+"?keep=1")
	u := authorize(t, ts, q)
	expectEqual(t, "redirect target", u.Scheme+"://"+u.Host+u.Path, testRedirect)
	expectEqual(t, "state", u.Query().Get("state"), "st-123")
	expectEqual(t, "existing query kept", u.Query().Get("keep"), "1")
	if !regexp.MustCompile(`^[A-Za-z0-9_-]{43,}$`).MatchString(u.Query().Get("code")) {
		t.Fatalf("code %q outside Lark's alphabet", u.Query().Get("code"))
	}
	if u.Query().Has("error") {
		t.Fatal("approval carries an error")
	}
}

func TestAuthorizeLegacyAppIDForm(t *testing.T) {
	_, ts, _ := newFakeEmu(t, Options{})
	u := authorize(t, ts, url.Values{"app_id": {testApp}, "redirect_uri": {testRedirect}, "state": {"s"}})
	if u.Query().Get("code") == "" {
		t.Fatalf("no code for the app_id form: %s", u)
	}
}

func TestAuthorizeDeny(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	r := postJSON(t, ts.URL+ControlPrefix+"authorize-mode", `{"mode":"deny"}`)
	expectEqual(t, "set mode", r.body, `{"ok":true}`)
	expectEqual(t, "get mode", get(t, ts.URL+ControlPrefix+"authorize-mode").body, `{"mode":"deny"}`)
	u := authorize(t, ts, authorizeQuery("offline_access"))
	expectEqual(t, "query", u.RawQuery, "error=access_denied&state=st-123")
	expectEqual(t, "bad mode", postJSON(t, ts.URL+ControlPrefix+"authorize-mode", `{"mode":"maybe"}`).status, 400)

	s.Reset() // back to approve
	if authorize(t, ts, authorizeQuery("offline_access")).Query().Get("code") == "" {
		t.Fatal("Reset did not restore approve mode")
	}
}

func TestAuthorizePageErrors(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	if err := s.RegisterApp(App{ID: "cli_scoped", Secret: "x", Scopes: []string{"offline_access"}}); err != nil {
		t.Fatal(err)
	}
	base := authorizeQuery("offline_access")
	with := func(k, v string) url.Values {
		q := url.Values{}
		for kk, vv := range base {
			q[kk] = vv
		}
		if v == "" {
			q.Del(k)
		} else {
			q.Set(k, v)
		}
		return q
	}
	cases := []struct {
		name string
		q    url.Values
		code string
	}{
		{"no client_id", with("client_id", ""), "20001"},
		{"no response_type", with("response_type", ""), "20001"},
		{"no redirect_uri", with("redirect_uri", ""), "20001"},
		{"unknown app", with("client_id", "cli_nobody"), "20048"},
		{"response_type token", with("response_type", "token"), "20063"},
		{"relative redirect", with("redirect_uri", "/callback"), "20029"},
		{"ftp redirect", with("redirect_uri", "ftp://x/y"), "20029"},
		{"bad method", with("code_challenge_method", "S512"), "20063"},
		{"short challenge", with("code_challenge", "abc"), "20063"},
		{"method without challenge", with("code_challenge", ""), "20001"},
		{"unapproved scope", func() url.Values {
			q := with("client_id", "cli_scoped")
			q.Set("scope", "offline_access im:message")
			return q
		}(), "20027"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, err := noRedirects.Get(ts.URL + PathAuthorize + "?" + c.q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = resp.Body.Close() }()
			var b strings.Builder
			_, _ = ioCopy(&b, resp)
			expectEqual(t, "status", resp.StatusCode, http.StatusBadRequest)
			expectEqual(t, "content type", resp.Header.Get("Content-Type"), "text/html; charset=utf-8")
			if !strings.Contains(b.String(), `<span id="code">`+c.code+`</span>`) {
				t.Errorf("page lacks code %s: %s", c.code, b.String())
			}
		})
	}
	// The scoped app accepts its own scope.
	q := with("client_id", "cli_scoped")
	if authorize(t, ts, q).Query().Get("code") == "" {
		t.Fatal("allowed scope refused")
	}
}

func TestAuthorizeGrantsAreCumulative(t *testing.T) {
	_, ts, _ := newFakeEmu(t, Options{})
	first := exchangeNew(t, ts, "auth:user.id:read")
	expectEqual(t, "first scope", first.Scope, "auth:user.id:read")
	if first.RefreshToken != "" {
		t.Fatal("refresh token without offline_access")
	}
	second := exchangeNew(t, ts, "offline_access")
	expectEqual(t, "second scope", second.Scope, "auth:user.id:read offline_access")
}
