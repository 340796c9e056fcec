#!/usr/bin/env bash
# Builds the pinned Vault server (the version tools/vault/go.mod requires) with the Go toolchain from
# the Go module proxy, into a git-ignored cache, and prints the binary's path. A cached binary of the
# right version is reused. Vault >= 1.15 is BUSL-licensed: it is a test and development tool here,
# never imported by the plugin module.
#
# The first build downloads about 4 GB of modules and takes about 17 minutes on 2 cores.
# VAULT_CACHE_DIR chooses the cache (default: .cache/ in the repository).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
version=$(awk '$1 == "require" && $2 == "github.com/hashicorp/vault" {print $3} $1 == "github.com/hashicorp/vault" {print $2}' "$root/tools/vault/go.mod" | head -n1)
if [ -z "$version" ]; then
  echo "build-vault: cannot find the pinned github.com/hashicorp/vault version in tools/vault/go.mod" >&2
  exit 1
fi
cache=${VAULT_CACHE_DIR:-$root/.cache}
out="$cache/vault-$version/vault"

if [ -x "$out" ] && "$out" version 2>/dev/null | grep -q "Vault $version"; then
  echo "$out"
  exit 0
fi

mkdir -p "$(dirname "$out")"
echo "build-vault: building Vault $version from the Go module proxy into $out (first time: ~17 min, ~4 GB of modules)" >&2
cd "$root/tools/vault"
# GOFLAGS=-mod=mod lets a machine whose module cache lacks go.sum-listed modules download them.
GOFLAGS=-mod=mod go build -trimpath -o "$out.tmp" github.com/hashicorp/vault
mv "$out.tmp" "$out"
"$out" version >&2
echo "$out"
