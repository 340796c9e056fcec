// Package larkemu is an in-memory Feishu/Lark that behaves like the real one where the Vault plugin
// can tell the difference: token lifetimes and reuse, single-use codes and refresh tokens, and error
// shapes down to the byte (see lark-api.md §12). Lark cannot be reached from development machines
// and CI, so unit tests run it in-process (NewTestServer) and `make dev` and the end-to-end tests run
// it as a process (cmd/lark-emulator). Time comes from a clock.Clock that tests move forward
// instead of sleeping.
//
// # Lark endpoints
//
// One server plays both of Lark's hosts ("open" and "accounts"):
//
//	POST /open-apis/auth/v3/app_access_token/internal     legacy app token (§2)
//	POST /open-apis/auth/v3/tenant_access_token/internal  legacy tenant token (§2)
//	GET  /open-apis/authen/v1/authorize                   consent page: approves at once, 302 back (§4)
//	POST /open-apis/authen/v2/oauth/token                 OAuth token, JSON (§5)
//	POST /oauth/v3/token                                  the same, JSON or form, plus client_credentials (§2b)
//	POST /oauth/v1/revoke                                 revoke a user token (§11)
//	GET  /open-apis/authen/v1/user_info                   user token only (§7)
//	POST /open-apis/im/v1/messages?receive_id_type=…      send a message; recorded for tests (§8)
//
// Anything else is HTTP 404 {"code":404,"msg":"404 page not found"}; a known path with the wrong
// method is HTTP 405 with an Allow header.
//
// # Control API
//
// Everything under /_emulator/ is for tests and speaks JSON. Request bodies are decoded strictly
// (unknown fields are an error, HTTP 400 {"error":"…"}). Each call has a Go method twin.
//
//	POST   /_emulator/apps             {"app_id","app_secret","refresh_disabled"?,"scopes"?,
//	                                   "refresh_token_ttl_seconds"?,"user_token_ttl_seconds"?}  → {"ok":true}  RegisterApp / AddApp
//	GET    /_emulator/apps             → {"apps":[{"app_id","refresh_disabled","scopes",…}]} (never secrets)  Apps
//	DELETE /_emulator/apps/{app_id}    → {"removed":bool}; the app's app/tenant tokens die with it           RemoveApp
//	GET    /_emulator/apps/{app_id}/counters → {"refresh":N,…,"max_refresh_per_second":N}                  AppCounters
//	DELETE /_emulator/apps/{app_id}/counters → {"ok":true}                                                 ResetAppCounters
//	GET    /_emulator/clock            → {"now":RFC3339Nano,"offset_seconds":N} (offset from the wall clock) Now
//	POST   /_emulator/clock/advance    {"seconds":N} (N > 0, fractional allowed) → same as GET;
//	                                   HTTP 409 if the clock cannot move                                   Advance
//	POST   /_emulator/failures         {"endpoint","mode","count"?,"delay_ms"?,"status"?,"reset_seconds"?,"code"?,"msg"?}  InjectFailure
//	GET    /_emulator/failures         → {"failures":[…]} with the count left of each                     PendingFailures
//	DELETE /_emulator/failures         → {"ok":true}                                                       ClearFailures
//	GET    /_emulator/counters         → {"app_access_token":N,…} every counter, zeros included           Counters / Calls
//	POST   /_emulator/reset            → {"ok":true}                                                       Reset
//	POST   /_emulator/users            {"user_id","name"?,"en_name"?,"email"?,"open_id"?,"union_id"?,"sign_in"?}
//	                                   registers a user and, unless sign_in is false, signs them in for
//	                                   the authorize page                                                AddUser / RegisterUser
//	GET    /_emulator/users            → {"users":[{…,"union_id","current"}]}                              Users / CurrentUser
//	GET    /_emulator/authorize-mode   → {"mode":"approve"|"deny"}
//	POST   /_emulator/authorize-mode   {"mode":"approve"|"deny"}                                          SetAuthorizeMode
//	GET    /_emulator/grants           → {"grants":[GrantInfo…]} (no tokens)                              Grants
//	POST   /_emulator/grants           {"app_id","user_id"?,"scopes"?,"authorized_days_ago"?} → MintedGrant (with tokens)  MintGrant
//	POST   /_emulator/grants/revoke    {"grant_id"} or {"app_id","user_id"?} → {"grants":N}; 404 if none  RevokeGrants
//	POST   /_emulator/grants/expire    {"grant_id"} or {"app_id","user_id"?} → {"grants":N}; 404 if none  ExpireGrants
//	GET    /_emulator/messages         → {"messages":[Message…]}                                           Messages
//	DELETE /_emulator/messages         → {"ok":true}                                                       ClearMessages
//
// An app's refresh_token_ttl_seconds and user_token_ttl_seconds (0 or absent: the server's
// -refresh-token-ttl and -user-token-ttl) apply to every user token minted for it from then on, by
// code exchange, refresh or MintGrant; the refresh token's life is still capped by the grant's end.
//
// Reset forgets counters, pending failures, every token, code, grant, consent and message, and sets
// the authorize mode back to approve; apps, users and the clock stay.
//
// # Counters and failures
//
// Counters and failures use the Endpoint* names. A request counts once it reaches an endpoint,
// whatever the outcome (injected failures included). Token calls also count under code_exchange or
// refresh by grant type, and refresh_reuse counts refreshes that presented a used refresh token.
//
// Per-app counters (AppCounters) have the same names and count the requests that name a registered
// app: the app a bearer token was issued to (user_info, messages), the client_id of the authorize
// page, or the client_id / app_id of a token or revoke request. Tests that share one emulator read
// these, since other tests move the global ones. max_refresh_per_second is the largest number of
// the app's refresh requests that arrived within any one second, measured on the wall clock (not
// the emulator's adjustable clock), because a rate limit is about real requests per real second.
//
// Failures queue in injection order; each request takes the first pending one whose endpoint
// matches (EndpointAll matches all). count defaults to 1; -1 keeps the failure until cleared.
// Failures on code_exchange and refresh apply after the body is parsed, so they hit only that
// grant type. Modes: 5xx (plain-text 503, or status 500–599), timeout (hold until the client gives
// up or delay_ms, default 60 s, then drop the connection), slow (answer normally after delay_ms,
// default 1 s), 429 (Lark's rate-limit body and x-ogw-ratelimit-* headers, reset_seconds default 1),
// garbage (HTTP 200 HTML 502 page), truncated (the real answer cut in half; its side effects
// happen), huge (HTTP 200 JSON over 8 MiB, streamed), lost_response (the real handler runs, then the
// connection drops: a refresh token gets used up and the client never learns the new one),
// late_answer (the real handler runs at once, its answer is sent after delay_ms, default 1 s, unless
// the client has left by then) and error (Lark error code in the endpoint's own dialect, e.g. 20050 →
// HTTP 500 OAuth shape).
//
// # Modelling choices where Lark's documentation is silent
//
//   - A well-formed app_id is cli_ followed by letters, digits, '_' or '-'; others get 10003.
//   - Grants are cumulative: a new authorization's code carries every scope the user gave the app.
//   - A refresh token never outlives the grant's 365-day cap; refresh_token_expires_in shrinks near it.
//   - Narrowing scope on a refresh narrows that access token only; the new refresh token keeps the grant.
//   - User tokens are JWT-shaped and never forgotten, so an old refresh token is "expired" (20037),
//     not "invalid" (20026). Expired access tokens get 99991677, unknown ones 99991668 from the
//     gateway; revoked ones pass the gateway and user_info answers 20005 on HTTP 200.
//   - Revoking a refresh token (POST /oauth/v1/revoke) ends the chain with 20064; revoking an access
//     token kills only that token. Revoking a grant (control API) does both.
//   - v3 client_credentials mints a fresh tenant token on every call.
//
// Nothing the emulator logs contains a secret or a token: lines name the endpoint, the app_id and
// the result code.
package larkemu
