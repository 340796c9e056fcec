#!/usr/bin/env bash
# `make dev`: a Vault dev server with this plugin registered by sha256 and version and mounted at
# lark/, the Lark emulator beside it, a demo app (cli_demo) configured against the emulator, and a
# demo store (marketplace) app (cli_demostore) with two tenants, whose events the emulator posts to
# Vault's events/ path. Ctrl-C stops everything this script started.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${PLUGIN_BIN:?run through make dev}" "${EMULATOR_BIN:?run through make dev}"
vault_listen=${DEV_VAULT_ADDR:-127.0.0.1:8200}
emu_listen=${DEV_EMULATOR_ADDR:-127.0.0.1:8787}

# The version registered is the one stamped into the binary (Vault asks the binary and refuses a
# mismatch); the Makefile builds it with `make version`.
if ! version=$("$PLUGIN_BIN" -version 2>/dev/null) || [[ $version != v* ]]; then
  echo "dev: $PLUGIN_BIN does not tell its version (-version): rebuild it with make build" >&2
  exit 1
fi
if [ -n "${VERSION:-}" ] && [ "$VERSION" != "$version" ]; then
  echo "dev: $PLUGIN_BIN is version $version, not $VERSION: run make dev, which rebuilds it" >&2
  exit 1
fi

vault_bin=$("$root/scripts/build-vault.sh")
vault_version=$("$vault_bin" version | awk '{sub(/,$/, "", $2); print $2; exit}')
# Every vault command below goes to the server this script starts, and nowhere else: no VAULT_*
# setting of the caller's shell (address, namespace, TLS, agent) applies.
while read -r var; do unset "$var"; done < <(compgen -e | grep '^VAULT_' || true)

work=$(mktemp -d "${TMPDIR:-/tmp}/lark-dev.XXXXXX")
vault_pid= emu_pid= keep_work=
# stop ends the processes this script started (by their pids) and says which ones it stopped. Ctrl-C
# in a terminal reaches Vault and the emulator too, and either may be gone before this runs: a process
# counts as stopped when it ended cleanly or by INT or TERM, whoever sent it; one that had failed
# before (any other status) is not named.
stop() {
  local stopped=() status
  for pid in $vault_pid $emu_pid; do kill "$pid" 2>/dev/null || true; done
  if [ -n "$vault_pid" ]; then
    status=0; wait "$vault_pid" 2>/dev/null || status=$?
    if stopped_cleanly "$status"; then stopped+=("Vault (pid $vault_pid)"); fi
  fi
  if [ -n "$emu_pid" ]; then
    status=0; wait "$emu_pid" 2>/dev/null || status=$?
    if stopped_cleanly "$status"; then stopped+=("the Lark emulator (pid $emu_pid)"); fi
  fi
  vault_pid= emu_pid=
  if [ -z "$keep_work" ]; then rm -rf "$work"; fi
  if [ ${#stopped[@]} -gt 0 ]; then
    local list=${stopped[0]}
    [ ${#stopped[@]} -gt 1 ] && list="$list and ${stopped[1]}"
    echo "dev: stopped $list${1:+; $1}" >&2
  fi
}
# stopped_cleanly: exit status 0, or death by SIGINT (130) or SIGTERM (143).
stopped_cleanly() { [ "$1" -eq 0 ] || [ "$1" -eq 130 ] || [ "$1" -eq 143 ]; }
trap 'trap - EXIT; stop' EXIT
# Ctrl-C (or a TERM) is the normal way out: stop quietly, exit 0 so that make adds nothing.
trap 'trap - INT TERM EXIT; echo >&2; stop "the demo'"'"'s apps and grants are gone with them"; exit 0' INT TERM

# without_secrets drops the notice a Vault dev server prints with its unseal key and root token, and
# any other line that names them.
without_secrets() {
  awk '/WARNING! dev mode is enabled/ {skip = 1}
    !skip && tolower($0) !~ /unseal key|root token/
    /Development mode should NOT be used/ {skip = 0}'
}
# busy says that an address is taken and which variable picks another.
busy() {
  local what=$1 addr=$2 var=$3 port=${2##*:}
  local alt=$((port + 10))
  [ "$alt" -le 65535 ] || alt=$((port - 10))
  echo "dev: $addr is already in use (another $what, or another make dev?). This script never uses a" \
    "server it did not start. Pick another address: $var=${addr%:*}:$alt make dev" >&2
}

mkdir -p "$work/plugins"
cp "$PLUGIN_BIN" "$work/plugins/vault-plugin-secrets-lark"
sha=$(sha256sum "$work/plugins/vault-plugin-secrets-lark" | cut -d' ' -f1)

# The emulator writes its address file only once it listens on emu_listen itself.
: >"$work/emulator.log"
"$EMULATOR_BIN" -listen "$emu_listen" -addr-file "$work/emulator.addr" 2>"$work/emulator.log" &
emu_pid=$!
for _ in $(seq 100); do
  [ -s "$work/emulator.addr" ] && break
  kill -0 "$emu_pid" 2>/dev/null || break
  sleep 0.1
done
if [ ! -s "$work/emulator.addr" ]; then
  if grep -q 'address already in use' "$work/emulator.log"; then
    busy "Lark emulator" "$emu_listen" DEV_EMULATOR_ADDR
  else
    echo "dev: the emulator did not start:" >&2
    tail -n 20 "$work/emulator.log" >&2
  fi
  exit 1
fi
emu_url=$(cat "$work/emulator.addr")

# Vault prints "Vault server started" once its listeners are bound and the dev server is unsealed;
# until then nothing is sent to the address, which may still belong to another server.
printf 'plugin_directory = "%s"\n' "$work/plugins" >"$work/vault.hcl"
: >"$work/vault.log" # before Vault's shell opens it, so that the wait below can read it at once
VAULT_DISABLE_MLOCK=true "$vault_bin" server -dev -dev-root-token-id=root \
  -dev-listen-address="$vault_listen" -config="$work/vault.hcl" >"$work/vault.log" 2>&1 &
vault_pid=$!
for _ in $(seq 600); do
  grep -q 'Vault server started' "$work/vault.log" && break
  kill -0 "$vault_pid" 2>/dev/null || break
  sleep 0.1
done
if ! grep -q 'Vault server started' "$work/vault.log"; then
  if grep -q 'address already in use' "$work/vault.log"; then
    busy Vault "$vault_listen" DEV_VAULT_ADDR
    grep 'address already in use' "$work/vault.log" | without_secrets | head -n 3 >&2
  else
    echo "dev: Vault did not start:" >&2
    without_secrets <"$work/vault.log" | tail -n 20 >&2
  fi
  exit 1
fi
export VAULT_ADDR="http://$vault_listen" VAULT_TOKEN=root
for _ in $(seq 100); do "$vault_bin" status >/dev/null 2>&1 && break; sleep 0.1; done
# And the server answering there is this one: its plugin directory is this run's.
if [ "$("$vault_bin" read -field=plugin_directory sys/config/state/sanitized 2>/dev/null)" != "$work/plugins" ]; then
  echo "dev: the Vault answering at $VAULT_ADDR is not the one this script started; stopping" >&2
  exit 1
fi

"$vault_bin" plugin register -sha256="$sha" -command=vault-plugin-secrets-lark -version="$version" \
  secret vault-plugin-secrets-lark >/dev/null
"$vault_bin" secrets enable -path=lark -plugin-version="$version" vault-plugin-secrets-lark >/dev/null

random() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
emu() { curl -fsS -X POST "$emu_url/_emulator/$1" -H 'Content-Type: application/json' -d "$2"; }
events_url="$VAULT_ADDR/v1/lark/events"

# The demo apps' secrets exist only in the emulator and in Vault. cli_demo also tells Vault at once
# when Lark revokes one of its users' authorizations (the revocation event).
demo_secret=$(random) demo_verify=$(random) demo_key=$(random)
emu apps "{\"app_id\":\"cli_demo\",\"app_secret\":\"$demo_secret\",\"event_url\":\"$events_url/cli_demo\",
  \"verification_token\":\"$demo_verify\",\"encrypt_key\":\"$demo_key\",
  \"event_types\":[\"auth.user_access_token.revoked_v4\"]}" >/dev/null
"$vault_bin" write lark/apps/cli_demo app_secret="$demo_secret" brand=feishu base_url="$emu_url" \
  accounts_base_url="$emu_url" redirect_uri="$VAULT_ADDR/v1/lark/oauth/callback" \
  scopes=auth:user.id:read verification_token="$demo_verify" encrypt_key="$demo_key" >/dev/null
# The secret is also kept (for this run only) in a file of the work directory, so that the demo can
# be mended after the README's wrong-secret step: vault write … app_secret=@file.
(umask 077 && printf '%s' "$demo_secret" >"$work/cli_demo.secret")
unset demo_secret demo_verify demo_key
# Only the slot's own Lark user may complete a self-service authorization: bind the demo slot to
# the emulator's signed-in user, as an administrator binds a person's slot.
demo_union=$(curl -fsS "$emu_url/_emulator/users" | grep -o '"union_id":"on_[0-9a-f]*"' | head -1 | cut -d'"' -f4)
"$vault_bin" write lark/slots/cli_demo/demo union_id="$demo_union" >/dev/null

# The store app: Vault first, so that Lark's URL check and events find it; then the app at Lark
# with Vault's events path as its Request URL and the same Verification Token and Encrypt Key.
store_secret=$(random) store_verify=$(random) store_key=$(random)
"$vault_bin" write lark/apps/cli_demostore app_secret="$store_secret" app_type=store base_url="$emu_url" \
  verification_token="$store_verify" encrypt_key="$store_key" >/dev/null
emu apps "{\"app_id\":\"cli_demostore\",\"app_secret\":\"$store_secret\",\"app_type\":\"store\",
  \"event_url\":\"$events_url/cli_demostore\",\"verification_token\":\"$store_verify\",
  \"encrypt_key\":\"$store_key\",\"event_types\":[\"app_open\"]}" >/dev/null
unset store_secret store_verify store_key
# Saving the Request URL in the console: Lark's (encrypted) challenge must come back.
emu apps/cli_demostore/url-verification '{}' | grep -q '"challenge_answered":true' ||
  { echo "dev: Vault did not answer Lark's URL verification for cli_demostore" >&2; exit 1; }
# Two tenants install the app (each sends app_open to Vault); Lark pushes the first app_ticket.
for tenant in 2ed263bf32cf1651 736588c92lxf175d; do
  emu apps/cli_demostore/tenants "{\"tenant_key\":\"$tenant\"}" >/dev/null
done
emu apps/cli_demostore/tickets '{}' >/dev/null

# The demo person, signed in at the emulator's authorize page, and the slot "demo" bound to their Lark
# identity, the way an administrator prepares a person's first self-service authorization.
curl -fsS -X POST "$emu_url/_emulator/users" -H 'Content-Type: application/json' \
  -d '{"user_id":"demo","name":"Demo User","open_id":"ou_demo0000000000000001"}' >/dev/null
"$vault_bin" write lark/slots/cli_demo/demo open_id=ou_demo0000000000000001 >/dev/null
# A bot, CLI or AI agent has no browser: a device login for the slot "agent", bound to the same
# person, waits for them to approve its user code on Lark's page. The plugin itself polls Lark.
"$vault_bin" write lark/slots/cli_demo/agent open_id=ou_demo0000000000000001 >/dev/null
agent_code=$("$vault_bin" write -f -field=user_code lark/device/cli_demo/agent)

cat <<MSG

Vault $vault_version is running with vault-plugin-secrets-lark $version mounted at lark/
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

Revoke it at Lark; the revocation event flags the grant at once, before any read:

    curl -s -X POST $emu_url/_emulator/grants/revoke -d '{"app_id":"cli_demo","user_id":"demo","reason":"administrator"}'
    vault list -detailed lark/user-token/cli_demo/

A bot, CLI or AI agent logs in without a browser: a device login for the slot "agent" waits for
its person to enter $agent_code on Lark's page. Approve it as they would; the plugin stores the
grant within seconds:

    curl -s -X POST $emu_url/_emulator/device/approve -d '{"user_code":"$agent_code"}'
    vault read lark/device/cli_demo/agent

The store app cli_demostore has two tenants; its app_ticket came by an encrypted event
to $events_url/cli_demostore:

    vault read lark/apps/cli_demostore/ticket
    vault list -detailed lark/tenants/cli_demostore
    vault read lark/tenant-token/cli_demostore/2ed263bf32cf1651
    vault read lark/tenant-token/cli_demostore/736588c92lxf175d
    curl -s $emu_url/_emulator/apps/cli_demostore/events

Broke cli_demo (the README's wrong-secret or unreachable-Lark step)? This puts it right:

    vault write lark/apps/cli_demo app_secret=@$work/cli_demo.secret base_url=$emu_url

Logs: $work/vault.log and $work/emulator.log. Press Ctrl-C to stop.
MSG
# Either process ending by itself is not normal: say which, show the end of its log (without the
# unseal key and root token) and keep the logs.
status=0
wait -n "$vault_pid" "$emu_pid" || status=$?
for p in "Vault:$vault_pid:vault.log" "the Lark emulator:$emu_pid:emulator.log"; do
  IFS=: read -r name pid log <<<"$p"
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "dev: $name exited by itself (status $status); the end of $work/$log:" >&2
    without_secrets <"$work/$log" | tail -n 20 >&2
  fi
done
# What ended by itself is not named as stopped.
kill -0 "$vault_pid" 2>/dev/null || vault_pid=
kill -0 "$emu_pid" 2>/dev/null || emu_pid=
keep_work=1
stop "the logs stay in $work"
exit 1
