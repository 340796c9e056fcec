//go:build benchpprof

package main

import (
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/ on http.DefaultServeMux
	"os"
)

// Only in a build with -tags benchpprof, which `make bench` makes for its profiling pass and never
// ships: when LARK_PLUGIN_PPROF_ADDR names a loopback address (set with `vault plugin register
// -env`), the plugin serves net/http/pprof there, so CPU profiles of the plugin can be taken while
// it runs inside a real Vault. Nothing is written to stdout, which belongs to the plugin handshake.
func init() {
	addr := os.Getenv("LARK_PLUGIN_PPROF_ADDR")
	if addr == "" {
		return
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return
	}
	go func() { _ = http.ListenAndServe(addr, nil) }()
}
