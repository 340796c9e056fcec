// Command vault-plugin-secrets-lark is the Vault plugin binary. Vault starts it; it is not meant to
// be run by hand.
package main

import (
	"fmt"
	"os"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/plugin"

	larksecrets "github.com/lark-vault/vault-plugin-secrets-lark"
)

func main() {
	// `vault-plugin-secrets-lark -version` prints the version stamped in at build time (what
	// `vault plugin register -version` must name), for scripts and tests; Vault passes no arguments.
	if versionRequested(os.Args[1:]) {
		fmt.Println(larksecrets.Version)
		return
	}
	// Vault reads the plugin's stderr as JSON log lines; stdout is reserved for the handshake.
	logger := hclog.New(&hclog.LoggerOptions{JSONFormat: true, Output: os.Stderr})

	// A plugin whose Vault was killed must not outlive it (see waitForParentChange).
	started := os.Getppid()
	go func() {
		now, _ := waitForParentChange(started, os.Getppid, parentPollInterval, nil)
		logger.Error("the Vault process that started this plugin is gone; exiting", "vault_pid", started, "new_parent_pid", now)
		os.Exit(1)
	}()

	// ServeMultiplex lets one process serve every mount of this plugin version; all state lives in
	// the per-mount backend, never in package globals, so that is safe.
	err := plugin.ServeMultiplex(&plugin.ServeOpts{
		BackendFactoryFunc: larksecrets.Factory,
	})
	if err != nil {
		logger.Error("plugin shutting down", "error", err)
		os.Exit(1)
	}
}

// versionRequested reports whether the command line asks only for the version.
func versionRequested(args []string) bool {
	return len(args) == 1 && (args[0] == "-version" || args[0] == "--version")
}
