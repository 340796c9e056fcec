package larksecrets

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// Fields that several path families share, and the refusal of fields a path does not declare;
// the checks of the values themselves (names, scopes, redirect URIs) are in fields.go, where the
// services find them too.

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
