// Package lark is a small HTTP client for the Feishu / Lark Open Platform endpoints the Vault plugin
// needs. It exists as its own package so the Vault backend never deals with HTTP details: every call
// returns either a decoded result or a *Error whose Kind tells the backend what to do (ask for a new
// app secret, retry later, tell the user to re-authorize, ...).
//
// Every endpoint goes through Client.do, which owns retries, timeouts, the response size limit,
// secret redaction and the Observe hook, so adding an endpoint is a request/response struct and a
// few lines in a file of its own (see app_token.go).
package lark
