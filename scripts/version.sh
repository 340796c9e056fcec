#!/usr/bin/env bash
# Prints the version of the checkout in the current directory (or in $1) for `make release`: always
# "v" + semver, because Vault prefixes `vault plugin register -version` with "v" and compares it, as
# a string, with the version the binary reports.
#
#   on a tag vX.Y.Z, clean tree            vX.Y.Z
#   N commits after vX.Y.Z (or dirty)      vX.Y.(Z+1)-dev.N.g<commit>[.dirty]   sorts after vX.Y.Z
#   N commits after vX.Y.Z-rc.1            vX.Y.Z-rc.1.dev.N.g<commit>[.dirty]  sorts after the rc
#   no v-tag at all                        v0.0.0-dev.N.g<commit>[.dirty]
#   not a git checkout                     v0.0.0-dev
#
# Only tags of the form vMAJOR.MINOR.PATCH[-PRERELEASE] count; build metadata (+…) is refused
# because Vault's catalog would rank two builds that differ only there as the same version.
set -euo pipefail

cd "${1:-.}"
semver='^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-([0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*))?$'

if ! git rev-parse --verify -q HEAD >/dev/null 2>&1; then
  echo v0.0.0-dev
  exit 0
fi
commit=$(git rev-parse --short=12 HEAD)
dirty=
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  dirty=.dirty
fi

tag=$(git describe --tags --abbrev=0 --match 'v[0-9]*.[0-9]*.[0-9]*' HEAD 2>/dev/null || true)
if [ -z "$tag" ]; then
  echo "v0.0.0-dev.$(git rev-list --count HEAD).g$commit$dirty"
  exit 0
fi
if ! [[ $tag =~ $semver ]]; then
  echo "version: the nearest tag $tag is not v+semver (vMAJOR.MINOR.PATCH[-PRERELEASE])" >&2
  exit 1
fi
major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]} patch=${BASH_REMATCH[3]} pre=${BASH_REMATCH[5]}
ahead=$(git rev-list --count "$tag..HEAD")
if [ "$ahead" = 0 ] && [ -z "$dirty" ]; then
  echo "$tag"
elif [ -n "$pre" ]; then
  echo "v$major.$minor.$patch-$pre.dev.$ahead.g$commit$dirty"
else
  echo "v$major.$minor.$((patch + 1))-dev.$ahead.g$commit$dirty"
fi
