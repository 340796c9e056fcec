// Command vault-plugin-secrets-lark is the Vault plugin binary. Vault starts it; it is not meant to
// be run by hand.
package main

import (
	"os"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/plugin"

	larksecrets "github.com/lark-vault/vault-plugin-secrets-lark"
)

func main() {
	// ServeMultiplex lets one process serve every mount of this plugin version; all state lives in
	// the per-mount backend, never in package globals, so that is safe.
	err := plugin.ServeMultiplex(&plugin.ServeOpts{
		BackendFactoryFunc: larksecrets.Factory,
	})
	if err != nil {
		// Vault reads the plugin's stderr as JSON log lines; stdout is reserved for the handshake.
		hclog.New(&hclog.LoggerOptions{JSONFormat: true, Output: os.Stderr}).Error("plugin shutting down", "error", err)
		os.Exit(1)
	}
}
