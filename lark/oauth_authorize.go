package lark

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// This file builds the authorize link with the standard library rather than golang.org/x/oauth2
// (GenerateVerifier, S256ChallengeFromVerifier, Config.AuthCodeURL). Those save about ten lines, but
// importing the package would also put oauth2.Config.TokenSource, which refreshes on its own, one
// call away from the backend; a Lark refresh token is single use, so an implicit refresh is a lost
// grant. Keeping x/oauth2 out of the import graph makes that mistake impossible rather than unlikely,
// and keeps go.mod unchanged.

// EndpointAuthorize names AuthorizeURL in errors; no HTTP call is made under it.
const EndpointAuthorize = "authorize"

const (
	maxScopes = 50 // the authorize page's documented limit
	// maxStateLen bounds what the browser carries back; a Vault state is a short random string.
	maxStateLen = 512
)

// pkcePattern is RFC 7636's verifier alphabet and length. An S256 challenge (43 base64url
// characters) fits it too, so one pattern checks both.
var pkcePattern = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)

// NewPKCEVerifier returns a fresh PKCE code verifier: 32 random bytes, base64url without padding
// (43 characters of [A-Za-z0-9-_]).
func NewPKCEVerifier() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("lark: generating a PKCE verifier: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// PKCEChallengeS256 is the code_challenge for verifier with method S256.
func PKCEChallengeS256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// AuthorizeRequest describes the link a user opens to grant the app access.
type AuthorizeRequest struct {
	AppID         string
	RedirectURI   string // must be registered under the app's security settings
	State         string // required: the callback matches it to the pending authorization
	CodeChallenge string // required: PKCEChallengeS256 of the verifier kept for the exchange
	// Scopes are sent as given; the caller includes offline_access, without which Lark issues no
	// refresh token.
	Scopes []string
	Prompt string // "" or "consent" (show the consent screen even if the user agreed before)
}

// AuthorizeURL builds the authorize page link on the accounts host (lark-api.md §4). PKCE is always
// S256: Lark's default method is "plain", which would put the verifier itself in the browser history.
func (c *Client) AuthorizeURL(r AuthorizeRequest) (string, error) {
	if err := r.validate(); err != nil {
		return "", &Error{Endpoint: EndpointAuthorize, Kind: KindInvalidRequest, detail: err.Error()}
	}
	q := url.Values{
		"client_id":             {r.AppID},
		"response_type":         {"code"},
		"redirect_uri":          {r.RedirectURI},
		"state":                 {r.State},
		"code_challenge":        {r.CodeChallenge},
		"code_challenge_method": {"S256"},
	}
	if len(r.Scopes) > 0 {
		q.Set("scope", strings.Join(r.Scopes, " "))
	}
	if r.Prompt != "" {
		q.Set("prompt", r.Prompt)
	}
	// Encode writes a space as "+"; Lark's documentation shows %20 for the scope separator, so use
	// that. A literal "+" is already %2B at this point, so the swap cannot change a value.
	return c.accounts("/open-apis/authen/v1/authorize") + "?" + strings.ReplaceAll(q.Encode(), "+", "%20"), nil
}

// validate names the faulty field without echoing its value (a misplaced secret could be among
// them); only scopes, which are public names, are quoted.
func (r AuthorizeRequest) validate() error {
	switch {
	case strings.TrimSpace(r.AppID) == "":
		return errors.New("app_id is empty")
	case r.State == "":
		return errors.New("state is empty")
	case len(r.State) > maxStateLen || hasControl(r.State):
		return errors.New("state is too long or contains control characters")
	case !pkcePattern.MatchString(r.CodeChallenge):
		return errors.New("code_challenge must be 43-128 characters of [A-Za-z0-9-._~]")
	case r.Prompt != "" && r.Prompt != "consent":
		return errors.New(`prompt must be empty or "consent"`)
	}
	if err := validateRedirectURI(r.RedirectURI); err != nil {
		return err
	}
	return validateScopes(r.Scopes)
}

func validateRedirectURI(s string) error {
	u, err := url.Parse(s)
	switch {
	case s == "":
		return errors.New("redirect_uri is empty")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return errors.New("redirect_uri must be an absolute http(s) URL")
	case u.Fragment != "" || strings.Contains(s, "#"):
		// RFC 6749 §3.1.2: the code is appended as a query; a fragment would swallow it.
		return errors.New("redirect_uri must not have a fragment")
	case u.User != nil:
		return errors.New("redirect_uri must not contain a user name or password")
	}
	return nil
}

// validateScopes enforces what the page would otherwise reject after the user has already clicked:
// the list is space-separated, so a scope with a space would silently become two.
func validateScopes(scopes []string) error {
	if len(scopes) > maxScopes {
		return fmt.Errorf("%d scopes requested; Lark accepts at most %d", len(scopes), maxScopes)
	}
	seen := make(map[string]bool, len(scopes))
	for i, s := range scopes {
		switch {
		case s == "":
			return fmt.Errorf("scope %d is empty", i+1)
		case strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }):
			return fmt.Errorf("scope %d contains a space or control character", i+1)
		case seen[s]:
			return fmt.Errorf("scope %s is listed twice", quoteShort(s, 60))
		}
		seen[s] = true
	}
	return nil
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f })
}
