#!/usr/bin/env bash
# `make bench` (reads) and `make bench-sweep` (sweep): measure the plugin inside the pinned Vault,
# registered by sha256 the way an operator does, against the Lark emulator, and write the figures
# into a marked section of BENCHMARKS.md with the command, date and machine.
#
#   reads  the in-process microbenchmarks (go test -bench, with a CPU profile), then larkbench reads:
#          Vault on single-node Raft on disk and in dev mode; KV-v2, the floor plugin
#          (tools/bench/cmd/bench-floor-plugin) and the plugin's app, tenant and user tokens, leased
#          and lease-free, in alternating rounds; leases per 1,000 reads; Lark calls per token life;
#          CPU profiles of the plugin and Vault. 10-15 minutes on 2 cores.
#   sweep  larkbench sweep: grants imported into Raft up to each of SWEEP_SIZES; the first sweep pass
#          after a reload of the plugin and a steady pass (wall time, plugin and Vault CPU, grants
#          read), memory and storage per grant; keep-alive pacing seen from Lark. The imports set
#          the time: before the due index they ran at about 1,100 grants/s on 2 idle cores; with
#          it (a45a907) at about 250/s, where each new grant's level-count write serializes the
#          imports. The default sizes take 10-20 minutes; SIZES=...,1000000 needs about 1,000
#          imports/s to fit in 30 minutes.
#
# Everything goes to bench-out/ (git-ignored): results as JSON, logs, profiles, Vault's storage
# while it runs. Knobs (environment): BENCH_MODES (raft,dev), BENCH_CONCURRENCY (16), BENCH_ROUNDS
# (10), BENCH_ROUND_SECONDS (1.5), BENCH_LEASE_READS (1000), BENCH_TOKEN_LIFE_SECONDS (140; 0 skips),
# BENCH_PROFILE_SECONDS (10; 0 skips), SWEEP_SIZES (10000,100000,200000; `make bench-sweep SIZES=...`;
# SWEEP_CHECKPOINTS is the older name), SWEEP_WORKERS (32), SWEEP_PROFILE_IMPORT (0; seconds of CPU
# profiles of the plugin and Vault during the first imports, into bench-out/),
# SWEEP_KEEPALIVE_RATE (10), SWEEP_DUE (100), SWEEP_PASSES (3), SWEEP_REBUILD=1 (after the passes,
# change warning_days and log what rebuilding the grant indexes costs), BENCH_KEEP=1 keeps Vault's storage.
set -euo pipefail

what=${1:-}
case "$what" in reads | sweep) ;; *) echo "usage: $0 reads|sweep (run through make bench / make bench-sweep)" >&2; exit 2 ;; esac
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${PLUGIN_BIN:?run through make bench}" "${EMULATOR_BIN:?run through make bench}"
version=${VERSION:-$("$root/scripts/version.sh" "$root")}
module=github.com/lark-vault/vault-plugin-secrets-lark
out=$root/bench-out
mkdir -p "$out/bin"

sdk_version() { awk '$1 == "github.com/hashicorp/vault/sdk" {print $2} $1 == "require" && $2 == "github.com/hashicorp/vault/sdk" {print $3}' "$1" | head -n1; }
plugin_sdk=$(sdk_version "$root/go.mod")
tools_sdk=$(sdk_version "$root/tools/bench/go.mod")
if [ "$plugin_sdk" != "$tools_sdk" ]; then
  echo "bench: the floor plugin must use the plugin's vault/sdk: go.mod has $plugin_sdk, tools/bench/go.mod $tools_sdk" >&2
  exit 1
fi

vault_bin=$("$root/scripts/build-vault.sh")
echo "bench: building the floor plugin and larkbench (tools/bench)" >&2
(cd "$root/tools/bench" && go build -trimpath -o "$out/bin/" ./cmd/bench-floor-plugin ./cmd/larkbench)
larkbench=$out/bin/larkbench

commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ "$commit" != unknown ] && [ -n "$(git -C "$root" status --porcelain --untracked-files=no -- . ':!BENCHMARKS.md')" ]; then
  commit="$commit + uncommitted changes"
fi
work=$out/work # on the repository's disk: many machines have /tmp in memory
keep=()
[ "${BENCH_KEEP:-}" = 1 ] && keep=(-keep)

start=$(date +%s)
if [ "$what" = reads ]; then
  echo "bench: in-process microbenchmarks" >&2
  (
    cd "$root"
    # -cpuprofile takes one package: the root package gets the profile, any other package with
    # benchmarks runs without one.
    go test -run '^$' -bench . -benchmem -count 5 -cpuprofile "$out/micro-cpu.pprof" -o "$out/micro.test" .
    others=$(grep -rl --include='*_test.go' '^func Benchmark' . | { grep -v -e '^\./tools/' -e '^\./[^/]*$' || true; } |
      xargs -r -n1 dirname | sort -u)
    if [ -n "$others" ]; then
      # shellcheck disable=SC2086 # one argument per package directory
      go test -run '^$' -bench . -benchmem -count 5 $others
    fi
  ) | tee "$out/micro.txt"

  echo "bench: the plugin built with -tags benchpprof, for the profiles" >&2
  (cd "$root" && CGO_ENABLED=0 go build -trimpath -tags benchpprof -ldflags "-X $module.Version=$version" \
    -o "$out/bin/vault-plugin-secrets-lark-pprof" ./cmd/vault-plugin-secrets-lark)

  "$larkbench" reads -vault "$vault_bin" -plugin "$PLUGIN_BIN" -plugin-version "$version" -emulator "$EMULATOR_BIN" \
    -floor "$out/bin/bench-floor-plugin" -pprof-plugin "$out/bin/vault-plugin-secrets-lark-pprof" \
    -modes "${BENCH_MODES:-raft,dev}" -concurrency "${BENCH_CONCURRENCY:-16}" -rounds "${BENCH_ROUNDS:-10}" \
    -round-seconds "${BENCH_ROUND_SECONDS:-1.5}" -lease-reads "${BENCH_LEASE_READS:-1000}" \
    -token-life-seconds "${BENCH_TOKEN_LIFE_SECONDS:-140}" -profile-seconds "${BENCH_PROFILE_SECONDS:-10}" \
    -work "$work" -profile-dir "$out" -out "$out/reads.json" "${keep[@]}"
  "$larkbench" report -reads "$out/reads.json" -micro "$out/micro.txt" -benchmarks "$root/BENCHMARKS.md" \
    -command "make bench" -commit "$commit" -took-seconds "$(($(date +%s) - start))"
else
  sizes=${SWEEP_SIZES:-${SWEEP_CHECKPOINTS:-10000,100000,200000}}
  profile=()
  if [ "${SWEEP_PROFILE_IMPORT:-0}" != 0 ]; then
    (cd "$root" && CGO_ENABLED=0 go build -trimpath -tags benchpprof -ldflags "-X $module.Version=$version" \
      -o "$out/bin/vault-plugin-secrets-lark-pprof" ./cmd/vault-plugin-secrets-lark)
    profile=(-pprof-plugin "$out/bin/vault-plugin-secrets-lark-pprof" -profile-import "$SWEEP_PROFILE_IMPORT" -profile-dir "$out")
  fi
  "$larkbench" sweep -vault "$vault_bin" -plugin "$PLUGIN_BIN" -plugin-version "$version" -emulator "$EMULATOR_BIN" \
    -sizes "$sizes" -workers "${SWEEP_WORKERS:-32}" "${profile[@]}" \
    -keepalive-rate "${SWEEP_KEEPALIVE_RATE:-10}" -due "${SWEEP_DUE:-100}" -passes "${SWEEP_PASSES:-3}" \
    ${SWEEP_REBUILD:+-rebuild} -work "$work" -out "$out/sweep.json" "${keep[@]}"
  "$larkbench" report -sweep "$out/sweep.json" -benchmarks "$root/BENCHMARKS.md" -command "make bench-sweep SIZES=$sizes" -commit "$commit" \
    -took-seconds "$(($(date +%s) - start))"
fi
echo "bench: done in $(($(date +%s) - start))s; BENCHMARKS.md updated, details in bench-out/" >&2
