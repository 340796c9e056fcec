package larkevent

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseEpoch(t *testing.T) {
	tests := map[string]time.Time{
		"1502199207.7171419":       time.Unix(1502199207, 717141900).UTC(), // 1.0 ts
		"1502199207":               time.Unix(1502199207, 0).UTC(),
		"1608725989000":            time.UnixMilli(1608725989000).UTC(),    // 2.0 create_time, event pages
		"1603977298000000":         time.UnixMicro(1603977298000000).UTC(), // 2.0 create_time, overview example
		"1603977298000000000":      time.Unix(0, 1603977298000000000).UTC(),
		"1502199207.1234567891234": time.Unix(1502199207, 123456789).UTC(),
		"":                         {},
		"0":                        {},
		"-1502199207":              {},
		"+1502199207":              {},
		"12":                       {}, // 1970
		"99999999999999999999":     {},
		"1502199207.":              {},
		"1502199207.x":             {},
		"1502199207.5e3":           {},
		"1608725989000.5":          {}, // a fraction only makes sense on seconds
		"7258118400":               {}, // 2200-01-01, just outside
		"tomorrow":                 {},
		"1e9":                      {},
	}
	for in, want := range tests {
		assert.Equal(t, want, parseEpoch(in), in)
	}
}

func TestRevokeReasons(t *testing.T) {
	tests := map[string]RevokeReason{
		"Revoked by unknown action.":                   RevokeReasonUnknown,
		"Revoked by user action.":                      RevokeReasonUser,
		"Revoked by administrator action.":             RevokeReasonAdministrator,
		"Revoked by security and risk control action.": RevokeReasonRiskControl,
		"Revoked by restriction action.":               RevokeReasonRestriction,
		"  revoked by USER action ":                    RevokeReasonUser,
		"Revoked because of the moon.":                 RevokeReasonUnknown,
		"":                                             RevokeReasonUnknown,
	}
	for in, want := range tests {
		assert.Equal(t, want, parseRevokeReason(in), in)
		assert.NotEmpty(t, want.Text())
	}
	assert.Equal(t, RevokeReasonUnknown.Text(), RevokeReason("new").Text())
}

func revocation(tokenType, reason string) string {
	return `{"schema":"2.0","header":{"event_id":"e-` + fmt.Sprint(len(tokenType)) + `","event_type":"auth.user_access_token.revoked_v4","token":"` + testToken +
		`","app_id":"` + testApp + `"},"event":{"revoke_token_type":"` + tokenType + `","revoke_reason":"` + reason + `","open_id":"ou_1"}}`
}

func TestRevocationTokenTypes(t *testing.T) {
	tests := []struct {
		tokenType       string
		access, refresh bool
	}{
		{"user_access_token", true, false},
		{"refresh_token", false, true},
		{"user_access_token refresh_token", true, true},
		{"refresh_token  user_access_token", true, true},
		{"", false, false},
		{"id_token", false, false},
	}
	r := receiver(t, "")
	for _, tt := range tests {
		ev, err := r.Decode([]byte(revocation(tt.tokenType, "Revoked by user action.")))
		require.NoError(t, err, tt.tokenType)
		rev := ev.TokenRevoked
		require.NotNil(t, rev)
		assert.Equal(t, tt.access, rev.AccessTokenRevoked, tt.tokenType)
		assert.Equal(t, tt.refresh, rev.RefreshTokenRevoked, tt.tokenType)
		assert.Equal(t, RevokeReasonUser, rev.Reason)
		assert.Equal(t, "ou_1", rev.OpenID)
		assert.True(t, ev.CreatedAt.IsZero(), "no create_time, no time")
	}
	ev, err := r.Decode([]byte(revocation("refresh_token", `line1\nline2 `+strings.Repeat("é", 300))))
	require.NoError(t, err)
	assert.Equal(t, RevokeReasonUnknown, ev.TokenRevoked.Reason)
	assert.NotContains(t, ev.TokenRevoked.ReasonText, "\n")
	assert.LessOrEqual(t, len([]rune(ev.TokenRevoked.ReasonText)), maxReasonText+3)
}

func TestAppOpenVariants(t *testing.T) {
	r := receiver(t, "")
	body := func(event string) []byte {
		return []byte(`{"uuid":"u-1","token":"` + testToken + `","type":"event_callback","event":{"app_id":"` + testApp +
			`","tenant_key":"t1","type":"app_open"` + event + `}}`)
	}
	ev, err := r.Decode(body(`,"installer_employee":{"open_id":"ou_member"}`))
	require.NoError(t, err)
	assert.Equal(t, &AppOpen{TenantKey: "t1", InstallerOpenID: "ou_member"}, ev.AppOpen, "a review-free install names the member")
	ev, err = r.Decode(body(`,"installer":{"open_id":"ou admin"},"applicants":[{"open_id":""},{"open_id":"ou_ok"},{},{"x":1}]`))
	require.NoError(t, err)
	assert.Equal(t, &AppOpen{TenantKey: "t1", ApplicantOpenIDs: []string{"ou_ok"}}, ev.AppOpen, "odd entries are skipped, the tenant is kept")
	many := strings.Repeat(`{"open_id":"ou_x"},`, maxApplicants+10)
	ev, err = r.Decode(body(`,"applicants":[` + strings.TrimSuffix(many, ",") + `]`))
	require.NoError(t, err)
	assert.Len(t, ev.AppOpen.ApplicantOpenIDs, maxApplicants)
	_, err = r.Decode(body(`,"applicants":"everyone"`))
	assert.Equal(t, ReasonMalformed, asError(t, err).Reason)
}

func TestAppStatusChangeOperator(t *testing.T) {
	body := `{"uuid":"u-2","token":"` + testToken + `","type":"event_callback","event":{"app_id":"` + testApp +
		`","tenant_key":"t1","type":"app_status_change","status":"start_by_tenant","operator":{"open_id":"ou_op","user_id":"u","union_id":"on_1"}}}`
	ev, err := receiver(t, "").Decode([]byte(body))
	require.NoError(t, err)
	assert.Equal(t, &AppStatusChange{TenantKey: "t1", Status: StatusStartByTenant, OperatorOpenID: "ou_op"}, ev.AppStatusChange)
}

func TestTimestampsAsNumbers(t *testing.T) {
	body := strings.Replace(ticketBody, `"ts":"1502199207.7171419"`, `"ts":1502199207`, 1)
	ev, err := receiver(t, "").Decode([]byte(body))
	require.NoError(t, err)
	assert.Equal(t, time.Unix(1502199207, 0).UTC(), ev.CreatedAt)
	body = strings.Replace(ticketBody, `"ts":"1502199207.7171419"`, `"ts":{"odd":true}`, 1)
	ev, err = receiver(t, "").Decode([]byte(body))
	require.NoError(t, err, "an unreadable timestamp is no reason to drop the event")
	assert.True(t, ev.CreatedAt.IsZero())
}

func TestWithinDepth(t *testing.T) {
	assert.True(t, withinDepth([]byte(`{"a":[1,{"b":2}]}`), 3))
	assert.False(t, withinDepth([]byte(`{"a":[1,{"b":2}]}`), 2))
	assert.True(t, withinDepth([]byte(`{"a":"[[[[[[{{{{{"}`), 1), "brackets in strings do not count")
	assert.True(t, withinDepth([]byte(`{"a":"\"[[[["}`), 1), "nor after an escaped quote")
	assert.False(t, withinDepth([]byte(`{"a":"\\"}[[[[`), 2), "an escaped backslash ends nothing")
}
