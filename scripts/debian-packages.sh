#!/usr/bin/env bash
# Installs the Debian packages named as arguments that are not installed yet (apt-get as root, or
# through sudo), so that `make test` on a fresh machine brings what its tests use: for example jq,
# which the README's tour uses. Prints nothing when everything is there.
set -euo pipefail

missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "debian-packages: ${missing[*]} needed and apt-get is not available; install them by hand" >&2
  exit 1
fi
as_root=()
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "debian-packages: installing ${missing[*]} needs root (or sudo)" >&2; exit 1; }
  as_root=(sudo)
fi
echo "debian-packages: installing ${missing[*]}" >&2
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
