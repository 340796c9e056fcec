package larkevent

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// decodePayload fills the typed payload of the types this package knows. Other types are left as
// they are: the caller answers them with 200 and ignores them. Field names are those of the event
// pages cited on each type.
func decodePayload(ev *Event, payload json.RawMessage) *Error {
	switch ev.Type {
	case TypeAppTicket:
		var p struct {
			AppTicket string `json:"app_ticket"`
		}
		if !unmarshalObject(payload, &p) || !visible(p.AppTicket, maxTicketLen) {
			return refuse(ReasonMalformed, "app_ticket event without a well-formed ticket")
		}
		ev.AppTicket = &AppTicket{AppID: ev.AppID, Ticket: p.AppTicket}
	case TypeAppOpen:
		var p struct {
			Applicants        []openIDHolder `json:"applicants"`
			Installer         *openIDHolder  `json:"installer"`
			InstallerEmployee *openIDHolder  `json:"installer_employee"`
		}
		if !unmarshalObject(payload, &p) || ev.TenantKey == "" {
			return refuse(ReasonMalformed, "app_open event without a tenant key")
		}
		open := &AppOpen{TenantKey: ev.TenantKey}
		for _, h := range []*openIDHolder{p.Installer, p.InstallerEmployee} {
			if h != nil && visible(h.OpenID, maxIDLen) {
				open.InstallerOpenID = h.OpenID
				break
			}
		}
		// Who asked is informative only: odd entries are skipped rather than refusing the event
		// that tells the plugin about a new tenant.
		for _, a := range p.Applicants {
			if len(open.ApplicantOpenIDs) == maxApplicants {
				break
			}
			if visible(a.OpenID, maxIDLen) {
				open.ApplicantOpenIDs = append(open.ApplicantOpenIDs, a.OpenID)
			}
		}
		ev.AppOpen = open
	case TypeAppUninstalled:
		if !isObject(payload) || ev.TenantKey == "" {
			return refuse(ReasonMalformed, "app_uninstalled event without a tenant key")
		}
		ev.AppUninstalled = &AppUninstalled{TenantKey: ev.TenantKey}
	case TypeAppStatusChange:
		var p struct {
			Status   string        `json:"status"`
			Operator *openIDHolder `json:"operator"`
		}
		if !unmarshalObject(payload, &p) || ev.TenantKey == "" || !visible(p.Status, maxTypeLen) {
			return refuse(ReasonMalformed, "app_status_change event without a tenant key or status")
		}
		change := &AppStatusChange{TenantKey: ev.TenantKey, Status: p.Status}
		if p.Operator != nil && visible(p.Operator.OpenID, maxIDLen) {
			change.OperatorOpenID = p.Operator.OpenID
		}
		ev.AppStatusChange = change
	case TypeUserTokenRevoked:
		var p struct {
			RevokeTokenType string `json:"revoke_token_type"`
			RevokeReason    string `json:"revoke_reason"`
			OpenID          string `json:"open_id"`
			UnionID         string `json:"union_id"`
			UserID          string `json:"user_id"`
		}
		if !unmarshalObject(payload, &p) {
			return refuse(ReasonMalformed, "revocation event without an event object")
		}
		ids := []string{p.OpenID, p.UnionID, p.UserID}
		if p.OpenID == "" && p.UnionID == "" && p.UserID == "" {
			return refuse(ReasonMalformed, "revocation event names no user")
		}
		for _, id := range ids {
			if id != "" && !visible(id, maxIDLen) {
				return refuse(ReasonMalformed, "revocation event has a malformed user id")
			}
		}
		rev := &UserTokenRevoked{
			OpenID: p.OpenID, UnionID: p.UnionID, UserID: p.UserID,
			Reason: parseRevokeReason(p.RevokeReason), ReasonText: cleanText(p.RevokeReason, maxReasonText),
		}
		for _, t := range strings.Fields(p.RevokeTokenType) {
			switch t {
			case "user_access_token":
				rev.AccessTokenRevoked = true
			case "refresh_token":
				rev.RefreshTokenRevoked = true
			}
		}
		ev.TokenRevoked = rev
	}
	return nil
}

type openIDHolder struct {
	OpenID string `json:"open_id"`
}

// unmarshalObject decodes an event's "event" object; a missing or non-object payload fails.
func unmarshalObject(payload json.RawMessage, v any) bool {
	return isObject(payload) && json.Unmarshal(payload, v) == nil
}

// parseEpoch reads ts (1.0: seconds with a fraction, "1502199207.7171419") or create_time (2.0:
// milliseconds on the event pages, microseconds in the overview's example). Integers are read by
// magnitude; a fraction is read digit by digit, to the nanosecond. Anything unreadable or outside
// the years 2000-2199 is the zero time.
func parseEpoch(s string) time.Time {
	if s == "" || len(s) > 32 {
		return time.Time{}
	}
	whole, frac, hasFrac := strings.Cut(s, ".")
	n, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || n <= 0 || strings.HasPrefix(whole, "+") {
		return time.Time{}
	}
	var t time.Time
	switch {
	case hasFrac:
		if frac == "" || len(frac) > 18 || strings.Trim(frac, "0123456789") != "" || n >= 1e11 {
			return time.Time{}
		}
		nanos, _ := strconv.ParseInt((frac + "000000000")[:9], 10, 64) // nine digits always parse
		t = time.Unix(n, nanos)
	case n < 1e11:
		t = time.Unix(n, 0)
	case n < 1e14:
		t = time.UnixMilli(n)
	case n < 1e17:
		t = time.UnixMicro(n)
	default:
		t = time.Unix(0, n)
	}
	if y := t.UTC().Year(); y < 2000 || y >= 2200 {
		return time.Time{}
	}
	return t.UTC()
}

// cleanText makes a free-text field safe to log: control characters become spaces, the result is
// trimmed and shortened.
func cleanText(s string, max int) string {
	s = strings.TrimSpace(strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s))
	if r := []rune(s); len(r) > max {
		s = string(r[:max]) + "..."
	}
	return s
}

// mapWalker bounds a parsed body before it is re-encoded: size (roughly as JSON text), depth and
// value types (only what a JSON decoder produces).
type mapWalker struct{ budget int }

func (w *mapWalker) spend(n int) *Error {
	w.budget -= n
	if w.budget < 0 {
		return refuse(ReasonTooLarge, "body larger than the limit")
	}
	return nil
}

func (w *mapWalker) walk(v any, depth int) *Error {
	if depth > maxDepth {
		return refuse(ReasonMalformed, "body is nested too deeply")
	}
	switch t := v.(type) {
	case map[string]any:
		if e := w.spend(2); e != nil {
			return e
		}
		for k, val := range t {
			if e := w.spend(len(k) + 4); e != nil {
				return e
			}
			if e := w.walk(val, depth+1); e != nil {
				return e
			}
		}
	case []any:
		if e := w.spend(2); e != nil {
			return e
		}
		for _, val := range t {
			if e := w.spend(1); e != nil {
				return e
			}
			if e := w.walk(val, depth+1); e != nil {
				return e
			}
		}
	case string:
		return w.spend(len(t) + 2)
	case json.Number:
		return w.spend(len(t))
	case nil, bool, float64, float32, int, int64, int32, uint, uint64, uint32:
		return w.spend(8)
	default:
		return refuse(ReasonMalformed, "parsed body holds a value JSON cannot carry")
	}
	return nil
}
