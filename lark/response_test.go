package lark

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestLogIDWithASecretIsDropped: a log id is printed in every error, so one that echoes a secret
// (from the header or the body) is dropped, not shown.
func TestLogIDWithASecretIsDropped(t *testing.T) {
	tests := []struct {
		name   string
		step   []string // header name/value pairs
		body   string
		status int
		want   string
	}{
		{"real header log id", []string{"X-Tt-Logid", "202401011234"}, `{"code":10014,"msg":"app secret invalid"}`, 200, "202401011234"},
		{"header echoing the secret", []string{"X-Tt-Logid", "x" + testAppSecret}, `{"code":10014,"msg":"app secret invalid"}`, 200, ""},
		{"body echoing the secret", nil, `{"code":99991663,"msg":"bad","error":{"log_id":"` + testAppSecret + `"}}`, 400, ""},
		{"body echoing a token it hands out", nil, `{"code":1,"tenant_access_token":"t-handedout123456","error":{"log_id":"t-handedout123456"}}`, 400, ""},
		{"header on a body too large", []string{"X-Tt-Logid", testAppSecret}, `{"code":0,"msg":"` + string(make([]byte, 2<<20)) + `"}`, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake(t, reply(tt.status, tt.body, tt.step...))
			_, err := newClient(t, fake.srv.URL).App(AppCredentials{AppID: testAppID, AppSecret: testAppSecret}).TenantAccessToken(t.Context())
			e := asError(t, err)
			assert.Equal(t, tt.want, e.LogID)
			assert.NotContains(t, e.Error(), testAppSecret)
		})
	}
}
