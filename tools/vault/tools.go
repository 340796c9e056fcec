//go:build tools

// Package tools pins the Vault server that development and end-to-end tests run against.
// Vault is BUSL-licensed: it is a test tool here and is never imported by the plugin module.
package tools

import _ "github.com/hashicorp/vault"
