package lark

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Brand selects the Lark cloud an app lives in. Feishu (China) and Lark (international) are separate
// deployments with separate hosts; an app registered on one is unknown to the other, so the brand is
// part of every app's configuration rather than a global setting.
type Brand string

// Known brands. The values are what operators type, so they stay lower case and stable.
const (
	BrandFeishu Brand = "feishu"
	BrandLark   Brand = "lark"
)

// ParseBrand accepts exactly "feishu" or "lark". It is case-sensitive on purpose: the value is stored
// in Vault and compared later, and accepting "Feishu" here would let two spellings of one brand exist.
func ParseBrand(s string) (Brand, error) {
	switch b := Brand(s); b {
	case BrandFeishu, BrandLark:
		return b, nil
	case "":
		return "", errors.New(`lark: brand is required; allowed values: "feishu", "lark"`)
	default:
		return "", fmt.Errorf(`lark: unknown brand %s; allowed values: "feishu", "lark" (lower case)`, quoteShort(s, 40))
	}
}

// OpenBaseURL is the OpenAPI host of the brand, without the /open-apis prefix (the client adds it).
// It returns "" for an unknown brand.
func (b Brand) OpenBaseURL() string {
	switch b {
	case BrandFeishu:
		return "https://open.feishu.cn"
	case BrandLark:
		return "https://open.larksuite.com"
	}
	return ""
}

// AccountsBaseURL is the host of the authorize page, the v3 token endpoint and revocation.
// It returns "" for an unknown brand.
func (b Brand) AccountsBaseURL() string {
	switch b {
	case BrandFeishu:
		return "https://accounts.feishu.cn"
	case BrandLark:
		return "https://accounts.larksuite.com"
	}
	return ""
}

const maxBaseURLLen = 2048

// ValidateBaseURL checks an operator-supplied host override (typically the local emulator). Only a
// scheme, a host and an optional port are allowed, because the client appends the full API path
// itself; anything more is almost certainly a copy-paste mistake that would otherwise surface later as
// a confusing 404. Error messages never echo the URL, since it might carry credentials.
func ValidateBaseURL(s string) error {
	if s == "" {
		return errors.New("lark: base URL is empty")
	}
	if len(s) > maxBaseURLLen {
		return fmt.Errorf("lark: base URL is %d characters long; the limit is %d", len(s), maxBaseURLLen)
	}
	u, err := url.Parse(s)
	if err != nil {
		// url.Parse's own message repeats the whole input; keep only the reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("lark: base URL is not a valid URL: %v", err)
	}
	switch {
	case u.Scheme == "":
		return errors.New("lark: base URL must be absolute, starting with http:// or https://")
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("lark: base URL scheme %s is not allowed; use http or https", quoteShort(u.Scheme, 20))
	case u.Opaque != "":
		return errors.New("lark: base URL must look like scheme://host[:port]")
	case u.User != nil:
		return errors.New("lark: base URL must not contain a user name or password")
	case u.Hostname() == "":
		return errors.New("lark: base URL must include a host")
	// An empty query ("http://h/?") or fragment ("http://h#") leaves no trace in url.URL's
	// Query/Fragment fields, hence the extra checks on the raw string.
	case u.RawQuery != "" || u.ForceQuery || strings.Contains(s, "?"):
		return errors.New("lark: base URL must not have a query string")
	case u.Fragment != "" || strings.Contains(s, "#"):
		return errors.New("lark: base URL must not have a fragment (#...)")
	case u.Path != "" && u.Path != "/":
		if strings.HasPrefix(u.Path, "/open-apis") {
			return errors.New("lark: base URL must be the host only; drop /open-apis, the client adds it")
		}
		return errors.New("lark: base URL must not have a path; give scheme://host[:port] only")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return errors.New("lark: base URL port must be between 1 and 65535")
		}
	}
	return nil
}

// quoteShort quotes operator input for an error message without letting a huge value flood logs.
func quoteShort(s string, max int) string {
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}
