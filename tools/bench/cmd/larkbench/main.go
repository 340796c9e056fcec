// Command larkbench measures vault-plugin-secrets-lark inside a real Vault server, the way an
// operator runs it: the pinned Vault on single-node Raft on disk (and in dev mode, in memory), the
// plugin registered by sha256, the Lark emulator as its own process, and reads sent over loopback
// HTTP by a closed-loop load generator.
//
//	larkbench reads  ...  token reads against KV-v2 and a floor plugin, leases per read, Lark calls
//	                      per token life, CPU profiles of the hot paths; results as JSON
//	larkbench sweep  ...  the periodic sweep at -sizes grants in Raft (10,000 up to 1,000,000); results as JSON
//	larkbench report ...  renders results as markdown into a marked section of BENCHMARKS.md
//
// scripts/bench.sh builds everything and runs it; `make bench` and `make bench-sweep` call that.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: larkbench reads|sweep|report [flags]   (-h after a subcommand lists its flags)`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "reads":
		err = runReads(ctx, os.Args[2:])
	case "sweep":
		err = runSweep(ctx, os.Args[2:])
	case "report":
		err = runReport(os.Args[2:])
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "larkbench %s: %v\n", os.Args[1], err)
		stop()
		os.Exit(1)
	}
}

// logf prints progress to stderr with a timestamp, so a long run shows where it is.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s larkbench: "+format+"\n", append([]any{nowClock()}, args...)...)
}
