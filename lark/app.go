package lark

// AppCredentials identify one Lark app to Lark. They travel only in request bodies sent to Lark and
// are redacted from every error.
type AppCredentials struct {
	AppID     string
	AppSecret string
	// UserTokenEndpoint is where user tokens are exchanged and refreshed; "" means TokenEndpointV3.
	UserTokenEndpoint TokenEndpoint
}

// App is a Client bound to one app: every call that needs the app's identity takes it from here, so
// no caller passes an app secret around. It is cheap to create and safe for concurrent use; the
// Client's connection pool is shared.
type App struct {
	*Client
	creds AppCredentials
}

// App binds the client to one app's credentials.
func (c *Client) App(creds AppCredentials) *App {
	if creds.UserTokenEndpoint == "" {
		creds.UserTokenEndpoint = TokenEndpointV3
	}
	return &App{Client: c, creds: creds}
}

// ID is the app's id (cli_…).
func (a *App) ID() string { return a.creds.AppID }

// AuthorizeURL builds the authorize link for this app; r.AppID is filled in.
func (a *App) AuthorizeURL(r AuthorizeRequest) (string, error) {
	r.AppID = a.creds.AppID
	return a.Client.AuthorizeURL(r)
}
