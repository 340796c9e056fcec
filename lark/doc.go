// Package lark is a small HTTP client for the Feishu / Lark Open Platform endpoints the Vault plugin
// needs. It exists as its own package so the Vault backend never deals with HTTP details: every call
// returns either a decoded result or a *Error whose Kind tells the backend what to do (ask for a new
// app secret, retry later, tell the user to re-authorize, ...) and whose Meaning says whose move it
// is.
//
// Every endpoint goes through Client.do, which owns retries, timeouts, the response size limit,
// secret redaction and the Observe hook, so adding an endpoint is a request/response struct and a
// few lines in a file of its own (see app_token.go).
//
// Calls that need an app's identity hang off App (Client.App): self-built apps get their app and
// tenant tokens from app id and secret (app_token.go; the tenant token from the legacy endpoint or
// the v3 client-credentials grant, tenant_token_v3.go), store apps from the app_ticket Lark pushes
// and per tenant (store_app.go). What Lark pushes to the plugin, events and the app_ticket among
// them, is decoded by the sub-package larkevent.
package lark
