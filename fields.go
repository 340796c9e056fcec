package larksecrets

import (
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
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

// rejectUnknownFields turns the framework's silent ignoring of unexpected parameters into an error,
// so a typo such as "app_scret" cannot leave a setting unchanged without anyone noticing. A field
// named both in the path and in the body must have one value: the framework silently takes the
// path's, and a policy written for the path could otherwise be read as covering the body's.
func rejectUnknownFields(req *logical.Request, d *framework.FieldData) *logical.Response {
	for k, v := range req.Data {
		captured, ok := d.Raw[k].(string)
		if !ok {
			continue
		}
		if body, isString := v.(string); !isString || body != captured {
			return logical.ErrorResponse("%s in the path (%q) and in the request (%q) differ", k, truncateForMessage(captured), truncateForMessage(fmt.Sprint(v)))
		}
	}
	var unknown []string
	for k := range req.Data {
		if _, ok := d.Schema[k]; !ok {
			unknown = append(unknown, truncateForMessage(k))
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	// The names come from the request: however many there are, the message stays short.
	const maxListed = 10
	if n := len(unknown); n > maxListed {
		unknown = append(unknown[:maxListed], fmt.Sprintf("and %d more", n-maxListed))
	}
	known := make([]string, 0, len(d.Schema))
	for k := range d.Schema {
		known = append(known, k)
	}
	sort.Strings(known)
	if len(known) == 0 {
		return logical.ErrorResponse("unknown field(s) %s; this path takes no parameters", strings.Join(unknown, ", "))
	}
	return logical.ErrorResponse("unknown field(s) %s; this path accepts: %s",
		strings.Join(unknown, ", "), strings.Join(known, ", "))
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

// appIDField and userSlotField are the path parameters that name an app and one user's slot under
// it; grantIDFrom reads and checks them.
var userSlotField = &framework.FieldSchema{
	Type:        framework.TypeString,
	Description: "The user slot: a short name for one Lark user's grant under this app, such as the person's Vault entity name. 1-64 letters, digits, '.', '_', '@' or '-'.",
	Required:    true,
}

var appIDField = &framework.FieldSchema{
	Type:        framework.TypeString,
	Description: "The Lark app, as configured under apps/.",
	Required:    true,
}

func grantIDFrom(d *framework.FieldData) (grantID, *logical.Response) {
	appID, slot := d.Get("app_id").(string), d.Get("user").(string)
	if err := validateAppID(appID); err != nil {
		return grantID{}, logical.ErrorResponse(err.Error())
	}
	if err := validateSlot(slot); err != nil {
		return grantID{}, logical.ErrorResponse(err.Error())
	}
	return grantID{appID, slot}, nil
}

// The largest min_ttl a token read may ask for (parseMinTTL) follows from these.
const (
	// appTokenMaxLife is the longest an app or tenant token lives (docs/lark-api.md §2).
	appTokenMaxLife = 2 * time.Hour
	// userTokenMaxLife is the life of a user_access_token (docs/lark-api.md §5).
	userTokenMaxLife = 2 * time.Hour
	// minTTLFetchAllowance is what a fresh token loses between Lark's answer and the lease being
	// built, kept out of the largest min_ttl so that one is always satisfiable by a fresh token.
	minTTLFetchAllowance = time.Minute
)

// minTTLField is the schema of the optional min_ttl of a token read; what names the token.
func minTTLField(what string) *framework.FieldSchema {
	return &framework.FieldSchema{
		Type: framework.TypeDurationSecond,
		Description: "Optional: how long the returned " + what + " must stay usable, as a duration (30m, 1h30m) " +
			"or a number of seconds. The answer's lease TTL (ttl when lease_mode=none) is then at least this " +
			"long; if the cached token's would be shorter, a new token is fetched from Lark first, and if Lark " +
			"cannot issue one that lasts long enough the read is refused (HTTP 409 when a later read can " +
			"succeed, HTTP 400 when no token ever lasts that long). 0 or absent: no requirement.",
	}
}

// parseMinTTL reads the optional min_ttl field of a token read. limit is the longest min_ttl the
// token kind can ever satisfy and why says where that limit comes from, for the message. Absent and
// 0 both mean no requirement.
func parseMinTTL(d *framework.FieldData, limit time.Duration, why string) (time.Duration, error) {
	raw, ok, err := d.GetOkErr("min_ttl")
	if err != nil {
		return 0, fmt.Errorf("min_ttl is not a duration: use one such as 30m or 1h30m, or a number of seconds")
	}
	if !ok {
		return 0, nil
	}
	v := time.Duration(raw.(int)) * time.Second
	switch {
	case v < 0:
		return 0, fmt.Errorf("min_ttl must not be negative")
	case v > limit:
		return 0, fmt.Errorf("min_ttl %s is more than Lark can ever give: %s; ask for at most %s", v, why, limit)
	}
	return v, nil
}
