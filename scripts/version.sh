#!/usr/bin/env bash
# Prints the version of the checkout in the current directory (or in $1): the one version every build
# is stamped with (`make build`, `make dev`, `make release`, and so what Vault shows for the plugin).
# Always "v" + semver, because Vault prefixes `vault plugin register -version` with "v" and compares
# it, as a string, with the version the binary reports.
#
# The latest release is the nearest v-tag, or, where there is none (tags do not travel with every
# clone or export), the newest release heading of CHANGELOG.md ("## [vX.Y.Z] - date"); its release
# commit is the one that added that heading. Then:
#
#   at the release commit, clean tree      vX.Y.Z
#   N commits after vX.Y.Z (or dirty)      vX.Y.(Z+1)-dev.N.g<commit>[.dirty]   sorts after vX.Y.Z
#   N commits after vX.Y.Z-rc.1            vX.Y.Z-rc.1.N.g<commit>[.dirty]      sorts after the rc
#   no release at all                      v0.0.0-dev.N.g<commit>[.dirty]
#   a shallow clone that lacks the release commit: N is unknown, 0 is used, with a warning
#   not a git checkout                     vX.Y.(Z+1)-dev (or v0.0.0-dev without a changelog)
#
# These sort the way semver and Vault's catalog (hashicorp/go-version) both do: numeric identifiers
# compare as numbers (dev.9 before dev.10), and what follows a pre-release's own identifiers starts
# with a number (go-version ranks rc.1 above rc.1.dev, but below rc.1.1). Only versions of the
# form vMAJOR.MINOR.PATCH[-PRERELEASE] count; build metadata (+…) is refused because Vault's catalog
# would rank two builds that differ only there as the same version.
set -euo pipefail

cd "${1:-.}"
semver='^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-([0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*))?$'

# after prints the version of a build N commits after a release (or of a changed tree).
after() {
  local release=$1 ahead=$2 suffix=$3
  [[ $release =~ $semver ]]
  local major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]} patch=${BASH_REMATCH[3]} pre=${BASH_REMATCH[5]}
  if [ -n "$pre" ]; then
    echo "v$major.$minor.$patch-$pre${ahead:-.0}$suffix"
  else
    echo "v$major.$minor.$((patch + 1))-dev$ahead$suffix"
  fi
}
# check refuses a release name that is not v+semver.
check() {
  if ! [[ $1 =~ $semver ]]; then
    echo "version: $2 $1 is not v+semver (vMAJOR.MINOR.PATCH[-PRERELEASE])" >&2
    exit 1
  fi
}
# changelog_release prints the newest release heading of a CHANGELOG.md ("## [v0.1.0] - 2026-11-28").
changelog_release() {
  [ -e "$1" ] || return 0
  sed -n -E 's/^## \[([^]]*)\].*/\1/p' "$1" | grep -v -x -i unreleased | head -n1 || true
}

if ! git rev-parse --verify -q HEAD >/dev/null 2>&1; then
  release=$(changelog_release CHANGELOG.md)
  if [ -z "$release" ]; then
    echo v0.0.0-dev
    exit 0
  fi
  check "$release" "CHANGELOG.md's newest release"
  after "$release" "" ""
  exit 0
fi
commit=$(git rev-parse --short=12 HEAD)
dirty=
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  dirty=.dirty
fi

tag=$(git describe --tags --abbrev=0 --match 'v[0-9]*.[0-9]*.[0-9]*' HEAD 2>/dev/null || true)
if [ -n "$tag" ]; then
  check "$tag" "the nearest tag"
  ahead=$(git rev-list --count "$tag..HEAD")
  if [ "$ahead" = 0 ] && [ -z "$dirty" ]; then
    echo "$tag"
  else
    after "$tag" ".$ahead" ".g$commit$dirty"
  fi
  exit 0
fi

cd "$(git rev-parse --show-toplevel)"
release=$( (git show HEAD:CHANGELOG.md 2>/dev/null || true) | changelog_release /dev/stdin)
if [ -z "$release" ]; then
  echo "v0.0.0-dev.$(git rev-list --count HEAD).g$commit$dirty"
  exit 0
fi
check "$release" "CHANGELOG.md's newest release"
# The release commit added the heading: the oldest commit that changed how often it occurs.
released=$(git log --reverse --format=%H -F -S "## [$release]" HEAD -- CHANGELOG.md | head -n1)
ahead=$(git rev-list --count "$released..HEAD")
# In a shallow clone the oldest commit here seems to add everything; the release may be older.
if [ "$(git rev-parse --is-shallow-repository)" = true ] && grep -qx "$released" "$(git rev-parse --git-dir)/shallow" 2>/dev/null; then
  echo "version: a shallow clone lacks the commit that released $release: the commits since are counted from the oldest one here (git fetch --unshallow counts them all)" >&2
  after "$release" ".$ahead" ".g$commit$dirty"
elif [ "$ahead" = 0 ] && [ -z "$dirty" ]; then
  echo "$release"
else
  after "$release" ".$ahead" ".g$commit$dirty"
fi
