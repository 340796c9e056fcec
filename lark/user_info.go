package lark

import (
	"context"
	"errors"
	"net/http"
)

// EndpointUserInfo names UserInfo in errors and Observe calls.
const EndpointUserInfo = "user_info"

// UserInfo is who a user access token belongs to. Fields behind extra contact scopes (email, mobile,
// user_id) are left out on purpose: the plugin only needs to name the user and the tenant.
type UserInfo struct {
	OpenID    string // ou_…, differs per app
	UnionID   string // on_…, the same across one developer's apps
	Name      string
	EnName    string
	TenantKey string
}

// UserInfo calls GET {open}/open-apis/authen/v1/user_info with the user's token. It is a read, so
// it is retried like any other; a token Lark no longer accepts is KindUserTokenInvalid.
func (c *Client) UserInfo(ctx context.Context, userAccessToken string) (*UserInfo, error) {
	// The token becomes a header value; a malformed one would fail inside net/http with a
	// retryable-looking network error instead of a clear refusal.
	if err := checkToken("user access token", userAccessToken, true); err != nil {
		return nil, invalid(EndpointUserInfo, err.Error())
	}
	var resp userInfoResponse
	err := c.do(ctx, request{
		endpoint: EndpointUserInfo,
		method:   http.MethodGet,
		url:      c.openAPI("/open-apis/authen/v1/user_info"),
		header:   http.Header{"Authorization": {"Bearer " + userAccessToken}},
		secrets:  []string{userAccessToken},
		classify: classifyUserInfo,
	}, &resp)
	if err != nil {
		return nil, err
	}
	d := resp.Data
	return &UserInfo{OpenID: d.OpenID, UnionID: d.UnionID, Name: d.Name, EnName: d.EnName, TenantKey: d.TenantKey}, nil
}

// Codes that mean "this user token is no good" on user_info (lark-api.md §7, §9): the gateway's
// invalid (99991668) and expired (99991677), 99991663 when the token is not a user token at all,
// and the service's own 20005 for a revoked token that got past the gateway.
const (
	codeGatewayAppTokenInvalid  = 99991663
	codeGatewayUserTokenInvalid = 99991668
	codeGatewayUserTokenExpired = 99991677
	codeUserTokenInvalid        = 20005
)

func classifyUserInfo(code int, _ string) ErrorKind {
	switch code {
	case codeGatewayUserTokenInvalid, codeGatewayUserTokenExpired, codeUserTokenInvalid, codeGatewayAppTokenInvalid:
		return KindUserTokenInvalid
	}
	return ""
}

type userInfoResponse struct {
	Data struct {
		OpenID    string `json:"open_id"`
		UnionID   string `json:"union_id"`
		Name      string `json:"name"`
		EnName    string `json:"en_name"`
		TenantKey string `json:"tenant_key"`
	} `json:"data"`
}

// validate insists on open_id: it is what the backend keys a user by, so an answer without one is
// unusable whatever else it says.
func (r *userInfoResponse) validate() error {
	if r.Data.OpenID == "" {
		return errors.New("missing data.open_id")
	}
	return nil
}
