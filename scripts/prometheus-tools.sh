#!/usr/bin/env bash
# Makes sure promtool and prometheus are on PATH: when either is missing, installs Debian's
# `prometheus` package (which ships both) with apt-get. Used by `make prometheus-tools`, which the
# example checks and the end-to-end tests depend on.
#
# The package's maintainer scripts would start the Prometheus service (listening on :9090). During
# the install a policy-rc.d refuses every service start, and a service that is running afterwards
# anyway is stopped and disabled: tests start their own Prometheus on free ports.
set -euo pipefail

if command -v promtool >/dev/null && command -v prometheus >/dev/null; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "prometheus-tools: promtool and prometheus (2.x) are needed and apt-get is not available; install them and put them on PATH" >&2
  exit 1
fi
as_root=()
if [ "$(id -u)" != 0 ]; then
  if ! command -v sudo >/dev/null; then
    echo "prometheus-tools: installing Debian's prometheus package needs root (or sudo)" >&2
    exit 1
  fi
  as_root=(sudo)
fi

policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# Added by scripts/prometheus-tools.sh for the duration of an install.\nexit 101\n' |
    "${as_root[@]}" tee "$policy" >/dev/null
  "${as_root[@]}" chmod 755 "$policy"
  trap '"${as_root[@]}" rm -f "$policy"' EXIT
fi

echo "prometheus-tools: installing Debian's prometheus package (promtool, prometheus)" >&2
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null

if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
  "${as_root[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
promtool --version 2>&1 | head -n1 >&2
