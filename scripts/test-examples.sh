#!/usr/bin/env bash
# Checks the examples that no end-to-end test runs as they are (`make test-examples`):
#
#   - examples/prometheus/: promtool check config (on a copy whose token and CA files exist) and
#     promtool test rules; every alert of lark-alerts.yml must fire in at least one unit test.
#   - examples/kubernetes/: the manifests against Vault Secrets Operator's published CRD schemas
#     (tools/vso, its own Go module; VSO comes from the Go module proxy).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
prom="$root/examples/prometheus"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== examples/prometheus: promtool check config"
cp "$prom/prometheus.yml" "$prom/lark-alerts.yml" "$tmp/"
: >"$tmp/vault-token"
: >"$tmp/vault-ca.pem"
sed -i "s|/etc/prometheus/|$tmp/|g" "$tmp/prometheus.yml"
promtool check config "$tmp/prometheus.yml"

echo "== examples/prometheus: promtool test rules"
promtool test rules "$prom/lark-alerts.test.yml"

# Each alert needs a test in which it fires (an exp_alerts under its alertname).
missing=0
for alert in $(awk '$1 == "-" && $2 == "alert:" {print $3}' "$prom/lark-alerts.yml"); do
  if ! awk -v a="$alert" '
      $1 == "alertname:" { cur = $2 }
      $1 == "exp_alerts:" && cur == a { found = 1 }
      END { exit !found }' "$prom/lark-alerts.test.yml"; then
    echo "examples/prometheus/lark-alerts.test.yml: no test in which $alert fires" >&2
    missing=1
  fi
done
[ "$missing" = 0 ]

echo "== examples/kubernetes: manifests against VSO's CRD schemas"
cd "$root/tools/vso"
go test -count=1 ./...
