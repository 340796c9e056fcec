package larkemu

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"mime"
	"net/url"
	"regexp"
	"strings"
)

// parseOAuthParams reads an OAuth request body into flat string parameters. Every OAuth endpoint
// (v2 and v3 token, revoke) takes JSON, as Lark documents, and a form, as RFC 6749 prescribes and
// generic OAuth clients and the official CLI send.
func parseOAuthParams(req *request) (map[string]string, int) {
	if req.bodyErr != nil {
		return nil, oauthMalformed
	}
	mediaType := ""
	if ct := req.Header.Get("Content-Type"); ct != "" {
		var err error
		if mediaType, _, err = mime.ParseMediaType(ct); err != nil {
			return nil, oauthMalformed
		}
	}
	out := map[string]string{}
	switch mediaType {
	case "application/x-www-form-urlencoded":
		vals, err := url.ParseQuery(string(req.body))
		if err != nil {
			return nil, oauthMalformed
		}
		for k, v := range vals {
			if len(v) != 1 {
				return nil, oauthMalformed // a repeated parameter is ambiguous
			}
			out[k] = v[0]
		}
	case "application/json", "":
		if len(bytes.TrimSpace(req.body)) == 0 {
			return out, 0
		}
		var raw map[string]any
		if err := json.Unmarshal(req.body, &raw); err != nil {
			return nil, oauthMalformed
		}
		for k, v := range raw {
			switch v := v.(type) {
			case string:
				out[k] = v
			case nil:
			default:
				return nil, oauthMalformed
			}
		}
	default:
		return nil, oauthMalformed
	}
	return out, 0
}

// clientCredentials finds the client id and secret in the body or in HTTP Basic; Lark refuses a
// request that uses both (20070).
func clientCredentials(req *request, p map[string]string) (id, secret string, code int) {
	user, pass, basic := req.BasicAuth()
	if !basic {
		return p["client_id"], p["client_secret"], 0
	}
	if p["client_secret"] != "" || (p["client_id"] != "" && p["client_id"] != user) {
		return "", "", oauthMultipleAuth
	}
	return user, pass, 0
}

// checkClientLocked authenticates an OAuth client. Callers hold s.mu.
func (s *Server) checkClientLocked(id, secret string) (*app, int) {
	if id == "" || secret == "" {
		return nil, oauthMissingParam
	}
	a, ok := s.apps[id]
	if !ok {
		return nil, oauthNoSuchApp
	}
	if subtle.ConstantTimeCompare([]byte(a.Secret), []byte(secret)) != 1 {
		return nil, oauthBadSecret
	}
	return a, 0
}

// pkceValuePattern is RFC 7636's verifier alphabet and length; S256 challenges fit it as well.
var pkceValuePattern = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)

func pkceMatches(challenge, method, verifier string) bool {
	if !pkceValuePattern.MatchString(verifier) {
		return false
	}
	if method == "S256" {
		sum := sha256.Sum256([]byte(verifier))
		verifier = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	return subtle.ConstantTimeCompare([]byte(verifier), []byte(challenge)) == 1
}

func splitScopes(s string) []string { return strings.Fields(s) }

// logAppID keeps whatever a client put in an id field out of the log unless it looks like an app
// id: a confused client may send its secret there.
func logAppID(id string) string {
	if wellFormedAppID(id) {
		return id
	}
	return "<malformed>"
}
