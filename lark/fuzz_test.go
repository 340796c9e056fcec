package lark

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

// Fuzzing of response decoding: whatever comes back (status, content type, log id header, body),
// interpret must not panic, must either fill a response that passes its own validation or return
// a *Error with a kind, and must never put a request secret into any error text. The seeds run as
// part of go test; `go test -fuzz=FuzzDecodeResponse ./lark/` explores further.

const (
	fuzzSecret = "FuZzSeCrEt-0001"
	fuzzTicket = "FuZzTiCkEt-0002"
	fuzzToken  = "FuZzToKeN-0003"
)

type fuzzTarget struct {
	endpoint string
	out      func() any // nil result: an endpoint that reads nothing from a success
	classify func(int, string) ErrorKind
}

var fuzzTargets = []fuzzTarget{
	{EndpointAppAccessToken, func() any { return &appTokenResponse{} }, nil},
	{EndpointTenantAccessToken, func() any { return &tenantTokenResponse{} }, nil},
	{EndpointStoreAppAccessToken, func() any { return &storeAppTokenResponse{} }, classifyStoreAppToken},
	{EndpointStoreTenantAccessToken, func() any { return &tenantTokenResponse{} }, classifyStoreTenantToken},
	{EndpointAppTicketResend, func() any { return nil }, classifyResend},
	{EndpointTenantAccessTokenV3, func() any { return &clientCredentialsResponse{} }, classifyClientCredentials},
	{EndpointOAuthToken, func() any { return &userTokenResponse{} }, classifyCodeExchange},
	{EndpointOAuthRefresh, func() any { return &userTokenResponse{} }, classifyRefresh},
	{EndpointOAuthRevoke, func() any { return nil }, classifyOAuthCommon},
	{EndpointUserInfo, func() any { return &userInfoResponse{} }, classifyUserInfo},
	{EndpointSendMessage, func() any { return &sendMessageResponse{} }, classifyMessages},
}

var fuzzContentTypes = []string{"application/json; charset=utf-8", "text/html", "", "text/plain", "application/xhtml+xml"}

func FuzzDecodeResponse(f *testing.F) {
	jwt := "eyJhbGciOiJFUzI1NiJ9." + strings.Repeat("eyJwIjoxfQ", 400) + ".c2ln"
	seeds := []struct {
		status int
		body   string
	}{
		// Successes, from docs/lark-api.md §2, §2b, §3, §5, §7, §8.
		{200, `{"code":0,"msg":"ok","app_access_token":"t-g1045xyz","tenant_access_token":"t-g1045xyz","expire":7200}`},
		{200, `{"code":0,"msg":"ok","tenant_access_token":"t-g1045xyz","expire":7200}`},
		{200, `{"code":0,"msg":"success","app_access_token":"a-6U1SbDiM6XIH2DcTCPyeub","expire":7140}`},
		{200, `{"code":0,"msg":"success"}`},
		{200, `{"code":0,"access_token":"` + jwt + `","token_type":"Bearer","expires_in":7200}`},
		{200, `{"code":0,"access_token":"eyJhbGciOiJFUzI1NiIs","expires_in":7200,"refresh_token":"eyJhbGciOiJFUzI1NiIs","refresh_token_expires_in":604800,"token_type":"Bearer","scope":"auth:user.id:read offline_access"}`},
		{200, `{"code":0,"msg":"success","data":{"name":"Zhang San","en_name":"San Zhang","open_id":"ou_7d8a6e6df7621556ce0d21922b676706","union_id":"on_d89jhsdhjsajkda7828enjdj328ydhhw","tenant_key":"736588c92lxf175d"}}`},
		{200, `{"code":0,"msg":"success","data":{"message_id":"om_dc1326","msg_type":"text"}}`},
		{200, ``},
		// Errors in every shape: legacy, OAuth, gateway with log id, security challenge.
		{200, `{"code":10003,"data":{},"msg":"invalid param"}`},
		{200, `{"code":10014,"msg":"app secret invalid ` + fuzzSecret + `"}`},
		{200, `{"code":10012,"msg":"get app access token fail ` + fuzzTicket + `"}`},
		{400, `{"code":99991664,"msg":"invalid app token ` + fuzzToken + `"}`},
		{400, `{"code":99992500,"msg":"these ids not existed"}`},
		{200, `{"code":10016,"msg":"app resend fail"}`},
		{400, `{"code":20002,"error":"invalid_client","error_description":"The client secret is invalid."}`},
		{400, `{"code":20073,"error":"invalid_grant","error_description":"The refresh token has been used."}`},
		{500, `{"code":20050,"error":"server_error","error_description":"An unexpected server error occurred."}`},
		{400, `{"code":21000,"error":"access_denied","error_description":"verify","challenge_url":"https://accounts.feishu.cn/challenge?t=1"}`},
		{400, `{"code":21001,"msg":"blocked","data":{"challenge_url":"https://accounts.feishu.cn/c2"}}`},
		{400, `{"code":99991663,"msg":"Invalid access token","error":{"log_id":"LOG-1"}}`},
		{429, `{"code":99991400,"msg":"request trigger frequency limit"}`},
		{401, `{"error":"unauthorized_client"}`},
		{302, `<html>moved</html>`},
		{502, `<!DOCTYPE html><html>bad gateway</html>`},
		{200, `{"code":0,"tenant_access_token":"t-1\r\nX: y","expire":7200}`},
		{200, `{"code":1e99}`},
		{200, `[1,2]`},
	}
	for i, s := range seeds {
		f.Add(s.status, uint8(i), uint8(i%3), "", []byte(s.body))
	}
	f.Add(400, uint8(3), uint8(0), "log-"+fuzzSecret, []byte(`{"code":1,"error":{"log_id":"`+fuzzToken+`"}}`))
	f.Fuzz(func(t *testing.T, status int, target, ctype uint8, logID string, body []byte) {
		if status < 100 || status > 599 {
			status = 100 + (status%500+500)%500
		}
		tg := fuzzTargets[int(target)%len(fuzzTargets)]
		out := tg.out()
		r := request{endpoint: tg.endpoint, secrets: []string{fuzzSecret, fuzzTicket, fuzzToken}, classify: tg.classify}
		hdr := http.Header{}
		hdr.Set("Content-Type", fuzzContentTypes[int(ctype)%len(fuzzContentTypes)])
		e := interpret(r, &http.Response{StatusCode: status, Header: hdr}, body, cleanField(logID, 128), out)
		if e == nil {
			if status < 200 || status > 299 {
				t.Fatalf("success on HTTP %d", status)
			}
			if v, ok := out.(validator); ok {
				if err := v.validate(); err != nil {
					t.Fatalf("accepted an answer that fails validation: %v", err)
				}
			}
			return
		}
		if e.Kind == "" || e.Endpoint != tg.endpoint {
			t.Fatalf("error without kind or endpoint: %#v", *e)
		}
		texts := []string{e.Error(), e.Msg, fmt.Sprintf("%#v", *e)}
		if e.Err != nil {
			texts = append(texts, e.Err.Error())
		}
		for _, s := range texts {
			for _, secret := range r.secrets {
				if strings.Contains(s, secret) {
					t.Fatalf("secret %q in error text %q", secret, s)
				}
			}
		}
		if strings.ContainsFunc(e.Msg, func(r rune) bool { return r < ' ' || r == 0x7f }) || utf8.RuneCountInString(e.Msg) > maxMsgLen+3 {
			t.Fatalf("message not cleaned: %q", e.Msg)
		}
		if e.ChallengeURL != "" && (!strings.HasPrefix(e.ChallengeURL, "https://") || strings.ContainsAny(e.ChallengeURL, " \n\r\t")) {
			t.Fatalf("unsafe challenge URL %q", e.ChallengeURL)
		}
		if e.Retryable() != (e.Kind == KindUnavailable || e.Kind == KindRateLimited) {
			t.Fatalf("retryable %v for kind %s", e.Retryable(), e.Kind)
		}
	})
}
