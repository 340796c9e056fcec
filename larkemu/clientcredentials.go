package larkemu

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"time"
)

// clientCredentialsReply is the v3 tenant token shape (lark-api.md §2b): access_token and
// expires_in, not tenant_access_token and expire.
type clientCredentialsReply struct {
	Code        int    `json:"code"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
	TokenType   string `json:"token_type"`
}

// v3 tenant tokens are JWTs "several KB long" (issue 10; lark-api.md §1 says reserve 4 KB). The
// emulator varies the length within this range so no client can get away with a fixed-size buffer
// or a column sized for "t-…" tokens.
const (
	minTenantJWTLen = 2 << 10
	maxTenantJWTLen = 4 << 10
)

// serveClientCredentials is grant_type=client_credentials on POST /oauth/v3/token: the v3 tenant
// token of a self-built app. Client authentication (body or HTTP Basic, never both: 20070) was
// checked by the dispatcher. Lark does not say whether the 30-minute reuse rule holds here, so
// every call mints a fresh token; the token works wherever a legacy tenant token does.
func (s *Server) serveClientCredentials(w http.ResponseWriter, req *request, clientID, secret string) {
	s.countFor(EndpointClientCredentials, clientID)
	s.withFailures(w, req, EndpointClientCredentials, false, func(w http.ResponseWriter) {
		now := s.clk.Now()
		s.mu.Lock()
		a, code := s.checkClientLocked(clientID, secret)
		if code == 0 && a.AppType == AppTypeStore {
			// A store app has a token per tenant and no tenant to name here (inferred refusal).
			code = oauthBadGrantType
		}
		var t *appToken
		if code == 0 {
			s.pruneAppTokens(now)
			exp := now.Add(s.opts.AppTokenTTL)
			t = &appToken{token: newTenantJWT(clientID, s.opts.TenantKey, now, exp), appID: clientID, expiresAt: exp}
			s.tenantTokens[t.token] = t
		}
		s.mu.Unlock()
		if code != 0 {
			s.oauthFail(w, EndpointClientCredentials, clientID, "client_credentials", code)
			return
		}
		s.logf("%s: app_id=%s code=0", EndpointClientCredentials, clientID)
		writeJSON(w, http.StatusOK, clientCredentialsReply{
			AccessToken: t.token, ExpiresIn: remainingSeconds(t.expiresAt, now), TokenType: "Bearer",
		})
	})
}

// newTenantJWT makes a JWT-shaped v3 tenant token between minTenantJWTLen and maxTenantJWTLen
// characters: an ES256-style header, claims padded with an opaque "ext" blob, and 64 random
// signature bytes. Nothing ever verifies the signature.
func newTenantJWT(appID, tenantKey string, now, exp time.Time) string {
	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"alg":"ES256","kid":"larkemu","typ":"JWT"}`))
	sig := make([]byte, 64)
	_, _ = rand.Read(sig)
	signature := enc.EncodeToString(sig)

	spread, _ := rand.Int(rand.Reader, big.NewInt(maxTenantJWTLen-minTenantJWTLen-256))
	target := minTenantJWTLen + 128 + int(spread.Int64())
	claims := map[string]any{
		"iss": "larkemu", "typ": "tenant", "app_id": appID, "tenant_key": tenantKey,
		"iat": now.Unix(), "exp": exp.Unix(), "jti": randomHex(16), "ext": "",
	}
	base, _ := json.Marshal(claims)
	// Raw base64 turns n bytes into about 4n/3 characters; size the padding to land on target.
	claimBytes := (target - len(header) - len(signature) - 2) * 3 / 4
	if pad := claimBytes - len(base); pad > 0 {
		claims["ext"] = randomHex((pad + 1) / 2)[:pad]
	}
	body, _ := json.Marshal(claims)
	return header + "." + enc.EncodeToString(body) + "." + signature
}
