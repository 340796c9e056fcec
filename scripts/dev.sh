#!/usr/bin/env bash
# `make dev`: a Vault dev server with this plugin registered by sha256 and version and mounted at
# lark/, the Lark emulator beside it, and a demo app (cli_demo) configured against the emulator.
# Ctrl-C stops everything this script started.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${PLUGIN_BIN:?run through make dev}" "${EMULATOR_BIN:?run through make dev}"
version=${VERSION:-v0.1.0}
vault_addr_port=${DEV_VAULT_ADDR:-127.0.0.1:8200}
emu_listen=${DEV_EMULATOR_ADDR:-127.0.0.1:8787}

vault_bin=$("$root/scripts/build-vault.sh")
work=$(mktemp -d "${TMPDIR:-/tmp}/lark-dev.XXXXXX")
pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
  echo "dev: stopped Vault and the emulator" >&2
}
trap cleanup INT TERM EXIT

mkdir -p "$work/plugins"
cp "$PLUGIN_BIN" "$work/plugins/vault-plugin-secrets-lark"
sha=$(sha256sum "$work/plugins/vault-plugin-secrets-lark" | cut -d' ' -f1)

"$EMULATOR_BIN" -listen "$emu_listen" -addr-file "$work/emulator.addr" 2>"$work/emulator.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/emulator.addr" ] && break; sleep 0.1; done
[ -s "$work/emulator.addr" ] || { echo "dev: the emulator did not start:" >&2; cat "$work/emulator.log" >&2; exit 1; }
emu_url=$(cat "$work/emulator.addr")

printf 'plugin_directory = "%s"\n' "$work/plugins" >"$work/vault.hcl"
VAULT_DISABLE_MLOCK=true "$vault_bin" server -dev -dev-root-token-id=root \
  -dev-listen-address="$vault_addr_port" -config="$work/vault.hcl" >"$work/vault.log" 2>&1 &
pids+=($!)
export VAULT_ADDR="http://$vault_addr_port" VAULT_TOKEN=root
for _ in $(seq 150); do "$vault_bin" status >/dev/null 2>&1 && break; sleep 0.2; done
"$vault_bin" status >/dev/null 2>&1 || { echo "dev: Vault did not start:" >&2; tail -30 "$work/vault.log" >&2; exit 1; }

"$vault_bin" plugin register -sha256="$sha" -command=vault-plugin-secrets-lark -version="$version" \
  secret vault-plugin-secrets-lark >/dev/null
"$vault_bin" secrets enable -path=lark -plugin-version="$version" vault-plugin-secrets-lark >/dev/null

# The demo app's secret exists only in the emulator and in Vault.
demo_secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
curl -fsS -X POST "$emu_url/_emulator/apps" -H 'Content-Type: application/json' \
  -d "{\"app_id\":\"cli_demo\",\"app_secret\":\"$demo_secret\"}" >/dev/null
"$vault_bin" write lark/apps/cli_demo app_secret="$demo_secret" brand=feishu base_url="$emu_url" \
  accounts_base_url="$emu_url" redirect_uri="$VAULT_ADDR/v1/lark/oauth/callback" \
  scopes=auth:user.id:read >/dev/null
unset demo_secret

# The demo person, signed in at the emulator's authorize page, and the slot "demo" bound to their Lark
# identity, the way an administrator prepares a person's first self-service authorization.
curl -fsS -X POST "$emu_url/_emulator/users" -H 'Content-Type: application/json' \
  -d '{"user_id":"demo","name":"Demo User","open_id":"ou_demo0000000000000001"}' >/dev/null
"$vault_bin" write lark/slots/cli_demo/demo open_id=ou_demo0000000000000001 >/dev/null

cat <<MSG

Vault $("$vault_bin" version | awk '{print $2}' | tr -d ,) is running with vault-plugin-secrets-lark $version mounted at lark/
(sha256 $sha), and the Lark emulator at $emu_url.

In another shell:

    export VAULT_ADDR=$VAULT_ADDR VAULT_TOKEN=root
    export PATH="$(dirname "$vault_bin"):\$PATH"

Then try:

    vault read lark/app-token/cli_demo
    vault read lark/tenant-token/cli_demo
    vault read lark/apps/cli_demo

Authorize a user (the emulator approves at once as its demo user; open the URL in a
browser, or follow it with curl -L), then read their token:

    vault write lark/oauth/cli_demo/authorize user=demo
    curl -sL "<authorize_url from above>"
    vault read lark/user-token/cli_demo/demo
    vault list -detailed lark/user-token/cli_demo/

Logs: $work/vault.log and $work/emulator.log. Press Ctrl-C to stop.
MSG
wait -n "${pids[@]}" || true
echo "dev: a process exited:" >&2; tail -n 20 "$work/vault.log" "$work/emulator.log" >&2
