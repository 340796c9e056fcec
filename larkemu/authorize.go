package larkemu

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"slices"
)

// Authorize page errors. Lark shows these on the page instead of redirecting; only 20027 is
// documented for the page, the others borrow the token endpoint's numbers.
const (
	pageMissingParam    = 20001
	pageNoSuchApp       = 20048
	pageScopeNotAllowed = 20027
	pageBadRedirect     = 20029
	pageMalformed       = 20063
)

// handleAuthorize is the consent page. The emulator has no browser session: it approves (or denies)
// at once as the signed-in user and redirects back, which is what a user clicking "Authorize" does.
func (s *Server) handleAuthorize(w http.ResponseWriter, req *request) {
	q := req.URL.Query()
	clientID := q.Get("client_id")
	legacy := clientID == ""
	if legacy {
		clientID = q.Get("app_id") // the old /authen/v1/authorize?app_id=… form, which has no response_type
	}
	redirectURI := q.Get("redirect_uri")
	method := q.Get("code_challenge_method")
	challenge := q.Get("code_challenge")
	scopes := dedupScopes(splitScopes(q.Get("scope")))

	fail := func(code int, msg string) {
		s.logf("%s: app_id=%s code=%d", EndpointAuthorize, logAppID(clientID), code)
		writeAuthorizeErrorPage(w, http.StatusBadRequest, code, msg)
	}
	if clientID == "" || redirectURI == "" || (!legacy && q.Get("response_type") == "") {
		fail(pageMissingParam, "client_id, response_type and redirect_uri are required")
		return
	}
	if rt := q.Get("response_type"); rt != "" && rt != "code" {
		fail(pageMalformed, "response_type must be code")
		return
	}
	u, err := url.Parse(redirectURI)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" {
		fail(pageBadRedirect, "redirect_uri must be an absolute http(s) URL")
		return
	}
	if method == "" {
		method = "plain" // Lark's default, as in RFC 7636
	}
	if method != "plain" && method != "S256" {
		fail(pageMalformed, "code_challenge_method must be S256 or plain")
		return
	}
	if challenge != "" && !pkceValuePattern.MatchString(challenge) {
		fail(pageMalformed, "code_challenge is malformed")
		return
	}
	if q.Has("code_challenge_method") && challenge == "" {
		fail(pageMissingParam, "code_challenge_method without code_challenge")
		return
	}

	now := s.clk.Now()
	s.mu.Lock()
	a, ok := s.apps[clientID]
	if !ok {
		s.mu.Unlock()
		fail(pageNoSuchApp, "The specified app does not exist.")
		return
	}
	for _, sc := range scopes {
		if len(a.Scopes) > 0 && !slices.Contains(a.Scopes, sc) {
			s.mu.Unlock()
			fail(pageScopeNotAllowed, fmt.Sprintf("scope %q has not been approved for this app", sc))
			return
		}
	}
	user := s.identity.users[s.identity.current]
	deny := s.identity.mode == AuthorizeDeny
	var code string
	if !deny {
		// Lark grants are cumulative: the new code carries every scope the user ever gave this app.
		key := [2]string{clientID, user.UserID}
		granted := dedupScopes(append(slices.Clone(s.grants.consent[key]), scopes...))
		s.grants.consent[key] = granted
		s.pruneCodes(now)
		code = newCode()
		s.grants.codes[code] = &authCode{
			appID: clientID, userID: user.UserID, redirectURI: redirectURI, scopes: granted,
			challenge: challenge, method: method, issuedAt: now, expiresAt: now.Add(s.opts.CodeTTL),
		}
	}
	s.mu.Unlock()

	back := u.Query()
	if deny {
		back.Set("error", "access_denied")
	} else {
		back.Set("code", code)
	}
	if q.Has("state") {
		back.Set("state", q.Get("state"))
	}
	u.RawQuery = back.Encode()
	s.logf("%s: app_id=%s user_id=%s approved=%v", EndpointAuthorize, clientID, user.UserID, !deny)
	http.Redirect(w, req.Request, u.String(), http.StatusFound)
}

// newCode makes a 43-character code from Lark's documented alphabet [A-Za-z0-9-_].
func newCode() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func dedupScopes(in []string) []string {
	out := make([]string, 0, len(in))
	for _, sc := range in {
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out
}

// writeAuthorizeErrorPage is the HTML page Lark shows instead of redirecting when the request
// itself is bad.
func writeAuthorizeErrorPage(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Tt-Logid", newLogID())
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, "<!DOCTYPE html>\n<html><head><title>Authorization failed</title></head><body>"+
		"<h1>Authorization failed</h1><p>Error code: <span id=\"code\">%d</span></p><p id=\"msg\">%s</p></body></html>\n",
		code, html.EscapeString(msg))
}
