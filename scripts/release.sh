#!/usr/bin/env bash
# `make release`: cross-compiles the plugin for every platform in RELEASE_PLATFORMS into DIST, one
# static binary each (CGO_ENABLED=0, -trimpath, the version stamped in with the Makefile's LDFLAGS),
# writes DIST/SHA256SUMS and prints, per binary, the commands that install and register it.
#
# The binaries are shipped as they are, not archived: the SHA-256 in SHA256SUMS is then exactly the
# -sha256 that `vault plugin register` pins, so an operator checks the download and registers the
# published checksum, and Vault refuses to run any other file.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${VERSION:?no version: run through make release (scripts/version.sh found none?)}" "${LDFLAGS:?run through make release}"
dist=${DIST:-$root/dist}
platforms=${RELEASE_PLATFORMS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64}
name=vault-plugin-secrets-lark
plugin_dir=/etc/vault.d/plugins # the operator guide's plugin_directory

# The same rule as scripts/version.sh: "v" + semver, no build metadata.
semver='^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$'
if ! [[ $VERSION =~ $semver ]]; then
  echo "release: version '$VERSION' is not v+semver (vMAJOR.MINOR.PATCH[-PRERELEASE]); Vault needs the v" >&2
  exit 1
fi
if [[ $LDFLAGS != *"Version=$VERSION"* ]]; then
  echo "release: LDFLAGS ($LDFLAGS) do not stamp in version $VERSION" >&2
  exit 1
fi
if [[ $VERSION == *.dirty ]]; then
  echo "release: warning: the working tree has uncommitted changes; $VERSION is not a tagged build" >&2
fi

mkdir -p "$dist"
rm -f "$dist/${name}_"* "$dist/SHA256SUMS"
files=()
for platform in $platforms; do
  os=${platform%/*} arch=${platform#*/}
  file="${name}_${VERSION}_${os}_${arch}"
  echo "release: building $file" >&2
  # -s -w drop the symbol table and DWARF (a third of the size); panics still name their functions.
  CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -C "$root" -trimpath -ldflags "-s -w $LDFLAGS" \
    -o "$dist/$file" ./cmd/vault-plugin-secrets-lark
  files+=("$file")
done
(cd "$dist" && sha256sum "${files[@]}" >SHA256SUMS)

cat <<MSG
vault-plugin-secrets-lark $VERSION: ${#files[@]} binaries and SHA256SUMS in $dist

On every Vault server, install the binary for its platform into the plugin directory under a name
of this version; then register it once for the cluster:
MSG
while read -r sum file; do
  platform=${file#"${name}_${VERSION}_"}
  printf '\n%s (%s)\n' "$file" "${platform/_//}"
  printf '  install -m 0755 %s %s/%s-%s\n' "$file" "$plugin_dir" "$name" "$VERSION"
  printf '  vault plugin register -sha256=%s -command=%s-%s -version=%s secret %s\n' \
    "$sum" "$name" "$VERSION" "$VERSION" "$name"
done <"$dist/SHA256SUMS"
cat <<MSG

Then move a mount to it: vault secrets tune -plugin-version=$VERSION lark/ and
vault write sys/plugins/reload/backend mounts=lark/ (README, "Install and upgrade").
MSG
