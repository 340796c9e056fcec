package larksecrets

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// Lark app ids are "cli_" followed by hex digits in practice; letters and digits are accepted so
// that demo and test apps ("cli_demo", "cli_a") work too.
var appIDPattern = regexp.MustCompile(`^cli_[A-Za-z0-9]{1,64}$`)

// maxFieldBytes bounds every free-form string field, so a huge value is refused before it reaches
// storage.
const maxFieldBytes = 4096

func validateAppID(appID string) error {
	switch {
	case appID == "":
		return fmt.Errorf("app_id is required")
	case len(appID) > 68:
		return fmt.Errorf("app_id is too long (%d characters); Lark app ids look like cli_a1b2c3d4e5f6a7b8", len(appID))
	case !appIDPattern.MatchString(appID):
		return fmt.Errorf("app_id %q is not a Lark app id: it must look like cli_a1b2c3d4e5f6a7b8 (\"cli_\" then letters and digits)", truncateForMessage(appID))
	}
	return nil
}

// truncateForMessage keeps user-supplied values short and printable inside error messages: at
// most 64 characters, cut between characters (a cut inside one left invalid UTF-8), with control
// characters (C0 and C1) and line separators replaced, so a value cannot forge a log line.
func truncateForMessage(s string) string {
	const max = 64
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == max {
			b.WriteString("…")
			break
		}
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			r = '?'
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// User slots name one Lark user's grant under an app. They appear in paths and in identity-templated
// policies (entity or alias names), so they allow what such names usually hold and nothing that
// could change the meaning of a path.
var slotPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

func validateSlot(slot string) error {
	switch {
	case slot == "":
		return fmt.Errorf("user is required: the name of the slot that will hold this user's grant")
	case len(slot) > 64:
		return fmt.Errorf("user %q is too long (%d characters, at most 64)", truncateForMessage(slot), len(slot))
	case !slotPattern.MatchString(slot) || strings.Contains(slot, ".."):
		return fmt.Errorf("user %q is not a valid slot name: use 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit, without '..'", truncateForMessage(slot))
	}
	return nil
}

// Scopes are space-separated in Lark's authorize URL, so a scope with a space would smuggle in
// another; Lark allows at most 50 and rejects duplicates.
var scopePattern = regexp.MustCompile(`^[A-Za-z0-9_.:\-]{1,128}$`)

const offlineAccessScope = "offline_access"

// normalizeScopes merges scope lists, drops duplicates and empty entries, and checks each scope.
func normalizeScopes(lists ...[]string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, list := range lists {
		for _, s := range list {
			s = strings.TrimSpace(s)
			if s == "" || seen[s] {
				continue
			}
			if !scopePattern.MatchString(s) {
				return nil, fmt.Errorf("scope %q is not a Lark scope name (letters, digits, '.', ':', '_' and '-')", truncateForMessage(s))
			}
			seen[s] = true
			out = append(out, s)
		}
	}
	if len(out) > 50 {
		return nil, fmt.Errorf("%d scopes requested; Lark accepts at most 50", len(out))
	}
	return out, nil
}

func validateRedirectURI(raw string) error {
	if len(raw) > 2048 {
		return fmt.Errorf("too long (%d bytes, at most 2048)", len(raw))
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URL")
	}
	// Hostname, not Host: "http://:" has a Host (":") but no host.
	if (u.Scheme != "https" && u.Scheme != "http") || u.Hostname() == "" {
		return fmt.Errorf("must be an absolute http or https URL")
	}
	// An empty query ("cb?") or fragment ("cb#") leaves no trace in url.URL, hence the raw check:
	// either would garble the "?code=...&state=..." that Lark appends.
	if u.User != nil || u.Fragment != "" || u.RawQuery != "" || u.ForceQuery || strings.ContainsAny(raw, "?#") {
		return fmt.Errorf("must not carry user info, a query or a fragment: Lark appends code and state")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %s is not between 1 and 65535", truncateForMessage(p))
		}
	}
	return nil
}
