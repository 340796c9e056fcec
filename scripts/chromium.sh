#!/usr/bin/env bash
# Makes sure a Chromium the browser end-to-end tests can drive is on the machine: when none is found
# (CHROMIUM_BIN, then chromium, chromium-browser, google-chrome on PATH), installs Debian's
# `chromium` package with apt-get. Used by `make chromium`, which `make test-e2e` depends on.
# Nothing is downloaded by the tests themselves; chromedp only starts the binary found here.
set -euo pipefail

if [ -n "${CHROMIUM_BIN:-}" ] && [ -x "$CHROMIUM_BIN" ]; then
  exit 0
fi
for name in chromium chromium-browser google-chrome; do
  if command -v "$name" >/dev/null; then
    exit 0
  fi
done
if ! command -v apt-get >/dev/null; then
  echo "chromium: the browser tests need Chromium and apt-get is not available; install it and put it on PATH (or set CHROMIUM_BIN)" >&2
  exit 1
fi
as_root=()
if [ "$(id -u)" != 0 ]; then
  if ! command -v sudo >/dev/null; then
    echo "chromium: installing Debian's chromium package needs root (or sudo)" >&2
    exit 1
  fi
  as_root=(sudo)
fi

echo "chromium: installing Debian's chromium package" >&2
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
chromium --version 2>/dev/null | head -n1 >&2
