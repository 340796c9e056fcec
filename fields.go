package larksecrets

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

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
// so a typo such as "app_scret" cannot leave a setting unchanged without anyone noticing.
func rejectUnknownFields(req *logical.Request, d *framework.FieldData) *logical.Response {
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
	known := make([]string, 0, len(d.Schema))
	for k := range d.Schema {
		known = append(known, k)
	}
	sort.Strings(known)
	return logical.ErrorResponse("unknown field(s) %s; this path accepts: %s",
		strings.Join(unknown, ", "), strings.Join(known, ", "))
}

// truncateForMessage keeps user-supplied values short and printable inside error messages.
func truncateForMessage(s string) string {
	const max = 64
	clean := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	if len(clean) > max {
		return clean[:max] + "…"
	}
	return clean
}
