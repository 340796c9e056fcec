// Package larkevent decodes and verifies what Lark pushes to an app's event URL (webhook delivery,
// docs/lark-api.md §3): the URL-verification challenge, schema 1.0 events such as app_ticket and
// app_open, and schema 2.0 events such as auth.user_access_token.revoked_v4 (§11), in plain JSON or
// in the encrypted {"encrypt": "..."} form.
//
// # Why a package of its own
//
// Package lark is the outbound side: calls to Lark, with one transport, retries, response limits
// and one error type (*lark.Error) whose Kind says what Lark answered. Events are the inbound side:
// no HTTP call, no retry, no Lark answer to classify, but a decision about a stranger's request
// (is this really Lark, for this app, and what does it say?). They share no code with the client,
// and keeping them apart keeps both contracts simple: every lark error is a failed call, every
// larkevent error is a refused event (*Error with a Reason the receiver maps to one HTTP answer).
//
// # What is verified, and why not the signature
//
// With an Encrypt Key set, Lark also sends X-Lark-Request-Timestamp, X-Lark-Request-Nonce and
// X-Lark-Signature = hex(SHA-256(timestamp + nonce + encrypt_key + raw body)). That signature is
// over the exact bytes Lark sent. A Vault plugin never sees those bytes: Vault parses the JSON body
// and hands the plugin a map[string]interface{}, and re-encoding a map cannot reproduce the
// original bytes (key order, white space and escaping are lost), so the signature cannot be checked
// from a parsed body, and Vault does not pass the headers to plugins unless configured to anyway.
//
// What a Receiver checks instead, for every body:
//
//   - With an Encrypt Key configured, only encrypted bodies are accepted, and they must decrypt
//     under the key (AES-256-CBC, key SHA-256(encrypt_key), strict PKCS#7 padding) to a well-formed
//     event. Producing such a body takes the Encrypt Key.
//   - The Verification Token inside the event (1.0: "token", 2.0: "header.token"; the challenge
//     carries one too) must equal the app's, compared in constant time. Encrypted, the token never
//     travels in the clear; without an Encrypt Key it does, and then the token check is all there
//     is, which is why the plugin should insist on an Encrypt Key.
//   - The event's app id (1.0: event.app_id, 2.0: header.app_id) must be the receiver's app.
//
// What that does not give: freshness. A captured encrypted body stays valid, so the caller must
// de-duplicate by Event.ID (Lark itself redelivers, see MaxRedelivery) and should ignore events
// older than its de-duplication window (Event.CreatedAt), and a revocation older than the grant it
// names. AES-CBC is not authenticated encryption either: all failures after decryption look the
// same from outside (Error.Public, Error.HTTPStatus), so a sender cannot use the answers as a
// padding oracle, and the padding check itself runs in constant time.
//
// Errors never contain the Encrypt Key, the Verification Token, the body or anything decrypted from
// it (an app_ticket is a credential): details are fixed phrases.
//
// Encrypt and EncryptBody build the encrypted form, for tests of a receiver. The Lark emulator must
// not use them: it encrypts with its own reading of the docs, so that the two readings check each
// other.
package larkevent
