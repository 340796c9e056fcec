#!/usr/bin/env bash
# Installs the pinned golangci-lint v2 with the Go toolchain from the Go module proxy, into the same
# git-ignored cache as the pinned Vault server, and prints the binary's path. A cached binary of the
# right version is reused.
#
# VAULT_CACHE_DIR chooses the cache (default: .cache/ in the repository); CI points it at a directory
# that outlives the clone, so the linter is built once per machine.
set -euo pipefail

version=v2.15.0
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${VAULT_CACHE_DIR:-$root/.cache}
dir="$cache/golangci-lint-$version"
out="$dir/golangci-lint"

if [ -x "$out" ] && "$out" version 2>/dev/null | grep -q "version ${version#v} "; then
  echo "$out"
  exit 0
fi

mkdir -p "$dir"
echo "golangci-lint: installing $version from the Go module proxy into $dir (first time: a few minutes)" >&2
# go install with @version builds the linter's own module, outside this repository's go.mod.
GOBIN="$dir/tmp" go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$version"
mv "$dir/tmp/golangci-lint" "$out"
rmdir "$dir/tmp"
"$out" version >&2
echo "$out"
