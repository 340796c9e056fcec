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
//	POST /open-apis/authen/v2/oauth/token                 OAuth token, JSON or form (§5); device_code polls (§14)
//	POST /oauth/v3/token                                  the same, plus client_credentials (§2b)
//	POST /oauth/v1/revoke                                 revoke a user token (§11)
//	POST /oauth/v1/device_authorization                   device login: device and user codes (§14)
//	GET  /open-apis/authen/v1/user_info                   user token only (§7)
//	POST /open-apis/im/v1/messages?receive_id_type=…      send a message; recorded for tests (§8); cards checked (§8a)
//	POST /open-apis/auth/v3/app_ticket/resend             store apps: push a new app_ticket (§3)
//	POST /open-apis/auth/v3/app_access_token              store apps: app token from the app_ticket (§3)
//	POST /open-apis/auth/v3/tenant_access_token           store apps: tenant token per tenant_key (§3)
//	POST /open-apis/authen/v1/oidc/access_token           deprecated v1 user token by code (§6)
//	POST /open-apis/authen/v1/oidc/refresh_access_token   deprecated v1 refresh (§6)
//	POST /open-apis/authen/v1/access_token                the same two, with the user's profile in data (§6)
//	POST /open-apis/authen/v1/refresh_access_token
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
//	                                   "refresh_token_ttl_seconds"?,"user_token_ttl_seconds"?,
//	                                   "app_type"?,"event_url"?,"verification_token"?,"encrypt_key"?,
//	                                   "event_types"?,"tenants"?}  → {"ok":true}                 RegisterApp / AddApp
//	GET    /_emulator/apps             → {"apps":[{"app_id","refresh_disabled","scopes",…}]} (never secrets)  Apps
//	DELETE /_emulator/apps/{app_id}    → {"removed":bool}; the app's app/tenant tokens die with it           RemoveApp
//	GET    /_emulator/apps/{app_id}/counters → {"refresh":N,…,"max_refresh_per_second":N}                  AppCounters
//	DELETE /_emulator/apps/{app_id}/counters → {"ok":true}                                                 ResetAppCounters
//	GET    /_emulator/clock            → {"now":RFC3339Nano,"offset_seconds":N} (offset from the wall clock) Now
//	POST   /_emulator/clock/advance    {"seconds":N} (N > 0, fractional allowed) → same as GET;
//	                                   HTTP 409 if the clock cannot move                                   Advance
//	POST   /_emulator/failures         {"endpoint","mode","count"?,"delay_ms"?,"status"?,"reset_seconds"?,"code"?,"msg"?,
//	                                   "app_id"?}                                                          InjectFailure
//	GET    /_emulator/failures         → {"failures":[…]} with the count left of each                     PendingFailures
//	DELETE /_emulator/failures         → {"ok":true}                                                       ClearFailures
//	DELETE /_emulator/failures?app_id=X → {"cleared":N}: only the failures aimed at app X             ClearAppFailures
//	GET    /_emulator/counters         → {"app_access_token":N,…} every counter, zeros included           Counters / Calls
//	POST   /_emulator/reset            → {"ok":true}                                                       Reset
//	POST   /_emulator/users            {"user_id","name"?,"en_name"?,"email"?,"open_id"?,"union_id"?,"tenant_key"?,"sign_in"?}
//	                                   registers a user and, unless sign_in is false, signs them in for
//	                                   the authorize page                                                AddUser / RegisterUser
//	GET    /_emulator/users            → {"users":[{…,"union_id","current"}]}                              Users / CurrentUser
//	GET    /_emulator/authorize-mode   → {"mode":"approve"|"deny"}
//	POST   /_emulator/authorize-mode   {"mode":"approve"|"deny"}                                          SetAuthorizeMode
//	GET    /_emulator/grants           → {"grants":[GrantInfo…]} (no tokens)                              Grants
//	POST   /_emulator/grants           {"app_id","user_id"?,"scopes"?,"authorized_days_ago"?} → MintedGrant (with tokens)  MintGrant
//	POST   /_emulator/grants/batch     same body as POST /_emulator/grants plus "count" (1..1000)
//	                                   → {"grants":[MintedGrant…]}: count grants alike, for seeding      MintGrant × count
//	POST   /_emulator/grants/revoke    {"grant_id"} or {"app_id","user_id"?}, "reason"? → {"grants":N,"events"?:[EventDelivery…]};
//	                                   404 if none                                                       RevokeGrants
//	POST   /_emulator/grants/expire    {"grant_id"} or {"app_id","user_id"?} → {"grants":N}; 404 if none  ExpireGrants
//	GET    /_emulator/messages         → {"messages":[Message…]} (each with token_sha256, never the token)  Messages
//	DELETE /_emulator/messages         → {"ok":true}                                                       ClearMessages
//	GET    /_emulator/user-info-calls  → {"calls":[UserInfoCall…]}: every user_info call with a bearer token,
//	                                   its app, the token's sha256 (never the token), the code answered   UserInfoCalls
//	DELETE /_emulator/user-info-calls  → {"ok":true}                                                       ClearUserInfoCalls
//	GET    /_emulator/revoke-mode      → {"mode":"json"|"empty"}
//	POST   /_emulator/revoke-mode      {"mode":"json"|"empty"}: a successful revoke answers {"code":0} or
//	                                   HTTP 200 with an empty body                                      SetRevokeMode
//	GET    /_emulator/card-mode        → {"mode":"accept"|"refuse","apps":{app_id:mode}}
//	POST   /_emulator/card-mode        {"mode":"accept"|"refuse","app_id":optional}: refuse answers cards
//	                                   (of app_id, or of every app) with 230099, as for a tenant that takes
//	                                   no cards; text still goes through                SetCardMode, SetAppCardMode
//	GET    /_emulator/devices          → {"devices":[DeviceInfo…]} (user codes, never device codes)       DeviceAuthorizations / Device
//	POST   /_emulator/device/approve   {"user_code","user_id"?} → DeviceInfo; 404 unknown code,
//	                                   409 expired or already decided                                    ApproveDevice
//	POST   /_emulator/device/deny      {"user_code","user_id"?} → DeviceInfo; same errors                 DenyDevice
//	GET    /_emulator/device/verify?user_code=… an HTML page (the verification_uri handed out) saying how
//	                                   to approve; it changes nothing
//
// # Device login (RFC 8628, lark-api.md §14)
//
// The device authorization endpoint checks the app like the token endpoint (HTTP Basic, as the
// official CLI sends it, or client_id/client_secret in the body, never both: 20070; 20048, 20002,
// 20001), rejects duplicate scopes (20067) and scopes outside the app's list (20068), and answers
// {code:0, device_code, user_code ("BCDF-GHJK" style), verification_uri, verification_uri_complete,
// expires_in (Options.DeviceCodeTTL, default 600), interval (Options.DeviceInterval, default 5)}.
// A poll is grant_type=urn:ietf:params:oauth:grant-type:device_code with device_code and the
// client credentials on either token endpoint. Refusals are HTTP 400 {error, error_description}
// without a numeric code (Lark's are unknown), checked in this order: unknown code invalid_grant;
// another app's code 20024; a redeemed code invalid_grant (single use); past expiry expired_token;
// denied access_denied; polled sooner than the interval after the previous poll slow_down, which
// adds 5 s to the interval the code requires from then on; not yet approved
// authorization_pending. An approved code is redeemed by the next poll for an ordinary grant
// (offline_access gives a single-use refresh token; the 365-day cap counts from redemption;
// consent accumulates as on the authorize page).
//
// Store apps and events (all 404 for an app that is not registered, 400 for bad input):
//
//	GET    /_emulator/apps/{app_id}/tenants   → {"tenants":[TenantInfo…]}                          Tenants
//	POST   /_emulator/apps/{app_id}/tenants   {"tenant_key","installer_user_id"?,"silent"?}
//	                                          → {"installed":bool,"event":EventDelivery|null}        InstallTenant
//	DELETE /_emulator/apps/{app_id}/tenants/{tenant_key} → {"removed":bool}                         UninstallTenant
//	GET    /_emulator/apps/{app_id}/tickets   → {"tickets":[{"ticket","issued_at","expires_at","valid"}…]}  Tickets
//	POST   /_emulator/apps/{app_id}/tickets   {} → {"ticket":{…},"event":EventDelivery|null}        PushAppTicket
//	GET    /_emulator/apps/{app_id}/events?type=…&after=N → {"events":[EventDelivery…]}             Events
//	DELETE /_emulator/apps/{app_id}/events    → {"ok":true}; pending retries are dropped           ClearEvents
//	POST   /_emulator/apps/{app_id}/events/push {"event":{…}} | {"raw_body":"…"} | {"replay_of":N},
//	                                          "encrypt"?,"encrypt_key"?,"retry"?,"pad_bytes"? → EventDelivery  PushEvent
//	POST   /_emulator/apps/{app_id}/url-verification {} → EventDelivery with "challenge_answered"  VerifyURL
//
// app_type is "self_built" (default) or "store". event_url (absolute http or https) needs a
// verification_token. event_types subscribes to "app_open" (store apps only) and
// "auth.user_access_token.revoked_v4"; store apps get app_ticket without subscribing. tenants are
// installed silently when a store app is registered (convenient for make dev); POST …/tenants
// installs with the app_open event. Re-registering an app keeps its tenants and tickets. The app
// listing shows app_type (store only), event_url, event_types and "encrypt_key_set", never the
// verification token or the key.
//
// An EventDelivery is {"seq","app_id","source":"lark"|"push"|"replay","url","event_type","event_id",
// "plaintext" (the event before encryption),"body" (the bytes sent, cut at 64 KiB),"body_bytes",
// "encrypted","state":"pending"|
// "delivered"|"failed","next_attempt_at"?,"challenge_answered"? (url_verification only),
// "attempts":[{"attempt","at","status" (0: no answer),"response" (first 4 KiB),"error"?,"headers"?
// (the X-Lark-* headers sent)}]}. TenantInfo is {"tenant_key","installed_at",
// "tenant_access_token_calls","tokens_issued"}: Lark calls per tenant, for "one call per tenant per
// token life" tests. Install, ticket push, revoke, push and url-verification make their first
// delivery attempt before answering; the resend endpoint and the schedule deliver in the background.
// The last 1000 deliveries are kept. A push sends event (any JSON, encrypted and signed like Lark's
// own when the app has a key, unless "encrypt":false; "encrypt_key" uses a forger's key instead),
// raw_body (bytes as given, never encrypted or signed) or replay_of (the exact body and signature
// headers of delivery N to the same app); "pad_bytes" makes an oversized but valid push (a
// "padding" field in the event object, or trailing spaces after raw_body), up to 64 MiB.
//
// # Events
//
// Lark POSTs events to the app's event URL as JSON with Content-Type application/json; charset=utf-8
// (lark-api.md §3). With an encrypt key the body is {"encrypt":"<base64>"}: AES-256-CBC with key
// SHA-256(encrypt key), the base64 (standard alphabet) of a random 16-byte IV followed by the
// ciphertext, PKCS#7 padding; and the request carries X-Lark-Request-Timestamp (Unix seconds, from the
// emulator clock), X-Lark-Request-Nonce and X-Lark-Signature = hex(SHA-256(timestamp + nonce + encrypt
// key + body)). Without a key the body is the plaintext event and nothing is signed. Shapes:
//
//   - app_ticket and app_open: schema 1.0, {"ts":"<seconds>.<7 digits>","uuid","token":<verification
//     token>,"type":"event_callback","event":{…,"type":"app_ticket"|"app_open"}}, as in Lark's
//     "app_ticket 事件" and "首次启用应用" (app first enabled) pages
//     (open.feishu.cn/document/uAjLw4CM/ukTMukTMukTM/application-v6/event/app_ticket-events and
//     …/application-v6/event/app-first-enabled). app_open carries app_id, the installing tenant's
//     tenant_key, "applicants":[] and "installer":{"open_id"} (an admin install; the installer is the
//     named or signed-in emulator user).
//   - auth.user_access_token.revoked_v4: schema 2.0, {"schema":"2.0","header":{"event_id","event_type",
//     "create_time" (ms),"token","app_id","tenant_key"},"event":{"revoke_token_type":"user_access_token
//     refresh_token","revoke_reason","open_id","union_id","user_id"?}} per Lark's "撤销用户授权事件"
//     page (open.feishu.cn/document/uAjLw4CM/ukTMukTMukTM/authentication-management/auth-v4/
//     user_access_token/events/revoked). The control API's reason words map to Lark's sentences: user →
//     "Revoked by user action.", administrator → "Revoked by administrator action.", security →
//     "Revoked by security and risk control action.", restriction → "Revoked by restriction
//     action.", unknown → "Revoked by unknown action.". user_id is sent to self-built apps only (its
//     field permission exists for custom apps only); tenant_key is Options.TenantKey, the tenant every
//     emulator user belongs to. The event fires when a grant goes from active to revoked through the
//     control API; revoking again sends nothing.
//   - url_verification: {"challenge","token","type":"url_verification"}, encrypted when a key is set.
//     The receiver must answer HTTP 200 with a JSON object whose "challenge" is the one sent; only
//     then is the delivery "delivered" and challenge_answered true. It is tried once.
//
// Only HTTP 200 counts as delivered. A delivery waits Options.EventTimeout (default 1 s, Lark's
// limit) for the answer and does not follow redirects. A failed delivery is retried after each of
// Options.EventRetryDelays in turn (default 5 s, 5 min, 1 h, 6 h: four retries, the schedule quoted
// from Lark's event documentation by third parties; not in lark-api.md), measured on the emulator's
// clock, so moving the clock forward brings retries (and scheduled tickets) due. A retry sends the
// same body with a fresh timestamp, nonce and signature (inferred). Control pushes are not retried
// unless they ask for it, since a forger does not retry; a replay sends the captured body and
// signature headers unchanged.
//
// # Store apps
//
// A store app's app_ticket is pushed every Options.TicketInterval (default 1 h, as Lark does; first
// push one interval after registration; after a long pause or clock jump, one push, not one per
// missed interval) and on app_ticket/resend, which answers {"code":0,"msg":"success"} at once and
// pushes in the background. Every push mints a new ticket. Lark does not document how long a ticket
// stays good; the emulator accepts each ticket for Options.TicketTTL (default 2 h) after it was
// pushed, so the newest and the previous ticket both work and a receiver that lost the latest push
// recovers only by resend (the official SDKs cache a ticket for 12 h and resend on 10012, so real
// Lark is likely more lenient). Tickets minted while the app has no event URL are lost, as on Lark.
//
// app_access_token {app_id,app_secret,app_ticket} answers {"code":0,"msg":"success",
// "app_access_token":"a-…","expire":N} and tenant_access_token {app_access_token,tenant_key}
// {"code":0,"msg":"success","tenant_access_token":"t-…","expire":N} ("success", not the /internal
// "ok", as Lark's examples show), each with the 2 h / 30 min reuse rule: one current app token per
// app and one current tenant token per (app, tenant), independently. Tenant tokens work on every
// business endpoint and send messages as their tenant; app tokens are not tenant tokens (99991663).
// Errors, all on HTTP 200 in the legacy {code,msg} shape:
//
//   - 10003 "invalid param" (+"data":{}): body not a JSON object of non-empty strings.
//   - 10014 "app id not exists" / "app secret invalid": as the /internal endpoints (observed).
//   - 10012 "app ticket invalid": unknown, expired or another app's ticket. The code is the one the
//     official SDKs treat as an invalid ticket (they resend on it); the wording is inferred.
//   - 10016 "app type not supported": a self-built app calling resend (Lark's generic table, §3) or
//     the store app_access_token endpoint, or a store app calling the /internal endpoints (both
//     inferred, as is the wording).
//   - 99991664 "invalid app token": tenant_access_token with an unknown or expired app token, or one
//     that is not a store app's (inferred: the gateway code for a bad app token, §9).
//   - 99991665 "invalid tenant code": a tenant_key the app is not installed in (inferred: the
//     gateway code for a bad tenant, §9).
//
// Uninstalling a tenant kills its tenant tokens; removing an app forgets its tickets, tokens and
// tenants.
//
// An app's refresh_token_ttl_seconds and user_token_ttl_seconds (0 or absent: the server's
// -refresh-token-ttl and -user-token-ttl) apply to every user token minted for it from then on, by
// code exchange, refresh or MintGrant; the refresh token's life is still capped by the grant's end.
//
// Reset forgets counters, pending failures, every token, code, device authorization, grant, consent, message, app_ticket
// and event delivery (pending retries included), and sets the authorize mode back to approve and the
// revoke mode back to json; apps, their tenants, the ticket schedule, users and the clock stay.
//
// # Counters and failures
//
// Counters and failures use the Endpoint* names. A request counts once it reaches an endpoint,
// whatever the outcome (injected failures included). Token calls also count under code_exchange,
// refresh, client_credentials or device_token by grant type, and refresh_reuse counts refreshes that presented a
// used refresh token. event_delivery counts the emulator's own POSTs to event URLs (every attempt);
// it and refresh_reuse are counters only, not failure targets.
//
// Per-app counters (AppCounters) have the same names and count the requests that name a registered
// app: the app a bearer token was issued to (user_info, messages), the client_id of the authorize
// page, the client_id / app_id of a token or revoke request, or the owner of the app_access_token a
// store tenant-token request presents. Tests that share one emulator read
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
// connection drops: a refresh token gets used up and the client never learns the new one) and
// error (Lark error code in the endpoint's own dialect, e.g. 20050 → HTTP 500 OAuth shape).
// faultshapes.go adds text (HTTP 200 plain text, neither JSON nor HTML), empty (HTTP 200, no body),
// wrong_shape (code 0 and no token), wrong_types (code 0, token fields of the wrong JSON types),
// gateway_timeout (hold delay_ms, then a plain 504 or status 500–599; nothing spent) and
// late_answer (the real handler runs at once, its answer is held for delay_ms and lost if the client
// leaves first). A failure with app_id hits only requests that name that app, as the per-app
// counters count them; others pass it by.
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
//   - v3 client_credentials (§2b; form or JSON, secret in the body or HTTP Basic, both → 20070) mints
//     a fresh tenant token on every call, since Lark does not restate the reuse rule there: a
//     JWT-shaped string of 2-4 KB (the length varies) answered as {"code":0,"access_token",
//     "expires_in","token_type":"Bearer"}. A store app asking for one gets 20036 (inferred: it has
//     a token per tenant and names none).
//   - authen v1 takes the app's app or tenant token (one token for a self-built app): none is
//     99991661 from the gateway, an unknown or expired one 20014. Codes are shared with v2, but v1
//     has no PKCE, so a code bound to a challenge is refused there (20003). v1 always issues a
//     refresh token ("ur-…", DefaultV1RefreshTokenTTL or the app's RefreshTokenTTL, capped by the
//     grant's end). It is single use: reuse and revoked tokens get 20038, expiry 20037; tokens of
//     the other generation 20026 both ways. The refresh switch (RefreshDisabled) is not applied
//     to v1, which documents no code for it. Calls count and fail under authen_v1.
//
// Nothing the emulator logs contains a secret or a token: lines name the endpoint, the app_id and
// the result code.
package larkemu
