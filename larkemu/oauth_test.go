package larkemu

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"
)

const fullScope = "auth:user.id:read offline_access"

func TestCodeExchangeSuccessShapes(t *testing.T) {
	_, ts, _ := newFakeEmu(t, Options{})
	cases := []struct {
		name string
		send func(p map[string]string) response
	}{
		{"v2 JSON", func(p map[string]string) response { return tokenV2(t, ts, p) }},
		{"v3 JSON", func(p map[string]string) response { return postJSON(t, ts.URL+PathOAuthTokenV3, mustJSON(t, p)) }},
		{"v3 form", func(p map[string]string) response { return postForm(t, ts.URL+PathOAuthTokenV3, p) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := c.send(codeParams(getCode(t, ts, fullScope)))
			keys := make([]string, 0)
			for k := range decode(t, r.body) {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			expectEqual(t, "keys", strings.Join(keys, ","), "access_token,code,expires_in,refresh_token,refresh_token_expires_in,scope,token_type")
			tr := okTokens(t, r)
			expectEqual(t, "expires_in", tr.ExpiresIn, int64(7200))
			expectEqual(t, "refresh_token_expires_in", tr.RefreshTokenExpiresIn, int64(604800))
			expectEqual(t, "token_type", tr.TokenType, "Bearer")
			expectEqual(t, "scope", tr.Scope, fullScope)
			for _, tok := range []string{tr.AccessToken, tr.RefreshToken} {
				if parts := strings.Split(tok, "."); len(parts) != 3 || !strings.HasPrefix(tok, "eyJ") {
					t.Errorf("token %q is not JWT-shaped", tok)
				}
			}
			if tr.AccessToken == tr.RefreshToken {
				t.Error("access and refresh token are the same")
			}
		})
	}
}

func TestCodeExchangeErrors(t *testing.T) {
	s, ts, fc := newFakeEmu(t, Options{})
	if err := s.AddApp("cli_other", "other-secret"); err != nil {
		t.Fatal(err)
	}
	mod := func(p map[string]string, kv ...string) map[string]string {
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "-" {
				delete(p, kv[i])
			} else {
				p[kv[i]] = kv[i+1]
			}
		}
		return p
	}
	fresh := func(kv ...string) map[string]string { return mod(codeParams(getCode(t, ts, fullScope)), kv...) }
	cases := []struct {
		name string
		p    map[string]string
		code int
	}{
		{"unknown code", mod(codeParams("nope")), 20003},
		{"missing code", fresh("code", "-"), 20001},
		{"missing grant_type", fresh("grant_type", "-"), 20001},
		{"unsupported grant_type", fresh("grant_type", "password"), 20036},
		{"client_credentials on v2", fresh("grant_type", "client_credentials"), 20036},
		{"missing client_id", fresh("client_id", "-"), 20001},
		{"missing client_secret", fresh("client_secret", "-"), 20001},
		{"unknown app", fresh("client_id", "cli_nobody"), 20048},
		{"wrong secret", fresh("client_secret", "wrong"), 20002},
		{"other app's code", fresh("client_id", "cli_other", "client_secret", "other-secret"), 20024},
		{"redirect mismatch", fresh("redirect_uri", testRedirect+"/x"), 20071},
		{"verifier missing", fresh("code_verifier", "-"), 20001},
		{"verifier wrong", fresh("code_verifier", strings.Repeat("a", 43)), 20049},
		{"verifier too short", fresh("code_verifier", testVerifier[:42]), 20049},
		{"verifier is the challenge", fresh("code_verifier", s256(testVerifier)), 20049},
		{"duplicate scope", fresh("scope", "offline_access offline_access"), 20067},
		{"scope not granted", fresh("scope", "offline_access im:message"), 20068},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { wantOAuthError(t, tokenV2(t, ts, c.p), c.code) })
	}

	t.Run("replay", func(t *testing.T) {
		p := codeParams(getCode(t, ts, fullScope))
		okTokens(t, tokenV2(t, ts, p))
		wantOAuthError(t, tokenV2(t, ts, p), 20065)
	})
	t.Run("failed attempt leaves the code usable", func(t *testing.T) {
		p := codeParams(getCode(t, ts, fullScope))
		wantOAuthError(t, tokenV2(t, ts, mod(cloneMap(p), "code_verifier", strings.Repeat("b", 50))), 20049)
		okTokens(t, tokenV2(t, ts, p))
	})
	t.Run("expiry", func(t *testing.T) {
		p := codeParams(getCode(t, ts, fullScope))
		late := codeParams(getCode(t, ts, fullScope))
		fc.Advance(5*time.Minute - time.Nanosecond)
		okTokens(t, tokenV2(t, ts, p))
		fc.Advance(time.Nanosecond)
		wantOAuthError(t, tokenV2(t, ts, late), 20004)
	})
	t.Run("redirect_uri may be omitted", func(t *testing.T) {
		okTokens(t, tokenV2(t, ts, fresh("redirect_uri", "-")))
	})
	t.Run("narrowed scope", func(t *testing.T) {
		tr := okTokens(t, tokenV2(t, ts, fresh("scope", "auth:user.id:read")))
		expectEqual(t, "scope", tr.Scope, "auth:user.id:read")
		if tr.RefreshToken != "" {
			t.Fatal("refresh token although offline_access was narrowed away")
		}
	})
}

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func TestPKCEPlainAndNone(t *testing.T) {
	_, ts, _ := newFakeEmu(t, Options{})
	plain := authorizeQuery(fullScope)
	plain.Set("code_challenge", testVerifier)
	plain.Del("code_challenge_method") // plain is the default
	code := authorize(t, ts, plain).Query().Get("code")
	okTokens(t, tokenV2(t, ts, codeParams(code)))

	none := authorizeQuery(fullScope)
	none.Del("code_challenge")
	none.Del("code_challenge_method")
	// v2 ignores a verifier nobody asked for; v3 rejects it.
	okTokens(t, tokenV2(t, ts, codeParams(authorize(t, ts, none).Query().Get("code"))))
	wantOAuthError(t, postForm(t, ts.URL+PathOAuthTokenV3, codeParams(authorize(t, ts, none).Query().Get("code"))), 20049)
	p := codeParams(authorize(t, ts, none).Query().Get("code"))
	delete(p, "code_verifier")
	okTokens(t, postForm(t, ts.URL+PathOAuthTokenV3, p))
}

func TestOAuthRequestFormats(t *testing.T) {
	_, ts, _ := newFakeEmu(t, Options{})
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(testApp+":"+testSecret))

	p := codeParams(getCode(t, ts, fullScope))
	wantOAuthError(t, tokenV2(t, ts, p, "Authorization", basic), 20070)

	p = codeParams(getCode(t, ts, fullScope))
	delete(p, "client_secret")
	okTokens(t, tokenV2(t, ts, p, "Authorization", basic))

	p = codeParams(getCode(t, ts, fullScope))
	wantOAuthError(t, postJSON(t, ts.URL+PathOAuthTokenV2, `{"grant_type":`), 20063)
	wantOAuthError(t, postJSON(t, ts.URL+PathOAuthTokenV2, `{"grant_type":"authorization_code","code":5}`), 20063)
	wantOAuthError(t, do(t, http.MethodPost, ts.URL+PathOAuthTokenV3, "text/plain", strings.NewReader("x")), 20063)
	wantOAuthError(t, postJSON(t, ts.URL+PathOAuthTokenV2, `{"pad":"`+strings.Repeat("x", 70<<10)+`"}`), 20063)
	wantOAuthError(t, postJSON(t, ts.URL+PathOAuthTokenV2, ``), 20001)
	form := url.Values{"grant_type": {"refresh_token", "authorization_code"}}
	wantOAuthError(t, do(t, http.MethodPost, ts.URL+PathOAuthTokenV3, "application/x-www-form-urlencoded", strings.NewReader(form.Encode())), 20063)
	okTokens(t, tokenV2(t, ts, p)) // the code survived all of that
}

func TestOAuthInjectedServerErrors(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	inject(t, s, Failure{Endpoint: EndpointOAuthToken, Mode: FailError, Code: 20050})
	inject(t, s, Failure{Endpoint: EndpointOAuthToken, Mode: FailError, Code: 20072})
	p := codeParams(getCode(t, ts, fullScope))
	r := tokenV2(t, ts, p)
	expectEqual(t, "20050", r.body, `{"code":20050,"error":"server_error","error_description":"An unexpected server error occurred. Please retry your request."}`)
	expectEqual(t, "20050 status", r.status, 500)
	r = tokenV2(t, ts, p)
	expectEqual(t, "20072", r.body, `{"code":20072,"error":"temporarily_unavailable","error_description":"The server is temporarily unavailable. Please retry your request."}`)
	expectEqual(t, "20072 status", r.status, 503)
	okTokens(t, tokenV2(t, ts, p))
}

func TestRefreshRotation(t *testing.T) {
	s, ts, fc := newFakeEmu(t, Options{})
	first := exchangeNew(t, ts, fullScope)
	fc.Advance(time.Hour)
	second := okTokens(t, tokenV2(t, ts, refreshParams(first.RefreshToken)))
	if second.AccessToken == first.AccessToken || second.RefreshToken == first.RefreshToken {
		t.Fatal("refresh did not rotate both tokens")
	}
	expectEqual(t, "refresh expires_in", second.RefreshTokenExpiresIn, int64(604800))
	expectEqual(t, "scope kept", second.Scope, fullScope)

	// The old refresh token is dead at once; the old access token lives on.
	wantOAuthError(t, tokenV2(t, ts, refreshParams(first.RefreshToken)), 20073)
	wantOAuthError(t, postForm(t, ts.URL+PathOAuthTokenV3, refreshParams(first.RefreshToken)), 20073)
	expectEqual(t, "old access token", get(t, ts.URL+PathUserInfo, bearer(first.AccessToken)...).status, 200)

	third := okTokens(t, postJSON(t, ts.URL+PathOAuthTokenV3, mustJSON(t, refreshParams(second.RefreshToken))))
	expectEqual(t, "refresh calls", s.Calls(EndpointRefresh), 4)
	expectEqual(t, "reuse attempts", s.Calls(EndpointRefreshReuse), 2)
	expectEqual(t, "token calls", s.Calls(EndpointOAuthToken), 5)
	expectEqual(t, "code exchanges", s.Calls(EndpointCodeExchange), 1)

	g := s.Grants()
	if len(g) != 1 {
		t.Fatalf("grants: %+v", g)
	}
	expectEqual(t, "grant refreshes", g[0].Refreshes, 2)
	expectEqual(t, "grant reuse", g[0].ReuseAttempts, 2)
	expectEqual(t, "grant status", g[0].Status, GrantActive)
	expectEqual(t, "refresh expiry", *g[0].RefreshExpiry, fc.Now().Add(7*24*time.Hour))
	_ = third

	// Narrowing applies to the access token only; the next refresh has the full grant again.
	narrowed := okTokens(t, tokenV2(t, ts, withKV(refreshParams(third.RefreshToken), "scope", "auth:user.id:read")))
	expectEqual(t, "narrowed scope", narrowed.Scope, "auth:user.id:read")
	full := okTokens(t, tokenV2(t, ts, refreshParams(narrowed.RefreshToken)))
	expectEqual(t, "scope after narrowing", full.Scope, fullScope)
	wantOAuthError(t, tokenV2(t, ts, withKV(refreshParams(full.RefreshToken), "scope", "x y")), 20068)
	wantOAuthError(t, tokenV2(t, ts, withKV(refreshParams(full.RefreshToken), "scope", "offline_access offline_access")), 20067)
	okTokens(t, tokenV2(t, ts, refreshParams(full.RefreshToken))) // failed narrowing did not use it up
}

func withKV(p map[string]string, k, v string) map[string]string {
	p[k] = v
	return p
}

func TestRefreshErrors(t *testing.T) {
	s, ts, fc := newFakeEmu(t, Options{})
	if err := s.AddApp("cli_other", "other-secret"); err != nil {
		t.Fatal(err)
	}
	t.Run("garbage", func(t *testing.T) {
		wantOAuthError(t, tokenV2(t, ts, refreshParams("ur-legacyv1token")), 20026)
	})
	t.Run("missing", func(t *testing.T) {
		p := refreshParams("")
		wantOAuthError(t, tokenV2(t, ts, p), 20001)
	})
	t.Run("access token as refresh token", func(t *testing.T) {
		tr := exchangeNew(t, ts, fullScope)
		wantOAuthError(t, tokenV2(t, ts, refreshParams(tr.AccessToken)), 20026)
	})
	t.Run("other app", func(t *testing.T) {
		tr := exchangeNew(t, ts, fullScope)
		p := refreshParams(tr.RefreshToken)
		p["client_id"], p["client_secret"] = "cli_other", "other-secret"
		wantOAuthError(t, tokenV2(t, ts, p), 20024)
		okTokens(t, tokenV2(t, ts, refreshParams(tr.RefreshToken)))
	})
	t.Run("wrong secret", func(t *testing.T) {
		tr := exchangeNew(t, ts, fullScope)
		p := refreshParams(tr.RefreshToken)
		p["client_secret"] = "nope"
		wantOAuthError(t, tokenV2(t, ts, p), 20002)
	})
	t.Run("revoked grant", func(t *testing.T) {
		tr := exchangeNew(t, ts, fullScope)
		id := s.Grants()[len(s.Grants())-1].GrantID
		if n, err := s.RevokeGrants(GrantSelector{GrantID: id}); n != 1 || err != nil {
			t.Fatalf("RevokeGrants: %d %v", n, err)
		}
		wantOAuthError(t, tokenV2(t, ts, refreshParams(tr.RefreshToken)), 20064)
	})
	t.Run("refresh token expired", func(t *testing.T) {
		tr := exchangeNew(t, ts, fullScope)
		fc.Advance(7*24*time.Hour - time.Second)
		next := okTokens(t, tokenV2(t, ts, refreshParams(tr.RefreshToken)))
		fc.Advance(7 * 24 * time.Hour)
		wantOAuthError(t, tokenV2(t, ts, refreshParams(next.RefreshToken)), 20037)
		// Expired tokens stay recognisable no matter how much later they come back.
		fc.Advance(400 * 24 * time.Hour)
		wantOAuthError(t, tokenV2(t, ts, refreshParams(next.RefreshToken)), 20037)
	})
	t.Run("expired by control", func(t *testing.T) {
		tr := exchangeNew(t, ts, fullScope)
		id := s.Grants()[len(s.Grants())-1].GrantID
		if n, _ := s.ExpireGrants(GrantSelector{GrantID: id}); n != 1 {
			t.Fatal("ExpireGrants matched nothing")
		}
		wantOAuthError(t, tokenV2(t, ts, refreshParams(tr.RefreshToken)), 20037)
	})
	t.Run("refresh disabled", func(t *testing.T) {
		tr := exchangeNew(t, ts, fullScope)
		if err := s.RegisterApp(App{ID: testApp, Secret: testSecret, RefreshDisabled: true}); err != nil {
			t.Fatal(err)
		}
		wantOAuthError(t, tokenV2(t, ts, refreshParams(tr.RefreshToken)), 20074)
		if err := s.AddApp(testApp, testSecret); err != nil {
			t.Fatal(err)
		}
		okTokens(t, tokenV2(t, ts, refreshParams(tr.RefreshToken)))
	})
	t.Run("revoked via revoke endpoint", func(t *testing.T) {
		tr := exchangeNew(t, ts, fullScope)
		r := postForm(t, ts.URL+PathRevoke, map[string]string{
			"client_id": testApp, "client_secret": testSecret, "token": tr.RefreshToken, "token_type_hint": "refresh_token",
		})
		expectEqual(t, "revoke", r.body, `{"code":0}`)
		wantOAuthError(t, tokenV2(t, ts, refreshParams(tr.RefreshToken)), 20064)
	})
}

func TestGrantMaxAge(t *testing.T) {
	s, ts, fc := newFakeEmu(t, Options{})
	m, err := s.MintGrant(MintRequest{AppID: testApp, AuthorizedAgo: 364*24*time.Hour + 22*time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// Two hours of the 365 days are left, so the refresh token cannot live longer than that.
	expectEqual(t, "capped refresh expiry", m.RefreshTokenExpiresIn, int64(7200))
	fc.Advance(time.Hour)
	next := okTokens(t, tokenV2(t, ts, refreshParams(m.RefreshToken)))
	expectEqual(t, "capped after refresh", next.RefreshTokenExpiresIn, int64(3600))
	fc.Advance(time.Hour)
	wantOAuthError(t, tokenV2(t, ts, refreshParams(next.RefreshToken)), 20037)
	expectEqual(t, "status", s.Grants()[0].Status, GrantExpired)
}

func TestRefreshTokenTTLOption(t *testing.T) {
	_, ts, fc := newFakeEmu(t, Options{RefreshTokenTTL: time.Hour, UserTokenTTL: 10 * time.Minute})
	tr := exchangeNew(t, ts, fullScope)
	expectEqual(t, "expires_in", tr.ExpiresIn, int64(600))
	expectEqual(t, "refresh_token_expires_in", tr.RefreshTokenExpiresIn, int64(3600))
	fc.Advance(time.Hour)
	wantOAuthError(t, tokenV2(t, ts, refreshParams(tr.RefreshToken)), 20037)
}

func TestLostRefreshResponse(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	tr := exchangeNew(t, ts, fullScope)
	inject(t, s, Failure{Endpoint: EndpointRefresh, Mode: FailLostResponse})
	resp, err := http.Post(ts.URL+PathOAuthTokenV2, "application/json", strings.NewReader(mustJSON(t, refreshParams(tr.RefreshToken))))
	if err == nil {
		resp.Body.Close()
		t.Fatal("the response was not lost")
	}
	// The server did rotate: the retry finds the token used, exactly the trap the plugin must handle.
	wantOAuthError(t, tokenV2(t, ts, refreshParams(tr.RefreshToken)), 20073)
	expectEqual(t, "refresh calls", s.Calls(EndpointRefresh), 2)
	expectEqual(t, "reuse", s.Calls(EndpointRefreshReuse), 1)
}

func TestRefreshFailureTargetsOnlyRefresh(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	inject(t, s, Failure{Endpoint: EndpointRefresh, Mode: Fail5xx})
	tr := exchangeNew(t, ts, fullScope) // the code exchange is unaffected
	expectEqual(t, "refresh fails", tokenV2(t, ts, refreshParams(tr.RefreshToken)).status, 503)
	okTokens(t, tokenV2(t, ts, refreshParams(tr.RefreshToken))) // the 503 did not use the token

	inject(t, s, Failure{Endpoint: EndpointCodeExchange, Mode: Fail429})
	code := getCode(t, ts, fullScope)
	expectEqual(t, "code exchange limited", tokenV2(t, ts, codeParams(code)).status, 429)
	okTokens(t, tokenV2(t, ts, codeParams(code)))
}

func TestClientCredentialsV3(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	p := map[string]string{"grant_type": "client_credentials", "client_id": testApp, "client_secret": testSecret}
	r := postForm(t, ts.URL+PathOAuthTokenV3, p)
	m := decode(t, r.body)
	tok, _ := m["access_token"].(string)
	want := `{"code":0,"access_token":"` + tok + `","expires_in":7200,"token_type":"Bearer"}`
	expectEqual(t, "body", r.body, want)
	if !s.TenantTokenValid(tok) {
		t.Fatal("v3 tenant token not valid")
	}
	p["client_secret"] = "wrong"
	wantOAuthError(t, postForm(t, ts.URL+PathOAuthTokenV3, p), 20002)
	p["client_id"] = "cli_nobody"
	wantOAuthError(t, postForm(t, ts.URL+PathOAuthTokenV3, p), 20048)
}

func TestRevokeEndpoint(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	if err := s.AddApp("cli_other", "other-secret"); err != nil {
		t.Fatal(err)
	}
	tr := exchangeNew(t, ts, fullScope)
	creds := func(tok string) map[string]string {
		return map[string]string{"client_id": testApp, "client_secret": testSecret, "token": tok}
	}
	expectEqual(t, "unknown token", postForm(t, ts.URL+PathRevoke, creds("nope")).body, `{"code":0}`)
	wantOAuthError(t, postForm(t, ts.URL+PathRevoke, withKV(creds(tr.AccessToken), "client_secret", "x")), 20002)
	wantOAuthError(t, postForm(t, ts.URL+PathRevoke, creds("")), 20001)
	other := withKV(withKV(creds(tr.AccessToken), "client_id", "cli_other"), "client_secret", "other-secret")
	wantOAuthError(t, postForm(t, ts.URL+PathRevoke, other), 20024)

	expectEqual(t, "revoke access (JSON)", postJSON(t, ts.URL+PathRevoke, mustJSON(t, creds(tr.AccessToken))).body, `{"code":0}`)
	r := get(t, ts.URL+PathUserInfo, bearer(tr.AccessToken)...)
	expectEqual(t, "revoked access token", r.body, `{"code":20005,"msg":"The user access token passed is invalid. Please check the value"}`)
	okTokens(t, tokenV2(t, ts, refreshParams(tr.RefreshToken))) // revoking the access token leaves the chain
	expectEqual(t, "revoke calls", s.Calls(EndpointRevoke), 5)
}

func TestConcurrentRefreshOfOneToken(t *testing.T) {
	s, ts, _ := newFakeEmu(t, Options{})
	tr := exchangeNew(t, ts, fullScope)
	const n = 20
	results := make(chan response, n)
	for i := 0; i < n; i++ {
		go func() {
			// No t.Fatal off the test goroutine: report transport errors as a response.
			resp, err := http.Post(ts.URL+PathOAuthTokenV2, "application/json", strings.NewReader(mustJSON(t, refreshParams(tr.RefreshToken))))
			if err != nil {
				results <- response{body: err.Error()}
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			results <- response{status: resp.StatusCode, body: string(b)}
		}()
	}
	ok, used := 0, 0
	for i := 0; i < n; i++ {
		r := <-results
		switch {
		case r.status == 200:
			ok++
		case strings.Contains(r.body, `"code":20073`):
			used++
		default:
			t.Errorf("unexpected %d %s", r.status, r.body)
		}
	}
	expectEqual(t, "successes", ok, 1)
	expectEqual(t, "20073s", used, n-1)
	expectEqual(t, "refresh counter", s.Calls(EndpointRefresh), n)
	expectEqual(t, "reuse counter", s.Calls(EndpointRefreshReuse), n-1)
}
