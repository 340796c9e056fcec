#!/usr/bin/env bash
# Prints the path of a Vault server binary of the pinned version (the version tools/vault/go.mod
# requires), for `make dev`, `make test` and the benchmarks. In this order it takes:
#
#   1. VAULT_BIN, if set: it must be the pinned version, or this script refuses it (exit 1);
#   2. a `vault` on PATH, if `vault version` says it is the pinned version (another version is
#      passed over, with a note);
#   3. the binary cached by an earlier build (VAULT_CACHE_DIR, default .cache/ in the repository);
#   4. a build with the Go toolchain from the Go module proxy into that cache, reporting its
#      progress every BUILD_VAULT_PROGRESS seconds (default 30): modules downloaded, packages
#      compiled, time spent. The first build downloads about 4 GB of modules and takes 17-35
#      minutes on 2 cores.
#
# Only the path goes to standard output; notes and progress go to standard error. Vault >= 1.15 is
# BUSL-licensed: it is a test and development tool here, never imported by the plugin module.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
version=$(awk '$1 == "require" && $2 == "github.com/hashicorp/vault" {print $3} $1 == "github.com/hashicorp/vault" {print $2}' "$root/tools/vault/go.mod" | head -n1)
if [ -z "$version" ]; then
  echo "build-vault: cannot find the pinned github.com/hashicorp/vault version in tools/vault/go.mod" >&2
  exit 1
fi
why="the plugin and its tests are checked against that version, and it is the one that builds from the Go module proxy (v1.21.4 does not: its published SDK tag does not match its release branch; DESIGN.md, \"A real Vault\")"

# version_of prints the version a Vault binary reports ("Vault v1.21.0 ('…'), built …" for a
# release, "Vault v1.21.0, built …" for a build from source), or nothing.
version_of() {
  "$1" version 2>/dev/null | awk '$1 == "Vault" {sub(/,$/, "", $2); print $2; exit}' || true
}

if [ -n "${VAULT_BIN:-}" ]; then
  if [ ! -x "$VAULT_BIN" ] || [ -d "$VAULT_BIN" ]; then
    echo "build-vault: VAULT_BIN=$VAULT_BIN is not an executable file; point it at a Vault $version binary, or unset it to build one" >&2
    exit 1
  fi
  have=$(version_of "$VAULT_BIN")
  if [ "$have" != "$version" ]; then
    echo "build-vault: VAULT_BIN=$VAULT_BIN is Vault ${have:-of an unknown version (\`vault version\` failed)}, but this project pins Vault $version (tools/vault/go.mod): $why. Point VAULT_BIN at a Vault $version binary, or unset it to build one into the cache." >&2
    exit 1
  fi
  echo "$VAULT_BIN"
  exit 0
fi

if on_path=$(command -v vault 2>/dev/null) && [ -n "$on_path" ]; then
  have=$(version_of "$on_path")
  if [ "$have" = "$version" ]; then
    echo "$on_path"
    exit 0
  fi
  echo "build-vault: not using $on_path (Vault ${have:-of an unknown version}): this project pins Vault $version" >&2
fi

cache=${VAULT_CACHE_DIR:-$root/.cache}
out="$cache/vault-$version/vault"
if [ -x "$out" ] && [ "$(version_of "$out")" = "$version" ]; then
  echo "$out"
  exit 0
fi

mkdir -p "$(dirname "$out")"
every=${BUILD_VAULT_PROGRESS:-30}
start=$(date +%s)
elapsed() { local s=$(($(date +%s) - start)); printf '%dm%02ds' $((s / 60)) $((s % 60)); }
echo "build-vault: building Vault $version from the Go module proxy into $out" >&2
echo "build-vault: the first time downloads about 4 GB of modules and takes 17-35 minutes on 2 cores;" \
  "a Vault $version you already have skips this: VAULT_BIN=/path/to/vault (README, \"Two commands\")" >&2
log=$(mktemp "${TMPDIR:-/tmp}/build-vault.XXXXXX")
worker=
trap 'if [ -n "$worker" ]; then kill "$worker" 2>/dev/null || true; fi; rm -f "$log" "$log.pkgs" "$out.tmp"' EXIT

# run_reporting runs a command in the background with its output in $log and prints, every
# $every seconds, a line made by the function named in $1 until the command ends. On failure it
# shows the command's last lines.
run_reporting() {
  local report=$1
  shift
  "$@" >"$log" 2>&1 &
  worker=$!
  while kill -0 "$worker" 2>/dev/null; do
    for _ in $(seq "$every"); do
      kill -0 "$worker" 2>/dev/null || break
      sleep 1
    done
    if kill -0 "$worker" 2>/dev/null; then
      echo "build-vault: $(elapsed): $($report)" >&2
    fi
  done
  if ! wait "$worker"; then
    worker=
    echo "build-vault: failed after $(elapsed): $*" >&2
    grep -v '^# get ' "$log" | tail -n 30 >&2
    exit 1
  fi
  worker=
}

cd "$root/tools/vault"
# GOFLAGS=-mod=mod lets a machine whose module cache lacks go.sum-listed modules download them.
export GOFLAGS=-mod=mod
pkgs=$log.pkgs
# Listing Vault's packages downloads exactly the modules the build needs; -x logs each download.
list_packages() { go list -deps -x github.com/hashicorp/vault >"$pkgs"; }
downloads() { grep -c '\.zip: 200 OK' "$log" || true; }
downloading() { echo "downloading modules: $(downloads) downloaded so far"; }
run_reporting downloading list_packages
total=$(wc -l <"$pkgs")
echo "build-vault: $(elapsed): modules ready ($(downloads) downloaded, the others were in the module cache); compiling $total packages" >&2

compiled() { echo "compiling: $(grep -c . "$log" || true) of $total packages done"; }
# -v names each package as it is compiled (packages already in the build cache are not named).
run_reporting compiled go build -v -trimpath -o "$out.tmp" github.com/hashicorp/vault
mv "$out.tmp" "$out"
echo "build-vault: $(elapsed): built $("$out" version)" >&2
echo "$out"
